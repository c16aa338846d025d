"""Tier 1: the sans-I/O AGI framing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.errors import AGIProtocolError
from callcenter.protocol.agi import (
    MAX_HEADERS,
    MAX_LINE,
    AgiParser,
    AgiReply,
    AgiRequest,
    HangupNotice,
    encode_command,
)

# What Asterisk 22 sent for AGI(agi://127.0.0.1:4573/inbound?dnis=0800&lang=fr,x,y z)
HEADERS = (
    b"agi_network: yes\n"
    b"agi_network_script: inbound?dnis=0800&lang=fr\n"
    b"agi_request: agi://127.0.0.1:4573/inbound?dnis=0800&lang=fr\n"
    b"agi_channel: PJSIP/trunk-00000001\n"
    b"agi_language: fr\n"
    b"agi_type: PJSIP\n"
    b"agi_uniqueid: node1-1700000000.1\n"
    b"agi_version: 22.10.1\n"
    b"agi_callerid: 0612345678\n"
    b"agi_calleridname: unknown\n"
    b"agi_dnid: 0800\n"
    b"agi_context: from-trunk\n"
    b"agi_extension: 0800\n"
    b"agi_priority: 3\n"
    b"agi_arg_1: x\n"
    b"agi_arg_2: y z\n"
    b"\n"
)


def started() -> AgiParser:
    parser = AgiParser()
    parser.feed(HEADERS)
    return parser


def test_headers_give_script_query_args_and_channel_facts() -> None:
    [request] = AgiParser().feed(HEADERS)
    assert isinstance(request, AgiRequest)
    assert request.script == "inbound"
    assert dict(request.query) == {"dnis": "0800", "lang": "fr"}
    assert request.args == ("x", "y z")
    assert request.channel == "PJSIP/trunk-00000001"
    assert request.uniqueid == "node1-1700000000.1"
    assert request.callerid == "0612345678"
    assert request.calleridname == ""  # Asterisk's "unknown" is no name
    assert request.language == "fr"


def test_headers_split_across_reads_byte_by_byte() -> None:
    parser = AgiParser()
    messages = []
    for i in range(len(HEADERS)):
        messages += parser.feed(HEADERS[i : i + 1])
    assert len(messages) == 1
    assert isinstance(messages[0], AgiRequest)
    assert messages[0].args == ("x", "y z")


def test_script_from_request_url_when_network_script_is_absent() -> None:
    [request] = AgiParser().feed(b"agi_request: agi://h:1/a/b?k=v\n\n")
    assert isinstance(request, AgiRequest)
    assert request.script == "a/b"
    assert dict(request.query) == {"k": "v"}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"200 result=1\n", AgiReply(code=200, result="1", text="200 result=1")),
        (b"200 result=123 (timeout)\n", ("123", "timeout", {})),
        (b"200 result=0 endpos=8000\n", ("0", None, {"endpos": "8000"})),
        (b"200 result=1 (a (b) c) endpos=5\n", ("1", "a (b) c", {"endpos": "5"})),
        (b"200 result=1 ()\n", ("1", "", {})),
        (b"200 result=*1#\r\n", ("*1#", None, {})),
        (b"200 result=-1\n", ("-1", None, {})),
    ],
)
def test_200_replies(line: bytes, expected: object) -> None:
    [reply] = started().feed(line)
    assert isinstance(reply, AgiReply)
    assert reply.ok
    if isinstance(expected, AgiReply):
        assert reply.result == expected.result
        assert reply.number == 1
    else:
        result, data, extra = expected  # type: ignore[misc]
        assert (reply.result, reply.data, dict(reply.extra)) == (result, data, extra)


def test_510_and_511() -> None:
    parser = started()
    r510, r511 = parser.feed(
        b"510 Invalid or unknown command\n"
        b"511 Command Not Permitted on a dead channel or intercepted channel\n"
    )
    assert isinstance(r510, AgiReply)
    assert isinstance(r511, AgiReply)
    assert (r510.code, r510.ok, r511.code, r511.ok) == (510, False, 511, False)


def test_520_is_one_reply_over_many_lines() -> None:
    parser = started()
    assert (
        parser.feed(b"520-Invalid command syntax.  Proper usage follows:\nUsage: GET DATA ...\n")
        == []
    )
    [reply] = parser.feed(b" more usage\n520 End of proper usage.\n200 result=0\n")[:1]
    assert isinstance(reply, AgiReply)
    assert reply.code == 520
    assert "Usage: GET DATA" in reply.text
    assert reply.text.endswith("520 End of proper usage.")


def test_hangup_notice_between_and_before_replies() -> None:
    messages = started().feed(b"HANGUP\n200 result=-1\n\nHANGUP\n")
    assert messages == [
        HangupNotice(),
        AgiReply(code=200, result="-1", text="200 result=-1"),
        HangupNotice(),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\n", "empty line"),
        (b"hello world\n", r"not an agi_\* header"),
        (b"GET / HTTP/1.1\r\n", r"not an agi_\* header"),
    ],
)
def test_bad_session_start_is_named(data: bytes, message: str) -> None:
    with pytest.raises(AGIProtocolError, match=message):
        AgiParser().feed(data)


def test_bad_reply_is_an_error_and_the_parser_stays_broken() -> None:
    parser = started()
    with pytest.raises(AGIProtocolError, match="not an AGI reply"):
        parser.feed(b"OK then\n")
    with pytest.raises(AGIProtocolError):
        parser.feed(b"200 result=1\n")


def test_malformed_200() -> None:
    with pytest.raises(AGIProtocolError, match="malformed 200"):
        started().feed(b"200 nonsense\n")


def test_limits() -> None:
    with pytest.raises(AGIProtocolError, match="longer than"):
        AgiParser().feed(b"agi_x: " + b"a" * (MAX_LINE + 1))
    many = b"".join(b"agi_h%d: v\n" % i for i in range(MAX_HEADERS + 1))
    with pytest.raises(AGIProtocolError, match="more than"):
        AgiParser().feed(many)


def test_non_utf8_bytes_do_not_break_parsing() -> None:
    [reply] = started().feed(b"200 result=1 (caf\xe9)\n")
    assert isinstance(reply, AgiReply)
    assert reply.data == "caf\ufffd"


def test_encode_quotes_arguments() -> None:
    assert encode_command("GET DATA", "beep", 5000, 3) == b'GET DATA "beep" "5000" "3"\n'
    assert encode_command("SET VARIABLE", "X", 'say "hi" \\o/') == (
        b'SET VARIABLE "X" "say \\"hi\\" \\\\o/"\n'
    )
    assert encode_command("STREAM FILE", "beep", "") == b'STREAM FILE "beep" ""\n'


@pytest.mark.parametrize("evil", ["1\nHANGUP", "x\r", "nul\x00", "lone \ud800"])
def test_encode_refuses_injection(evil: str) -> None:
    with pytest.raises(AGIProtocolError, match="refusing"):
        encode_command("SET VARIABLE", "X", evil)
    with pytest.raises(AGIProtocolError, match="refusing"):
        encode_command(evil)


@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
def test_garbage_after_headers_gives_messages_or_a_protocol_error(data: bytes, chunk: int) -> None:
    parser = started()
    error: AGIProtocolError | None = None
    try:
        for i in range(0, len(data), chunk):
            for message in parser.feed(data[i : i + chunk]):
                assert isinstance(message, AgiReply | HangupNotice)
    except AGIProtocolError as exc:
        error = exc
    assert error is None or str(error)


@given(st.binary(max_size=2000))
def test_garbage_before_headers_never_crashes(data: bytes) -> None:
    try:
        messages = AgiParser().feed(data)
    except AGIProtocolError:
        return
    assert all(isinstance(m, AgiRequest | AgiReply | HangupNotice) for m in messages)


@given(
    st.text(
        alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]),
        max_size=50,
    )
)
def test_encoded_argument_round_trips_through_asterisk_style_unquoting(text: str) -> None:
    line = encode_command("SET VARIABLE", "X", text).decode()
    assert line.count("\n") == 1
    assert _asterisk_parse_args(line.rstrip("\n"))[-1] == text


def _asterisk_parse_args(line: str) -> list[str]:
    """res_agi.c parse_args(): quotes group, backslash escapes the next char."""
    args: list[str] = []
    current: list[str] = []
    quoted = escaped = started_arg = False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
            started_arg = True
        elif ch in " \t" and not quoted:
            if current or started_arg:
                args.append("".join(current))
            current, started_arg = [], False
        else:
            current.append(ch)
    if current or started_arg:
        args.append("".join(current))
    return args


def test_linkedid_comes_from_the_query_or_falls_back_to_uniqueid() -> None:
    [passed] = AgiParser().feed(
        b"agi_network_script: inbound?linkedid=node1-1.7\nagi_uniqueid: node1-1.9\n\n"
    )
    [own] = AgiParser().feed(b"agi_network_script: inbound\nagi_uniqueid: node1-1.9\n\n")
    assert isinstance(passed, AgiRequest)
    assert isinstance(own, AgiRequest)
    assert (passed.linkedid, own.linkedid) == ("node1-1.7", "node1-1.9")
