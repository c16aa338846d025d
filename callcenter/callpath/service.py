"""The inbound call path: Asterisk facts in, ACD decisions carried out.

- The inbound FastAGI flow calls :meth:`CallPath.arrive` (the caller is in
  queue) and waits on the returned :class:`CallRecord`.
- Channel-tracker changes (from AMI) tell us when an agent answered, did not
  answer, or when a leg hung up: :meth:`CallPath.on_change`.
- The ACD answers with offers; each becomes an agent-first Originate.
- Agent operations (REST) call the ``agent_*`` methods.

The caller's abandon is decided from AMI (the caller's channel is gone while
waiting or ringing), never from the FastAGI session alone: as an agent's
phone rings for them, the caller leaves FastAGI for a holding bridge
(``Telephony.hold_for_agent``) and the session sees a HANGUP although the
caller is alive. The agent's Bridge() takes them from there, bridge to
bridge: pulled straight out of AGI, Asterisk 22 now and then leaves a
``Surrogate/`` channel behind for good. A caller no agent took goes back to
FastAGI (``Telephony.back_to_queue``), keeping their place.

An offer whose Originate may have reached Asterisk unanswered (AMI link cut
after sending, no answer in time) stands: the agent's phone may ring. On
resync, Asterisk's channel list settles it: the leg exists, its events drive
it; it does not, the offer is cancelled and the caller offered again.

One owned task serves the ACD's timers (wrap-up ends, relaxations); every
other piece of work runs in the caller of a method, so nothing is
fire-and-forget.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

import structlog

from callcenter.adapters.fastagi import AgiSession
from callcenter.adapters.telephony import (
    AFTER_AGENT_CONTEXT,
    CONFERENCE_CONTEXT,
    CONSULT_CONTEXT,
    HELD_CONTEXT,
    HOLD_CONTEXT,
    WAIT_CONTEXT,
    SpyMode,
    Telephony,
    is_phone_number,
)
from callcenter.callpath.phases import FINISHED, Phase, PhaseEvent, next_phase
from callcenter.callpath.ports import AcdPort, AgentProfile, InteractionRequest, OfferDecision
from callcenter.callpath.site import RouteSetup, Site
from callcenter.clock import Clock, month_bounds
from callcenter.errors import AsteriskError, IllegalTransition, OriginateUnconfirmed, RoutingError
from callcenter.flows.inbound import Qualification, Resume, WaitSettings
from callcenter.protocol.ami_events import ChannelState
from callcenter.protocol.channels import (
    Change,
    Channel,
    ChannelAdded,
    ChannelRemoved,
    ChannelTracker,
    ChannelUpdated,
    DialEnded,
    DialStarted,
    OriginateResult,
)
from callcenter.stats.events import (
    Abandoned,
    AgentStateChanged,
    Answered,
    CallbackClosed,
    CallbackRequested,
    CallbacksPending,
    Ended,
    Offered,
    StatsEvent,
    Transferred,
    WrapUpEnded,
)
from callcenter.store.rows import AgentStateRow, CallbackRow, DecisionRow, InteractionRow, Leg
from callcenter.tasks import cancel_and_wait

__all__ = ["CallPath", "CallRecord", "Phase", "PhaseEvent", "row_of"]

log = structlog.get_logger("callcenter.callpath")


TRANSFER_CONTEXT = "callcenter-transfer"
RESTART = "restart"
# An agent rung into another agent's conference is paused with this reason
# while their leg is in the room: never offered a call meanwhile.
CONFERENCE = "conference"
# A placed agent leg has rung out (its Originate Timeout is the ring timeout)
# or been answered this long after that at the latest: call set-up, slack.
UNCONFIRMED_GRACE = 5.0
# Finished interactions kept for transfers, dispositions and screens.
HISTORY_SIZE = 10_000


@dataclass
class CallRecord:
    """One inbound interaction on the Asterisk side."""

    interaction_id: str
    node: str
    caller_uniqueid: str
    caller_channel: str
    caller_number: str
    dnis: str
    queue: str
    language: str
    priority: int
    arrived_at: float
    arrived_wall: float = 0.0
    """Wall-clock time of arrival: the other times are ``arrived_wall + (t - arrived_at)``."""
    phase: Phase = Phase.WAITING
    agent_id: str | None = None
    agent_leg: str | None = None
    offers: int = 0
    legs: list[tuple[str, str]] = field(default_factory=list)
    """Every agent leg we rang for this interaction: (agent id, leg uniqueid)."""
    answered_at: float | None = None
    ended_at: float | None = None
    abandoned_where: str | None = None
    recording: str | None = None
    callback_number: str | None = None
    kind: str = "call"
    """"call": a caller on the line; "callback": we call ``callback_number``."""
    origin: str | None = None
    """For a callback, the interaction the caller left."""
    attempts: list[dict[str, object]] = field(default_factory=list)
    not_before_wall: float | None = None
    not_after_wall: float | None = None
    """A callback's window end (wall clock): dropped ("expired") if nobody took it by then."""
    context: dict[str, object] = field(default_factory=dict)
    """What follows the call on a transfer: customer data, IVR answers, notes."""
    disposition: str | None = None
    notes: str = ""
    consult: dict[str, object] | None = None
    """An attended transfer in progress: number, target leg, state."""
    target_agent: str | None = None
    """Only this agent may take it (click-to-call)."""
    held_since: float | None = None
    """On hold since (monotonic): the caller hears music, the agent's leg waits."""
    caller_in_wait_bridge: bool = False
    """We moved the caller out of FastAGI into its holding bridge
    (callcenter-wait) for an agent's ring, and not back yet."""
    hold_seconds: float = 0.0
    choosing_callback: bool = False
    """The caller is in the "call me back" dialogue: set aside in the ACD,
    so that no agent's ring takes them out of it halfway."""
    _path: CallPath | None = field(default=None, repr=False)

    def advance(self, event: PhaseEvent) -> Phase:
        """Move to the phase the table (callpath/phases.py) gives for ``event``;
        raises IllegalTransition, the phase unchanged, if it forbids it."""
        self.phase = next_phase(self.phase, event)
        return self.phase

    @property
    def waiting(self) -> bool:
        return self.phase in (Phase.WAITING, Phase.RINGING)

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED

    @property
    def enqueued_wall(self) -> float:
        return self.arrived_wall

    def position(self) -> int:
        assert self._path is not None
        return self._path.acd.position(self.interaction_id)

    def expected_wait(self) -> float | None:
        assert self._path is not None
        return self._path.acd.expected_wait(self._path.clock.now(), self.interaction_id)


@dataclass(frozen=True)
class _LegTakenOver:
    """What an agent's leg left by a previous daemon serves (see
    :meth:`CallPath._caller_of`)."""

    caller: Channel | None
    on_hold: bool = False
    consult: dict[str, object] | None = None
    conference: str | None = None  # the ConfBridge room
    conference_with: str | None = None  # the third party: a number or an agent


class CallPath:
    def __init__(
        self,
        acd: AcdPort,
        telephony: Telephony,
        site: Site,
        clock: Clock,
        *,
        node: str,
        on_finished: Callable[[CallRecord], None] | None = None,
    ) -> None:
        self.acd = acd
        self.telephony = telephony
        self.site = site
        self.clock = clock
        self.node = node
        self.calls: dict[str, CallRecord] = {}
        self._by_caller: dict[str, str] = {}
        self._by_leg: dict[str, str] = {}
        self.agent_endpoints: dict[str, str] = {}
        self._timer: asyncio.Task[None] | None = None
        self._actions: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self.history: deque[CallRecord] = deque(maxlen=HISTORY_SIZE)
        self._history_by_id: dict[str, CallRecord] = {}
        self.on_finished = on_finished
        self.on_callback: Callable[[CallbackRow], None] | None = None
        self.on_records: Callable[[DecisionRow | AgentStateRow], None] | None = None
        self._held_for_restart: set[str] = set()
        # Agents rung into a conference as its third party, held paused for
        # it: their leg -> agent (dropped when the agent picks a state).
        self._guest_legs: dict[str, str] = {}
        # Extended agents' interactions this month before this daemon started
        # (set by the daemon from PostgreSQL): seeds the ACD's count at each
        # agent's first login, see agent_login.
        self.month_handled: dict[str, int] = {}
        # The calendar those counts follow (follow_months): at each month's
        # start in that zone, the ACD's counts start again.
        self._month_zone: tzinfo | None = None
        self._month_ends: float | None = None  # wall clock
        # Real-time statistics (callcenter/stats): fed, never consulted here.
        self.on_stats: Callable[[StatsEvent], object] | None = None
        self.on_disposition: Callable[[CallRecord], None] | None = None
        self._wrapping: dict[str, str] = {}  # agent -> interaction in wrap-up
        # Statistics held back while a call's end is decided (None: sent at
        # once): see _rings_first.
        self._held_stats: list[StatsEvent] | None = None
        self._spies: dict[str, tuple[str, str]] = {}  # supervisor -> (spy leg, agent leg)
        self._legs_seen: set[str] = set()  # our agent legs alive on Asterisk now
        # Ringing legs whose Originate may or may not have reached Asterisk;
        # each event is set once Asterisk's answer settles the leg.
        self._unconfirmed: dict[str, asyncio.Event] = {}

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._timer = asyncio.create_task(self._timer_loop(), name="callpath-timers")

    async def stop(self) -> None:
        tasks = [*self._actions, *([self._timer] if self._timer else [])]
        await cancel_and_wait(tasks)
        self._timer = None

    @property
    def unconfirmed_legs(self) -> frozenset[str]:
        """Agent legs offered without knowing whether Asterisk placed them."""
        return frozenset(self._unconfirmed)

    # --------------------------------------------------------- inbound flow
    def arrive(
        self,
        session: AgiSession,
        dnis: str,
        resume: Resume | None = None,
        qualification: Qualification | None = None,
    ) -> tuple[CallRecord, WaitSettings]:
        request = session.request
        live = (
            self.calls.get(self._by_caller.get(request.uniqueid, "")) if request.uniqueid else None
        )
        if live is not None and not request.query.get("from"):  # a transfer starts a new one
            # This caller channel already has a live interaction: back in
            # FastAGI (the dialplan's retry loop) while an agent answers and
            # Bridge() is about to take them, or after a FastAGI link drop.
            # Never a second interaction for one caller: it would ring a
            # second agent and pull the caller from the first (issue 4).
            log.info("call.reattached", interaction=live.interaction_id, phase=live.phase.value)
            self._back_in_fastagi(live)
            return live, self._wait_settings(live)
        known = self.calls.get(resume.interaction_id) if resume is not None else None
        if known is not None and not known.waiting:
            resume = None  # that interaction went on without this session: a new one
        elif known is not None:
            # Same daemon, the FastAGI link dropped: the caller's place is intact.
            log.info("call.reattached", interaction=known.interaction_id)
            self._back_in_fastagi(known)
            return known, self._wait_settings(known)
        transferred_from = request.query.get("from")
        previous = self.recent(transferred_from) if transferred_from else None
        target_agent = request.query.get("agent") if previous is not None else None
        if target_agent is not None and previous is not None:
            # A transfer to a named agent: the queue of the call it leaves.
            queue_name, route = previous.queue, RouteSetup(queue=previous.queue)
        elif wanted := request.query.get("queue"):
            # A transfer to a queue (dialplans/callpath.conf, callcenter-transfer),
            # or a caller back from the holding bridge after a restart
            # (callcenter-requeue, the queue they were in).
            if wanted not in self.site.queues:
                raise RoutingError(f"transfer to unknown queue {wanted!r}")
            queue_name, route = wanted, RouteSetup(queue=wanted)
        else:
            queue_name, route = self.site.route_for(dnis)
        if qualification is not None:
            if qualification.queue in self.site.queues:
                queue_name = qualification.queue
            else:
                log.warning("call.ivr_unknown_queue", queue=qualification.queue, using=queue_name)
            base = route.priority
            if base is None:
                base = self.site.queues[queue_name].priority
            route = RouteSetup(
                queue=queue_name,
                priority=base + qualification.priority,
                language=qualification.language,
            )
        queue = self.site.queues[queue_name]
        language = previous.language if previous is not None else route.language or queue.language
        now, wall = self.clock.now(), self.clock.wall()
        if resume is not None and self.recent(resume.interaction_id) is not None:
            resume = None  # already finished here: never reuse an id
        if resume is not None:
            # A new daemon: the caller keeps the id and enqueue time they had.
            interaction_id, arrived_wall = resume.interaction_id, resume.enqueued_wall
            log.info("call.resumed", interaction=interaction_id, waited=round(wall - arrived_wall))
        else:
            interaction_id, arrived_wall = str(uuid.uuid4()), wall
        record = CallRecord(
            interaction_id=interaction_id,
            node=self.node,
            caller_uniqueid=request.uniqueid,
            caller_channel=request.channel,
            caller_number=request.callerid,
            dnis=dnis,
            queue=queue_name,
            language=language,
            priority=route.priority if route.priority is not None else queue.priority,
            arrived_at=now - (wall - arrived_wall),
            arrived_wall=arrived_wall,
            origin=previous.interaction_id if previous is not None else None,
            _path=self,
        )
        if previous is not None:
            # The context follows the call: what the caller said and gave.
            record.context = {**previous.context, "transferred_by": previous.agent_id}
            record.notes = previous.notes
        if qualification is not None:
            record.context["ivr"] = dict(qualification.context)
        self.calls[record.interaction_id] = record
        self._by_caller[record.caller_uniqueid] = record.interaction_id
        self._stat(
            Offered(
                now,
                record.interaction_id,
                queue_name,
                skill=next(iter(queue.skills), ""),
                customer_id=record.caller_number or None,
                origin=record.origin,
                enqueued_at=record.arrived_at,
            )
        )
        log.info(
            "call.enqueued",
            interaction=record.interaction_id,
            queue=queue_name,
            dnis=dnis,
            language=language,
        )
        decisions = self.acd.interaction_arrived(
            now,
            InteractionRequest(
                record.interaction_id,
                queue_name,
                {**queue.skills, **(qualification.skills if qualification else {})},
                language,
                record.priority,
                customer_id=(qualification.customer_id if qualification else None)
                or record.caller_number
                or None,
                enqueued_at=record.arrived_at,
                agent_id=target_agent,
            ),
        )
        # _apply, not _schedule: the call's relaxation steps are new ACD
        # timers, so the timer loop must look at the next deadline again.
        self._apply(decisions)
        return record, self._wait_settings(record)

    def _wait_settings(self, record: CallRecord) -> WaitSettings:
        queue = self.site.queues[record.queue]
        return WaitSettings(
            language=record.language,
            music_class=record.language,
            announce_every=queue.announce_every,
            first_announce_after=queue.first_announce_after,
            callback=queue.callback,
        )

    def callback_dialogue_started(self, ticket: object) -> bool:
        """The caller pressed the callback key: set aside in the ACD (keeping
        their place) while they confirm their number. False, with nothing
        changed, when an agent already rings for them."""
        assert isinstance(ticket, CallRecord)
        if ticket.phase is not Phase.WAITING or ticket.choosing_callback:
            return False
        self._apply(self.acd.interaction_set_aside(self.clock.now(), ticket.interaction_id))
        ticket.choosing_callback = True
        return True

    def callback_dialogue_ended(self, ticket: object) -> None:
        """The dialogue is over: a caller who did not leave for a callback
        (nor hung up) is offered again, in their old place."""
        assert isinstance(ticket, CallRecord)
        if not ticket.choosing_callback:
            return
        ticket.choosing_callback = False
        if ticket.phase is Phase.WAITING:
            self._apply(self.acd.interaction_back(self.clock.now(), ticket.interaction_id))

    async def callback_requested(self, ticket: object, number: str) -> None:
        """The caller leaves the queue and keeps their place: a callback
        interaction takes it, with the caller's original enqueue time."""
        assert isinstance(ticket, CallRecord)
        if ticket.phase is not Phase.WAITING:
            raise RoutingError(f"interaction {ticket.interaction_id} is no longer waiting")
        ticket.advance(PhaseEvent.LEFT_FOR_CALLBACK)
        ticket.callback_number = number
        self._stat(CallbackRequested(self.clock.now(), ticket.interaction_id))
        self._finish(ticket)
        self._apply(self.acd.interaction_abandoned(self.clock.now(), ticket.interaction_id))
        callback = CallRecord(
            interaction_id=str(uuid.uuid4()),
            node=self.node,
            caller_uniqueid="",
            caller_channel="",
            caller_number=number,
            dnis=ticket.dnis,
            queue=ticket.queue,
            language=ticket.language,
            priority=ticket.priority,
            arrived_at=ticket.arrived_at,
            arrived_wall=ticket.arrived_wall,
            callback_number=number,
            kind="callback",
            origin=ticket.interaction_id,
            _path=self,
        )
        log.info(
            "callback.registered", interaction=callback.interaction_id, origin=ticket.interaction_id
        )
        self._enqueue_callback(callback)

    def restore_callbacks(self, rows: Sequence[CallbackRow]) -> None:
        """Put pending callbacks back in the ACD after a restart, in their place."""
        now, wall = self.clock.now(), self.clock.wall()
        for row in rows:
            record = CallRecord(
                interaction_id=row.callback_id,
                node=row.node,
                caller_uniqueid="",
                caller_channel="",
                caller_number=row.number,
                dnis="",
                queue=row.queue,
                language=row.language,
                priority=row.priority,
                arrived_at=now - (wall - row.enqueued_at),
                arrived_wall=row.enqueued_at,
                callback_number=row.number,
                kind="callback",
                origin=row.origin,
                attempts=[dict(a) for a in row.attempts],
                not_before_wall=row.not_before,
                not_after_wall=row.not_after,
                _path=self,
            )
            if row.queue not in self.site.queues:
                log.error("callback.unknown_queue", interaction=row.callback_id, queue=row.queue)
                continue
            log.info("callback.restored", interaction=record.interaction_id)
            self._enqueue_callback(record)

    def restore_agents(self, states: Sequence[AgentStateRow]) -> None:
        """Agents as they were before a restart. Those who were on a call are
        held paused ("restart") until :meth:`adopt_calls` finds their call."""
        for row in states:
            if row.state == "logged_out" or row.agent_id not in self.site.agents:
                continue
            self.agent_login(row.agent_id)
            now = self.clock.now()
            if row.state == "paused":
                self._apply(self.acd.agent_pause(now, row.agent_id, row.reason or "restart"))
                if row.reason == CONFERENCE:
                    # Ready again unless adopt_calls finds them still in the room.
                    self._held_for_restart.add(row.agent_id)
            elif row.state in ("reserved", "on_call", "wrap_up"):
                self._apply(self.acd.agent_pause(now, row.agent_id, RESTART))
                self._held_for_restart.add(row.agent_id)
            log.info("agent.restored", agent=row.agent_id, state=row.state)

    async def adopt_calls(self, tracker: ChannelTracker) -> int:
        """After a resync: settle our unconfirmed legs, then take over the
        agent legs a previous daemon left on Asterisk.

        Answered and bridged: tracked to completion (the agent is on call).
        Not answered: hung up, since their caller is back in the queue and
        must not be connected twice. Then agents held for a restart and
        without a call are made ready. Runs before :meth:`telephony_restored`,
        so that a caller whose leg was not placed is in the redispatch."""
        adopted = 0
        now = self.clock.now()
        self._settle_unconfirmed(tracker)
        # Our own ringing legs first: an agent who answered while the AMI
        # link was down (OriginateResponse lost) shows as a leg that is Up.
        for record in [r for r in self.calls.values() if r.phase is Phase.RINGING]:
            leg = tracker.channel(record.agent_leg) if record.agent_leg else None
            if leg is not None and leg.state is ChannelState.UP:
                self._offer_answered(record, "resync")
        for channel in tracker.channels():
            if not channel.uniqueid.startswith("cc-") or channel.uniqueid in self._by_leg:
                continue
            endpoint = channel.name.split("/", 1)[-1].rsplit("-", 1)[0]
            found = self.site.agent_by_endpoint(endpoint)
            if found is None:
                continue
            found_leg = await self._caller_of(channel, tracker)
            peer = found_leg.caller
            room = tracker.bridge(channel.bridge_id) if channel.bridge_id else None
            if peer is None and room is not None and len(room.members) > 2:
                # Rung into another agent's conference: a guest, not stale.
                agent_id = found[0]
                if agent_id in self._held_for_restart:  # paused "conference" before
                    self._held_for_restart.discard(agent_id)
                    self._guest_legs[channel.uniqueid] = agent_id
                continue
            if peer is None:
                log.warning("call.stale_leg_hung_up", leg=channel.uniqueid)
                self._spawn_action(self._hangup_quietly(channel.uniqueid))
                continue
            agent_id, setup = found
            interaction = await self.telephony.variable(channel.uniqueid, "CC_INTERACTION")
            queue = await self.telephony.variable(channel.uniqueid, "CC_QUEUE")
            if not interaction or queue not in self.site.queues:
                continue
            if interaction in self.calls or self.recent(interaction) is not None:
                # Ours and known already: adopting it would make it twice.
                log.warning("call.leg_not_adopted", leg=channel.uniqueid, interaction=interaction)
                continue
            record = CallRecord(
                interaction_id=interaction,
                node=self.node,
                caller_uniqueid=peer.uniqueid,
                caller_channel=peer.name,
                caller_number=peer.caller_id_num,
                dnis="",
                queue=queue,
                language=self.site.queues[queue].language,
                priority=0,
                arrived_at=now,
                arrived_wall=self.clock.wall(),
                phase=Phase.CONNECTED,
                agent_id=agent_id,
                agent_leg=channel.uniqueid,
                answered_at=now,
                held_since=now if found_leg.on_hold else None,
                consult=found_leg.consult,
                _path=self,
            )
            if found_leg.conference is not None:
                record.context["conference"] = {
                    "room": found_leg.conference,
                    "with": found_leg.conference_with,
                }
            self.calls[interaction] = record
            self._by_caller[peer.uniqueid] = interaction
            self._by_leg[channel.uniqueid] = interaction
            self.agent_endpoints.setdefault(agent_id, setup.endpoint)
            profile = AgentProfile(
                agent_id, dict(setup.skills), frozenset(setup.languages), setup.team
            )
            request = InteractionRequest(interaction, queue, dict(self.site.queues[queue].skills))
            self._apply(self.acd.adopt(now, request, profile))
            log.info(
                "call.adopted",
                interaction=interaction,
                agent=agent_id,
                on_hold=found_leg.on_hold,
                consulting=found_leg.consult is not None,
                conference=found_leg.conference,
            )
            adopted += 1
        for channel in tracker.channels():
            if channel.context not in (WAIT_CONTEXT, HOLD_CONTEXT):
                continue
            if channel.uniqueid in self._by_caller or tracker.peer_of(channel.uniqueid) is not None:
                continue  # ours, or not alone in their holding bridge
            if channel.context == WAIT_CONTEXT:
                # Left in the holding bridge by a previous daemon, their
                # agent's leg hung up above: back to the queue now, not when
                # the bridge lets them go by itself (2 minutes).
                log.info("call.back_from_wait_bridge", caller=channel.uniqueid)
                self._spawn_action(self._back_to_queue(channel.uniqueid))
            else:
                # On hold, their agent gone while no daemon ran: as when an
                # agent hangs up during hold (survey, goodbye), never left
                # with music for ever.
                log.info("call.held_caller_without_agent", caller=channel.uniqueid)
                self._spawn_action(self._after_agent(channel.uniqueid))
        held, self._held_for_restart = self._held_for_restart, set()
        for agent_id in sorted(held):
            if self.acd.agent_state(agent_id) == "paused":
                self._apply(self.acd.agent_ready(now, agent_id))
        return adopted

    async def _caller_of(self, leg: Channel, tracker: ChannelTracker) -> _LegTakenOver:
        """What an answered agent's leg a previous daemon left serves (no
        caller: a stale leg). Bridged one-to-one, its peer is the caller.
        Elsewhere ``CC_CALLER`` names the caller: on hold the caller hears
        music in their holding bridge and the leg waits alone; consulting,
        the leg dials or talks to the consulted number (its peer, if any) and
        the dialplan bridges it back with the caller; in a three-way
        conference, caller, agent and third party share the room (the leg's
        extension)."""
        if leg.state is not ChannelState.UP:
            return _LegTakenOver(None)
        peer = tracker.peer_of(leg.uniqueid)
        if leg.context not in (HELD_CONTEXT, CONSULT_CONTEXT, CONFERENCE_CONTEXT):
            return _LegTakenOver(peer)
        variable = await self.telephony.variable(leg.uniqueid, "CC_CALLER")
        caller = tracker.channel(variable) if variable else None
        if leg.context == HELD_CONTEXT:
            return _LegTakenOver(caller, on_hold=True)
        if leg.context == CONFERENCE_CONTEXT:
            party = await self.telephony.variable(leg.uniqueid, "CC_CONFERENCE_WITH")
            return _LegTakenOver(caller, conference=leg.exten, conference_with=party or None)
        consult: dict[str, object] = {
            "number": leg.exten,
            "target": peer.uniqueid if peer is not None else None,
            "state": "talking" if peer is not None else "dialing",
        }
        return _LegTakenOver(caller, consult=consult)

    def _enqueue_callback(self, record: CallRecord) -> None:
        """A callback waits (new, restored, or retried: already ``waiting``)."""
        record.agent_id = record.agent_leg = None
        if record.interaction_id not in self.calls:
            queue_skills = self.site.queues[record.queue].skills
            self._stat(
                Offered(
                    self.clock.now(),
                    record.interaction_id,
                    record.queue,
                    skill=next(iter(queue_skills), ""),
                    customer_id=record.callback_number,
                    origin=record.origin,
                    enqueued_at=record.arrived_at,
                )
            )
        self.calls[record.interaction_id] = record
        self._callbacks_pending(record.queue)
        self._persist_callback(record, "pending")
        due = end = None
        if record.not_before_wall is not None:
            due = self.clock.now() + max(0.0, record.not_before_wall - self.clock.wall())
        if record.not_after_wall is not None:
            end = self.clock.now() + max(0.0, record.not_after_wall - self.clock.wall())
        queue = self.site.queues[record.queue]
        self._apply(
            self.acd.interaction_arrived(
                self.clock.now(),
                InteractionRequest(
                    record.interaction_id,
                    record.queue,
                    dict(queue.skills),
                    record.language,
                    record.priority,
                    customer_id=record.callback_number,
                    enqueued_at=record.arrived_at,
                    not_before=due,
                    not_after=end,
                    agent_id=record.target_agent,
                    kind="callback",
                ),
            )
        )

    def _callbacks_pending(self, queue: str) -> None:
        """Callbacks promised in ``queue`` and not yet done (a gauge)."""
        count = sum(1 for r in self.calls.values() if r.kind == "callback" and r.queue == queue)
        self._stat(CallbacksPending(self.clock.now(), queue, count))

    def _persist_callback(self, record: CallRecord, status: str) -> None:
        if self.on_callback is None:
            return
        self.on_callback(
            CallbackRow(
                callback_id=record.interaction_id,
                origin=record.origin,
                node=record.node,
                queue=record.queue,
                number=record.callback_number or "",
                language=record.language,
                priority=record.priority,
                enqueued_at=record.arrived_wall,
                not_before=record.not_before_wall,
                status=status,
                attempts=tuple(record.attempts),
                agent_id=record.agent_id,
                not_after=record.not_after_wall,
            )
        )

    # ----------------------------------------------------------- AMI facts
    def on_change(self, change: Change) -> None:
        if isinstance(change, OriginateResult):
            self._on_originate(change)
        elif isinstance(change, ChannelRemoved):
            self._legs_seen.discard(change.channel.uniqueid)
            self._on_channel_gone(change)
        elif isinstance(change, ChannelAdded | ChannelUpdated):
            self._on_leg_state(change.channel)
        elif isinstance(change, DialEnded):
            self._on_dial_ended(change)
        elif isinstance(change, DialStarted):
            self._on_dial_started(change)

    def _on_leg_state(self, channel: Channel) -> None:
        """Our ringing agent leg as Asterisk shows it. Up means the agent
        answered: that alone decides it, not only the OriginateResponse,
        which an AMI link cut under load can lose (issue 4)."""
        record = self.calls.get(self._by_leg.get(channel.uniqueid, ""))
        if record is None or record.agent_leg != channel.uniqueid:
            return
        self._legs_seen.add(channel.uniqueid)
        if self._settled(channel.uniqueid):
            log.info("call.offer_confirmed", interaction=record.interaction_id, by="leg seen")
        if record.phase is Phase.RINGING and channel.state is ChannelState.UP:
            self._offer_answered(record, "leg up")

    def _on_dial_started(self, change: DialStarted) -> None:
        record = self.calls.get(self._by_leg.get(change.caller or "", ""))
        if record is not None and record.consult is not None:
            record.consult["target"] = change.dest

    def _on_dial_ended(self, change: DialEnded) -> None:
        # Our agent legs dial for callbacks (the customer) and consultations.
        record = self.calls.get(self._by_leg.get(change.caller or "", ""))
        if record is not None and record.consult is not None:
            if change.status == "ANSWER":
                record.consult["state"] = "talking"
            else:
                # Not reached: the dialplan bridges the agent back with the caller.
                log.info(
                    "call.consult_failed", interaction=record.interaction_id, status=change.status
                )
                record.consult = None
            return
        if record is None or record.kind != "callback" or record.phase is not Phase.DIALING:
            return
        record.attempts.append(
            {"at": round(self.clock.wall(), 3), "agent": record.agent_id, "result": change.status}
        )
        if change.status == "ANSWER":
            record.advance(PhaseEvent.CUSTOMER_ANSWERED)
            record.answered_at = self.clock.now()
            self._answered_stat(record, record.answered_at)
            log.info("callback.connected", interaction=record.interaction_id, agent=record.agent_id)
            queue = self.site.queues[record.queue]
            if queue.record:
                self._spawn_action(self._record(record, queue.separate_legs))
        else:
            log.info(
                "callback.attempt_failed",
                interaction=record.interaction_id,
                result=change.status,
                attempt=len(record.attempts),
            )

    def _on_originate(self, change: OriginateResult) -> None:
        interaction_id = self._by_leg.get(change.uniqueid or "")
        record = self.calls.get(interaction_id or "")
        if record is None or record.phase is not Phase.RINGING:
            return
        # Asterisk ran our Originate: its outcome is known now.
        self._settled(change.uniqueid or "")
        if change.success:
            self._offer_answered(record, "originate")
        elif record.agent_leg in self._legs_seen:
            # Our leg is alive: this failure is not its outcome but that of
            # an Originate sent again with its ChannelId after an AMI link
            # cut (Asterisk refuses the duplicate). The leg's own hang-up or
            # answer decides.
            log.warning(
                "call.originate_failure_ignored",
                interaction=record.interaction_id,
                leg=record.agent_leg,
                reason=change.reason,
            )
        else:
            self._offer_failed(record, f"originate reason {change.reason}")

    def _offer_answered(self, record: CallRecord, seen_by: str) -> None:
        """The agent answered the ringing leg. Usually seen by its
        OriginateResponse; when that was lost (AMI link cut under load), by
        the leg's state on resync or when it hangs up."""
        assert record.agent_id is not None
        now = self.clock.now()
        if record.kind == "callback":
            record.advance(PhaseEvent.CUSTOMER_DIALING)
            log.info("callback.dialing", interaction=record.interaction_id, agent=record.agent_id)
            self._apply(self.acd.offer_answered(now, record.interaction_id, record.agent_id))
            return
        record.advance(PhaseEvent.ANSWERED)
        record.answered_at = now
        self._answered_stat(record, now)
        log.info(
            "call.answered",
            interaction=record.interaction_id,
            agent=record.agent_id,
            wait=round(now - record.arrived_at, 3),
            seen_by=seen_by,
        )
        self._apply(self.acd.offer_answered(now, record.interaction_id, record.agent_id))
        queue = self.site.queues[record.queue]
        if queue.record:
            # The dialplan started MixMonitor as the agent answered (ring_agent).
            record.recording, _ = self.telephony.recording(
                record.interaction_id, separate_legs=queue.separate_legs
            )

    def _answered_stat(self, record: CallRecord, now: float) -> None:
        assert record.agent_id is not None
        setup = self.site.agents.get(record.agent_id)
        self._stat(
            Answered(
                now,
                record.interaction_id,
                record.agent_id,
                setup.team if setup else "",
                setup.extended if setup else False,
            )
        )

    def _offer_failed(self, record: CallRecord, why: str) -> None:
        assert record.agent_id is not None
        agent = record.agent_id
        record.advance(PhaseEvent.RONA)
        log.info("call.rona", interaction=record.interaction_id, agent=agent, why=why)
        self._settled(record.agent_leg or "")
        self._by_leg.pop(record.agent_leg or "", None)
        record.agent_id = None
        record.agent_leg = None
        self._apply(self.acd.offer_failed(self.clock.now(), record.interaction_id, agent, why))
        self._back_to_queue_if_idle(record)

    def _on_channel_gone(self, change: ChannelRemoved) -> None:
        uniqueid = change.channel.uniqueid
        now = self.clock.now()
        if (guest := self._guest_legs.pop(uniqueid, None)) is not None:
            self._guest_left(guest)
        if (interaction_id := self._by_caller.get(uniqueid)) is not None:
            record = self.calls.get(interaction_id)
            if record is None:
                return
            if record.phase is Phase.WAITING:
                self._abandon(record, "queue")
            elif record.phase is Phase.RINGING:
                leg = record.agent_leg
                self._abandon(record, "ringing")
                if leg is not None:
                    self._spawn_action(self._hangup_quietly(leg))
            elif record.phase is Phase.CONNECTED:
                if "conference" in record.context and record.agent_leg is not None:
                    # The agent talks on with the third party: the agent's
                    # call, and the interaction, end when they leave the room
                    # (before, the agent went to wrap-up, then was rung for
                    # the next caller in the middle of the conference).
                    log.info("call.caller_left_conference", interaction=record.interaction_id)
                    del self._by_caller[uniqueid]
                    return
                if record.held_since is not None and record.agent_leg is not None:
                    # The agent's leg waits alone in callcenter-held: end it.
                    self._spawn_action(self._hangup_quietly(record.agent_leg))
                self._complete(record, now)
        elif (interaction_id := self._by_leg.get(uniqueid)) is not None:
            record = self.calls.get(interaction_id)
            if record is None:
                return
            if record.phase is Phase.RINGING and change.channel.state is ChannelState.UP:
                # Up, so answered: its OriginateResponse was lost (AMI link
                # cut). A conversation took place; never a ring-no-answer.
                self._offer_answered(record, "agent leg up when it hung up")
            if record.phase is Phase.RINGING:
                self._offer_failed(record, f"agent leg hung up ({change.cause_txt})")
            elif record.phase is Phase.CONNECTED:
                if record.held_since is not None and record.caller_uniqueid:
                    # The agent hung up during hold: the caller leaves the music
                    # as after any call the agent ends (survey, then goodbye).
                    self._spawn_action(self._after_agent(record.caller_uniqueid))
                self._complete(record, now)
            elif record.phase is Phase.DIALING:
                self._callback_attempt_over(record, now)

    def _abandon(self, record: CallRecord, where: str) -> None:
        record.advance(PhaseEvent.ABANDONED)
        record.abandoned_where = where
        self._stat(Abandoned(self.clock.now(), record.interaction_id))
        log.info(
            "call.abandoned",
            interaction=record.interaction_id,
            where=where,
            wait=round(self.clock.now() - record.arrived_at, 3),
        )
        self._finish(record)
        self._apply(self.acd.interaction_abandoned(self.clock.now(), record.interaction_id))

    def _complete(self, record: CallRecord, now: float) -> None:
        with self._rings_first():
            self._completed(record, now)

    def _completed(self, record: CallRecord, now: float) -> None:
        record.advance(PhaseEvent.HUNG_UP)
        self._end_hold(record)
        if "transfer" in record.context:
            self._stat(Transferred(now, record.interaction_id))
        self._stat(Ended(now, record.interaction_id, hold_seconds=round(record.hold_seconds, 3)))
        if record.agent_id is not None:
            self._wrapping[record.agent_id] = record.interaction_id
        log.info("call.completed", interaction=record.interaction_id, agent=record.agent_id)
        self._finish(record)
        if record.kind == "callback":
            self._persist_callback(record, "done")
        self._apply(self.acd.interaction_ended(now, record.interaction_id))

    def _callback_attempt_over(self, record: CallRecord, now: float) -> None:
        """The agent's leg ended before the customer answered: retry or give
        up (no attempt left, or the next one would start after the window)."""
        queue = self.site.queues[record.queue]
        unrecorded = not record.attempts or record.attempts[-1].get("agent") != record.agent_id
        retry_at = self.clock.wall() + queue.callback_retry_delay
        exhausted = len(record.attempts) + unrecorded >= queue.callback_attempts or (
            record.not_after_wall is not None and retry_at >= record.not_after_wall
        )
        record.advance(PhaseEvent.ATTEMPTS_EXHAUSTED if exhausted else PhaseEvent.RETRY)
        if unrecorded:
            record.attempts.append(
                {
                    "at": round(self.clock.wall(), 3),
                    "agent": record.agent_id,
                    "result": "AGENT_HANGUP",
                }
            )
        self._by_leg.pop(record.agent_leg or "", None)
        self._apply(self.acd.interaction_ended(now, record.interaction_id))
        if exhausted:
            log.info(
                "callback.failed", interaction=record.interaction_id, attempts=len(record.attempts)
            )
            self._stat(CallbackClosed(now, record.interaction_id, "failed"))
            self._finish(record)
            self._persist_callback(record, "failed")
            return
        record.not_before_wall = retry_at
        log.info(
            "callback.retry", interaction=record.interaction_id, delay=queue.callback_retry_delay
        )
        self._enqueue_callback(record)

    def _expired(self, interaction_id: str) -> None:
        """The ACD dropped a waiting callback whose window closed (it is no
        longer in the ACD): finished, stored as expired, never offered."""
        record = self.calls.get(interaction_id)
        if record is None:
            return
        try:
            record.advance(PhaseEvent.EXPIRED)
        except IllegalTransition:
            # Out of step with the ACD: kept in view (never dropped), and the
            # rest of the batch (offers, agent states) goes on.
            log.error(
                "callback.expired_out_of_step", interaction=interaction_id, phase=record.phase
            )
            return
        log.info("callback.expired", interaction=interaction_id, attempts=len(record.attempts))
        self._stat(CallbackClosed(self.clock.now(), interaction_id, "expired"))
        self._finish(record)
        self._persist_callback(record, "expired")

    def _finish(self, record: CallRecord) -> None:
        record.ended_at = self.clock.now()
        # Only our own entries: after a transfer the caller's channel may
        # already belong to the next interaction.
        if self._by_caller.get(record.caller_uniqueid) == record.interaction_id:
            del self._by_caller[record.caller_uniqueid]
        if self._by_leg.get(record.agent_leg or "") == record.interaction_id:
            del self._by_leg[record.agent_leg or ""]
            self._settled(record.agent_leg or "")
        self.calls.pop(record.interaction_id, None)
        if record.kind == "callback":
            self._callbacks_pending(record.queue)
        self.history.append(record)
        self._history_by_id[record.interaction_id] = record
        if len(self._history_by_id) > HISTORY_SIZE:
            del self._history_by_id[next(iter(self._history_by_id))]
        if self.on_finished is not None:
            self.on_finished(record)

    # ------------------------------------------------------ agent operations
    def agent_login(self, agent_id: str, endpoint: str | None = None) -> None:
        setup = self.site.agents.get(agent_id)
        if setup is None:
            raise RoutingError(f"unknown agent {agent_id!r}")
        self.agent_endpoints[agent_id] = endpoint or setup.endpoint
        # Skills, languages, team, extended with its monthly cap and the
        # month's count read back at start (a restart must not reset the cap).
        profile = setup.profile(agent_id, month_handled=self.month_handled.get(agent_id, 0))
        self._apply(self.acd.agent_login(self.clock.now(), profile))
        # From now on the ACD's count is the live one (it keeps it across
        # logins): the seed, used once, must not lift it again after a reset.
        self.month_handled.pop(agent_id, None)

    def agent_ready(self, agent_id: str) -> None:
        self._apply(self.acd.agent_ready(self.clock.now(), agent_id))
        self._forget_guest(agent_id)  # their choice now, not the conference's

    def agent_pause(self, agent_id: str, reason: str) -> None:
        if reason not in self.site.pause_reasons:
            raise RoutingError(
                f"unknown pause reason {reason!r} (known: {', '.join(self.site.pause_reasons)})"
            )
        self._apply(self.acd.agent_pause(self.clock.now(), agent_id, reason))
        self._forget_guest(agent_id)

    def agent_logout(self, agent_id: str) -> None:
        self._apply(self.acd.agent_logout(self.clock.now(), agent_id))
        self.agent_endpoints.pop(agent_id, None)
        self._forget_guest(agent_id)

    def _forget_guest(self, agent_id: str) -> None:
        for leg in [leg for leg, guest in self._guest_legs.items() if guest == agent_id]:
            del self._guest_legs[leg]

    def _guest_left(self, agent_id: str) -> None:
        """An agent's leg rung into a conference ended (left the room, or
        never answered): ready again. A state the agent chose meanwhile
        dropped the leg already (:meth:`_forget_guest`)."""
        if self.acd.agent_state(agent_id) == "paused":
            log.info("agent.left_conference", agent=agent_id)
            self._apply(self.acd.agent_ready(self.clock.now(), agent_id))

    def end_wrapup(self, agent_id: str) -> None:
        self._apply(self.acd.wrapup_ended(self.clock.now(), agent_id))

    def recent(self, interaction_id: str) -> CallRecord | None:
        # Indexed: the screen views ask this on every queue change.
        return self.calls.get(interaction_id) or self._history_by_id.get(interaction_id)

    def _live_call_of(self, agent_id: str) -> CallRecord:
        record = next(
            (
                r
                for r in self.calls.values()
                if r.agent_id == agent_id and r.phase is Phase.CONNECTED
            ),
            None,
        )
        if record is None or record.agent_leg is None:
            raise RoutingError(f"agent {agent_id!r} has no call in progress")
        return record

    async def blind_transfer(
        self,
        agent_id: str,
        *,
        queue: str | None = None,
        number: str | None = None,
        to_agent: str | None = None,
    ) -> str:
        """Send the agent's caller to another queue or to a named agent (both
        back through the ACD, with the interaction's context: a named agent
        is rung when free), or to an external number. The agent's leg ends,
        so the agent goes to wrap-up."""
        record = self._live_call_of(agent_id)
        assert record.agent_leg is not None
        if record.kind != "call":
            raise RoutingError("only an inbound caller can be transferred")
        if sum(x is not None for x in (queue, number, to_agent)) != 1:
            raise RoutingError("transfer to exactly one of: a queue, an agent, a number")
        if queue is not None:
            if queue not in self.site.queues:
                raise RoutingError(f"unknown queue {queue!r}")
            exten = f"q{queue}"
        elif to_agent is not None:
            if to_agent not in self.site.agents:
                raise RoutingError(f"unknown agent {to_agent!r}")
            if to_agent == agent_id:
                raise RoutingError("an agent cannot transfer a call to themselves")
            exten = f"a{to_agent}"
        else:
            assert number is not None
            if not is_phone_number(number):
                raise RoutingError(f"not a phone number: {number!r}")
            exten = number
        record.context["transfer"] = {"to_queue": queue, "to_agent": to_agent, "to_number": number}
        log.info(
            "call.transfer",
            interaction=record.interaction_id,
            agent=agent_id,
            queue=queue,
            to_agent=to_agent,
            number=number,
        )
        await self.telephony.transfer_with_context(
            record.agent_leg, TRANSFER_CONTEXT, exten, {"CC_FROM": record.interaction_id}
        )
        return record.interaction_id

    async def hold(self, agent_id: str) -> str:
        """The caller hears music on hold; the agent's leg waits for resume."""
        record = self._live_call_of(agent_id)
        assert record.agent_leg is not None
        if record.kind != "call":
            raise RoutingError("only a caller on the line can be put on hold")
        if record.held_since is not None:
            raise RoutingError("the call is already on hold")
        if record.consult is not None:
            raise RoutingError("a consultation is in progress (the caller is already on hold)")
        await self.telephony.hold(record.agent_leg, record.caller_uniqueid)
        record.held_since = self.clock.now()
        log.info("call.held", interaction=record.interaction_id)
        return record.interaction_id

    async def resume(self, agent_id: str) -> str:
        """Take the caller back off hold: the agent's leg bridges them again."""
        record = self._live_call_of(agent_id)
        assert record.agent_leg is not None
        if record.held_since is None:
            raise RoutingError("the call is not on hold")
        await self.telephony.resume(record.agent_leg)
        self._end_hold(record)
        log.info("call.resumed", interaction=record.interaction_id)
        return record.interaction_id

    def _end_hold(self, record: CallRecord) -> None:
        if record.held_since is not None:
            record.hold_seconds += self.clock.now() - record.held_since
            record.held_since = None

    async def hangup(self, agent_id: str) -> str:
        """The agent ends the call from the desktop (as from the phone)."""
        record = self._live_call_of(agent_id)
        assert record.agent_leg is not None
        await self.telephony.hangup(record.agent_leg)
        return record.interaction_id

    def register_callback(
        self,
        queue: str,
        number: str,
        *,
        language: str,
        priority: int = 0,
        origin: str | None = None,
        not_before_wall: float | None = None,
        not_after_wall: float | None = None,
        target_agent: str | None = None,
        context: dict[str, object] | None = None,
    ) -> str:
        """A callback interaction: when an agent is free (and not before
        ``not_before_wall``), the agent's phone rings first, then ``number``.
        Still waiting at ``not_after_wall``: dropped, its phase ``expired``."""
        if queue not in self.site.queues:
            raise RoutingError(f"unknown queue {queue!r}")
        if not is_phone_number(number):
            raise RoutingError(f"not a phone number: {number!r}")
        if not_after_wall is not None:
            if not_after_wall <= self.clock.wall():
                raise RoutingError("the callback window must end in the future")
            if not_before_wall is not None and not_after_wall <= not_before_wall:
                raise RoutingError("the callback window must end after it starts")
        callback = CallRecord(
            interaction_id=str(uuid.uuid4()),
            node=self.node,
            caller_uniqueid="",
            caller_channel="",
            caller_number=number,
            dnis="",
            queue=queue,
            language=language,
            priority=priority,
            arrived_at=self.clock.now(),
            arrived_wall=self.clock.wall(),
            callback_number=number,
            kind="callback",
            origin=origin,
            not_before_wall=not_before_wall,
            not_after_wall=not_after_wall,
            target_agent=target_agent,
            context=dict(context or {}),
            _path=self,
        )
        log.info(
            "callback.registered",
            interaction=callback.interaction_id,
            origin=origin,
            queue=queue,
            agent=target_agent,
        )
        self._enqueue_callback(callback)
        return callback.interaction_id

    def schedule_callback(
        self,
        agent_id: str,
        interaction_id: str,
        number: str,
        not_before_wall: float | None,
        not_after_wall: float | None = None,
    ) -> str:
        """The agent promises the customer a call back (at a time, or as soon
        as an agent is free; by ``not_after_wall`` at the latest, else it
        expires): a callback interaction in the same queue."""
        origin = self.recent(interaction_id)
        if origin is None:
            raise RoutingError(f"unknown interaction {interaction_id!r}")
        if origin.agent_id != agent_id:
            raise RoutingError(f"interaction {interaction_id} was not handled by {agent_id}")
        return self.register_callback(
            origin.queue,
            number,
            language=origin.language,
            priority=origin.priority,
            origin=origin.interaction_id,
            not_before_wall=not_before_wall,
            not_after_wall=not_after_wall,
            context={"scheduled_by": agent_id},
        )

    def click_to_call(self, agent_id: str, number: str, queue: str | None = None) -> str:
        """The agent calls a customer from the desktop: their own phone rings
        first, then the number is dialled (a callback for this agent only,
        served before anything else it could take)."""
        setup = self.site.agents.get(agent_id)
        if setup is None:
            raise RoutingError(f"unknown agent {agent_id!r}")
        if queue is None:
            queue = next(
                (
                    name
                    for name, q in self.site.queues.items()
                    if all(setup.skills.get(skill, 0) >= level for skill, level in q.skills.items())
                ),
                None,
            )
        if queue is None:
            raise RoutingError(f"agent {agent_id} has the skills of no queue")
        return self.register_callback(
            queue,
            number,
            language=setup.languages[0],
            priority=1_000,
            target_agent=agent_id,
            context={"click_to_call": agent_id},
        )

    async def consult(self, agent_id: str, number: str) -> str:
        """Attended transfer: the caller waits on hold, the agent talks to
        ``number``; then :meth:`complete_transfer` or :meth:`cancel_transfer`."""
        record = self._live_call_of(agent_id)
        assert record.agent_leg is not None
        if record.kind != "call":
            raise RoutingError("only an inbound caller can be transferred")
        if record.consult is not None:
            raise RoutingError("a consultation is already in progress")
        if not is_phone_number(number):
            raise RoutingError(f"not a phone number: {number!r}")
        record.consult = {"number": number, "target": None, "state": "dialing"}
        log.info("call.consult", interaction=record.interaction_id, number=number)
        queue = self.site.queues[record.queue]
        try:
            await self.telephony.consult(
                record.agent_leg,
                record.caller_uniqueid,
                number,
                dial_timeout=queue.callback_dial_timeout,
            )
        except AsteriskError:
            record.consult = None
            raise
        return record.interaction_id

    async def complete_transfer(self, agent_id: str) -> str:
        record = self._live_call_of(agent_id)
        consult = record.consult
        if consult is None or consult.get("state") != "talking" or not consult.get("target"):
            raise RoutingError("no answered consultation to complete")
        assert record.agent_leg is not None
        await self.telephony.complete_transfer(
            record.agent_leg, record.caller_uniqueid, str(consult["target"])
        )
        record.context["transfer"] = {"attended": True, "to_number": consult["number"]}
        log.info("call.transfer_completed", interaction=record.interaction_id)
        record.consult = None
        return record.interaction_id

    async def cancel_transfer(self, agent_id: str) -> str:
        record = self._live_call_of(agent_id)
        consult = record.consult
        if consult is None:
            raise RoutingError("no consultation in progress")
        target = consult.get("target")
        if target:
            # The dialplan then bridges the agent back with the caller.
            await self.telephony.hangup(str(target))
        log.info("call.transfer_cancelled", interaction=record.interaction_id)
        record.consult = None
        return record.interaction_id

    async def conference(
        self, agent_id: str, *, number: str | None = None, agent: str | None = None
    ) -> str:
        """Three-way: the caller and the agent go into a conference room and a
        third party (a number on the trunk, or another agent's phone) is rung
        into it. Returns the room. The interaction goes on until the agent
        leaves the room (their leg hangs up)."""
        record = self._live_call_of(agent_id)
        assert record.agent_leg is not None
        if (number is None) == (agent is None):
            raise RoutingError("conference with exactly one of: a number, an agent")
        if number is not None:
            if not is_phone_number(number):
                raise RoutingError(f"not a phone number: {number!r}")
            destination = f"{number}@trunk"
        else:
            assert agent is not None
            setup = self.site.agents.get(agent)
            if setup is None:
                raise RoutingError(f"unknown agent {agent!r}")
            if agent not in self.agent_endpoints or self.acd.agent_state(agent) != "ready":
                # Busy, paused or logged out: never ring a phone that is
                # on a call, nor someone who is away.
                raise RoutingError(f"agent {agent!r} is not free for a conference")
            destination = self.agent_endpoints[agent]
        room = "cc" + record.interaction_id.replace("-", "")[:12]
        record.context["conference"] = {"room": room, "with": number or agent}
        log.info("call.conference", interaction=record.interaction_id, room=room)
        await self.telephony.into_conference(
            room, record.agent_leg, record.caller_uniqueid, party=number or str(agent)
        )
        leg = self.telephony.new_channel_id()
        if agent is not None:
            # Held for the room until their leg ends: no call offered meanwhile.
            self._apply(self.acd.agent_pause(self.clock.now(), agent, CONFERENCE))
            self._guest_legs[leg] = agent
        try:
            await self.telephony.ring_into_conference(
                room,
                destination,
                channel_id=leg,
                ring_timeout=self.site.queues[record.queue].ring_timeout,
                caller_id=f'"Conference {record.queue}" <{record.caller_number or "anonymous"}>',
            )
        except AsteriskError:
            if (guest := self._guest_legs.pop(leg, None)) is not None:
                self._guest_left(guest)
            raise
        return room

    def set_disposition(self, interaction_id: str, agent_id: str, code: str, notes: str) -> None:
        """The agent's outcome code and notes for an interaction they handled."""
        record = self.recent(interaction_id)
        if record is None:
            raise RoutingError(f"unknown interaction {interaction_id!r}")
        if record.agent_id != agent_id:
            raise RoutingError(f"interaction {interaction_id!r} was not handled by {agent_id!r}")
        if code not in self.site.dispositions:
            raise RoutingError(
                f"unknown disposition {code!r} (known: {', '.join(self.site.dispositions)})"
            )
        record.disposition, record.notes = code, notes
        if record.phase in FINISHED and self.on_finished is not None:
            self.on_finished(record)  # an upsert: the stored row gets the code
        if self.on_disposition is not None:
            self.on_disposition(record)

    async def coach(self, supervisor_id: str, agent_id: str, mode: SpyMode) -> str:
        """Ring the supervisor's phone into ChanSpy on the agent's live call.

        The supervisor switches mode from the phone (4 listen, 5 whisper,
        6 barge) or by asking again with another mode: a spy already running
        on this agent's call switches, the phone does not ring again.
        """
        supervisor = self.site.supervisors.get(supervisor_id)
        if supervisor is None:
            raise RoutingError(f"unknown supervisor {supervisor_id!r}")
        record = self._live_call_of(agent_id)
        assert record.agent_leg is not None
        log.info(
            "call.coaching",
            interaction=record.interaction_id,
            supervisor=supervisor_id,
            agent=agent_id,
            mode=mode.value,
        )
        running = self._spies.get(supervisor_id)
        if running is not None and running[1] == record.agent_leg:
            try:
                await self.telephony.switch_spy(running[0], mode)
                return running[0]
            except AsteriskError:
                # That spy leg has ended (the supervisor hung up): ring again.
                del self._spies[supervisor_id]
        leg = await self.telephony.spy(supervisor.endpoint, record.agent_leg, mode)
        self._spies[supervisor_id] = (leg, record.agent_leg)
        return leg

    # ------------------------------------------------------------ decisions
    def _apply(self, decisions: Sequence[OfferDecision]) -> None:
        self._schedule(decisions)
        self._wake.set()

    def _stat(self, event: StatsEvent) -> None:
        if self._held_stats is not None:
            self._held_stats.append(event)
        elif self.on_stats is not None:
            self.on_stats(event)

    @contextlib.contextmanager
    def _rings_first(self) -> Iterator[None]:
        """The statistics of what runs inside (and so the desktops' and
        wallboard's updates, the webhooks) are sent, in their order, once it
        is over: after the Originates its decisions write, off the
        agent-free -> ring path (issue 4)."""
        if self._held_stats is not None:
            yield  # already held by an outer step
            return
        held: list[StatsEvent] = []
        self._held_stats = held
        try:
            yield
        finally:
            self._held_stats = None
            for event in held:
                self._stat(event)

    def _drain_records(self) -> None:
        audit, states = self.acd.take_records()
        for entry in audit:
            if entry.kind == "expired" and entry.interaction_id is not None:
                self._expired(entry.interaction_id)
        for change in states:
            setup = self.site.agents.get(change.agent_id)
            self._stat(
                AgentStateChanged(
                    change.since,
                    change.agent_id,
                    change.state,
                    tuple(setup.skills) if setup else (),
                    setup.team if setup else "",
                    setup.extended if setup else False,
                )
            )
            if change.state != "wrap_up" and change.agent_id in self._wrapping:
                ended = self._wrapping.pop(change.agent_id)
                self._stat(WrapUpEnded(change.since, ended))
        if self.on_records is None or not (audit or states):
            return
        offset = self.clock.wall() - self.clock.now()
        rows: list[DecisionRow | AgentStateRow] = [
            DecisionRow(e.at + offset, e.kind, e.interaction_id, e.agent_id, e.reason)
            for e in audit
        ]
        rows += [AgentStateRow(s.agent_id, s.state, s.reason, s.since + offset) for s in states]
        for row in rows:
            self.on_records(row)

    def _schedule(self, decisions: Sequence[OfferDecision]) -> None:
        # The phones ring first; the records of the decision (statistics,
        # desktops, database rows) follow: no statistic comes from the loop
        # below, so their order is the same (issue 4's agent-free -> ring).
        for offer in decisions:
            record = self.calls.get(offer.interaction_id)
            endpoint = self.agent_endpoints.get(offer.agent_id)
            if record is None or endpoint is None or record.phase is not Phase.WAITING:
                log.error("call.offer_inconsistent", offer=str(offer))
                continue
            record.advance(PhaseEvent.OFFERED)
            record.agent_id = offer.agent_id
            record.offers += 1
            leg = self.telephony.new_channel_id()
            record.agent_leg = leg
            record.legs.append((offer.agent_id, leg))
            self._by_leg[leg] = record.interaction_id
            log.info(
                "call.offer",
                interaction=record.interaction_id,
                agent=offer.agent_id,
                leg=leg,
                reason=offer.reason,
            )
            # Written now, not when the task first runs: the loop may have a
            # burst of events and sessions ready before it (issue 4's
            # agent-free -> ring goal).
            placing = self._place(record, endpoint, leg)
            task = self._spawn_action(self._ring(record, leg, placing))
            # A task cancelled before it ran (daemon stopping) never awaited it.
            task.add_done_callback(functools.partial(_close, placing))
            self._hold_if_ringing(record)
        self._drain_records()

    def _place(self, record: CallRecord, endpoint: str, leg: str) -> Coroutine[Any, Any, str]:
        """Write the Originate of ``leg``; the awaitable gives the outcome."""
        queue = self.site.queues[record.queue]
        variables = {"CC_INTERACTION": record.interaction_id, "CC_QUEUE": record.queue}
        try:
            if record.kind == "callback":
                assert record.callback_number is not None
                return self.telephony.ring_agent_for_callback(
                    endpoint,
                    record.callback_number,
                    channel_id=leg,
                    ring_timeout=queue.ring_timeout,
                    dial_timeout=queue.callback_dial_timeout,
                    caller_id=f'"Callback {record.queue}" <{record.callback_number}>',
                    variables=variables,
                )
            number = record.caller_number or "anonymous"
            return self.telephony.ring_agent(
                endpoint,
                record.caller_uniqueid,
                channel_id=leg,
                ring_timeout=queue.ring_timeout,
                caller_id=f'"{_caller_id_name(record)}" <{number}>',
                variables=variables,
                record_as=record.interaction_id if queue.record else None,
                separate_legs=queue.separate_legs,
            )
        except AsteriskError as exc:
            return _failed(exc)  # handled with the other outcomes, in _ring

    async def _ring(self, record: CallRecord, leg: str, placing: Coroutine[Any, Any, str]) -> None:
        queue = self.site.queues[record.queue]
        try:
            await placing
        except OriginateUnconfirmed as exc:
            # It may ring (sent, then the link dropped or no answer came).
            # Cancelling now would offer the caller to a second agent while
            # this one's leg bridges them (issue 4): the offer stands until
            # Asterisk's channel list settles it (adopt_calls on resync).
            if self._ringing(leg) is record and leg not in self._legs_seen:
                log.warning(
                    "call.offer_unconfirmed",
                    interaction=record.interaction_id,
                    leg=leg,
                    error=str(exc),
                )
                self._unconfirmed[leg] = asyncio.Event()
                await self._settle_when_due(leg, queue.ring_timeout + UNCONFIRMED_GRACE)
        except AsteriskError as exc:
            # Could not even ring (AMI down before sending, Asterisk
            # refused): not the agent's fault. The caller keeps their place
            # and is offered again when the AMI link is back.
            if self._ringing(leg) is record:
                self._offer_not_placed(record, str(exc))

    def _offer_not_placed(self, record: CallRecord, why: str) -> None:
        assert record.agent_id is not None
        record.advance(PhaseEvent.NOT_PLACED)
        log.warning("call.offer_not_placed", interaction=record.interaction_id, error=why)
        self._by_leg.pop(record.agent_leg or "", None)
        agent, record.agent_id, record.agent_leg = record.agent_id, None, None
        self._apply(
            self.acd.offer_cancelled(
                self.clock.now(), record.interaction_id, agent, f"not placed: {why}"
            )
        )
        self._back_to_queue_if_idle(record)

    def _ringing(self, leg: str) -> CallRecord | None:
        """The call whose current offer is this ringing leg, if any."""
        record = self.calls.get(self._by_leg.get(leg, ""))
        if record is None or record.phase is not Phase.RINGING or record.agent_leg != leg:
            return None
        return record

    def _settled(self, leg: str) -> bool:
        """Forget that ``leg`` was unconfirmed; whether it was."""
        settled = self._unconfirmed.pop(leg, None)
        if settled is None:
            return False
        settled.set()
        return True

    def _settle(self, leg: str, *, placed: bool, caller_past_agent: bool = False) -> bool:
        """Asterisk's answer for an unconfirmed leg. True if its caller
        waits again (to be offered once telephony is known to be up)."""
        if not self._settled(leg) or (record := self._ringing(leg)) is None:
            return False
        if placed:
            # It rings or talks: its events (and the resync) drive it now.
            log.info("call.offer_confirmed", interaction=record.interaction_id, by="channel list")
            return False
        if caller_past_agent:
            # Placed, answered and hung up while we were blind: the caller
            # is already where the agent's hang-up sends them.
            self._offer_answered(record, "caller after the agent on resync")
            self._complete(record, self.clock.now())
            return False
        self._offer_not_placed(record, "no such channel once the AMI link was back")
        return True

    def _settle_unconfirmed(self, tracker: ChannelTracker) -> None:
        """The resync's channel list (the tracker now) settles unconfirmed legs."""
        for leg in list(self._unconfirmed):
            record = self._ringing(leg)
            caller = tracker.channel(record.caller_uniqueid) if record is not None else None
            self._settle(
                leg,
                placed=tracker.channel(leg) is not None,
                caller_past_agent=caller is not None and caller.context == AFTER_AGENT_CONTEXT,
            )

    async def _settle_when_due(self, leg: str, due_in: float) -> None:
        """Settle ``leg`` if no resync has by the time a placed leg would
        have rung out: an Originate that timed out on a link that stayed up
        gets no resync; a resync taken before the leg was marked missed it."""
        settled = self._unconfirmed[leg]
        while leg in self._unconfirmed:
            try:
                await asyncio.wait_for(settled.wait(), due_in)
                return
            except TimeoutError:
                pass
            try:
                placed = await self.telephony.channel_exists(leg)
            except AsteriskError as exc:
                # The link is down: its resync settles the leg, or a later look.
                log.info("call.offer_still_unconfirmed", leg=leg, error=str(exc))
                continue
            if self._settle(leg, placed=placed):
                # Asterisk just answered: telephony is up, offer again now.
                self._apply(self.acd.redispatch(self.clock.now()))

    def telephony_restored(self) -> None:
        """The AMI link is back and resynced (after :meth:`adopt_calls`, which
        settled the unconfirmed legs): offer waiting calls again. A caller
        whose offer is still ringing or unconfirmed is not waiting in the
        ACD, so this never rings a second agent for them."""
        self._apply(self.acd.redispatch(self.clock.now()))

    async def _record(self, record: CallRecord, separate_legs: bool) -> None:
        try:
            # On the agent leg: ours from the start and stable, whereas the
            # caller's channel is being moved out of AGI at this moment
            # (measured: MixMonitor on it can hit the "Surrogate" channel).
            assert record.agent_leg is not None
            record.recording = await self.telephony.record(
                record.agent_leg, record.interaction_id, separate_legs=separate_legs
            )
        except AsteriskError as exc:
            log.error("call.record_failed", interaction=record.interaction_id, error=str(exc))

    async def _hold_for_agent(self, record: CallRecord) -> None:
        try:
            await self.telephony.hold_for_agent(record.caller_uniqueid)
        except AsteriskError as exc:
            # Still in FastAGI: the agent's Bridge() takes them from there
            # (the dialplan waits 3 s for the holding bridge, then bridges).
            log.warning(
                "call.hold_for_agent_failed", interaction=record.interaction_id, error=str(exc)
            )
            record.caller_in_wait_bridge = False

    def _back_in_fastagi(self, record: CallRecord) -> None:
        """The caller is in a FastAGI session again."""
        record.caller_in_wait_bridge = False
        self._hold_if_ringing(record)

    def _hold_if_ringing(self, record: CallRecord) -> None:
        """An agent's phone rings for this caller: to the holding bridge
        before the agent answers, unless already there."""
        if record.kind != "call" or record.phase is not Phase.RINGING:
            return
        if not record.caller_in_wait_bridge:
            record.caller_in_wait_bridge = True
            self._spawn_action(self._hold_for_agent(record))

    def _back_to_queue_if_idle(self, record: CallRecord) -> None:
        """An offer ended unanswered: a caller waiting in the holding bridge
        whom no other agent rings for goes back to FastAGI (position,
        expected wait, callback), keeping their place."""
        if not record.caller_in_wait_bridge or record.phase is not Phase.WAITING:
            return
        record.caller_in_wait_bridge = False
        self._spawn_action(self._back_to_queue(record.caller_uniqueid))

    async def _back_to_queue(self, caller: str) -> None:
        try:
            await self.telephony.back_to_queue(caller)
        except AsteriskError as exc:
            # The holding bridge lets them go by itself (callcenter-wait, S()),
            # and the next offer finds them there.
            log.warning("call.back_to_queue_failed", caller=caller, error=str(exc))

    async def _after_agent(self, caller: str) -> None:
        try:
            await self.telephony.redirect(caller, AFTER_AGENT_CONTEXT, "s")
        except AsteriskError as exc:
            log.warning("call.after_agent_failed", caller=caller, error=str(exc))
            await self._hangup_quietly(caller)

    async def _hangup_quietly(self, channel: str) -> None:
        try:
            await self.telephony.hangup(channel)
        except AsteriskError as exc:
            log.info("call.hangup_not_needed", channel=channel, error=str(exc))

    # -------------------------------------------------------------- tasks
    def _spawn_action(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        # AMI actions are started from synchronous event handlers; each runs
        # in a task this object owns (stop() cancels and awaits them).
        task = asyncio.create_task(coro)
        self._actions.add(task)
        task.add_done_callback(self._action_done)
        return task

    def _action_done(self, task: asyncio.Task[None]) -> None:
        self._actions.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("call.action_failed", error=repr(error))

    async def _timer_loop(self) -> None:
        while True:
            deadlines = [d for d in (self.acd.next_deadline(), self._next_month()) if d is not None]
            timeout = max(0.0, min(deadlines) - self.clock.now()) if deadlines else None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                self.timers_due()

    def follow_months(self, zone: tzinfo) -> None:
        """Start the extended agents' monthly counts again at 00:00 on the
        1st in ``zone``."""
        self._month_zone = zone
        self._month_ends = month_bounds(self.clock.wall(), zone)[1].timestamp()

    def timers_due(self) -> None:
        """The ACD's timers due now, and the month's start if it came."""
        now, wall = self.clock.now(), self.clock.wall()
        zone, ends = self._month_zone, self._month_ends
        if zone is not None and ends is not None and wall >= ends:
            start, end = month_bounds(wall, zone)
            log.info("acd.new_month", month=start.strftime("%Y-%m"))
            self._schedule(self.acd.new_month(now))
            self._month_ends = end.timestamp()
        self._schedule(self.acd.tick(now))

    def _next_month(self) -> float | None:
        """When (monotonic) the next month starts, if months are followed."""
        if self._month_ends is None:
            return None
        return self.clock.now() + (self._month_ends - self.clock.wall())


def row_of(record: CallRecord) -> InteractionRow:
    """The database row of a finished interaction."""

    def wall(t: float | None) -> float | None:
        return None if t is None else record.arrived_wall + (t - record.arrived_at)

    legs = []
    if record.caller_uniqueid:  # a callback has no caller channel of its own
        legs.append(
            Leg(
                record.caller_uniqueid,
                record.caller_channel,
                "caller",
                record.arrived_wall,
                wall(record.ended_at),
            )
        )
    if record.agent_leg is not None and record.answered_at is not None:
        legs.append(
            Leg(
                record.agent_leg,
                f"agent {record.agent_id}",
                "agent",
                wall(record.answered_at) or record.arrived_wall,
                wall(record.ended_at),
            )
        )
    return InteractionRow(
        interaction_id=record.interaction_id,
        node=record.node,
        linkedid=record.caller_uniqueid or None,
        queue=record.queue,
        caller_number=record.caller_number,
        language=record.language,
        priority=record.priority,
        enqueued_at=record.arrived_wall,
        answered_at=wall(record.answered_at),
        ended_at=wall(record.ended_at),
        agent_id=record.agent_id,
        outcome=record.phase.value,
        context={
            "dnis": record.dnis,
            "offers": record.offers,
            "abandoned_where": record.abandoned_where,
            "recording": record.recording,
            "callback_number": record.callback_number,
            "kind": record.kind,
            "origin": record.origin,
            "attempts": record.attempts,
            "disposition": record.disposition,
            "notes": record.notes,
            **record.context,
        },
        legs=tuple(legs),
        direction="outbound" if record.kind == "callback" else "inbound",
    )


async def _failed(error: AsteriskError) -> str:
    raise error


def _close(coroutine: Coroutine[Any, Any, str], _task: asyncio.Task[None]) -> None:
    coroutine.close()


def _caller_id_name(record: CallRecord) -> str:
    return f"{record.queue} {record.caller_number}".strip().replace('"', "")
