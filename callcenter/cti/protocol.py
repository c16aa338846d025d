"""The CTI WebSocket protocol, version 1: typed messages, parsed once at the edge.

Sans-I/O: :func:`parse_client` turns one text frame into a frozen message or
raises :class:`CTIProtocolError` (the adapter answers with an ``error``
message and keeps the connection); :func:`encode` turns a server message into
the text frame. ``docs/cti-protocol.md`` shows every message with examples.

Actions (ready, pause, transfer...) go through the REST API, not here: one
way to do a thing, and every action gets an HTTP status. The socket carries
what the server pushes, plus the hello/resume handshake and heartbeats.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from callcenter.errors import CTIProtocolError

VERSION = 1
MAX_FRAME = 16_384
"""Bytes: a client message is small (hello, ping); anything bigger is hostile."""


# ------------------------------------------------------------- client -> us
@dataclass(frozen=True, slots=True)
class Hello:
    """First message of a connection: who I am, and where my last session stopped.

    ``epoch`` and ``after`` come from the last ``welcome``/``event`` the page
    saw; with them the server replays what was missed (resume)."""

    token: str
    version: int = VERSION
    epoch: str | None = None
    after: int | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    nonce: str = ""


@dataclass(frozen=True, slots=True)
class Pong:
    nonce: str = ""


ClientMessage = Hello | Ping | Pong


def parse_client(frame: str | bytes) -> ClientMessage:
    """One WebSocket text frame from a desktop, checked field by field."""
    if len(frame) > MAX_FRAME:
        raise CTIProtocolError(f"message of {len(frame)} bytes exceeds {MAX_FRAME}")
    try:
        data = json.loads(frame)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CTIProtocolError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CTIProtocolError("a message must be a JSON object")
    kind = data.get("type")
    if kind == "hello":
        _only(data, {"type", "token", "version", "epoch", "after"})
        version = data.get("version", VERSION)
        if version != VERSION:
            raise CTIProtocolError(f"protocol version {version!r} not supported (use {VERSION})")
        after = data.get("after")
        if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
            raise CTIProtocolError("'after' must be an integer sequence number")
        if after is not None and after < 0:
            raise CTIProtocolError("'after' must not be negative")
        epoch = data.get("epoch")
        return Hello(
            token=_text(data, "token", 200),
            version=VERSION,
            epoch=None if epoch is None else _text(data, "epoch", 64),
            after=after,
        )
    if kind in ("ping", "pong"):
        _only(data, {"type", "nonce"})
        nonce = "" if data.get("nonce") is None else _text(data, "nonce", 64)
        return Ping(nonce) if kind == "ping" else Pong(nonce)
    raise CTIProtocolError(f"unknown message type {str(kind)[:40]!r}")


def _only(data: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise CTIProtocolError(f"unexpected field(s) {', '.join(extra)[:80]}")


def _text(data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise CTIProtocolError(f"'{key}' must be a non-empty string of at most {limit} characters")
    return value


# ------------------------------------------------------------- us -> client
@dataclass(frozen=True, slots=True)
class Welcome:
    """Answer to ``hello``. ``resumed``: the missed events follow, in order;
    otherwise ``snapshot`` is the current state to start from."""

    login: str
    role: str
    agent: str | None
    epoch: str
    seq: int
    resumed: bool
    snapshot: dict[str, Any] = field(default_factory=dict)
    heartbeat: float = 15.0
    version: int = VERSION


@dataclass(frozen=True, slots=True)
class Event:
    """Something happened. ``seq`` grows by one per stream: a gap means loss."""

    seq: int
    at: float
    kind: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Error:
    code: str
    message: str


ServerMessage = Welcome | Event | Error | Ping | Pong

_SERVER_TYPES: dict[type, str] = {
    Welcome: "welcome",
    Event: "event",
    Error: "error",
    Ping: "ping",
    Pong: "pong",
}


def encode(message: ServerMessage) -> str:
    # Shallow: asdict() deep-copied every nested payload before json did its
    # own walk (it was most of the CTI cost of an incoming call).
    fields_ = {name: getattr(message, name) for name in _FIELDS[type(message)]}
    return json.dumps({"type": _SERVER_TYPES[type(message)], **fields_}, default=_plain)


_FIELDS: dict[type, tuple[str, ...]] = {
    kind: tuple(f.name for f in fields(kind)) for kind in _SERVER_TYPES
}


def _plain(value: object) -> object:
    """A dataclass inside a payload, as asdict() would give it."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
