"""AMI framing: every case of the wire format, split at every byte boundary."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.errors import AMIProtocolError
from callcenter.protocol.ami import AmiFrame, AmiFrameError, AmiParser, encode_action

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ami"

Item = AmiFrame | AmiFrameError


def transcript(name: str) -> bytes:
    """A fixture's AMI bytes: leading '#' comment lines are not AMI."""
    data = (FIXTURES / name).read_bytes()
    while data.startswith(b"#"):
        data = data[data.index(b"\n") + 1 :]
    return data


def feed_all(data: bytes, chunks: list[int] | None = None, **kwargs: int) -> list[Item]:
    parser = AmiParser(**kwargs)
    out: list[Item] = []
    if chunks is None:
        return parser.feed(data)
    pos = 0
    for size in chunks:
        out += parser.feed(data[pos : pos + size])
        pos += size
    out += parser.feed(data[pos:])
    return out


def split_at(data: bytes, cut: int) -> list[Item]:
    parser = AmiParser()
    return parser.feed(data[:cut]) + parser.feed(data[cut:])


def frames(items: list[Item]) -> list[AmiFrame]:
    return [i for i in items if isinstance(i, AmiFrame)]


BANNER = b"Asterisk Call Manager/11.0.0\r\n"
EVENT = b"Event: Hangup\r\nChannel: PJSIP/x-1\r\nUniqueid: n-1.1\r\nCause: 16\r\n\r\n"
FOLLOWS = (
    b"Response: Follows\r\nPrivilege: Command\r\nActionID: 42\r\n"
    b"Channel  Location  State\r\nPJSIP/x  s@ctx:1  Up\r\n\r\n1 active channel\n"
    b"--END COMMAND--\r\n\r\n"
)
MIXED = (
    BANNER
    + b"Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
    + EVENT
    + b"Event: VarSet\nChannel: PJSIP/x-1\nVariable: CC_NOTE\nValue: a: b: c\n\n"
    + FOLLOWS
    + b"Event: Newchannel\r\nChanVariable: A=1\r\nChannel: P/\xff\xfe-2\r\nChanVariable: B=2\r\n"
    + b"Uniqueid: n-1.2\r\n\r\n"
    + b"Response: Success\r\nActionID: 2\r\nOutput: line one\r\nOutput: line: two\r\n\r\n"
    + b"Event: Broken\r\nthis line has no colon\r\nUniqueid: n-1.3\r\n\r\n"
)


def test_banner_gives_version_and_is_not_a_frame() -> None:
    parser = AmiParser()
    assert parser.feed(BANNER) == []
    assert parser.version == "11.0.0"
    assert frames(parser.feed(EVENT))[0].name == "Hangup"


def test_banner_split_anywhere() -> None:
    for cut in range(len(BANNER) + 1):
        parser = AmiParser()
        parser.feed(BANNER[:cut])
        parser.feed(BANNER[cut:] + EVENT)
        assert parser.version == "11.0.0"


def test_no_banner_is_fine() -> None:
    assert [f.name for f in frames(feed_all(EVENT))] == ["Hangup"]


def test_message_headers_kind_name_action_id() -> None:
    items = feed_all(MIXED)
    login = frames(items)[0]
    assert login.kind == "response"
    assert login.name == "Success"
    assert login.action_id == "1"
    hangup = frames(items)[1]
    assert hangup.kind == "event"
    assert hangup.headers == (
        ("Event", "Hangup"),
        ("Channel", "PJSIP/x-1"),
        ("Uniqueid", "n-1.1"),
        ("Cause", "16"),
    )
    assert hangup.action_id is None
    assert AmiFrame((("Foo", "bar"),)).kind == "unknown"


def test_bare_lf_and_values_with_colons() -> None:
    varset = frames(feed_all(MIXED))[2]
    assert varset.get("Value") == "a: b: c"
    assert varset.get("Variable") == "CC_NOTE"


def test_lookup_is_case_insensitive_and_first_value_wins() -> None:
    frame = frames(feed_all(MIXED))[4]
    assert frame.get("chanvariable") == "A=1"
    assert frame.get("UNIQUEID") == "n-1.2"
    assert frame.get_all("ChanVariable") == ["A=1", "B=2"]
    assert "uniqueid" in frame
    assert frame.get("Nope") is None
    assert frame.get("Nope", "x") == "x"


def test_repeated_keys_keep_their_order() -> None:
    frame = frames(feed_all(MIXED))[4]
    keys = [k for k, _ in frame.headers]
    assert keys == ["Event", "ChanVariable", "Channel", "ChanVariable", "Uniqueid"]
    output = frames(feed_all(MIXED))[5]
    assert output.output == ("line one", "line: two")


def test_non_utf8_is_replaced_not_fatal() -> None:
    frame = frames(feed_all(MIXED))[4]
    assert frame.get("Channel") == "P/\ufffd\ufffd-2"


def test_legacy_follows_body_with_blank_lines_and_colons() -> None:
    frame = frames(feed_all(MIXED))[3]
    assert frame.kind == "response"
    assert frame.name == "Follows"
    assert frame.action_id == "42"
    assert frame.get("Privilege") == "Command"
    assert frame.output == (
        "Channel  Location  State",
        "PJSIP/x  s@ctx:1  Up",
        "",
        "1 active channel",
    )


def test_line_without_colon_is_an_error_and_the_rest_is_kept() -> None:
    items = feed_all(MIXED)
    errors = [i for i in items if isinstance(i, AmiFrameError)]
    assert len(errors) == 1
    assert errors[0].line == "this line has no colon"
    assert "this line has no colon" in str(errors[0])
    broken = frames(items)[-1]
    assert broken.name == "Broken"
    assert broken.get("Uniqueid") == "n-1.3"


def test_empty_key_and_missing_space_take_the_slow_path_consistently() -> None:
    items = feed_all(b"Event: X\r\nKey:NoSpace\r\n: value\r\nA:B: c\r\n\r\n")
    frame = frames(items)[0]
    assert frame.headers == (("Event", "X"), ("Key", "NoSpace"), ("A", "B: c"))
    assert [i.line for i in items if isinstance(i, AmiFrameError)] == [": value"]


def test_every_split_gives_the_same_frames() -> None:
    expected = feed_all(MIXED)
    for cut in range(len(MIXED) + 1):
        assert split_at(MIXED, cut) == expected, cut


def test_byte_by_byte_equals_one_read() -> None:
    assert feed_all(MIXED, [1] * len(MIXED)) == feed_all(MIXED)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.ami")))
def test_fixture_transcripts_frame_identically_in_any_chunking(name: str) -> None:
    data = transcript(name)
    whole = feed_all(data)
    assert whole
    assert all(isinstance(i, AmiFrame) for i in whole)
    for size in (1, 2, 3, 7, 64, 1000):
        assert feed_all(data, [size] * (len(data) // size + 1)) == whole


def test_oversized_message_is_dropped_and_parsing_resumes() -> None:
    big = b"Event: Big\r\n" + b"X: " + b"y" * 5000 + b"\r\n\r\n"
    data = big + EVENT
    for chunks in (None, [100] * 60, [1] * len(data)):
        parser = AmiParser(max_message=1024)
        items: list[Item] = []
        if chunks is None:
            items = parser.feed(data)
        else:
            pos = 0
            for size in chunks:
                items += parser.feed(data[pos : pos + size])
                assert parser.buffered <= 1024 + 100
                pos += size
            items += parser.feed(data[pos:])
        assert [type(i) for i in items] == [AmiFrameError, AmiFrame], chunks
        assert "over 1024 bytes" in str(items[0])
        assert frames(items)[0].name == "Hangup"


def test_endless_garbage_keeps_memory_bounded() -> None:
    parser = AmiParser(max_message=4096)
    errors = 0
    for _ in range(1000):
        errors += len(parser.feed(b"z" * 1000))
        assert parser.buffered <= 4096 + 1000
    assert errors == 1
    assert frames(parser.feed(b"\r\n\r\n" + EVENT))[0].name == "Hangup"


def test_unterminated_follows_body_is_bounded() -> None:
    parser = AmiParser(max_message=2048)
    items = parser.feed(b"Response: Follows\r\nActionID: 9\r\n" + b"out\r\n" * 1000)
    assert isinstance(items[0], AmiFrameError)
    assert parser.buffered <= 2048 + 6000
    parser.feed(b"more\r\n\r\n")
    assert frames(parser.feed(EVENT))[-1].name == "Hangup"


def test_max_message_floor() -> None:
    with pytest.raises(AMIProtocolError):
        AmiParser(max_message=10)


def test_frame_is_immutable_and_hashable() -> None:
    frame = frames(feed_all(EVENT))[0]
    with pytest.raises(AttributeError):
        frame.body = ("x",)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del frame.index
    assert frame == AmiFrame(frame.headers)
    assert hash(frame) == hash(AmiFrame(frame.headers))
    assert frame != "x"
    assert "Hangup" in repr(frame)
    assert list(frame) == list(frame.headers)
    assert AmiFrame.of(("Event", "X")).name == "X"


def test_frame_encode_round_trips() -> None:
    for frame in frames(feed_all(MIXED)):
        assert frames(feed_all(frame.encode())) == [frame]


# ------------------------------------------------------------------ encoder
def test_encode_action() -> None:
    data = encode_action(
        "Originate",
        {"Channel": "PJSIP/agent1", "Variable": ["CC_A=1", "CC_B=x: y"], "Async": "true"},
        "cc-node1-7",
    )
    assert data == (
        b"Action: Originate\r\nActionID: cc-node1-7\r\nChannel: PJSIP/agent1\r\n"
        b"Variable: CC_A=1\r\nVariable: CC_B=x: y\r\nAsync: true\r\n\r\n"
    )
    parsed = frames(feed_all(data))[0]
    assert parsed.get_all("Variable") == ["CC_A=1", "CC_B=x: y"]


@pytest.mark.parametrize(
    ("name", "headers", "action_id"),
    [
        ("Originate", {"Channel": "PJSIP/a\r\nAction: Hangup"}, "1"),
        ("Originate", {"Variable": ["ok", "bad\nAction: Hangup"]}, "1"),
        ("Originate", {"Bad\r\nKey": "v"}, "1"),
        ("Originate", {"Bad: Key": "v"}, "1"),
        ("Originate", {"": "v"}, "1"),
        ("Ping\r\nAction: Hangup", {}, "1"),
        ("Ping", {}, "1\r\nAction: Hangup"),
        ("", {}, "1"),
    ],
)
def test_encode_refuses_header_injection(
    name: str, headers: dict[str, str | list[str]], action_id: str
) -> None:
    with pytest.raises(AMIProtocolError):
        encode_action(name, headers, action_id)


# --------------------------------------------------------------- hypothesis
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(1, 300), max_size=20))
def test_garbage_only_yields_frames_or_errors(garbage: bytes, chunks: list[int]) -> None:
    parser = AmiParser(max_message=512)
    pos = 0
    for size in [*chunks, len(garbage)]:
        for item in parser.feed(garbage[pos : pos + size]):
            assert isinstance(item, AmiFrame | AmiFrameError)
        assert parser.buffered <= 512 + size + 3
        pos += size


_line = st.one_of(
    st.tuples(
        st.text(st.characters(blacklist_characters=":\r\n"), min_size=1, max_size=8),
        st.text(st.characters(blacklist_characters="\r\n"), max_size=12),
    ).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.text(st.characters(blacklist_characters="\r\n"), max_size=12),
    st.sampled_from(["Response: Follows", "--END COMMAND--", "Event: Hangup", ":x", "k:v"]),
)
_message = st.lists(_line, min_size=1, max_size=6)
_eol = st.sampled_from(["\r\n", "\n"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_message, _eol), max_size=8),
    st.lists(st.integers(1, 40), max_size=30),
    st.booleans(),
)
def test_random_streams_frame_identically_in_any_chunking(
    messages: list[tuple[list[str], str]], chunks: list[int], banner: bool
) -> None:
    text = "".join(eol.join(lines) + eol + eol for lines, eol in messages)
    data = (BANNER if banner else b"") + text.encode("utf-8", "surrogatepass")
    assert feed_all(data, chunks) == feed_all(data)
