"""Tier 1: the CTI WebSocket protocol parses once, strictly, and never crashes."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.cti.protocol import (
    MAX_FRAME,
    Error,
    Event,
    Hello,
    Ping,
    Pong,
    Welcome,
    encode,
    parse_client,
)
from callcenter.errors import CTIProtocolError


def test_hello_with_resume_point() -> None:
    message = parse_client(
        '{"type": "hello", "version": 1, "token": "t", "epoch": "e1", "after": 7}'
    )
    assert message == Hello(token="t", epoch="e1", after=7)


def test_ping_and_pong() -> None:
    assert parse_client('{"type": "ping", "nonce": "n"}') == Ping("n")
    assert parse_client('{"type": "pong"}') == Pong("")


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"type": "subscribe"}', "unknown message type"),
        ('{"type": "hello"}', "'token'"),
        ('{"type": "hello", "token": ""}', "'token'"),
        ('{"type": "hello", "token": "t", "version": 2}', "version"),
        ('{"type": "hello", "token": "t", "after": "3"}', "'after'"),
        ('{"type": "hello", "token": "t", "after": true}', "'after'"),
        ('{"type": "hello", "token": "t", "after": -1}', "negative"),
        ('{"type": "hello", "token": "t", "admin": true}', "unexpected field"),
        ('{"type": "ping", "nonce": 5}', "'nonce'"),
    ],
)
def test_bad_messages_are_named(frame: str, why: str) -> None:
    with pytest.raises(CTIProtocolError, match=why):
        parse_client(frame)


def test_oversized_frame_is_refused_before_parsing() -> None:
    with pytest.raises(CTIProtocolError, match="exceeds"):
        parse_client('{"type": "ping", "nonce": "' + "x" * MAX_FRAME + '"}')


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_any_frame_parses_or_raises_protocol_error(frame: str | bytes) -> None:
    with contextlib.suppress(CTIProtocolError):
        parse_client(frame)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(["type", "token", "version", "epoch", "after", "nonce", "x"]),
        json_values,
        max_size=6,
    )
)
def test_any_json_object_parses_or_raises_protocol_error(data: dict[str, object]) -> None:
    with contextlib.suppress(CTIProtocolError):
        parse_client(json.dumps(data))


def test_server_messages_encode_with_their_type() -> None:
    welcome = json.loads(encode(Welcome("a01", "agent", "a01", "ep", 3, True)))
    assert welcome["type"] == "welcome"
    assert welcome["seq"] == 3
    assert welcome["resumed"] is True
    event = json.loads(encode(Event(4, 1.5, "call.ringing", {"interaction": "i"})))
    assert event == {
        "type": "event",
        "seq": 4,
        "at": 1.5,
        "kind": "call.ringing",
        "data": {"interaction": "i"},
    }
    assert json.loads(encode(Error("protocol", "bad")))["type"] == "error"
    assert json.loads(encode(Ping("1"))) == {"type": "ping", "nonce": "1"}
