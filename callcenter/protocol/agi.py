"""Sans-I/O AGI protocol: bytes in, typed messages out; commands to bytes.

A FastAGI connection starts with Asterisk sending ``agi_*: value`` header
lines ended by an empty line (:class:`AgiRequest`). Then the server writes one
command line at a time and Asterisk answers each with one reply line:

- ``200 result=<r> [(data)] [key=value ...]``: the command ran;
- ``510 Invalid or unknown command``;
- ``511 Command Not Permitted on a dead channel or intercepted channel``;
- ``520-...`` continued lines ending with ``520 End of proper usage.``
  (usage error, multi-line).

At any moment Asterisk may also send a bare ``HANGUP`` line when the channel
hangs up (:class:`HangupNotice`); it is not the reply to the pending command,
which panoramisk's FastAGI confuses.

:class:`AgiParser` holds no socket: feed it bytes, get messages. Limits bound
every buffer so a hostile or broken peer costs a clear error, never memory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from callcenter.errors import AGIProtocolError

__all__ = [
    "AgiParser",
    "AgiReply",
    "AgiRequest",
    "HangupNotice",
    "Message",
    "encode_command",
]

MAX_LINE: Final = 64 * 1024
MAX_HEADERS: Final = 256
MAX_USAGE_LINES: Final = 200


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class AgiRequest:
    """The ``agi_*`` environment Asterisk sends when a call enters FastAGI."""

    script: str
    """Path of the AGI URL without leading slash and query, e.g. ``inbound``."""
    query: Mapping[str, str]
    """Arguments of the URL query string, e.g. ``dnis=0800123456``."""
    args: tuple[str, ...]
    """``agi_arg_1`` ... ``agi_arg_N`` in order."""
    env: Mapping[str, str] = field(repr=False)
    """Every ``agi_*`` header, without the ``agi_`` prefix."""

    @property
    def channel(self) -> str:
        return self.env.get("channel", "")

    @property
    def uniqueid(self) -> str:
        return self.env.get("uniqueid", "")

    @property
    def linkedid(self) -> str:
        """The call's id (Asterisk Linkedid) when the dialplan passes it as
        ``?linkedid=${CHANNEL(linkedid)}``, else the channel's own Uniqueid
        (the same thing for a call that starts on this channel)."""
        return self.query.get("linkedid") or self.uniqueid

    @property
    def callerid(self) -> str:
        value = self.env.get("callerid", "")
        return "" if value == "unknown" else value

    @property
    def calleridname(self) -> str:
        value = self.env.get("calleridname", "")
        return "" if value == "unknown" else value

    @property
    def dnid(self) -> str:
        value = self.env.get("dnid", "")
        return "" if value == "unknown" else value

    @property
    def extension(self) -> str:
        return self.env.get("extension", "")

    @property
    def context(self) -> str:
        return self.env.get("context", "")

    @property
    def language(self) -> str:
        return self.env.get("language", "en")

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> AgiRequest:
        env = {k.removeprefix("agi_"): v for k, v in headers.items()}
        raw = env.get("network_script") or _path_of(env.get("request", ""))
        path, _, query = raw.partition("?")
        args: list[str] = []
        while (arg := env.get(f"arg_{len(args) + 1}")) is not None:
            args.append(arg)
        return cls(
            script=path.strip("/"),
            query=_frozen(dict(parse_qsl(query, keep_blank_values=True))),
            args=tuple(args),
            env=_frozen(env),
        )


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


_REPLY_200 = re.compile(r"result=(?P<result>\S*)(?: \((?P<data>.*)\))?(?P<extra>(?: [\w-]+=\S*)*)")


@dataclass(frozen=True, slots=True)
class AgiReply:
    """The reply to one command."""

    code: int
    result: str = ""
    """The ``result=`` value: a number, or digits for GET DATA."""
    data: str | None = None
    """The parenthesised part, e.g. ``(timeout)`` or a variable's value."""
    extra: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    """Trailing ``key=value`` pairs, e.g. ``endpos``."""
    text: str = ""
    """The raw reply (all lines of a 520), for error messages."""

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def number(self) -> int | None:
        """``result`` as an integer, or None when it is not one (digits like ``*1``)."""
        try:
            return int(self.result)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class HangupNotice:
    """Asterisk's unsolicited ``HANGUP`` line: the channel is gone."""


Message = AgiRequest | AgiReply | HangupNotice


class AgiParser:
    """Incremental parser for the Asterisk side of a FastAGI connection.

    ``feed`` returns the complete messages found so far. After an error the
    parser is broken for good (``feed`` raises again): the connection has to
    be closed, because a desynchronised AGI stream cannot be trusted.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._headers: dict[str, str] | None = {}
        self._usage: list[str] | None = None
        self._error: AGIProtocolError | None = None

    @property
    def request_seen(self) -> bool:
        return self._headers is None

    def feed(self, data: bytes) -> list[Message]:
        if self._error is not None:
            raise self._error
        self._buffer += data
        messages: list[Message] = []
        try:
            while (end := self._buffer.find(b"\n")) >= 0:
                raw = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                message = self._line(_decode(raw.rstrip(b"\r")))
                if message is not None:
                    messages.append(message)
            if len(self._buffer) > MAX_LINE:
                raise AGIProtocolError(f"AGI line longer than {MAX_LINE} bytes")
        except AGIProtocolError as exc:
            self._error = exc
            raise
        return messages

    def _line(self, line: str) -> Message | None:
        if self._headers is not None:
            return self._header(self._headers, line)
        if self._usage is not None:
            return self._usage_line(self._usage, line)
        if line == "HANGUP":
            return HangupNotice()
        if line == "":
            # Asterisk may send a blank line after HANGUP; it carries nothing.
            return None
        code_text, sep, rest = line.partition(" ")
        if code_text == "520-" or line.startswith("520-"):
            self._usage = [line]
            return None
        if not code_text.isdigit() or len(code_text) != 3:
            raise AGIProtocolError(f"not an AGI reply: {line[:80]!r}")
        code = int(code_text)
        if code != 200:
            return AgiReply(code=code, text=line)
        match = _REPLY_200.fullmatch(rest) if sep else None
        if match is None:
            raise AGIProtocolError(f"malformed 200 reply: {line[:80]!r}")
        extra = dict(pair.split("=", 1) for pair in match["extra"].split())
        return AgiReply(
            code=200,
            result=match["result"],
            data=match["data"],
            extra=_frozen(extra),
            text=line,
        )

    def _header(self, headers: dict[str, str], line: str) -> AgiRequest | None:
        if line == "":
            if not headers:
                raise AGIProtocolError("AGI session started with an empty line, no agi_* headers")
            self._headers = None
            return AgiRequest.from_headers(headers)
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_") or not key.isascii() or " " in key:
            raise AGIProtocolError(f"not an agi_* header: {line[:80]!r}")
        if len(headers) >= MAX_HEADERS:
            raise AGIProtocolError(f"more than {MAX_HEADERS} agi_* headers")
        headers[key] = value.strip()
        return None

    def _usage_line(self, usage: list[str], line: str) -> AgiReply | None:
        usage.append(line)
        if line.startswith("520 "):
            self._usage = None
            return AgiReply(code=520, text="\n".join(usage))
        if len(usage) > MAX_USAGE_LINES:
            raise AGIProtocolError(f"520 usage reply longer than {MAX_USAGE_LINES} lines")
        return None


def _decode(raw: bytes) -> str:
    # Channel variables and caller names can carry any bytes; never fail on them.
    return raw.decode("utf-8", errors="replace")


_UNSAFE = re.compile(r"[\r\n\x00]")


def encode_command(*parts: str | int) -> bytes:
    """Encode one AGI command line.

    The first part is the command words (``"GET DATA"``); the others are
    arguments, each quoted so spaces and quotes inside them stay one argument.
    A newline or NUL in any part would let it inject a second command, so it
    is refused (callers pass caller-supplied data through here).
    """
    if not parts:
        raise AGIProtocolError("empty AGI command")
    words = str(parts[0])
    if _UNSAFE.search(words) or not words.strip():
        raise AGIProtocolError(f"refusing AGI command {words!r}")
    out = [words]
    for part in parts[1:]:
        text = str(part)
        if _UNSAFE.search(text):
            raise AGIProtocolError(f"refusing AGI argument with a line break or NUL: {text!r}")
        out.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    try:
        return (" ".join(out) + "\n").encode()
    except UnicodeEncodeError as exc:
        raise AGIProtocolError(f"refusing AGI command that is not valid text: {exc}") from exc
