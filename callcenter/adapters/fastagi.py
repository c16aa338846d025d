"""FastAGI server: Asterisk connects per call; we route by script path.

Thin asyncio shell around :mod:`callcenter.protocol.agi`. For each connection
the server owns one task that runs the route's handler with an
:class:`AgiSession`; that task owns a reader task which feeds the parser, so a
``HANGUP`` from Asterisk is seen at once even while the handler is busy
elsewhere (waiting in the ACD, say) and not only when it sends a command.

Whatever the handler does, the socket is closed when it returns or fails, and
Asterisk then resumes the dialplan after ``AGI()``: a crashed handler costs a
log line and the dialplan's fallback, never a hung channel. (An AMI
``Redirect`` of a channel in AGI also takes effect only at that moment.)
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from callcenter.adapters.tcp import SessionServer
from callcenter.errors import (
    AGICommandFailed,
    AGIHangup,
    AGIProtocolError,
    AGITimeout,
    CallCenterError,
)
from callcenter.protocol.agi import (
    AgiParser,
    AgiReply,
    AgiRequest,
    HangupNotice,
    encode_command,
)
from callcenter.tasks import cancel_and_wait

__all__ = ["AgiHandler", "AgiSession", "FastAgiServer", "FastAgiStats"]

log = structlog.get_logger("callcenter.fastagi")

AgiHandler = Callable[["AgiSession"], Awaitable[None]]

# Commands whose ``result=-1`` means the channel went away (res_agi returns
# -1 from these on hang-up); other commands use -1 for ordinary failures.
_HANGUP_ON_MINUS_ONE = frozenset(
    {
        "ANSWER",
        "STREAM FILE",
        "CONTROL STREAM FILE",
        "GET DATA",
        "GET OPTION",
        "WAIT FOR DIGIT",
        "SAY DIGITS",
        "SAY NUMBER",
        "SAY ALPHA",
        "RECORD FILE",
        "EXEC",
    }
)
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What the handler's own timeouts cannot account for: Asterisk's scheduling
# and a loaded machine. Beyond it, the link is considered dead.
_REPLY_GRACE = 10.0
# A prompt played by GET DATA before the digits are read may last this long.
_LONGEST_PROMPT = 120.0
# Variable the dialplan can test after AGI() to learn why the daemon let go.
ERROR_VARIABLE = "CC_AGI_ERROR"


@dataclass
class FastAgiStats:
    sessions: int = 0
    active: int = 0
    protocol_errors: int = 0
    handler_errors: int = 0
    unknown_scripts: int = 0


def _digit(reply: AgiReply) -> str:
    """The key that interrupted a playback (its ASCII code in ``result``), or ""."""
    code = reply.number or 0
    return chr(code) if code > 0 else ""


class AgiSession:
    """One call inside FastAGI. Commands are serialised: one pending at a time."""

    def __init__(
        self,
        request: AgiRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        parser: AgiParser,
        *,
        idle_timeout: float,
    ) -> None:
        self.request = request
        self._reader = reader
        self._writer = writer
        self._parser = parser
        self._idle_timeout = idle_timeout
        self._lock = asyncio.Lock()
        self._pending: asyncio.Future[AgiReply] | None = None
        self._hangup = asyncio.Event()
        self._closed_reason: CallCenterError | None = None
        self.log = log.bind(script=request.script)

    # -- state ---------------------------------------------------------------

    @property
    def hung_up(self) -> bool:
        return self._hangup.is_set()

    async def wait_hangup(self) -> None:
        """Return when the channel hangs up or the link drops."""
        await self._hangup.wait()

    # -- commands --------------------------------------------------------------

    async def command(self, *parts: str | int, timeout: float | None = None) -> AgiReply:
        """Send one command and return its 200 reply.

        Raises :class:`AGIHangup` if the channel is (or goes) away,
        :class:`AGIProtocolError` on 510/520 (our bug: wrong command or
        syntax), :class:`AGITimeout` if Asterisk does not answer in
        ``timeout`` + a grace period (the session is then unusable).
        """
        line = encode_command(*parts)
        name = str(parts[0]).upper()
        async with self._lock:
            if self._closed_reason is not None:
                raise self._closing_error()
            pending: asyncio.Future[AgiReply] = asyncio.get_running_loop().create_future()
            self._pending = pending
            wait = (timeout if timeout is not None else self._idle_timeout) + _REPLY_GRACE
            try:
                self._writer.write(line)
                await self._writer.drain()
                reply = await asyncio.wait_for(pending, wait)
            except TimeoutError:
                self._fail(AGITimeout(f"no reply to AGI {name} within {wait:.0f} s"))
                raise self._closing_error() from None
            except (ConnectionError, OSError) as exc:
                self._fail(AGIHangup(f"AGI link lost during {name}: {exc}"))
                raise self._closing_error() from exc
            finally:
                self._pending = None
                if not pending.done():
                    pending.cancel()
                elif not pending.cancelled():
                    pending.exception()  # retrieved: no "never retrieved" warning
        if reply.code == 511:
            self._fail(AGIHangup(f"channel is dead ({name}): {reply.text}"))
            raise self._closing_error()
        if reply.code != 200:
            raise AGIProtocolError(f"AGI {name} refused ({reply.code}): {reply.text}")
        if reply.result == "-1" and name in _HANGUP_ON_MINUS_ONE:
            # -1 is also what a missing sound file gives. Ask: a channel that
            # hung up (or was pulled into a bridge: Asterisk then sends HANGUP
            # before answering anything else) is gone; a live one just failed.
            if not self.hung_up and await self._channel_alive():
                raise AGICommandFailed(f"AGI {name} failed on a live channel: {reply.text}")
            self._fail(AGIHangup(f"channel hung up during {name}"))
            raise self._closing_error()
        return reply

    async def _channel_alive(self) -> bool:
        try:
            status = await self.command("CHANNEL STATUS")
        except AGIHangup:
            return False
        return not self.hung_up and (status.number or 0) >= 0

    async def answer(self) -> None:
        await self.command("ANSWER")

    async def hangup(self) -> None:
        """Hang the channel up; the session ends (Asterisk sends HANGUP)."""
        with contextlib.suppress(AGIHangup):
            await self.command("HANGUP")

    async def stream_file(self, name: str, escape_digits: str = "") -> str:
        """Play a sound; return the digit that interrupted it, or ``""``.

        A sound that cannot be played (missing file) is logged and skipped:
        the caller hears nothing rather than losing the call."""
        try:
            reply = await self.command("STREAM FILE", name, escape_digits)
        except AGICommandFailed as exc:
            self.log.warning("agi.sound_failed", sound=name, error=str(exc))
            return ""
        return _digit(reply)

    async def get_data(self, prompt: str, *, timeout_ms: int, max_digits: int) -> str:
        """Play ``prompt`` and collect up to ``max_digits`` digits (``#`` ends early).

        If the prompt cannot be played (missing file) the digits are still
        collected, after a moment of silence."""
        # The prompt plays first: its length is not known here (a built
        # prompt can last tens of seconds), so allow for a long one.
        wait = _LONGEST_PROMPT + timeout_ms / 1000 * (max_digits + 1)
        try:
            reply = await self.command("GET DATA", prompt, timeout_ms, max_digits, timeout=wait)
        except AGICommandFailed as exc:
            self.log.warning("agi.sound_failed", sound=prompt, error=str(exc))
            reply = await self.command(
                "GET DATA", "silence/1", timeout_ms, max_digits, timeout=wait
            )
        return reply.result

    async def wait_for_digit(self, timeout_ms: int) -> str:
        reply = await self.command("WAIT FOR DIGIT", timeout_ms, timeout=timeout_ms / 1000)
        return _digit(reply)

    async def say_digits(self, digits: str, escape_digits: str = "") -> str:
        reply = await self.command("SAY DIGITS", digits, escape_digits)
        return _digit(reply)

    async def say_number(self, number: int, escape_digits: str = "", gender: str = "") -> str:
        parts: list[str | int] = ["SAY NUMBER", number, escape_digits]
        if gender:
            parts.append(gender)
        return _digit(await self.command(*parts))

    async def set_variable(self, name: str, value: str) -> None:
        await self.command("SET VARIABLE", name, value)

    async def set_variables(self, values: Mapping[str, str]) -> None:
        """Several channel variables in one round trip (EXEC MSet). MSet
        splits on commas and takes no quoting: values holding one are refused."""
        for name, value in values.items():
            if not _VARIABLE_NAME.fullmatch(name) or "," in value:
                raise AGIProtocolError(f"refusing MSet of {name}={value!r}")
        await self.exec_("MSet", *(f"{name}={value}" for name, value in values.items()))

    async def get_variable(self, name: str) -> str | None:
        """A channel variable or dialplan function; None when it is not set."""
        reply = await self.command("GET FULL VARIABLE", f"${{{name}}}")
        return reply.data if reply.result == "1" else None

    async def set_music(self, on: bool, music_class: str = "") -> None:
        parts: list[str | int] = ["SET MUSIC", "on" if on else "off"]
        if music_class:
            parts.append(music_class)
        await self.command(*parts)

    async def exec_(self, application: str, *args: str, timeout: float | None = None) -> AgiReply:
        """Run a dialplan application; arguments are joined with ``,``."""
        return await self.command("EXEC", application, ",".join(args), timeout=timeout)

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command("VERBOSE", message, level)

    # -- plumbing ---------------------------------------------------------------

    def _closing_error(self) -> CallCenterError:
        # A fresh copy each time: the kept reason is never raised, so it never
        # holds a traceback whose frames hold this session. Such a cycle kept
        # every ended session (socket, buffers, tasks) until a full garbage
        # collection, which then paused the loop for tens of milliseconds.
        reason = self._closed_reason or AGIHangup("AGI session closed")
        return copy.copy(reason)

    def _fail(self, error: CallCenterError) -> None:
        if self._closed_reason is None:
            self._closed_reason = copy.copy(error)
        self._hangup.set()
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(copy.copy(error))

    async def _read_loop(self) -> None:
        """Feed the parser until EOF; route replies and HANGUP notices."""
        try:
            while data := await self._reader.read(65536):
                for message in self._parser.feed(data):
                    if isinstance(message, HangupNotice):
                        self.log.info("agi.hangup_notice")
                        self._hangup.set()
                        # The pending command still gets its own reply
                        # (usually result=-1); later commands fail at once.
                        if self._closed_reason is None:
                            self._closed_reason = AGIHangup("channel hung up")
                    elif isinstance(message, AgiReply):
                        if self._pending is not None and not self._pending.done():
                            self._pending.set_result(message)
                        else:
                            self.log.warning("agi.unsolicited_reply", reply=message.text[:200])
                    else:
                        raise AGIProtocolError("a second agi_* header block in one session")
        except AGIProtocolError as exc:
            self.log.error("agi.protocol_error", error=str(exc))
            self._fail(exc)
            return
        except (ConnectionError, OSError) as exc:
            self._fail(AGIHangup(f"AGI link lost: {exc}"))
            return
        self._fail(AGIHangup("Asterisk closed the AGI connection"))


class FastAgiServer(SessionServer):
    """Listen for FastAGI connections and run ``routes[script]`` for each.

    ``routes`` maps a script path (``inbound`` for ``agi://host/inbound?x=1``)
    to an async handler taking an :class:`AgiSession`.
    """

    service = "FastAGI"
    listen_error = AGIProtocolError

    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[str, AgiHandler],
        *,
        idle_timeout: float = 3600.0,
        header_timeout: float = 10.0,
    ) -> None:
        self.stats = FastAgiStats()
        super().__init__(host, port, self.stats)
        self.header_timeout = header_timeout
        self.routes = dict(routes)
        self.idle_timeout = idle_timeout

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = AgiParser()
        peer = writer.get_extra_info("peername")
        try:
            request, leftover = await asyncio.wait_for(
                _read_request(reader, parser), self.header_timeout
            )
        except (TimeoutError, AGIProtocolError, ConnectionError, OSError) as exc:
            self.stats.protocol_errors += 1
            log.warning("fastagi.bad_session_start", peer=peer, error=str(exc) or repr(exc))
            return
        # Each session runs in its own task, hence its own context: every log
        # line of the call, from any module, carries the call's ids.
        structlog.contextvars.bind_contextvars(
            linkedid=request.linkedid, channel=request.channel, uniqueid=request.uniqueid
        )
        handler = self.routes.get(request.script)
        session = AgiSession(request, reader, writer, parser, idle_timeout=self.idle_timeout)
        if leftover:
            session.log.warning("agi.unsolicited_reply", count=len(leftover))
        if handler is None:
            self.stats.unknown_scripts += 1
            session.log.error("agi.unknown_script", known=sorted(self.routes))
            await _best_effort_error(writer, "unknown_script")
            return
        reader_task = asyncio.create_task(session._read_loop(), name=f"agi-read-{request.uniqueid}")
        session.log.info("agi.session_start", callerid=request.callerid, query=dict(request.query))
        try:
            await handler(session)
        except AGIHangup:
            session.log.info("agi.session_hangup")
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.handler_errors += 1
            # Tell the dialplan why, then let go of the channel: Asterisk
            # continues after AGI() (the fallback plays ss-noservice).
            session.log.exception("agi.handler_failed")
            if not session.hung_up:
                await _best_effort_error(writer, "handler_failed")
        else:
            session.log.info("agi.session_end")
        finally:
            await cancel_and_wait([reader_task])


async def _read_request(
    reader: asyncio.StreamReader, parser: AgiParser
) -> tuple[AgiRequest, list[object]]:
    while True:
        data = await reader.read(65536)
        if not data:
            raise AGIProtocolError("connection closed before the agi_* headers ended")
        messages = parser.feed(data)
        if messages:
            first, *rest = messages
            if not isinstance(first, AgiRequest):  # pragma: no cover - parser guarantees
                raise AGIProtocolError(f"expected agi_* headers, got {first!r}")
            return first, list(rest)


async def _best_effort_error(writer: asyncio.StreamWriter, reason: str) -> None:
    # Fire the SET VARIABLE without waiting for the reply: we are closing anyway
    # and must not block on a channel that may be going away.
    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        writer.write(encode_command("SET VARIABLE", ERROR_VARIABLE, reason))
        await asyncio.wait_for(writer.drain(), 1.0)
