"""The channel tracker, fed with replayed AMI transcripts (parser -> typed
events -> tracker) and with targeted out-of-order and resync cases."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.protocol.ami import AmiFrame, AmiParser
from callcenter.protocol.ami_events import (
    AmiEvent,
    BridgeListItem,
    ChannelState,
    CoreShowChannel,
    parse_event,
)
from callcenter.protocol.channels import (
    Bridged,
    CallEnded,
    Change,
    ChannelAdded,
    ChannelKey,
    ChannelRemoved,
    ChannelTracker,
    ChannelUpdated,
    DialEnded,
    DialStarted,
    LocalOptimized,
    OriginateResult,
    Transferred,
    Unbridged,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ami"
TRANSCRIPTS = sorted(p.name for p in FIXTURES.glob("*.ami"))


def transcript_bytes(name: str) -> bytes:
    # Leading '#' lines say where a transcript comes from; they are not AMI.
    data = (FIXTURES / name).read_bytes()
    while data.startswith(b"#"):
        data = data[data.index(b"\n") + 1 :]
    return data


def events_of(data: bytes, chunk: int = 0) -> list[AmiEvent]:
    parser = AmiParser()
    items = []
    if chunk:
        for pos in range(0, len(data), chunk):
            items += parser.feed(data[pos : pos + chunk])
    else:
        items = parser.feed(data)
    return [parse_event(i) for i in items if isinstance(i, AmiFrame) and i.kind == "event"]


class Replay:
    def __init__(self, name: str, node: str = "node1", chunk: int = 0) -> None:
        self.tracker = ChannelTracker(node=node)
        self.events = events_of(transcript_bytes(name), chunk)
        self.position = 0
        self.changes: list[Change] = []

    def until(self, stop: Callable[[AmiEvent], bool]) -> AmiEvent:
        """Apply events up to and including the first that matches ``stop``."""
        while self.position < len(self.events):
            event = self.events[self.position]
            self.position += 1
            self.changes += self.tracker.apply(event)
            if stop(event):
                return event
        raise AssertionError("no such event in the transcript")

    def finish(self) -> list[Change]:
        while self.position < len(self.events):
            self.changes += self.tracker.apply(self.events[self.position])
            self.position += 1
        return self.changes

    def of(self, kind: type[Change]) -> list[Change]:
        return [c for c in self.changes if isinstance(c, kind)]


def nth(name: str, n: int = 1) -> Callable[[AmiEvent], bool]:
    """Stops at the n-th such event counted from where the replay stands."""
    seen = 0

    def stop(event: AmiEvent) -> bool:
        nonlocal seen
        if event.name == name:
            seen += 1
        return seen == n

    return stop


# --------------------------------------------------------------- transcripts
@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_every_transcript_replays_cleanly(name: str) -> None:
    replay = Replay(name)
    changes = replay.finish()
    tracker = replay.tracker
    assert tracker.anomaly_count == 0, list(tracker.anomalies)
    assert tracker.channels() == []
    assert tracker.calls() == []
    assert tracker.bridges() == []
    added = {c.channel.uniqueid for c in changes if isinstance(c, ChannelAdded)}
    removed = {c.channel.uniqueid for c in changes if isinstance(c, ChannelRemoved)}
    assert added == removed
    assert all(c.channel.node == "node1" for c in changes if isinstance(c, ChannelAdded))


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_chunking_does_not_change_what_the_tracker_sees(name: str) -> None:
    whole = Replay(name).finish()
    for chunk in (1, 13, 512):
        assert Replay(name, chunk=chunk).finish() == whole


def test_inbound_call_bridged_to_an_agent() -> None:
    replay = Replay("inbound_basic.ami")
    trunk, agent = "node1-1700000000.0", "node1-1700000000.1"
    replay.until(nth("DialBegin"))
    assert replay.tracker.channel(agent) is not None
    assert replay.tracker.channel(agent).dialed_by == trunk  # type: ignore[union-attr]
    assert replay.of(DialStarted) == [DialStarted("node1", trunk, agent)]
    replay.until(nth("BridgeEnter", 2))
    tracker = replay.tracker
    assert replay.of(Bridged) == [Bridged("node1", trunk, "b-0001", agent, trunk)]
    assert replay.of(DialEnded) == [DialEnded("node1", trunk, agent, "ANSWER")]
    peer = tracker.peer_of(trunk)
    assert peer is not None
    assert peer.uniqueid == agent
    assert tracker.peer_of(agent).uniqueid == trunk  # type: ignore[union-attr]
    legs = tracker.call(trunk)
    assert [c.uniqueid for c in legs] == [trunk, agent]
    assert all(c.state is ChannelState.UP for c in legs)
    caller = tracker.channel(trunk)
    assert caller is not None
    assert caller.caller_id_num == "0612345678"
    assert caller.bridge_id == "b-0001"
    assert caller.key == ChannelKey("node1", trunk)
    bridge = tracker.bridge("b-0001")
    assert bridge is not None
    assert bridge.members == (agent, trunk)

    replay.until(nth("Hangup", 1))
    assert tracker.peer_of(trunk) is None
    removed = replay.of(ChannelRemoved)
    assert len(removed) == 1
    assert removed[0].channel.uniqueid == agent  # type: ignore[union-attr]
    assert (removed[0].cause, removed[0].cause_txt) == (16, "Normal Clearing")  # type: ignore[union-attr]
    assert replay.of(CallEnded) == []
    replay.finish()
    assert replay.of(CallEnded) == [CallEnded("node1", trunk)]


def test_blind_transfer_moves_the_caller_to_the_second_agent() -> None:
    replay = Replay("blind_transfer.ami")
    trunk, agent1, agent2 = (f"node1-1700000100.{i}" for i in range(3))
    replay.until(nth("BlindTransfer"))
    assert replay.of(Transferred) == [
        Transferred("node1", "blind", True, agent1, trunk, "202@agents")
    ]
    replay.until(nth("Hangup", 1))
    assert replay.tracker.channel(agent1) is None
    assert replay.tracker.peer_of(trunk) is None
    replay.until(nth("BridgeEnter", 2))  # counted from where the replay stands
    assert replay.tracker.peer_of(trunk).uniqueid == agent2  # type: ignore[union-attr]
    assert [c.uniqueid for c in replay.tracker.call(trunk)] == [trunk, agent2]
    assert replay.tracker.channel(trunk).exten == "202"  # type: ignore[union-attr]
    replay.finish()
    assert replay.of(CallEnded) == [CallEnded("node1", trunk)]


def test_attended_transfer_joins_caller_and_target_and_merges_the_calls() -> None:
    replay = Replay("attended_transfer.ami")
    trunk, agent1, agent1b, agent2 = (f"node1-1700000200.{i}" for i in range(4))
    replay.until(nth("Hold"))
    assert replay.tracker.channel(trunk).on_hold  # type: ignore[union-attr]
    replay.until(nth("BridgeEnter", 2))
    tracker = replay.tracker
    assert tracker.peer_of(agent1b).uniqueid == agent2  # type: ignore[union-attr]
    assert [c.uniqueid for c in tracker.call(agent1b)] == [agent1b, agent2]
    assert sorted(tracker.calls()) == [trunk, agent1b]
    replay.until(nth("AttendedTransfer"))
    assert replay.of(Transferred) == [Transferred("node1", "attended", True, agent1, trunk, agent2)]
    replay.until(nth("BridgeEnter", 1))
    assert tracker.peer_of(trunk).uniqueid == agent2  # type: ignore[union-attr]
    assert not tracker.channel(trunk).on_hold  # type: ignore[union-attr]
    moved = tracker.channel(agent2)
    assert moved is not None
    assert moved.linkedid == trunk
    # agent1 has left the bridge but not hung up yet: still a leg of the call.
    assert [c.uniqueid for c in tracker.call(trunk)] == [trunk, agent1, agent2]
    assert [c.uniqueid for c in tracker.call(agent1b)] == [agent1b]
    replay.until(nth("Hangup", 2))
    assert replay.of(CallEnded) == [CallEnded("node1", agent1b)]
    replay.finish()
    assert replay.of(CallEnded) == [CallEnded("node1", agent1b), CallEnded("node1", trunk)]


def test_local_channel_pair_is_crossed_then_optimised_away() -> None:
    replay = Replay("local_optimization.ami")
    trunk, local1, local2, agent = (f"node1-1700000300.{i}" for i in range(4))
    replay.until(nth("BridgeEnter", 4))
    tracker = replay.tracker
    assert tracker.local_peer(local1) == local2
    assert tracker.local_peer(local2) == local1
    assert tracker.peer_of(trunk).uniqueid == agent  # type: ignore[union-attr]
    assert tracker.peer_of(agent).uniqueid == trunk  # type: ignore[union-attr]
    assert tracker.peer_of(trunk, through_local=False).uniqueid == local1  # type: ignore[union-attr]
    assert len(tracker.call(trunk)) == 4
    replay.until(nth("LocalOptimizationEnd"))
    assert replay.of(LocalOptimized) == [LocalOptimized("node1", local1, local2)]
    assert replay.of(Bridged)[-1] == Bridged("node1", trunk, "b-0300", trunk, agent)
    assert tracker.peer_of(trunk, through_local=False).uniqueid == agent  # type: ignore[union-attr]
    replay.until(nth("Hangup", 2))
    assert tracker.local_peer(local1) is None
    assert [c.uniqueid for c in tracker.call(trunk)] == [trunk, agent]
    assert tracker.peer_of(trunk).uniqueid == agent  # type: ignore[union-attr]


def test_peer_of_a_local_whose_far_half_is_not_bridged_is_the_local() -> None:
    replay = Replay("local_optimization.ami")
    trunk, local1 = "node1-1700000300.0", "node1-1700000300.1"
    replay.until(nth("BridgeEnter", 2))
    assert replay.tracker.peer_of(trunk).uniqueid == local1  # type: ignore[union-attr]


def test_originate_results() -> None:
    replay = Replay("originate.ami")
    replay.until(nth("OriginateResponse"))
    ok = "cc-node1-1700000400000-1"
    assert replay.tracker.channel(ok).state is ChannelState.UP  # type: ignore[union-attr]
    assert replay.tracker.channel(ok).dialed_by is None  # type: ignore[union-attr]
    replay.finish()
    assert replay.of(OriginateResult) == [
        OriginateResult("node1", "cc-node1-2", ok, True, 4),
        OriginateResult("node1", "cc-node1-3", None, False, 3),
    ]
    assert DialStarted("node1", None, ok) in replay.changes


# ------------------------------------------------------------ node identity
def test_uniqueids_are_per_node() -> None:
    events = events_of(transcript_bytes("inbound_basic.ami"))
    one, two = ChannelTracker(node="node1"), ChannelTracker(node="node2")
    for event in events[:8]:
        one.apply(event)
        two.apply(event)
    a, b = one.channels()[0], two.channels()[0]
    assert a.uniqueid == b.uniqueid
    assert a.key != b.key
    assert (a.key, b.key) == (("node1", a.uniqueid), ("node2", b.uniqueid))


# ------------------------------------------------- out of order, never raise
def test_unknown_channel_is_learned_and_counted() -> None:
    events = events_of(transcript_bytes("inbound_basic.ami"))
    tracker = ChannelTracker(node="node1")
    newstate = next(e for e in events if e.name == "Newstate")
    changes = tracker.apply(newstate)
    assert [type(c) for c in changes] == [ChannelAdded]
    assert tracker.anomaly_count == 1
    assert tracker.anomalies[0].kind == "unknown channel"
    assert tracker.anomalies[0].event == "Newstate"


def test_late_events_after_hangup_are_ignored_and_counted() -> None:
    events = events_of(transcript_bytes("inbound_basic.ami"))
    tracker = ChannelTracker(node="node1")
    for event in events:
        tracker.apply(event)
    assert tracker.anomaly_count == 0
    hangup = next(e for e in events if e.name == "Hangup")
    newstate = next(e for e in events if e.name == "Newstate")
    newchannel = next(e for e in events if e.name == "Newchannel")
    assert tracker.apply(hangup) == []
    assert tracker.apply(newchannel) == []
    assert tracker.apply(newstate) == []
    assert tracker.channels() == []
    kinds = [a.kind for a in tracker.anomalies]
    assert kinds == ["duplicate Hangup", "event after hangup", "event after hangup"]


def test_bridge_anomalies() -> None:
    events = events_of(transcript_bytes("inbound_basic.ami"))
    tracker = ChannelTracker(node="node1")
    enter = next(e for e in events if e.name == "BridgeEnter")
    leaves = [e for e in events if e.name == "BridgeLeave"]
    tracker.apply(enter)  # channel and bridge both unknown
    assert [a.kind for a in tracker.anomalies] == ["unknown channel", "unknown bridge"]
    tracker.apply(leaves[1])  # the trunk leaves a bridge it never entered
    assert [a.kind for a in tracker.anomalies][-2:] == [
        "unknown channel",
        "left a bridge it was not in",
    ]
    destroy = next(e for e in events if e.name == "BridgeDestroy")
    tracker.apply(destroy)  # the agent is still listed in it
    assert tracker.anomalies[-1].kind == "bridge destroyed with a member"
    assert all(c.bridge_id is None for c in tracker.channels())
    tracker.apply(destroy)
    assert tracker.anomalies[-1].kind == "unknown bridge"


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(TRANSCRIPTS), st.randoms(use_true_random=False))
def test_shuffled_events_never_raise(name: str, rnd: random.Random) -> None:
    events = events_of(transcript_bytes(name))
    rnd.shuffle(events)
    tracker = ChannelTracker(node="node1")
    for event in events:
        tracker.apply(event)
    # Whatever the order, what the tracker holds is self-consistent.
    for channel in tracker.channels():
        assert channel.uniqueid in {c.uniqueid for c in tracker.call(channel.linkedid)}
        if channel.bridge_id is not None and tracker.bridge(channel.bridge_id) is not None:
            assert channel.uniqueid in tracker.bridge(channel.bridge_id).members  # type: ignore[union-attr]


def test_dropped_events_never_raise() -> None:
    events = events_of(transcript_bytes("attended_transfer.ami"))
    for skip in range(len(events)):
        tracker = ChannelTracker(node="node1")
        for i, event in enumerate(events):
            if i != skip:
                tracker.apply(event)


def test_rename_and_unknown_rename() -> None:
    tracker = ChannelTracker(node="node1")
    for event in events_of(transcript_bytes("inbound_basic.ami"))[:4]:
        tracker.apply(event)
    uid = tracker.channels()[0].uniqueid
    rename = parse_event(
        AmiFrame.of(("Event", "Rename"), ("Channel", "PJSIP/trunk-00000000"),
                    ("Newname", "PJSIP/trunk-00000000<MASQ>"), ("Uniqueid", uid))
    )  # fmt: skip
    changes = tracker.apply(rename)
    assert isinstance(changes[0], ChannelUpdated)
    assert changes[0].fields == ("name",)
    assert tracker.channel(uid).name == "PJSIP/trunk-00000000<MASQ>"  # type: ignore[union-attr]
    ghost = parse_event(
        AmiFrame.of(("Event", "Rename"), ("Channel", "a"), ("Newname", "b"), ("Uniqueid", "zz"))
    )
    assert tracker.apply(ghost) == []
    assert tracker.anomalies[-1].kind == "Rename of unknown channel"


def test_events_the_tracker_does_not_use_change_nothing() -> None:
    tracker = ChannelTracker(node="node1")
    booted = parse_event(AmiFrame.of(("Event", "FullyBooted"), ("Status", "Fully Booted")))
    unknown = parse_event(AmiFrame.of(("Event", "RTCPSent"), ("Channel", "x")))
    assert tracker.apply(booted) == []
    assert tracker.apply(unknown) == []
    assert tracker.events == 0


# --------------------------------------------------------------------- resync
def core_show(
    uid: str, name: str, linkedid: str, bridge_id: str = "", state: str = "6"
) -> CoreShowChannel:
    event = parse_event(
        AmiFrame.of(
            ("Event", "CoreShowChannel"), ("ActionID", "r1"), ("Channel", name),
            ("ChannelState", state), ("ChannelStateDesc", "Up"), ("CallerIDNum", "0612345678"),
            ("CallerIDName", "Test"), ("ConnectedLineNum", "<unknown>"),
            ("ConnectedLineName", "<unknown>"), ("Language", "fr"), ("AccountCode", ""),
            ("Context", "from-trunk"), ("Exten", "100"), ("Priority", "1"), ("Uniqueid", uid),
            ("Linkedid", linkedid), ("Application", "AGI"), ("ApplicationData", "agi://x"),
            ("Duration", "00:00:05"), ("BridgeId", bridge_id),
        )
    )  # fmt: skip
    assert isinstance(event, CoreShowChannel)
    return event


def bridge_item(bridge_id: str) -> BridgeListItem:
    event = parse_event(
        AmiFrame.of(("Event", "BridgeListItem"), ("BridgeUniqueid", bridge_id),
                    ("BridgeType", "basic"), ("BridgeTechnology", "simple_bridge"),
                    ("BridgeNumChannels", "2"))
    )  # fmt: skip
    assert isinstance(event, BridgeListItem)
    return event


def test_resync_replaces_state_and_reports_what_changed_while_blind() -> None:
    replay = Replay("inbound_basic.ami")
    trunk, agent = "node1-1700000000.0", "node1-1700000000.1"
    replay.until(nth("BridgeEnter", 2))
    tracker = replay.tracker
    # While we were blind: the agent hung up, the caller was bridged to
    # someone new, and an unrelated call started.
    truth = [
        core_show(trunk, "PJSIP/trunk-00000000", trunk, "b-9"),
        core_show("node1-9.1", "PJSIP/agent2-00000009", trunk, "b-9"),
        core_show("node1-9.5", "PJSIP/trunk-00000010", "node1-9.5", state="4"),
    ]
    changes = tracker.resync(truth, [bridge_item("b-9")])
    removed = [c for c in changes if isinstance(c, ChannelRemoved)]
    assert [c.channel.uniqueid for c in removed] == [agent]
    assert removed[0].cause is None
    added = sorted(c.channel.uniqueid for c in changes if isinstance(c, ChannelAdded))
    assert added == ["node1-9.1", "node1-9.5"]
    updated = [c for c in changes if isinstance(c, ChannelUpdated)]
    assert [c.channel.uniqueid for c in updated] == [trunk]
    assert "bridge_id" in updated[0].fields
    assert tracker.channel(trunk).dialed_by is None  # type: ignore[union-attr]
    assert tracker.peer_of(trunk).uniqueid == "node1-9.1"  # type: ignore[union-attr]
    assert sorted(tracker.calls()) == sorted(["node1-9.5", trunk])
    assert tracker.bridge("b-0001") is None
    assert tracker.bridge("b-9").members == (trunk, "node1-9.1")  # type: ignore[union-attr]
    assert tracker.channel("node1-9.5").state is ChannelState.RING  # type: ignore[union-attr]
    # The stream goes on from the new truth without anomalies.
    assert tracker.anomaly_count == 0


def test_resync_to_nothing_ends_every_call() -> None:
    replay = Replay("local_optimization.ami")
    replay.until(nth("BridgeEnter", 4))
    changes = replay.tracker.resync([], [])
    assert [c for c in changes if isinstance(c, CallEnded)] == [
        CallEnded("node1", "node1-1700000300.0")
    ]
    assert len([c for c in changes if isinstance(c, ChannelRemoved)]) == 4
    assert replay.tracker.channels() == []
    assert replay.tracker.local_peer("node1-1700000300.1") is None
    # A late event about a channel that vanished while we were blind is ignored.
    replay.finish()
    assert replay.tracker.channels() == []
    assert replay.tracker.anomaly_count > 0


def test_resync_with_unchanged_truth_reports_nothing() -> None:
    replay = Replay("inbound_basic.ami")
    trunk = "node1-1700000000.0"
    replay.until(nth("Newchannel", 1))
    channel = replay.tracker.channel(trunk)
    assert channel is not None
    truth = core_show(trunk, channel.name, trunk, state="4")
    truth = CoreShowChannel(
        truth.snapshot._replace(exten="3900", caller_id_name="Jean Dupont"),
        None,
        "",
        "",
        0,
        None,
        truth.frame,
    )
    assert replay.tracker.resync([truth], []) == []


def test_bridge_merge_moves_every_member() -> None:
    replay = Replay("attended_transfer.ami")
    replay.until(nth("BridgeEnter", 4))
    tracker = replay.tracker
    merge = parse_event(
        AmiFrame.of(("Event", "BridgeMerge"), ("ToBridgeUniqueid", "b-0200"),
                    ("FromBridgeUniqueid", "b-0201"))
    )  # fmt: skip
    changes = tracker.apply(merge)
    assert any(isinstance(c, ChannelUpdated) for c in changes)
    members = tracker.bridge("b-0200").members  # type: ignore[union-attr]
    assert set(members) == {f"node1-1700000200.{i}" for i in range(4)}
    assert not any(isinstance(c, Unbridged) for c in changes)


# ------------------------------------------------- recorded from Asterisk 22
def _first(replay: Replay, name: str) -> AmiEvent:
    return next(e for e in replay.events if e.name == name)


def test_recorded_agent_first_connect_bridges_our_channel_id_with_the_caller() -> None:
    replay = Replay("real_agent_first.ami")
    response = _first(replay, "OriginateResponse")
    agent = response.uniqueid  # type: ignore[attr-defined]
    assert agent.startswith("cc-node1-")  # the ChannelId the client chose
    replay.until(nth("BridgeEnter", 2))
    bridged = replay.of(Bridged)
    assert len(bridged) == 1
    caller = bridged[0].a if bridged[0].b == agent else bridged[0].b
    assert replay.tracker.channel(caller).name.startswith("PJSIP/trunk-")  # type: ignore[union-attr]
    assert replay.tracker.peer_of(caller).uniqueid == agent  # type: ignore[union-attr]
    # The agent leg joins the caller's call: one Linkedid for both.
    assert [c.uniqueid for c in replay.tracker.call(caller)] == [caller, agent]
    replay.finish()
    # Originated, the agent leg starts a call of its own; bridged, Asterisk
    # gives it the caller's Linkedid: that call merges into the caller's.
    assert replay.of(CallEnded) == [
        CallEnded("node1", agent, merged_into=caller),
        CallEnded("node1", caller),
    ]


def test_recorded_blind_transfer_moves_the_caller_to_agent2() -> None:
    replay = Replay("real_blind_transfer.ami")
    replay.until(nth("BlindTransfer"))
    [transfer] = replay.of(Transferred)
    assert (transfer.kind, transfer.success, transfer.target) == (
        "blind",
        True,
        "agent2@callcenter-agents",
    )
    caller = transfer.transferee
    assert caller is not None
    replay.until(nth("BridgeEnter", 2))
    peer = replay.tracker.peer_of(caller)
    assert peer is not None
    assert peer.name.startswith("PJSIP/agent2-")
    assert replay.tracker.channel(transfer.transferer) is None  # agent1 has hung up
    replay.finish()
    assert replay.of(CallEnded) == [
        CallEnded("node1", transfer.transferer, merged_into=caller),
        CallEnded("node1", caller),
    ]


def test_recorded_local_channel_pair_is_seen_through() -> None:
    replay = Replay("real_local_channel.ami")
    replay.until(nth("BridgeEnter", 4))
    [caller] = [c.uniqueid for c in replay.tracker.channels() if c.name.startswith("PJSIP/trunk-")]
    assert replay.tracker.peer_of(caller).name.startswith("PJSIP/agent2-")  # type: ignore[union-attr]
    near = replay.tracker.peer_of(caller, through_local=False)
    assert near is not None
    assert near.is_local
    replay.finish()
    assert not replay.of(LocalOptimized)
