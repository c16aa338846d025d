"""AudioSocket framing, sans-I/O.

Asterisk's AudioSocket (``app_audiosocket``, ``chan_audiosocket``) carries a
call's audio over TCP in frames of::

    kind (1 byte) | payload length (2 bytes, big-endian) | payload

=====  =========  ==============================================================
kind   name       payload
=====  =========  ==============================================================
0x00   hangup     none: the peer ends the session (either direction)
0x01   uuid       16 bytes, the call's UUID; Asterisk's first frame
0x03   dtmf       1 byte, the key's ASCII character (Asterisk 22 forwards DTMF)
0x10   audio      signed linear 16-bit little-endian, 8 kHz mono
0xff   error      optional 1-byte error code
=====  =========  ==============================================================

:class:`AudioSocketParser` turns bytes (in any split) into frozen events;
``encode_*`` build frames. No sockets, no asyncio, no clock: the adapter
(:mod:`callcenter.adapters.audiosocket`) does the I/O.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from enum import IntEnum

from callcenter.errors import AudioSocketProtocolError

__all__ = [
    "MAX_PAYLOAD",
    "SAMPLE_RATE",
    "Audio",
    "AudioSocketParser",
    "Dtmf",
    "ErrorFrame",
    "Event",
    "Hangup",
    "Kind",
    "Uuid",
    "encode_audio",
    "encode_dtmf",
    "encode_error",
    "encode_frame",
    "encode_hangup",
    "encode_uuid",
]

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2
MAX_PAYLOAD = 0xFFFF
DTMF_KEYS = frozenset("0123456789*#ABCD")
_HEADER = struct.Struct(">BH")


class Kind(IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10
    ERROR = 0xFF


@dataclass(frozen=True)
class Hangup:
    """The peer ends the session."""


@dataclass(frozen=True)
class Uuid:
    value: uuid.UUID


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Audio:
    """Signed linear 16-bit little-endian samples at 8 kHz."""

    pcm: bytes

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)


@dataclass(frozen=True)
class ErrorFrame:
    code: int | None = None


Event = Hangup | Uuid | Dtmf | Audio | ErrorFrame


class AudioSocketParser:
    """Incremental frame parser: ``feed(bytes) -> [events]``.

    A malformed frame raises :class:`AudioSocketProtocolError`; the stream is
    then unusable (there is no way to resynchronise a length-prefixed stream)
    and every later ``feed`` raises again.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._broken: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished frame waiting for the rest."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Event]:
        if self._broken is not None:
            raise AudioSocketProtocolError(f"stream already broken: {self._broken}")
        self._buffer += data
        events: list[Event] = []
        offset = 0
        buffer = self._buffer
        while len(buffer) - offset >= _HEADER.size:
            kind, length = _HEADER.unpack_from(buffer, offset)
            end = offset + _HEADER.size + length
            if len(buffer) < end:
                break
            payload = bytes(buffer[offset + _HEADER.size : end])
            offset = end
            try:
                events.append(_event(kind, payload))
            except AudioSocketProtocolError as exc:
                self._broken = str(exc)
                del buffer[:]
                raise
        del buffer[:offset]
        return events


def _event(kind: int, payload: bytes) -> Event:
    if kind == Kind.AUDIO:
        if len(payload) % SAMPLE_WIDTH:
            raise AudioSocketProtocolError(
                f"audio frame of {len(payload)} bytes: 16-bit samples need an even length"
            )
        return Audio(payload)
    if kind == Kind.HANGUP:
        return Hangup()
    if kind == Kind.UUID:
        if len(payload) != 16:
            raise AudioSocketProtocolError(f"uuid frame of {len(payload)} bytes, expected 16")
        return Uuid(uuid.UUID(bytes=payload))
    if kind == Kind.DTMF:
        digit = payload.decode("ascii", "replace") if len(payload) == 1 else ""
        if digit not in DTMF_KEYS:
            raise AudioSocketProtocolError(f"dtmf frame with payload {payload[:8]!r}")
        return Dtmf(digit)
    if kind == Kind.ERROR:
        return ErrorFrame(payload[0] if payload else None)
    raise AudioSocketProtocolError(f"unknown AudioSocket frame kind 0x{kind:02x}")


def encode_frame(kind: Kind | int, payload: bytes = b"") -> bytes:
    if not 0 <= int(kind) <= 0xFF:
        raise AudioSocketProtocolError(f"frame kind {kind} does not fit a byte")
    if len(payload) > MAX_PAYLOAD:
        raise AudioSocketProtocolError(
            f"payload of {len(payload)} bytes; a frame holds at most {MAX_PAYLOAD}"
        )
    return _HEADER.pack(int(kind), len(payload)) + payload


def encode_hangup() -> bytes:
    return encode_frame(Kind.HANGUP)


def encode_uuid(value: uuid.UUID) -> bytes:
    return encode_frame(Kind.UUID, value.bytes)


def encode_dtmf(digit: str) -> bytes:
    if digit not in DTMF_KEYS:
        raise AudioSocketProtocolError(f"not a DTMF key: {digit!r}")
    return encode_frame(Kind.DTMF, digit.encode("ascii"))


def encode_audio(pcm: bytes) -> bytes:
    """One audio frame; use :func:`audio_frames` to cut longer audio."""
    if len(pcm) % SAMPLE_WIDTH:
        raise AudioSocketProtocolError("audio must hold whole 16-bit samples")
    return encode_frame(Kind.AUDIO, pcm)


def encode_error(code: int | None = None) -> bytes:
    return encode_frame(Kind.ERROR, b"" if code is None else bytes([code]))


def audio_frames(pcm: bytes, frame_ms: int = 20) -> list[bytes]:
    """Cut *pcm* into encoded audio frames of *frame_ms* (the last may be shorter)."""
    size = SAMPLE_RATE * SAMPLE_WIDTH * frame_ms // 1000
    usable = len(pcm) - len(pcm) % SAMPLE_WIDTH
    return [encode_audio(pcm[i : min(i + size, usable)]) for i in range(0, usable, size)]
