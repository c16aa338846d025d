"""AMI framing, sans-I/O: bytes in, frames out; actions in, bytes out.

The parser never raises on what the peer sends: anything it cannot frame
comes back as an :class:`AmiFrameError` next to the frames it could read, so
one bad message never costs the connection. Memory is bounded by
``max_message`` whatever arrives: an over-long message is dropped (reported)
and the parser resynchronises at the next blank line.

Speed matters (every AMI event of a busy node goes through here): the buffer
is cut into messages with one C-level regex search per message and each
message is decoded and split with str methods; there is no per-byte loop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Literal

from callcenter.errors import AMIProtocolError

FrameKind = Literal["event", "response", "unknown"]

BANNER_PREFIX = b"Asterisk Call Manager/"
END_COMMAND = b"--END COMMAND--"
DEFAULT_MAX_MESSAGE = 1 << 20

# A message ends at an empty line; Asterisk writes CRLF but a bare LF is
# tolerated anywhere a CRLF is expected.
_TERMINATOR = re.compile(rb"\r?\n\r?\n")
# The legacy Command answer: its body is raw text (may hold blank lines and
# colons) that ends with --END COMMAND--, not with a blank line.
_FOLLOWS = re.compile(rb"(?:\r?\n)*response:[ \t]*follows[ \t]*\r?\n", re.IGNORECASE)
# Headers that Asterisk puts before the raw body of a Follows answer.
_FOLLOWS_HEADERS = frozenset({"privilege", "actionid", "message"})
# Enough bytes to recognise a terminator that straddles two reads.
_TAIL = 3


class AmiFrame:
    """One AMI message: headers in wire order (repeated keys kept), plus the
    raw body lines of a legacy ``Response: Follows`` answer. Immutable.

    ``index`` maps each key, exactly as sent, to its first value: typed-event
    parsing is one dict lookup per field. The ``headers`` tuple is built on
    first use only, since most frames are read through ``index`` alone.
    """

    __slots__ = ("_headers", "_lower", "_text", "body", "index")

    _headers: tuple[tuple[str, str], ...] | None
    _lower: dict[str, str] | None
    _text: str | None
    body: tuple[str, ...]
    index: dict[str, str]

    def __init__(self, headers: Iterable[tuple[str, str]], body: Sequence[str] = ()) -> None:
        items = tuple((str(k), str(v)) for k, v in headers)
        init = object.__setattr__
        init(self, "_headers", items)
        init(self, "_text", None)
        init(self, "_lower", None)
        init(self, "body", tuple(body))
        # reversed(): the first of repeated keys is written last, so it wins.
        init(self, "index", dict(reversed(items)))

    @classmethod
    def _from_text(cls, text: str, index: dict[str, str]) -> AmiFrame:
        # The parser's fast path: every line of text is "Key: Value" (checked).
        # Keeping the text rather than a list per line leaves the garbage
        # collector two objects per frame to track instead of dozens.
        frame = cls.__new__(cls)
        init = object.__setattr__
        init(frame, "_headers", None)
        init(frame, "_text", text)
        init(frame, "_lower", None)
        init(frame, "body", ())
        init(frame, "index", index)
        return frame

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        headers = self._headers
        if headers is None:
            assert self._text is not None
            headers = tuple(
                (key, value)
                for key, _, value in (line.partition(": ") for line in self._text.split("\n"))
            )
            object.__setattr__(self, "_headers", headers)
        return headers

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AmiFrame is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"AmiFrame is immutable (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AmiFrame):
            return NotImplemented
        return self.headers == other.headers and self.body == other.body

    def __hash__(self) -> int:
        return hash((self.headers, self.body))

    def __repr__(self) -> str:
        body = f", body={self.body!r}" if self.body else ""
        return f"AmiFrame({self.headers!r}{body})"

    @classmethod
    def of(cls, *headers: tuple[str, str]) -> AmiFrame:
        return cls(tuple(headers))

    def get(self, key: str, default: str | None = None) -> str | None:
        """First value of ``key``, matched case-insensitively."""
        value = self.index.get(key)
        if value is not None:
            return value
        lower = self._lower
        if lower is None:
            lower = {}
            for k, v in self.headers:
                lower.setdefault(k.lower(), v)
            object.__setattr__(self, "_lower", lower)
        return lower.get(key.lower(), default)

    def get_all(self, key: str) -> list[str]:
        """Every value of a repeated key (``ChanVariable``, ``Output``...), in order."""
        wanted = key.lower()
        return [v for k, v in self.headers if k.lower() == wanted]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)

    @property
    def kind(self) -> FrameKind:
        if self.get("Event") is not None:
            return "event"
        if self.get("Response") is not None:
            return "response"
        return "unknown"

    @property
    def name(self) -> str:
        """The Event name, else the Response value, else ''."""
        value = self.get("Event")
        if value is None:
            value = self.get("Response")
        return value or ""

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def output(self) -> tuple[str, ...]:
        """Command output: the legacy body, else the ``Output`` headers."""
        if self.body:
            return self.body
        return tuple(self.get_all("Output"))

    def encode(self) -> bytes:
        """The frame as Asterisk would send it (tests, fixtures)."""
        text = "".join(f"{k}: {v}\r\n" for k, v in self.headers)
        if self.body:
            text += "".join(f"{line}\n" for line in self.body) + "--END COMMAND--\r\n"
        return (text + "\r\n").encode()


@dataclass(frozen=True, slots=True)
class AmiFrameError:
    """Something the peer sent that is not AMI; the parser went on after it."""

    reason: str
    line: str | None = None

    def __str__(self) -> str:
        if self.line is None:
            return f"AMI framing: {self.reason}"
        return f"AMI framing: {self.reason}: {self.line[:200]!r}"


def _split_lines(raw: bytes | bytearray) -> list[str]:
    text = raw.decode("utf-8", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text.split("\n")


class AmiParser:
    """Incremental AMI framing for one connection.

    ``feed`` returns the frames completed by the bytes given, in order; bytes
    split at any boundary produce the same frames as one read.
    """

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        if max_message < 64:
            raise AMIProtocolError("max_message must be at least 64 bytes")
        self.max_message = max_message
        self.version: str | None = None
        self._buf = bytearray()
        self._banner_pending = True
        # Follows answer under way: where its text starts in _buf.
        self._follows = False
        # Dropping an over-long message until the next blank line.
        self._discarding = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[AmiFrame | AmiFrameError]:
        out: list[AmiFrame | AmiFrameError] = []
        buf = self._buf
        buf += data
        pos = 0
        if self._banner_pending:
            pos = self._banner(out)
            if self._banner_pending:
                return out
        search = _TERMINATOR.search
        follows = _FOLLOWS.match
        lowered: bytearray | None = None
        while True:
            if self._discarding:
                m = search(buf, pos)
                if m is None:
                    # Keep only a tail that may start the terminator.
                    pos = max(pos, len(buf) - _TAIL)
                    break
                self._discarding = False
                pos = m.end()
                continue
            if self._follows or follows(buf, pos) is not None:
                self._follows = True
                end = buf.find(END_COMMAND, pos)
                if end < 0:
                    if len(buf) - pos > self.max_message:
                        out.append(AmiFrameError(f"command output over {self.max_message} bytes"))
                        self._follows = False
                        self._discarding = True
                        # Resync at the next blank line, even inside the body.
                        continue
                    break
                if end - pos > self.max_message:
                    out.append(AmiFrameError(f"command output over {self.max_message} bytes"))
                else:
                    out.extend(self._follows_frame(buf[pos:end]))
                self._follows = False
                pos = end + len(END_COMMAND)
                continue
            # Bulk: every complete message up to the first mention of a
            # Follows answer is framed from one decode (the common case). A
            # lower-cased copy and find() beat a case-insensitive regex.
            if lowered is None:
                lowered = buf.lower()
            mention = lowered.find(b"follows", pos)
            limit = len(buf) if mention < 0 else mention
            end = max(buf.rfind(b"\n\n", pos, limit) + 2, buf.rfind(b"\n\r\n", pos, limit) + 3)
            if end > pos + 2:
                self._bulk(buf[pos:end], out)
                pos = end
                continue
            m = search(buf, pos)
            if m is None:
                if len(buf) - pos > self.max_message:
                    out.append(AmiFrameError(f"message over {self.max_message} bytes"))
                    self._discarding = True
                    pos = max(pos, len(buf) - _TAIL)
                break
            start = m.start()
            if start - pos > self.max_message:
                out.append(AmiFrameError(f"message over {self.max_message} bytes"))
            elif start > pos:
                self._lines(_split_lines(buf[pos:start]), out)
            pos = m.end()
        if pos:
            del buf[:pos]
        return out

    def _banner(self, out: list[AmiFrame | AmiFrameError]) -> int:
        buf = self._buf
        if len(buf) < len(BANNER_PREFIX) and BANNER_PREFIX.startswith(bytes(buf)):
            return 0
        if not buf.startswith(BANNER_PREFIX):
            # No banner (a replayed capture, a test server): plain messages.
            self._banner_pending = False
            return 0
        end = buf.find(b"\n")
        if end < 0:
            if len(buf) > self.max_message:
                out.append(AmiFrameError("banner line too long"))
                self._banner_pending = False
                self._discarding = True
            return 0
        line = buf[:end].decode("utf-8", "replace").rstrip("\r")
        self.version = line[len(BANNER_PREFIX) :].strip()
        self._banner_pending = False
        return end + 1

    def _bulk(self, raw: bytes | bytearray, out: list[AmiFrame | AmiFrameError]) -> None:
        text = raw.decode("utf-8", "replace")
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        limit = self.max_message
        split = str.split
        from_text = AmiFrame._from_text
        for block in text.split("\n\n"):
            if not block:
                continue
            if block[0] == "\n" or block[-1] == "\n":
                block = block.strip("\n")
                if not block:
                    continue
            if len(block) > limit:
                out.append(AmiFrameError(f"message over {limit} bytes"))
                continue
            lines = block.split("\n")
            # All in C: split each line once at ": " and index the pairs.
            # dict() refuses any line without ": " (ValueError); a key that
            # holds a colon or is empty means the line was "Key:Value" or
            # ": x". Those rare messages take the line-by-line path.
            pairs = list(map(split, lines, repeat(": "), repeat(1)))
            try:
                index = dict(reversed(pairs))
            except ValueError:
                self._lines(lines, out)
                continue
            if "" in index or ":" in "".join(index):
                self._lines(lines, out)
                continue
            out.append(from_text(block, index))

    def _lines(self, lines: list[str], out: list[AmiFrame | AmiFrameError]) -> None:
        headers: list[tuple[str, str]] = []
        for line in lines:
            key, sep, value = line.partition(":")
            if sep and key:
                if value[:1] == " ":
                    value = value[1:]
                headers.append((key, value))
            elif line.strip():
                out.append(AmiFrameError("line without 'Key: Value'", line))
        if headers:
            out.append(AmiFrame(tuple(headers)))

    def _follows_frame(self, raw: bytes | bytearray) -> list[AmiFrame | AmiFrameError]:
        lines = _split_lines(raw)
        while lines and lines[0] == "":
            lines.pop(0)
        headers: list[tuple[str, str]] = [("Response", "Follows")]
        index = 1
        while index < len(lines):
            key, sep, value = lines[index].partition(":")
            if not sep or key.lower() not in _FOLLOWS_HEADERS:
                break
            headers.append((key, value[1:] if value[:1] == " " else value))
            index += 1
        body = lines[index:]
        # The newline that precedes --END COMMAND-- ends the last output line.
        if body and body[-1] == "":
            body.pop()
        return [AmiFrame(tuple(headers), tuple(body))]


HeaderValue = str | Sequence[str]


def _check(what: str, text: str) -> str:
    if "\r" in text or "\n" in text:
        raise AMIProtocolError(f"AMI {what} {text[:80]!r} contains CR or LF")
    return text


def encode_action(name: str, headers: Mapping[str, HeaderValue], action_id: str) -> bytes:
    """Serialise one action. A sequence value repeats the key (``Variable``).

    CR or LF inside a name or value would let the text smuggle extra headers
    or a whole extra action into Asterisk: refused with AMIProtocolError.
    """
    if not name:
        raise AMIProtocolError("AMI action name is empty")
    parts = [f"Action: {_check('action name', name)}\r\n"]
    if action_id:
        parts.append(f"ActionID: {_check('ActionID', action_id)}\r\n")
    for key, value in headers.items():
        if not key or ":" in key or key != key.strip():
            raise AMIProtocolError(f"AMI header name {key!r} is not valid")
        _check("header name", key)
        values = [value] if isinstance(value, str) else value
        for item in values:
            text = item if isinstance(item, str) else str(item)
            parts.append(f"{key}: {_check(f'{key} value', text)}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")
