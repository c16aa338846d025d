"""Tier 1: the sans-I/O AudioSocket framing."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.errors import AudioSocketProtocolError
from callcenter.protocol.audiosocket import (
    Audio,
    AudioSocketParser,
    Dtmf,
    ErrorFrame,
    Event,
    Hangup,
    Kind,
    Uuid,
    audio_frames,
    encode_audio,
    encode_dtmf,
    encode_error,
    encode_frame,
    encode_hangup,
    encode_uuid,
)

CALL = uuid.UUID("40325ec2-5efd-4bd3-805f-53576e581d13")


def test_frames_as_asterisk_sends_them() -> None:
    # What app_audiosocket writes: the UUID first, then 20 ms of slin (320 bytes).
    data = b"\x01\x00\x10" + CALL.bytes + b"\x10\x01\x40" + b"\x01\x00" * 160 + b"\x03\x00\x015"
    assert AudioSocketParser().feed(data) == [
        Uuid(CALL),
        Audio(b"\x01\x00" * 160),
        Dtmf("5"),
    ]


def test_encodings_byte_exact() -> None:
    assert encode_hangup() == b"\x00\x00\x00"
    assert encode_uuid(CALL) == b"\x01\x00\x10" + CALL.bytes
    assert encode_dtmf("#") == b"\x03\x00\x01#"
    assert encode_audio(b"\x00\x01\x02\x03") == b"\x10\x00\x04\x00\x01\x02\x03"
    assert encode_error() == b"\xff\x00\x00"
    assert encode_error(3) == b"\xff\x00\x01\x03"


def test_any_split_gives_the_same_events() -> None:
    stream = encode_uuid(CALL) + encode_audio(b"ab" * 300) + encode_error(2) + encode_hangup()
    whole = AudioSocketParser().feed(stream)
    assert whole == [Uuid(CALL), Audio(b"ab" * 300), ErrorFrame(2), Hangup()]
    for cut in range(len(stream) + 1):
        parser = AudioSocketParser()
        assert parser.feed(stream[:cut]) + parser.feed(stream[cut:]) == whole
        assert parser.buffered == 0


def test_partial_frame_waits_for_the_rest() -> None:
    parser = AudioSocketParser()
    assert parser.feed(b"\x10\x00\x04\x00") == []
    assert parser.buffered == 4
    assert parser.feed(b"\x01\x02\x03") == [Audio(b"\x00\x01\x02\x03")]


def test_audio_seconds() -> None:
    assert Audio(b"\x00" * 16000).seconds == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x02\x00\x00", "unknown AudioSocket frame kind 0x02"),
        (b"\x01\x00\x03abc", "uuid frame of 3 bytes"),
        (b"\x03\x00\x01x", "dtmf frame"),
        (b"\x03\x00\x0212", "dtmf frame"),
        (b"\x10\x00\x03abc", "even length"),
    ],
)
def test_malformed_frames_are_protocol_errors(data: bytes, message: str) -> None:
    parser = AudioSocketParser()
    with pytest.raises(AudioSocketProtocolError, match=message):
        parser.feed(data)
    # The stream cannot be resynchronised: later input fails too.
    with pytest.raises(AudioSocketProtocolError, match="already broken"):
        parser.feed(encode_hangup())


def test_encoder_refuses_what_cannot_be_framed() -> None:
    with pytest.raises(AudioSocketProtocolError):
        encode_frame(Kind.AUDIO, b"\x00" * 0x10000)
    with pytest.raises(AudioSocketProtocolError):
        encode_audio(b"\x00")
    with pytest.raises(AudioSocketProtocolError):
        encode_dtmf("x")
    with pytest.raises(AudioSocketProtocolError):
        encode_frame(0x100)


def test_audio_frames_cut_20ms() -> None:
    frames = audio_frames(b"\x00" * 700)
    assert [len(f) for f in frames] == [323, 323, 63]
    events = AudioSocketParser().feed(b"".join(frames))
    assert b"".join(e.pcm for e in events if isinstance(e, Audio)) == b"\x00" * 700


_events = st.one_of(
    st.just(Hangup()),
    st.uuids().map(Uuid),
    st.sampled_from(sorted("0123456789*#ABCD")).map(Dtmf),
    st.binary(max_size=2000).map(lambda b: Audio(b[: len(b) // 2 * 2])),
    st.one_of(st.none(), st.integers(0, 255)).map(ErrorFrame),
)


def _encode(event: Event) -> bytes:
    if isinstance(event, Hangup):
        return encode_hangup()
    if isinstance(event, Uuid):
        return encode_uuid(event.value)
    if isinstance(event, Dtmf):
        return encode_dtmf(event.digit)
    if isinstance(event, Audio):
        return encode_audio(event.pcm)
    return encode_error(event.code)


@given(st.lists(_events, max_size=20), st.lists(st.integers(0, 50_000), max_size=10))
def test_round_trip_in_any_split(events: list[Event], cuts: list[int]) -> None:
    stream = b"".join(_encode(e) for e in events)
    parser = AudioSocketParser()
    out: list[Event] = []
    previous = 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        out += parser.feed(stream[previous:cut])
        previous = cut
    assert out == events
    assert parser.buffered == 0


@given(st.lists(st.binary(max_size=400), max_size=20))
def test_fuzz_never_anything_but_events_or_protocol_errors(chunks: list[bytes]) -> None:
    parser = AudioSocketParser()
    for chunk in chunks:
        try:
            events = parser.feed(chunk)
        except AudioSocketProtocolError:
            return
        assert all(isinstance(e, Hangup | Uuid | Dtmf | Audio | ErrorFrame) for e in events)
    assert parser.buffered < 3 + 0x10000
