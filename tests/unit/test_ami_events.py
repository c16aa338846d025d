"""Typed AMI events: each class from a realistic Asterisk 22 frame, and the
errors that name the event, the field and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.errors import AMIProtocolError
from callcenter.protocol import ami_events as ev
from callcenter.protocol.ami import AmiFrame, AmiParser
from callcenter.protocol.ami_events import ChannelState, parse_event

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ami"


def snap(prefix: str = "", *, name: str = "PJSIP/agent1-00000001", uid: str = "node1-1.1",
         state: str = "6", linkedid: str = "node1-1.0") -> list[tuple[str, str]]:  # fmt: skip
    return [
        (f"{prefix}Channel", name),
        (f"{prefix}ChannelState", state),
        (f"{prefix}ChannelStateDesc", "Up"),
        (f"{prefix}CallerIDNum", "201"),
        (f"{prefix}CallerIDName", "<unknown>"),
        (f"{prefix}ConnectedLineNum", "0612345678"),
        (f"{prefix}ConnectedLineName", "Jean Dupont"),
        (f"{prefix}Language", "fr"),
        (f"{prefix}AccountCode", ""),
        (f"{prefix}Context", "agents"),
        (f"{prefix}Exten", "s"),
        (f"{prefix}Priority", "2"),
        (f"{prefix}Uniqueid", uid),
        (f"{prefix}Linkedid", linkedid),
    ]


def bridge(prefix: str = "", uid: str = "b-1", count: str = "2") -> list[tuple[str, str]]:
    return [
        (f"{prefix}BridgeUniqueid", uid),
        (f"{prefix}BridgeType", "basic"),
        (f"{prefix}BridgeTechnology", "simple_bridge"),
        (f"{prefix}BridgeCreator", "<unknown>"),
        (f"{prefix}BridgeName", "<unknown>"),
        (f"{prefix}BridgeNumChannels", count),
        (f"{prefix}BridgeVideoSourceMode", "none"),
    ]


def frame(name: str, *groups: list[tuple[str, str]], **extra: str) -> AmiFrame:
    headers: list[tuple[str, str]] = [("Event", name), ("Privilege", "call,all")]
    for group in groups:
        headers += group
    headers += [(k.replace("_", "-") if k == "Cause_txt" else k, v) for k, v in extra.items()]
    return AmiFrame(tuple(headers))


def test_channel_snapshot_fields_are_typed() -> None:
    event = parse_event(frame("Newchannel", snap()))
    assert isinstance(event, ev.Newchannel)
    s = event.snapshot
    assert s.channel == "PJSIP/agent1-00000001"
    assert s.state is ChannelState.UP
    assert s.caller_id_num == "201"
    assert s.caller_id_name == ""  # "<unknown>" means unset
    assert s.connected_line_name == "Jean Dupont"
    assert s.priority == 2
    assert s.linkedid == "node1-1.0"
    assert s.tenantid == ""
    assert s.variables == ()
    assert not s.is_local
    assert (event.uniqueid, event.linkedid, event.channel) == (
        "node1-1.1",
        "node1-1.0",
        "PJSIP/agent1-00000001",
    )
    assert event.name == "Newchannel"
    assert event.frame.get("Privilege") == "call,all"


def test_snapshot_optional_parts() -> None:
    headers = snap()
    headers = [h for h in headers if h[0] not in ("Linkedid", "ChannelState", "Priority")]
    headers += [("Tenantid", "acme"), ("ChanVariable", "CC_A=1"), ("ChanVariable", "CC_B=x=y")]
    s = parse_event(frame("Newstate", headers)).snapshot  # type: ignore[attr-defined]
    assert s.linkedid == "node1-1.1"
    assert s.state is ChannelState.UNKNOWN
    assert s.priority == 0
    assert s.tenantid == "acme"
    assert s.variables == (("CC_A", "1"), ("CC_B", "x=y"))


def test_unknown_numeric_state_is_kept_as_unknown() -> None:
    s = parse_event(frame("Newstate", snap(state="42"))).snapshot  # type: ignore[attr-defined]
    assert s.state is ChannelState.UNKNOWN


def test_keys_in_another_case_are_accepted() -> None:
    headers = [(k.lower(), v) for k, v in snap()]
    event = parse_event(AmiFrame((("event", "Hangup"), *headers, ("cause", "16"))))
    assert isinstance(event, ev.Hangup)
    assert event.uniqueid == "node1-1.1"
    assert event.snapshot.state is ChannelState.UP
    assert event.cause == 16


@pytest.mark.parametrize(
    ("built", "cls", "checks"),
    [
        (frame("Hangup", snap(), Cause="16", Cause_txt="Normal Clearing"), ev.Hangup,
         {"cause": 16, "cause_txt": "Normal Clearing", "tech_cause": None}),
        (frame("Hangup", snap(), Cause="17", TechCause="486"), ev.Hangup,
         {"cause": 17, "tech_cause": 486}),
        (frame("HangupRequest", snap(), Cause="16"), ev.HangupRequest, {"cause": 16}),
        (frame("SoftHangupRequest", snap()), ev.SoftHangupRequest, {"cause": None}),
        (frame("NewCallerid", snap(), **{"CID-CallingPres": "0 (Presentation Allowed)"}),
         ev.NewCallerid, {"cid_calling_pres": "0 (Presentation Allowed)"}),
        (frame("NewConnectedLine", snap()), ev.NewConnectedLine, {}),
        (frame("DialBegin", snap(uid="a"), snap("Dest", uid="b"), DialString="agent1"),
         ev.DialBegin, {"dial_string": "agent1", "caller_uniqueid": "a", "uniqueid": "b"}),
        (frame("DialBegin", snap("Dest", uid="b"), DialString="PJSIP/agent1"), ev.DialBegin,
         {"caller": None, "caller_uniqueid": None}),
        (frame("DialState", snap(uid="a"), snap("Dest", uid="b"), DialStatus="RINGING"),
         ev.DialState, {"dial_status": "RINGING", "forward": ""}),
        (frame("DialEnd", snap(uid="a"), snap("Dest", uid="b"), DialStatus="ANSWER"),
         ev.DialEnd, {"dial_status": "ANSWER"}),
        (frame("BridgeCreate", bridge(count="0")), ev.BridgeCreate, {}),
        (frame("BridgeDestroy", bridge(count="0")), ev.BridgeDestroy, {}),
        (frame("BridgeEnter", bridge(), snap()), ev.BridgeEnter,
         {"swap_uniqueid": None, "uniqueid": "node1-1.1"}),
        (frame("BridgeEnter", bridge(), snap(), SwapUniqueid="node1-1.7"), ev.BridgeEnter,
         {"swap_uniqueid": "node1-1.7"}),
        (frame("BridgeLeave", bridge(count="1"), snap()), ev.BridgeLeave, {}),
        (frame("BridgeMerge", bridge("To", "b-1"), bridge("From", "b-2")), ev.BridgeMerge, {}),
        (frame("BridgeListItem", bridge(), ActionID="7"), ev.BridgeListItem,
         {"action_id": "7", "bridge_id": "b-1"}),
        (frame("Rename", Channel="PJSIP/a-1", Newname="PJSIP/a-1<ZOMBIE>", Uniqueid="u"),
         ev.Rename, {"channel": "PJSIP/a-1", "new_name": "PJSIP/a-1<ZOMBIE>", "uniqueid": "u"}),
        (frame("VarSet", snap(), Variable="CC_QUEUE", Value="sales"), ev.VarSet,
         {"variable": "CC_QUEUE", "value": "sales"}),
        (frame("Newexten", snap(), Extension="s", Application="AGI",
               AppData="agi://127.0.0.1/inbound"), ev.Newexten,
         {"application": "AGI", "app_data": "agi://127.0.0.1/inbound"}),
        (frame("DTMFBegin", snap(), Digit="5", Direction="Received"), ev.DTMFBegin,
         {"digit": "5", "direction": "Received"}),
        (frame("DTMFEnd", snap(), Digit="#", DurationMs="120", Direction="Received"), ev.DTMFEnd,
         {"digit": "#", "duration_ms": 120}),
        (frame("Hold", snap(), MusicClass="default"), ev.Hold, {"music_class": "default"}),
        (frame("Unhold", snap()), ev.Unhold, {}),
        (frame("MusicOnHoldStart", snap(), Class="default"), ev.MusicOnHoldStart,
         {"music_class": "default"}),
        (frame("MusicOnHoldStop", snap()), ev.MusicOnHoldStop, {}),
        (frame("MixMonitorStart", snap()), ev.MixMonitorStart, {}),
        (frame("MixMonitorStop", snap()), ev.MixMonitorStop, {}),
        (frame("ChanSpyStart", snap("Spyer", uid="s"), snap("Spyee", uid="t")), ev.ChanSpyStart,
         {"uniqueid": "s"}),
        (frame("ChanSpyStop", snap("Spyer", uid="s")), ev.ChanSpyStop, {"spyee": None}),
        (frame("ConfbridgeJoin", [("Conference", "team")], bridge(), snap(), Admin="No",
               Muted="Yes"), ev.ConfbridgeJoin,
         {"conference": "team", "admin": False, "muted": True}),
        (frame("ConfbridgeLeave", [("Conference", "team")], bridge(), snap(), Admin="Yes"),
         ev.ConfbridgeLeave, {"admin": True}),
        (frame("QueueCallerJoin", snap(), Queue="sales", Position="1", Count="3"),
         ev.QueueCallerJoin, {"queue": "sales", "position": 1, "count": 3}),
        (frame("QueueCallerLeave", snap(), Queue="sales", Count="2", Position="1"),
         ev.QueueCallerLeave, {"count": 2}),
        (frame("QueueCallerAbandon", snap(), Queue="sales", Position="2", OriginalPosition="3",
               HoldTime="41"), ev.QueueCallerAbandon, {"original_position": 3, "hold_time": 41}),
        (frame("AgentConnect", snap(), snap("Dest", uid="d"), Queue="sales",
               MemberName="Agent One", Interface="PJSIP/agent1", RingTime="3", HoldTime="12"),
         ev.AgentConnect, {"member_name": "Agent One", "ring_time": 3, "hold_time": 12}),
        (frame("AgentComplete", snap(), snap("Dest", uid="d"), Queue="sales",
               MemberName="Agent One", Interface="PJSIP/agent1", HoldTime="12", TalkTime="95",
               Reason="caller"), ev.AgentComplete, {"talk_time": 95, "reason": "caller"}),
        (frame("FullyBooted", Status="Fully Booted", Uptime="12", LastReload="3"),
         ev.FullyBooted, {"uptime": 12, "last_reload": 3}),
        (frame("Shutdown", Shutdown="Cleanly", Restart="True"), ev.Shutdown,
         {"shutdown": "Cleanly", "restart": True}),
        (frame("CoreShowChannel", snap(), BridgeId="b-1", Application="AGI",
               ApplicationData="agi://x", Duration="01:02:03", ActionID="5"),
         ev.CoreShowChannel,
         {"bridge_id": "b-1", "duration_s": 3723, "action_id": "5", "application": "AGI"}),
        (frame("CoreShowChannel", snap(), BridgeId="", Duration=""), ev.CoreShowChannel,
         {"bridge_id": None, "duration_s": 0}),
        (frame("CoreShowChannelsComplete", EventList="Complete", ListItems="4"),
         ev.CoreShowChannelsComplete, {"list_items": 4}),
        (frame("BridgeListComplete", EventList="Complete", ListItems="0"),
         ev.BridgeListComplete, {"list_items": 0}),
        (frame("ContactStatus", URI="sip:agent1@127.0.0.1:5070", ContactStatus="Reachable",
               AOR="agent1", EndpointName="agent1", RoundtripUsec="512"), ev.ContactStatus,
         {"status": "Reachable", "roundtrip_usec": 512}),
        (frame("ContactStatus", URI="sip:a@h", ContactStatus="Created", RoundtripUsec="N/A"),
         ev.ContactStatus, {"roundtrip_usec": None}),
        (frame("DeviceStateChange", Device="PJSIP/agent1", State="INUSE"),
         ev.DeviceStateChange, {"device": "PJSIP/agent1", "state": "INUSE"}),
        (frame("UserEvent", snap(), UserEvent="CcScore", Score="7"), ev.UserEvent,
         {"user_event": "CcScore", "headers": (("Score", "7"),), "uniqueid": "node1-1.1"}),
        (frame("UserEvent", UserEvent="Ping", ActionID="3"), ev.UserEvent,
         {"snapshot": None, "uniqueid": None}),
        (frame("AgentCalled", snap()), ev.UnknownEvent, {"event": "AgentCalled",
                                                          "name": "AgentCalled"}),
    ],
)  # fmt: skip
def test_typed_events(built: AmiFrame, cls: type[ev.AmiEvent], checks: dict[str, object]) -> None:
    event = parse_event(built)
    assert type(event) is cls
    assert event.frame is built
    for attr, expected in checks.items():
        assert getattr(event, attr) == expected, attr


def test_transfers_and_local_channels() -> None:
    blind = parse_event(
        frame("BlindTransfer", [("Result", "Success")], snap("Transferer", uid="a"),
              snap("Transferee", uid="c"), bridge(), IsExternal="Yes", Context="agents",
              Extension="202")
    )  # fmt: skip
    assert isinstance(blind, ev.BlindTransfer)
    assert blind.success
    assert blind.is_external
    assert blind.uniqueid == "a"
    assert blind.transferee is not None
    assert blind.transferee.uniqueid == "c"
    assert blind.bridge is not None
    assert blind.bridge.num_channels == 2
    assert (blind.context, blind.extension) == ("agents", "202")

    attended = parse_event(
        frame("AttendedTransfer", [("Result", "Success")], snap("OrigTransferer", uid="a"),
              bridge("Orig", "b-1"), snap("SecondTransferer", uid="a2"),
              bridge("Second", "b-2"), [("DestType", "Bridge"), ("DestBridgeUniqueid", "b-1")],
              snap("Transferee", uid="c"), snap("TransferTarget", uid="t"), IsExternal="No")
    )  # fmt: skip
    assert isinstance(attended, ev.AttendedTransfer)
    assert attended.dest_type == "Bridge"
    assert attended.dest_bridge_uniqueid == "b-1"
    assert attended.orig_bridge is not None
    assert attended.orig_bridge.uniqueid == "b-1"
    assert attended.second_transferer.uniqueid == "a2"
    assert attended.transfer_target is not None
    assert attended.transfer_target.uniqueid == "t"
    assert attended.local_one is None
    assert attended.dest_app is None
    assert not attended.is_external
    assert attended.uniqueid == "a"

    one = "Local/201@agents-00000000;1"
    two = "Local/201@agents-00000000;2"
    local = parse_event(
        frame("LocalBridge", snap("LocalOne", name=one, uid="l1"),
              snap("LocalTwo", name=two, uid="l2"), Context="agents", Exten="201",
              LocalOptimization="Yes")
    )  # fmt: skip
    assert isinstance(local, ev.LocalBridge)
    assert local.local_optimization
    assert local.local_one.is_local
    assert local.uniqueid == "l1"
    begin = parse_event(
        frame("LocalOptimizationBegin", snap("LocalOne", name=one, uid="l1"),
              snap("LocalTwo", name=two, uid="l2"), snap("Source", uid="a"),
              DestUniqueId="l1", Id="1")
    )  # fmt: skip
    assert isinstance(begin, ev.LocalOptimizationBegin)
    assert begin.source is not None
    assert begin.source.uniqueid == "a"
    assert (begin.dest_uniqueid, begin.id) == ("l1", 1)
    end = parse_event(
        frame("LocalOptimizationEnd", snap("LocalOne", name=one, uid="l1"),
              snap("LocalTwo", name=two, uid="l2"), Success="Yes", Id="1")
    )  # fmt: skip
    assert isinstance(end, ev.LocalOptimizationEnd)
    assert end.success


def test_originate_response() -> None:
    ok = parse_event(
        frame("OriginateResponse", ActionID="cc-1", Response="Success",
              Channel="PJSIP/agent1-00000000", Context="", Exten="", Application="Wait",
              Data="5", Reason="4", Uniqueid="cc-node1-1", CallerIDNum="<unknown>",
              CallerIDName="<unknown>")
    )  # fmt: skip
    assert isinstance(ok, ev.OriginateResponse)
    assert ok.success
    assert (ok.action_id, ok.reason, ok.uniqueid, ok.caller_id_num) == ("cc-1", 4, "cc-node1-1", "")
    failed = parse_event(
        frame("OriginateResponse", ActionID="cc-2", Response="Failure", Reason="3",
              Uniqueid="<null>")
    )  # fmt: skip
    assert isinstance(failed, ev.OriginateResponse)
    assert not failed.success
    assert failed.uniqueid is None


@pytest.mark.parametrize(
    ("built", "field", "value"),
    [
        (frame("Hangup", [("Channel", "PJSIP/x")], Cause="16"), "Uniqueid", None),
        (frame("Hangup", [("Uniqueid", "u")], Cause="16"), "Channel", None),
        (frame("Hangup", snap()), "Cause", None),
        (frame("Hangup", snap(), Cause="normal"), "Cause", "normal"),
        (frame("Newstate", snap(state="Up")), "ChannelState", "Up"),
        (frame("Newstate", [*snap()[:11], ("Priority", "two"), *snap()[12:]]), "Priority", "two"),
        (frame("DialBegin", snap(), DialString="x"), "DestUniqueid", None),
        (frame("DialEnd", snap(), snap("Dest")), "DialStatus", None),
        (frame("BridgeEnter", snap()), "BridgeUniqueid", None),
        (frame("BridgeLeave", bridge(count="x"), snap()), "BridgeNumChannels", "x"),
        (frame("BlindTransfer", snap("Transferer")), "Result", None),
        (frame("AttendedTransfer", [("Result", "Success")], snap("OrigTransferer")),
         "SecondTransfererUniqueid", None),
        (frame("OriginateResponse", Response="Success", Reason="answered"), "Reason", "answered"),
        (frame("OriginateResponse", Reason="4"), "Response", None),
        (frame("Rename", Channel="a", Uniqueid="u"), "Newname", None),
        (frame("DTMFEnd", snap(), Digit="1", DurationMs="long"), "DurationMs", "long"),
        (frame("QueueCallerJoin", snap(), Queue="q", Position="1"), "Count", None),
        (frame("CoreShowChannel", snap(), Duration="1:xx"), "Duration", "1:xx"),
        (frame("FullyBooted", Uptime="soon"), "Uptime", "soon"),
        (frame("ConfbridgeJoin", bridge(), snap()), "Conference", None),
        (frame("UserEvent"), "UserEvent", None),
        (frame("VarSet", snap()), "Variable", None),
        (frame("DeviceStateChange", Device="x"), "State", None),
        (frame("ContactStatus", ContactStatus="Reachable"), "URI", None),
    ],
)  # fmt: skip
def test_bad_fields_raise_naming_event_field_and_value(
    built: AmiFrame, field: str, value: str | None
) -> None:
    with pytest.raises(AMIProtocolError) as info:
        parse_event(built)
    message = str(info.value)
    assert built.name in message
    assert field in message
    if value is not None:
        assert repr(value) in message


def test_a_response_is_not_an_event() -> None:
    with pytest.raises(AMIProtocolError):
        parse_event(AmiFrame((("Response", "Success"),)))


def test_every_event_of_the_transcripts_is_typed() -> None:
    seen: set[str] = set()
    for path in sorted(FIXTURES.glob("*.ami")):
        data = path.read_bytes()
        while data.startswith(b"#"):
            data = data[data.index(b"\n") + 1 :]
        for item in AmiParser().feed(data):
            assert isinstance(item, AmiFrame)
            if item.kind == "event":
                event = parse_event(item)
                assert not isinstance(event, ev.UnknownEvent), item.name
                seen.add(event.name)
    assert {"Newchannel", "DialBegin", "BridgeEnter", "AttendedTransfer", "BlindTransfer",
            "LocalOptimizationEnd", "OriginateResponse", "Hangup"} <= seen  # fmt: skip


def test_registry_covers_all_exported_event_classes() -> None:
    exported = {
        name
        for name in ev.__all__
        if isinstance(getattr(ev, name), type)
        and issubclass(getattr(ev, name), ev.AmiEvent)
        and name not in ("AmiEvent", "UnknownEvent")
    }
    assert exported == set(ev.EVENT_TYPES)
