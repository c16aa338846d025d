"""Tier 1: the call path's state machine under the races a loaded machine
produces (issue 4), driven by the pure channel tracker and a recorded AMI
transcript; Asterisk actions go to a fake that only writes them down.

* A caller back in the inbound FastAGI (the dialplan's retry loop, with
  CC_INTERACTION) while their interaction is being bridged must keep that one
  interaction: a second one would ring a second agent and complete twice.
* An agent's answer whose OriginateResponse was lost (AMI link cut under
  load) is an answer, not a ring-no-answer: found from the agent leg's state
  (Up) when it hangs up, or from Asterisk's channel list on resync.
* A caller still in the inbound session once their interaction is over was
  never taken by an agent: they are queued again, never left in silence.
* An Originate whose answer was lost (AMI link cut after sending, down past
  the retry window) may ring: the offer stands, no second agent is rung,
  until Asterisk's channel list on resync says whether the leg exists.
* A decision's records (statistics, desktops, rows) come after its
  Originates are written, off the agent-free -> ring path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import pytest

from callcenter.acd import Engine, QueueRules
from callcenter.adapters.fastagi import AgiSession
from callcenter.adapters.telephony import Telephony
from callcenter.callpath.service import CallPath, CallRecord, Phase
from callcenter.callpath.site import Site
from callcenter.clock import ManualClock
from callcenter.errors import OriginateUnconfirmed, RoutingError
from callcenter.flows.inbound import Qualification, Resume, WaitSettings, wait_in_queue
from callcenter.protocol.agi import AgiRequest
from callcenter.protocol.ami import AmiFrame, AmiParser
from callcenter.protocol.ami_events import (
    AmiEvent,
    BridgeListItem,
    ChannelState,
    CoreShowChannel,
    Newstate,
    OriginateResponse,
    parse_event,
)
from callcenter.protocol.channels import ChannelTracker, OriginateResult
from callcenter.store.rows import AgentStateRow
from callcenter.testing.waiting import until

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "ami"
# The two channels of the recorded agent-first call (real_agent_first.ami).
CALLER = "node1-1795504424.0"
CALLER_NAME = "PJSIP/trunk-00000000"
LEG = "cc-node1-1795504425388-1"

SITE = Site.model_validate(
    {
        "queues": {"support": {"skills": {"support": 1}, "wrapup": 5, "record": False}},
        "routes": {"default": {"queue": "support"}},
        "agents": {
            "a01": {"name": "Agent 1", "endpoint": "agent1", "skills": {"support": 5}},
            "a02": {"name": "Agent 2", "endpoint": "agent2", "skills": {"support": 5}},
        },
    }
)


class FakeTelephony:
    """Writes down what the call path asks of Asterisk."""

    def __init__(self, channel_ids: list[str]) -> None:
        self._ids = list(channel_ids)
        self.rings: list[tuple[str, str, str]] = []  # (endpoint, caller, leg)
        self.hangups: list[str] = []
        self.unanswered: set[str] = set()  # legs whose Originate answer is lost
        self.alive: set[str] = set()  # what Asterisk's channel list shows
        self.moves: list[tuple[str, str]] = []  # ("wait" | "queue" | context, caller)
        self.variables: dict[tuple[str, str], str] = {}  # (channel, name) -> value

    def new_channel_id(self) -> str:
        return self._ids.pop(0)

    async def ring_agent(self, endpoint: str, caller: str, *, channel_id: str, **_: Any) -> str:
        self.rings.append((endpoint, caller, channel_id))
        if channel_id in self.unanswered:
            # What AmiClient.originate raises when the link dropped after
            # sending and stayed down past its retry window.
            raise OriginateUnconfirmed(channel_id, "AMI link down")
        return channel_id

    async def ring_agent_for_callback(
        self, endpoint: str, number: str, *, channel_id: str, **_: Any
    ) -> str:
        self.rings.append((endpoint, number, channel_id))
        return channel_id

    async def channel_exists(self, uniqueid: str) -> bool:
        return uniqueid in self.alive

    async def hold_for_agent(self, caller: str) -> None:
        self.moves.append(("wait", caller))

    async def back_to_queue(self, caller: str) -> None:
        self.moves.append(("queue", caller))

    async def hangup(self, channel: str, cause: int = 16) -> None:
        self.hangups.append(channel)

    def recording(self, name: str, *, separate_legs: bool = False) -> tuple[str, str]:
        return f"/recordings/{name}.wav", "b"

    async def variable(self, channel: str, name: str) -> str:
        return self.variables.get((channel, name), "")

    async def redirect(self, channel: str, context: str, exten: str) -> None:
        self.moves.append((context, channel))

    async def resume(self, agent_leg: str) -> None:
        self.moves.append(("resume", agent_leg))

    async def into_conference(self, room: str, channel: str, other: str, *, party: str) -> None:
        self.moves.append(("conference", channel))
        self.variables[(channel, "CC_CONFERENCE_WITH")] = party

    async def ring_into_conference(
        self, room: str, destination: str, *, channel_id: str, **_: Any
    ) -> str:
        self.rings.append((destination, room, channel_id))
        return channel_id


def make_path(*channel_ids: str, site: Site = SITE) -> tuple[CallPath, FakeTelephony, ManualClock]:
    clock = ManualClock(start=100.0)
    telephony = FakeTelephony(list(channel_ids))
    acd = Engine(QueueRules(name, wrapup=q.wrapup) for name, q in site.queues.items())
    path = CallPath(acd, cast(Telephony, telephony), site, clock, node="node1")
    return path, telephony, clock


def request(uniqueid: str = CALLER, channel: str = CALLER_NAME) -> AgiRequest:
    env = {"uniqueid": uniqueid, "channel": channel, "callerid": "0612345678"}
    return AgiRequest("inbound", {"dnis": "3901"}, (), env)


class Session:
    """What ``CallPath.arrive`` and ``wait_in_queue`` use of an AGI session:
    ``commands`` lists what was sent; ``on_wait`` runs at each WAIT FOR DIGIT."""

    def __init__(self, req: AgiRequest, on_wait: Callable[[int], None] | None = None) -> None:
        self.request = req
        self.commands: list[tuple[str, ...]] = []
        self.hung_up = False
        self.waits = 0
        self.on_wait = on_wait

    async def set_variable(self, name: str, value: str) -> None:
        self.commands.append(("SET VARIABLE", name, value))

    async def set_variables(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            await self.set_variable(name, value)

    async def answer(self) -> None:
        self.commands.append(("ANSWER",))

    async def set_music(self, on: bool, music_class: str = "") -> None:
        self.commands.append(("SET MUSIC", str(on)))

    async def wait_for_digit(self, timeout_ms: int) -> str:
        self.waits += 1
        if self.on_wait is not None:
            self.on_wait(self.waits)
        await asyncio.sleep(0)
        return ""

    async def wait_hangup(self) -> None:
        await asyncio.Event().wait()  # only a hang-up would end it


def as_session(session: Session) -> AgiSession:
    return cast(AgiSession, session)


def transcript(name: str) -> list[AmiEvent]:
    data = (FIXTURES / name).read_bytes()
    while data.startswith(b"#"):
        data = data[data.index(b"\n") + 1 :]
    frames = AmiParser().feed(data)
    return [parse_event(f) for f in frames if isinstance(f, AmiFrame) and f.kind == "event"]


def core_show(
    uid: str,
    name: str,
    bridge_id: str,
    context: str,
    state: tuple[str, str] = ("6", "Up"),
    exten: str = "s",
) -> CoreShowChannel:
    event = parse_event(
        AmiFrame.of(
            ("Event", "CoreShowChannel"), ("ActionID", "r1"), ("Channel", name),
            ("ChannelState", state[0]), ("ChannelStateDesc", state[1]),
            ("CallerIDNum", "0612345678"),
            ("CallerIDName", "Test"), ("ConnectedLineNum", "<unknown>"),
            ("ConnectedLineName", "<unknown>"), ("Language", "fr"), ("AccountCode", ""),
            ("Context", context), ("Exten", exten), ("Priority", "1"), ("Uniqueid", uid),
            ("Linkedid", CALLER), ("Application", "Bridge"), ("ApplicationData", ""),
            ("Duration", "00:00:01"), ("BridgeId", bridge_id),
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


def feed(path: CallPath, tracker: ChannelTracker, events: list[AmiEvent]) -> None:
    for event in events:
        for change in tracker.apply(event):
            path.on_change(change)


def enqueue_and_ring(path: CallPath, telephony: FakeTelephony) -> CallRecord:
    path.agent_login("a01", "agent1")
    record, _settings = path.arrive(as_session(Session(request())), "3901")
    assert record.phase is Phase.RINGING
    return record


# --------------------------------------------------------------------- tests
async def test_caller_back_in_the_inbound_agi_while_being_bridged_keeps_its_interaction() -> None:
    path, telephony, clock = make_path(LEG, "cc-node1-2", "cc-node1-3")
    tracker = ChannelTracker("node1")
    record = enqueue_and_ring(path, telephony)
    path.agent_login("a02", "agent2")  # a second agent is free meanwhile
    events = transcript("real_agent_first.ami")
    answered = next(i for i, e in enumerate(events) if isinstance(e, OriginateResponse))
    feed(path, tracker, events[: answered + 1])
    assert record.phase is Phase.CONNECTED
    # Before Bridge() takes the caller, their first FastAGI session ended and
    # the dialplan's retry loop brings them back with their place.
    clock.advance(0.5)
    again, _settings = path.arrive(
        as_session(Session(request())), "3901", Resume(record.interaction_id, record.arrived_wall)
    )
    assert again is record  # the same interaction, not a second one
    await asyncio.sleep(0)
    assert [leg for _e, _c, leg in telephony.rings] == [LEG]  # a02 is never rung
    assert path.acd.agent_state("a02") == "ready"
    feed(path, tracker, events[answered + 1 :])  # talk, then both hang up
    assert [(r.interaction_id, r.phase) for r in path.history] == [
        (record.interaction_id, Phase.COMPLETED)
    ]
    await path.stop()


def leg_up(events: list[AmiEvent]) -> int:
    """Index of the event where the agent leg goes Up (the agent answers)."""
    return next(
        i
        for i, e in enumerate(events)
        if isinstance(e, Newstate) and e.uniqueid == LEG and e.snapshot.state is ChannelState.UP
    )


async def test_an_answer_whose_events_were_lost_in_an_ami_cut_is_not_a_ring_no_answer() -> None:
    path, telephony, clock = make_path(LEG, "cc-node1-2")
    tracker = ChannelTracker("node1")
    record = enqueue_and_ring(path, telephony)
    path.agent_login("a02", "agent2")
    # The AMI link was cut while the agent answered: Newstate Up, DialEnd and
    # OriginateResponse never reached us; what follows did.
    events = transcript("real_agent_first.ami")
    first = leg_up(events)
    last = next(i for i, e in enumerate(events) if isinstance(e, OriginateResponse))
    clock.advance(2.0)
    feed(path, tracker, events[:first] + events[last + 1 :])
    assert [(r.interaction_id, r.phase) for r in path.history] == [
        (record.interaction_id, Phase.COMPLETED)
    ]
    assert record.answered_at is not None
    assert record.offers == 1
    assert path.acd.agent_state("a01") == "wrap_up"  # not paused "no answer"
    await asyncio.sleep(0)
    assert len(telephony.rings) == 1  # the caller was not offered to a02
    await path.stop()


async def test_a_failed_originate_retry_does_not_undo_a_live_agent_leg() -> None:
    path, telephony, _clock = make_path(LEG, "cc-node1-2")
    tracker = ChannelTracker("node1")
    record = enqueue_and_ring(path, telephony)
    path.agent_login("a02", "agent2")
    events = transcript("real_agent_first.ami")
    feed(path, tracker, events[: leg_up(events)])  # the agent's phone rings
    # The Originate was sent again after an AMI link cut; Asterisk refuses the
    # duplicate ChannelId: a failure with our leg's id, while the leg rings.
    path.on_change(OriginateResult("node1", "retry", LEG, False, 0))
    assert record.phase is Phase.RINGING
    assert path.acd.agent_state("a01") == "reserved"  # not paused "no answer"
    feed(path, tracker, events[leg_up(events) :])
    assert [(r.interaction_id, r.phase) for r in path.history] == [
        (record.interaction_id, Phase.COMPLETED)
    ]
    await asyncio.sleep(0)
    assert len(telephony.rings) == 1
    await path.stop()


async def test_resync_finds_the_answer_an_ami_outage_hid() -> None:
    path, telephony, clock = make_path(LEG)
    tracker = ChannelTracker("node1")
    record = enqueue_and_ring(path, telephony)
    events = transcript("real_agent_first.ami")
    feed(path, tracker, events[: leg_up(events)])  # the agent's phone rings, then blind
    assert record.waiting  # ringing
    clock.advance(1.0)
    # Back: Asterisk's list shows the agent leg Up and bridged with the caller.
    channels = [
        core_show(CALLER, CALLER_NAME, "b1", "from-trunk"),
        core_show(LEG, "PJSIP/agent1-00000001", "b1", "callcenter-connect"),
    ]
    for change in tracker.resync(channels, [bridge_item("b1")]):
        path.on_change(change)
    await path.adopt_calls(tracker)
    assert record.phase is Phase.CONNECTED
    assert record.answered_at == clock.now()
    assert path.acd.agent_state("a01") == "on_call"
    await path.stop()


class Lobby:
    """A call path reduced to tickets the test finishes by hand."""

    def __init__(self) -> None:
        self.tickets: list[Ticket] = []

    def arrive(
        self,
        session: AgiSession,
        dnis: str,
        resume: Resume | None = None,
        qualification: Qualification | None = None,
    ) -> tuple[Ticket, WaitSettings]:
        ticket = Ticket(f"i{len(self.tickets) + 1}")
        self.tickets.append(ticket)
        return ticket, WaitSettings("fr", "fr", 30.0, 60.0, callback=False)

    def callback_dialogue_started(self, ticket: object) -> bool:
        raise AssertionError("no callback here")

    def callback_dialogue_ended(self, ticket: object) -> None:
        raise AssertionError("no callback here")

    async def callback_requested(self, ticket: object, number: str) -> None:
        raise AssertionError("no callback here")


class Ticket:
    def __init__(self, interaction_id: str) -> None:
        self.interaction_id = interaction_id
        self.queue = "support"
        self.waiting = True
        self.finished = False
        self.enqueued_wall = 1_700_000_000.0

    def position(self) -> int:
        return 1

    def expected_wait(self) -> float | None:
        return None


async def test_a_caller_still_in_the_session_after_their_interaction_ended_is_queued_again() -> (
    None
):
    lobby = Lobby()

    def agent_answered_then_left_before_the_bridge(wait: int) -> None:
        first = lobby.tickets[0]
        if wait == 2:
            first.waiting = False  # an agent answered: Bridge() should take the caller
        elif wait == 4:
            first.finished = True  # the agent's leg ended before it did
        elif wait == 8:
            lobby.tickets[-1].waiting = False  # the second offer is answered...
            session.hung_up = True  # ...and Bridge() takes the caller

    session = Session(request(), on_wait=agent_answered_then_left_before_the_bridge)
    await asyncio.wait_for(wait_in_queue(as_session(session), lobby, ManualClock()), timeout=2.0)
    assert [t.interaction_id for t in lobby.tickets] == ["i1", "i2"]
    places = [c[2] for c in session.commands if c[:2] == ("SET VARIABLE", "CC_INTERACTION")]
    assert places == ["i1", "i2"]  # the dialplan would bring them back to i2


# ------------------------------------------ Originate of unknown outcome (issue 4)
def leg_created(events: list[AmiEvent]) -> int:
    """Index of the first event of the agent leg (its Newchannel)."""
    return next(i for i, e in enumerate(events) if getattr(e, "uniqueid", None) == LEG)


async def ring_unanswered(
    path: CallPath, telephony: FakeTelephony, tracker: ChannelTracker
) -> CallRecord:
    """The caller waits; a01's Originate reaches Asterisk, its answer is lost
    and the AMI link stays down; a02 logs in during the outage."""
    telephony.unanswered.add(LEG)
    events = transcript("real_agent_first.ami")
    feed(path, tracker, events[: leg_created(events)])
    record = enqueue_and_ring(path, telephony)
    await asyncio.sleep(0)  # the ring task: OriginateUnconfirmed
    path.agent_login("a02", "agent2")
    await asyncio.sleep(0)
    # The offer stands: a02 is not rung for a caller a01's phone may be ringing for.
    assert record.phase is Phase.RINGING
    assert record.agent_leg == LEG
    assert path.unconfirmed_legs == {LEG}
    assert path.acd.agent_state("a01") == "reserved"
    assert path.acd.agent_state("a02") == "ready"
    assert [leg for _e, _c, leg in telephony.rings] == [LEG]
    return record


async def link_back(
    path: CallPath, tracker: ChannelTracker, channels: list[CoreShowChannel]
) -> None:
    """The AMI link is back: resync, then what the daemon does after it."""
    for change in tracker.resync(
        channels, [bridge_item(c.bridge_id) for c in channels if c.bridge_id]
    ):
        path.on_change(change)
    await path.adopt_calls(tracker)
    path.telephony_restored()
    await asyncio.sleep(0)


WAITING_CALLER = core_show(CALLER, CALLER_NAME, "", "from-trunk")


async def test_an_unconfirmed_originate_asterisk_placed_keeps_its_one_agent() -> None:
    path, telephony, clock = make_path(LEG, "cc-node1-2")
    tracker = ChannelTracker("node1")
    record = await ring_unanswered(path, telephony, tracker)
    clock.advance(6.0)
    # Back: Asterisk's list shows a01's phone ringing (its events were lost).
    ringing = core_show(LEG, "PJSIP/agent1-00000001", "", "callcenter-connect", ("5", "Ringing"))
    await link_back(path, tracker, [WAITING_CALLER, ringing])
    assert record.phase is Phase.RINGING
    assert record.agent_id == "a01"
    assert path.unconfirmed_legs == frozenset()
    assert path.acd.agent_state("a01") == "reserved"
    assert path.acd.agent_state("a02") == "ready"  # no second agent rung
    # a01 answers: the leg's events connect the call as usual; then both hang up.
    events = transcript("real_agent_first.ami")
    feed(path, tracker, events[leg_up(events) :])
    assert [(r.interaction_id, r.phase) for r in path.history] == [
        (record.interaction_id, Phase.COMPLETED)
    ]
    assert record.answered_at is not None
    assert record.offers == 1
    assert path.acd.agent_state("a01") == "wrap_up"
    assert [leg for _e, _c, leg in telephony.rings] == [LEG]
    await path.stop()


async def test_an_unconfirmed_originate_asterisk_never_placed_is_offered_again() -> None:
    path, telephony, clock = make_path(LEG, "cc-node1-2")
    tracker = ChannelTracker("node1")
    record = await ring_unanswered(path, telephony, tracker)
    clock.advance(6.0)
    await link_back(path, tracker, [WAITING_CALLER])  # no agent leg: not placed
    cancelled = [e for e in path.acd.audit if e.kind == "cancelled"]
    assert [(e.agent_id, e.reason.startswith("not placed")) for e in cancelled] == [("a01", True)]
    assert path.acd.agent_state("a01") == "ready"  # not blamed (no RONA pause)
    # ...and the caller is offered again, after the offer was cancelled.
    assert [leg for _e, _c, leg in telephony.rings] == [LEG, "cc-node1-2"]
    assert (record.phase, record.agent_id, record.offers) == (Phase.RINGING, "a02", 2)
    assert path.unconfirmed_legs == frozenset()
    await path.stop()


async def test_an_unconfirmed_leg_that_talked_while_blind_completes_the_call() -> None:
    path, telephony, clock = make_path(LEG, "cc-node1-2")
    tracker = ChannelTracker("node1")
    record = await ring_unanswered(path, telephony, tracker)
    clock.advance(60.0)
    # Placed, answered, and the agent hung up during the outage: the leg is
    # gone, the caller is where the agent's hang-up sends them.
    after_agent = core_show(CALLER, CALLER_NAME, "", "callcenter-after-agent")
    await link_back(path, tracker, [after_agent])
    assert [(r.interaction_id, r.phase) for r in path.history] == [
        (record.interaction_id, Phase.COMPLETED)
    ]
    assert record.answered_at is not None
    assert path.acd.agent_state("a01") == "wrap_up"
    assert [leg for _e, _c, leg in telephony.rings] == [LEG]  # never offered again
    await path.stop()


@pytest.mark.parametrize("placed", [True, False])
async def test_an_unconfirmed_leg_no_resync_settles_is_looked_up_once_it_would_have_rung_out(
    monkeypatch: pytest.MonkeyPatch, placed: bool
) -> None:
    """The Originate timed out on a link that stayed up: no resync comes.
    Once the leg would have rung out, Asterisk's channel list decides."""
    monkeypatch.setattr("callcenter.callpath.service.UNCONFIRMED_GRACE", 0.0, raising=False)
    site = SITE.model_copy(deep=True)
    site.queues["support"].ring_timeout = 0.05
    path, telephony, _clock = make_path(LEG, "cc-node1-2", site=site)
    tracker = ChannelTracker("node1")
    record = await ring_unanswered(path, telephony, tracker)
    if placed:
        telephony.alive.add(LEG)
    await until(lambda: not path.unconfirmed_legs, timeout=2.0, what="leg settled")
    await asyncio.sleep(0)
    rings = [leg for _e, _c, leg in telephony.rings]
    if placed:
        assert (record.phase, record.agent_id, rings) == (Phase.RINGING, "a01", [LEG])
    else:
        assert (record.phase, record.agent_id) == (Phase.RINGING, "a02")
        assert rings == [LEG, "cc-node1-2"]
        assert path.acd.agent_state("a01") == "ready"
    await path.stop()


# ------------------------------- the caller waits for the agent in a holding bridge
# Bridge() pulling a caller straight out of FastAGI is a masquerade, which in
# Asterisk 22 now and then leaves a Surrogate/ channel behind for good
# (docs/asterisk-notes.md): the caller goes to a holding bridge as the agent's
# phone rings, and back to FastAGI when no agent rings for them any more.
async def test_the_caller_waits_for_a_ringing_agent_in_a_holding_bridge() -> None:
    path, telephony, _clock = make_path(LEG, "cc-node1-2", "cc-node1-3")
    record = enqueue_and_ring(path, telephony)
    await asyncio.sleep(0)
    assert telephony.moves == [("wait", CALLER)]
    # a01 does not answer; a02 is free and rung at once: the caller stays there.
    path.agent_login("a02", "agent2")
    path.on_change(OriginateResult("node1", "r1", LEG, False, 3))
    assert (record.phase, record.agent_id) == (Phase.RINGING, "a02")
    await asyncio.sleep(0)
    assert telephony.moves == [("wait", CALLER)]
    # a02 does not answer either and nobody else is free: back to FastAGI.
    path.on_change(OriginateResult("node1", "r2", "cc-node1-2", False, 3))
    assert record.phase is Phase.WAITING
    await asyncio.sleep(0)
    assert telephony.moves == [("wait", CALLER), ("queue", CALLER)]
    # In FastAGI again (the same interaction), then an agent is free: held again.
    again, _settings = path.arrive(as_session(Session(request())), "3901")
    assert again is record
    path.agent_ready("a01")
    assert record.phase is Phase.RINGING
    await asyncio.sleep(0)
    assert telephony.moves == [("wait", CALLER), ("queue", CALLER), ("wait", CALLER)]
    await path.stop()


async def test_a_caller_back_in_fastagi_while_an_agent_rings_goes_to_the_holding_bridge() -> None:
    path, telephony, _clock = make_path(LEG)
    record = enqueue_and_ring(path, telephony)
    await asyncio.sleep(0)
    # The holding bridge let them go (its time limit) while the phone rings.
    again, _settings = path.arrive(as_session(Session(request())), "3901")
    assert again is record
    assert record.phase is Phase.RINGING
    await asyncio.sleep(0)
    assert telephony.moves == [("wait", CALLER), ("wait", CALLER)]
    assert len(telephony.rings) == 1  # the same offer goes on
    await path.stop()


async def test_a_restarted_daemon_sends_callers_left_in_the_holding_bridge_back_to_queue() -> None:
    path, telephony, _clock = make_path()
    path.agent_login("a01", "agent1")
    tracker = ChannelTracker("node1")
    other, other_name = "node1-1795504424.7", "PJSIP/trunk-00000007"
    channels = [
        # Alone in its holding bridge; its agent's phone was ringing.
        core_show(CALLER, CALLER_NAME, "hold-1", "callcenter-wait"),
        core_show(LEG, "PJSIP/agent1-00000001", "", "callcenter-connect", ("5", "Ringing")),
        # Moved into the agent's bridge just before: theirs now, left alone.
        core_show(other, other_name, "b2", "callcenter-wait"),
        core_show("cc-node1-9", "PJSIP/agent2-00000002", "b2", "callcenter-connect"),
    ]
    items = [bridge_item("hold-1"), bridge_item("b2")]
    for change in tracker.resync(channels, items):
        path.on_change(change)
    await path.adopt_calls(tracker)
    await asyncio.sleep(0)
    assert telephony.moves == [("queue", CALLER)]
    assert LEG in telephony.hangups  # its ring is over: no agent takes them
    await path.stop()


async def test_no_ring_takes_a_caller_out_of_the_callback_dialogue() -> None:
    path, telephony, _clock = make_path(LEG, "cc-node1-2")
    record, _settings = path.arrive(as_session(Session(request())), "3901")
    assert path.callback_dialogue_started(record)
    assert not path.callback_dialogue_started(record)  # once
    path.agent_login("a01", "agent1")  # free now, but the caller is choosing
    await asyncio.sleep(0)
    assert (record.phase, telephony.rings, telephony.moves) == (Phase.WAITING, [], [])
    # They change their mind: offered at once, in their place.
    path.callback_dialogue_ended(record)
    assert record.phase is Phase.RINGING
    await asyncio.sleep(0)
    assert telephony.rings == [("agent1", CALLER, LEG)]
    # An agent already rings for them: no dialogue (nothing changes).
    assert not path.callback_dialogue_started(record)
    assert record.phase is Phase.RINGING
    await path.stop()


async def test_a_caller_who_leaves_for_a_callback_mid_dialogue_keeps_their_place() -> None:
    path, telephony, clock = make_path("cc-node1-2")
    record, _settings = path.arrive(as_session(Session(request())), "3901")
    assert path.callback_dialogue_started(record)
    clock.advance(20.0)
    await path.callback_requested(record, "0612345678")
    path.callback_dialogue_ended(record)  # the flow always ends the dialogue
    assert record.phase is Phase.CALLBACK
    [callback] = [r for r in path.calls.values() if r.kind == "callback"]
    assert callback.arrived_at == record.arrived_at
    path.agent_login("a01", "agent1")  # the callback rings the agent first
    assert callback.phase is Phase.RINGING
    await asyncio.sleep(0)
    assert [ring[0] for ring in telephony.rings] == ["agent1"]
    await path.stop()


async def test_a_restarted_daemon_takes_over_a_call_on_hold() -> None:
    path, telephony, _clock = make_path()
    tracker = ChannelTracker("node1")
    # On hold when the daemon died: the caller hears music alone in their
    # holding bridge; the agent's leg waits alone, out of any bridge.
    channels = [
        core_show(CALLER, CALLER_NAME, "hold-1", "callcenter-hold"),
        core_show(LEG, "PJSIP/agent1-00000001", "", "callcenter-held"),
    ]
    telephony.variables = {
        (LEG, "CC_INTERACTION"): "i-held",
        (LEG, "CC_QUEUE"): "support",
        (LEG, "CC_CALLER"): CALLER,
    }
    for change in tracker.resync(channels, [bridge_item("hold-1")]):
        path.on_change(change)
    assert await path.adopt_calls(tracker) == 1
    await asyncio.sleep(0)
    assert telephony.hangups == []  # before: the agent's leg was hung up as stale
    record = path.calls["i-held"]
    assert (record.phase, record.caller_uniqueid, record.agent_id) == (
        Phase.CONNECTED,
        CALLER,
        "a01",
    )
    assert record.held_since is not None
    assert path.acd.agent_state("a01") == "on_call"
    await path.resume("a01")  # the desktop's resume works as before the restart
    assert telephony.moves == [("resume", LEG)]
    assert record.held_since is None
    await path.stop()


async def test_a_restarted_daemon_lets_a_held_caller_whose_agent_left_go_on() -> None:
    path, telephony, _clock = make_path()
    tracker = ChannelTracker("node1")
    channels = [core_show(CALLER, CALLER_NAME, "hold-1", "callcenter-hold")]
    for change in tracker.resync(channels, [bridge_item("hold-1")]):
        path.on_change(change)
    await path.adopt_calls(tracker)
    await asyncio.sleep(0)
    # As when an agent hangs up during hold: the survey, then goodbye.
    assert telephony.moves == [("callcenter-after-agent", CALLER)]
    await path.stop()


@pytest.mark.parametrize("answered", [True, False])
async def test_a_restarted_daemon_takes_over_a_consultation_in_progress(answered: bool) -> None:
    path, telephony, _clock = make_path()
    tracker = ChannelTracker("node1")
    target, target_name = "node1-1795504424.9", "PJSIP/trunk-00000009"
    # The caller on hold; the agent's leg dials (or talks to) 0698765432.
    channels = [
        core_show(CALLER, CALLER_NAME, "hold-1", "callcenter-hold"),
        core_show(
            LEG, "PJSIP/agent1-00000001", "b3" if answered else "", "callcenter-consult",
            exten="0698765432",
        ),
    ]  # fmt: skip
    if answered:
        channels.append(core_show(target, target_name, "b3", "from-trunk"))
    telephony.variables = {
        (LEG, "CC_INTERACTION"): "i-consult",
        (LEG, "CC_QUEUE"): "support",
        (LEG, "CC_CALLER"): CALLER,
    }
    bridges = [bridge_item("hold-1"), bridge_item("b3")]
    for change in tracker.resync(channels, bridges if answered else bridges[:1]):
        path.on_change(change)
    assert await path.adopt_calls(tracker) == 1
    await asyncio.sleep(0)
    # Before: the consulted party was taken for the caller (answered), or the
    # agent's leg was hung up as stale and the caller left with music.
    assert (telephony.hangups, telephony.moves) == ([], [])
    record = path.calls["i-consult"]
    assert record.caller_uniqueid == CALLER
    assert record.consult == {
        "number": "0698765432",
        "target": target if answered else None,
        "state": "talking" if answered else "dialing",
    }
    await path.cancel_transfer("a01")  # the desktop's cancel works as before
    assert telephony.hangups == ([target] if answered else [])
    await path.stop()


async def test_a_restarted_daemon_takes_over_a_three_way_conference() -> None:
    path, telephony, _clock = make_path()
    tracker = ChannelTracker("node1")
    # Caller, agent and a third party (agent2's phone, rung into the room)
    # share the ConfBridge room: nobody is bridged one-to-one.
    guest = "cc-node1-9"
    channels = [
        core_show(CALLER, CALLER_NAME, "conf-1", "callcenter-conference", exten="ccroom1"),
        core_show(LEG, "PJSIP/agent1-00000001", "conf-1", "callcenter-conference",
                  exten="ccroom1"),
        core_show(guest, "PJSIP/agent2-00000002", "conf-1", "default"),
    ]  # fmt: skip
    telephony.variables = {
        (LEG, "CC_INTERACTION"): "i-conf",
        (LEG, "CC_QUEUE"): "support",
        (LEG, "CC_CALLER"): CALLER,
        (LEG, "CC_CONFERENCE_WITH"): "a02",
    }
    for change in tracker.resync(channels, [bridge_item("conf-1")]):
        path.on_change(change)
    assert await path.adopt_calls(tracker) == 1
    await asyncio.sleep(0)
    # Before: the agent's leg and the guest's were hung up as stale.
    assert telephony.hangups == []
    record = path.calls["i-conf"]
    assert (record.caller_uniqueid, record.agent_id) == (CALLER, "a01")
    # Who the third party is comes from the agent's leg.
    assert record.context["conference"] == {"room": "ccroom1", "with": "a02"}
    assert path.acd.agent_state("a01") == "on_call"
    # The agent leaves the room: the interaction is over.
    feed(path, tracker, [gone(LEG, "PJSIP/agent1-00000001")])
    assert record.phase is Phase.COMPLETED
    await path.stop()


def gone(uniqueid: str, name: str) -> AmiEvent:
    frame = AmiFrame.of(
        ("Event", "Hangup"), ("Channel", name), ("ChannelState", "6"),
        ("Uniqueid", uniqueid), ("Linkedid", CALLER), ("Cause", "16"),
    )  # fmt: skip
    return parse_event(frame)


async def test_an_agent_rung_into_a_conference_is_offered_no_call_until_they_leave() -> None:
    guest, second = "cc-node1-2", "node1-1795504424.8"
    path, telephony, _clock = make_path(LEG, guest, "cc-node1-3")
    tracker = ChannelTracker("node1")
    record = enqueue_and_ring(path, telephony)
    path.on_change(OriginateResult("node1", None, LEG, True, 4))
    assert record.phase is Phase.CONNECTED
    path.agent_login("a02", "agent2")
    room = await path.conference("a01", agent="a02")
    assert telephony.rings[-1] == ("agent2", room, guest)
    assert path.acd.agent_state("a02") == "paused"
    # A caller arrives meanwhile: agent2's phone, in the room, is not rung.
    waiting, _settings = path.arrive(as_session(Session(request(second))), "3901")
    await asyncio.sleep(0)
    assert waiting.phase is Phase.WAITING
    assert len(telephony.rings) == 2
    # agent2 leaves the room: free again, and rung for the waiting caller.
    tracker.resync([core_show(guest, "PJSIP/agent2-00000002", "conf-1", "default")], [])
    feed(path, tracker, [gone(guest, "PJSIP/agent2-00000002")])
    assert waiting.phase is Phase.RINGING
    await asyncio.sleep(0)
    assert telephony.rings[-1][:2] == ("agent2", second)
    await path.stop()


@pytest.mark.parametrize("state", ["paused", "on_call", "logged_out"])
async def test_a_conference_with_an_agent_who_is_not_free_is_refused(state: str) -> None:
    path, telephony, _clock = make_path(LEG, "cc-node1-2", "cc-node1-3")
    record = enqueue_and_ring(path, telephony)
    path.on_change(OriginateResult("node1", None, LEG, True, 4))
    if state != "logged_out":
        path.agent_login("a02", "agent2")
    if state == "paused":
        path.agent_pause("a02", "lunch")
    elif state == "on_call":
        other, _settings = path.arrive(as_session(Session(request("node1-1795504424.8"))), "3901")
        path.on_change(OriginateResult("node1", None, "cc-node1-2", True, 4))
        assert other.phase is Phase.CONNECTED
    rings = list(telephony.rings)
    with pytest.raises(RoutingError, match="not free"):
        await path.conference("a01", agent="a02")
    # Nothing happened: no room, no ring, the call as it was.
    assert telephony.rings == rings
    assert ("conference", LEG) not in telephony.moves
    assert "conference" not in record.context
    await path.stop()


@pytest.mark.parametrize("still_in_the_room", [True, False])
async def test_a_restarted_daemon_keeps_a_conference_guest_paused_while_in_the_room(
    still_in_the_room: bool,
) -> None:
    path, telephony, _clock = make_path()
    path.restore_agents([AgentStateRow("a02", "paused", reason="conference", since=0.0)])
    tracker = ChannelTracker("node1")
    guest = "cc-node1-9"
    channels = [
        core_show(CALLER, CALLER_NAME, "conf-1", "callcenter-conference", exten="ccroom1"),
        core_show("node1-1795504424.3", "PJSIP/trunk-00000003", "conf-1", "default"),
    ]
    if still_in_the_room:
        channels.append(core_show(guest, "PJSIP/agent2-00000002", "conf-1", "default"))
    for change in tracker.resync(channels, [bridge_item("conf-1")]):
        path.on_change(change)
    await path.adopt_calls(tracker)
    assert telephony.hangups == []
    assert path.acd.agent_state("a02") == ("paused" if still_in_the_room else "ready")
    if still_in_the_room:
        feed(path, tracker, [gone(guest, "PJSIP/agent2-00000002")])
        assert path.acd.agent_state("a02") == "ready"
    await path.stop()


async def test_a_caller_who_leaves_a_conference_leaves_the_agent_on_their_call() -> None:
    path, telephony, _clock = make_path(LEG, "cc-node1-2")
    tracker = ChannelTracker("node1")
    record = enqueue_and_ring(path, telephony)
    path.on_change(OriginateResult("node1", None, LEG, True, 4))
    await path.conference("a01", number="0698765432")
    tracker.resync(
        [
            core_show(CALLER, CALLER_NAME, "conf-1", "callcenter-conference"),
            core_show(LEG, "PJSIP/agent1-00000001", "conf-1", "callcenter-conference"),
        ],
        [bridge_item("conf-1")],
    )
    feed(path, tracker, [gone(CALLER, CALLER_NAME)])
    # The agent talks on with the third party: still on this call, not in
    # wrap-up (and so never rung for the next caller meanwhile).
    assert record.phase is Phase.CONNECTED
    assert path.acd.agent_state("a01") == "on_call"
    feed(path, tracker, [gone(LEG, "PJSIP/agent1-00000001")])
    assert record.phase is Phase.COMPLETED
    await path.stop()


class WritesOnCall(FakeTelephony):
    """As the real adapter: the Originate is written when ``ring_agent`` is
    called, its outcome awaited later."""

    def ring_agent(  # type: ignore[override]
        self, endpoint: str, caller: str, *, channel_id: str, **_: Any
    ) -> Coroutine[Any, Any, str]:
        self.rings.append((endpoint, caller, channel_id))

        async def outcome() -> str:
            return channel_id

        return outcome()


async def test_the_phone_rings_before_the_decision_is_recorded() -> None:
    """The statistics, desktops and database rows of a decision wait for its
    Originates: they are off the agent-free -> ring path (issue 4)."""
    telephony = WritesOnCall([LEG])
    acd = Engine(QueueRules(name, wrapup=q.wrapup) for name, q in SITE.queues.items())
    path = CallPath(acd, cast(Telephony, telephony), SITE, ManualClock(start=100.0), node="node1")
    rings_when_recorded: list[tuple[str, int]] = []
    path.on_stats = lambda event: rings_when_recorded.append(
        (getattr(event, "state", type(event).__name__), len(telephony.rings))
    )
    path.agent_login("a01", "agent1")
    rings_when_recorded.clear()
    record, _settings = path.arrive(as_session(Session(request())), "3901")
    assert record.phase is Phase.RINGING
    assert telephony.rings == [("agent1", CALLER, LEG)]
    # The agent reserved for the caller is recorded once their phone rings.
    assert ("reserved", 1) in rings_when_recorded
    assert ("reserved", 0) not in rings_when_recorded
    await path.stop()


async def test_a_call_end_rings_the_next_caller_before_its_statistics_are_sent() -> None:
    site = SITE.model_copy(
        update={"queues": {"support": SITE.queues["support"].model_copy(update={"wrapup": 0})}}
    )
    telephony = WritesOnCall([LEG, "cc-node1-2"])
    acd = Engine(QueueRules(name, wrapup=q.wrapup) for name, q in site.queues.items())
    path = CallPath(acd, cast(Telephony, telephony), site, ManualClock(start=100.0), node="node1")
    sent: list[tuple[str, int]] = []
    path.on_stats = lambda event: sent.append((type(event).__name__, len(telephony.rings)))
    path.agent_login("a01", "agent1")
    first, _settings = path.arrive(as_session(Session(request())), "3901")
    path.on_change(OriginateResult("node1", None, LEG, True, 4))
    assert first.phase is Phase.CONNECTED
    second_caller = "node1-1795504424.8"
    second, _settings = path.arrive(as_session(Session(request(second_caller))), "3901")
    assert second.phase is Phase.WAITING
    tracker = ChannelTracker("node1")
    tracker.resync([core_show(LEG, "PJSIP/agent1-00000001", "b-1", "default")], [])
    sent.clear()
    feed(path, tracker, [gone(LEG, "PJSIP/agent1-00000001")])  # the agent hangs up
    assert second.phase is Phase.RINGING
    assert telephony.rings[-1] == ("agent1", second_caller, "cc-node1-2")
    names = [name for name, _rings in sent]
    # Every statistic of the call's end came once the next ring was written,
    # in their order: Ended, then the agent's wrap-up over.
    assert [rings for _name, rings in sent] == [2] * len(sent)
    assert names.index("Ended") < names.index("WrapUpEnded")
    await path.stop()
