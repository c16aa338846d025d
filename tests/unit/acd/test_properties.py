"""Tier 1: ACD invariants over random event sequences (hypothesis).

After every event (and the timers due at its time):

* no agent holds two voice calls, and a voice holder is reserved, on call or
  in wrap-up with that call;
* every offer made was to an agent eligible at that moment at the call's
  relaxation level (skills, language, extended overflow and cap);
* within one queue and priority, an offer never skips an older call the
  same agent could have taken;
* no waiting call is left while a ready agent could take it;
* extended agents never exceed their monthly cap;
* nothing is lost: every interaction that arrived has ended, been
  abandoned, or is still known to the engine (waiting, ringing, talking).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.acd import (
    AgentProfile,
    AgentState,
    Engine,
    InteractionRequest,
    OfferDecision,
    Policy,
    QueueRules,
    Relaxation,
)
from callcenter.acd.router import eligible
from callcenter.errors import StateError

CAP = 2

AGENTS = [
    AgentProfile("a0", {"sales": 8}, frozenset({"fr"})),
    AgentProfile("a1", {"sales": 3, "tech": 6}, frozenset({"fr", "en"})),
    AgentProfile("a2", {"tech": 9}, frozenset({"en"})),
    AgentProfile("a3", {"sales": 5, "tech": 2}, frozenset({"fr"})),
    AgentProfile(
        "x0", {"sales": 9, "tech": 9}, frozenset({"fr", "en"}), extended=True, monthly_cap=CAP
    ),
]

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *("arrive", "arrive", "answer", "fail", "abandon", "end", "wrapup", "ready"),
                *("pause", "login", "logout", "tick", "callback", "month"),
            ]
        ),
        st.integers(0, 7),
        st.integers(0, 40),
    ),
    max_size=70,
)


def _engine(policy: Policy) -> Engine:
    return Engine(
        [
            QueueRules(
                "sales",
                wrapup=5,
                policy=policy,
                relaxations=(
                    Relaxation(after=10, min_level=3),
                    Relaxation(after=25, extended=True),
                ),
            ),
            QueueRules(
                "tech",
                sl_threshold=60,
                wrapup=0,
                policy=policy,
                relaxations=(Relaxation(after=30, overflow_to="sales"),),
                skills={"tech": 2},
            ),
        ]
    )


def _request(n: int, pick: int) -> InteractionRequest:
    queue = "sales" if pick % 2 == 0 else "tech"
    return InteractionRequest(
        f"node{pick % 3}-{1_700_000_000 + n}.{pick}",
        queue,
        {queue: 1 + (pick * 3) % 9},
        "fr" if pick % 5 else "en",
        priority=1 if pick == 7 else 0,
    )


def _check_offer(acd: Engine, at: float, offer: OfferDecision) -> None:
    call = acd.interactions[offer.interaction_id]
    agent = acd.agents[offer.agent_id]
    req = acd._req(call, at)  # the engine's own rule
    assert call.request.language in agent.profile.languages
    assert all(agent.level(skill) >= level for skill, level in req.skills.items()), (
        "offered to an agent lacking a required skill at the current relaxation level"
    )
    if agent.extended:
        assert req.extended, "an extended agent got a call that is not overflowing"
    # FIFO within a queue and a priority, for the agent chosen.
    for other in acd.interactions.values():
        if (
            other.waiting
            and other.queue == call.queue
            and other.request.priority == call.request.priority
            and (other.enqueued_at, other.sequence) < (call.enqueued_at, call.sequence)
        ):
            assert not eligible(agent, other, acd._req(other, at), at), (
                f"{call.interaction_id} served before older {other.interaction_id}"
            )


def _check_state(acd: Engine, at: float) -> None:
    holders: dict[str, str] = {}
    for call in acd.interactions.values():
        holder = call.offered_to or call.answered_by
        if holder is None:
            continue
        assert holder not in holders, "an agent holds two voice calls"
        holders[holder] = call.interaction_id
        agent = acd.agents[holder]
        assert agent.interaction == call.interaction_id
        expected = AgentState.RESERVED if call.offered_to else AgentState.ON_CALL
        assert agent.state is expected
    for agent in acd.agents.values():
        if agent.state in (AgentState.RESERVED, AgentState.ON_CALL):
            assert agent.agent_id in holders
        cap = agent.profile.monthly_cap
        if cap is not None:
            assert agent.month_count <= cap, "an extended agent went over the cap"
        if agent.state is AgentState.READY:
            for call in acd.interactions.values():
                if call.waiting:
                    assert not acd.can_take(agent.agent_id, call.interaction_id, at), (
                        f"{call.interaction_id} waits while {agent.agent_id} is ready for it"
                    )


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(Policy)), EVENTS)
def test_invariants_hold_under_any_event_sequence(
    policy: Policy, events: list[tuple[str, int, int]]
) -> None:
    acd = _engine(policy)
    for profile in AGENTS:  # everybody starts logged in: the interesting cases come sooner
        acd.agent_login(0.0, profile)
    now = 0.0
    arrived: set[str] = set()
    gone: set[str] = set()  # ended or abandoned
    extended_answers = 0
    for n, (kind, pick, step) in enumerate(events):
        now += step / 4
        offers: list[OfferDecision] = []
        # Timers due before this event happen first, as they would live.
        deadline = acd.next_deadline()
        while deadline is not None and deadline <= now:
            offers += acd.tick(deadline)
            for offer in offers:
                _check_offer(acd, deadline, offer)
            offers = []
            _check_state(acd, deadline)
            deadline = acd.next_deadline()
        agent = AGENTS[pick % len(AGENTS)]
        calls = sorted(acd.interactions.values(), key=lambda c: c.sequence)
        call = calls[pick % len(calls)] if calls else None
        try:
            if kind == "arrive":
                request = _request(n, pick)
                offers = acd.interaction_arrived(now, request)
                arrived.add(request.interaction_id)
            elif kind == "login":
                offers = acd.agent_login(now, agent)
            elif kind == "logout":
                offers = acd.agent_logout(now, agent.agent_id)
            elif kind == "ready":
                offers = acd.agent_ready(now, agent.agent_id)
            elif kind == "pause":
                offers = acd.agent_pause(now, agent.agent_id, "break")
            elif kind == "wrapup":
                offers = acd.wrapup_ended(now, agent.agent_id)
            elif kind == "month":
                offers = acd.new_month(now)
                extended_answers = 0
            elif kind == "tick":
                offers = acd.tick(now)
            elif call is None:
                continue
            elif kind == "answer" and call.offered_to is not None:
                holder = acd.agents[call.offered_to]
                offers = acd.offer_answered(now, call.interaction_id, holder.agent_id)
                extended_answers += holder.extended
                assert extended_answers <= CAP
            elif kind == "fail" and call.offered_to is not None:
                offers = acd.offer_failed(now, call.interaction_id, call.offered_to, "no answer")
            elif kind == "abandon" and call.answered_by is None:
                offers = acd.interaction_abandoned(now, call.interaction_id)
                gone.add(call.interaction_id)
            elif kind == "end" and call.answered_by is not None:
                offers = acd.interaction_ended(now, call.interaction_id)
                gone.add(call.interaction_id)
            elif kind == "callback" and call.waiting:
                offers = acd.callback_requested(now, call.interaction_id, not_before=now + 5)
        except StateError:
            pass  # an illegal event: refused, nothing changed (checked below)
        for offer in offers:
            _check_offer(acd, now, offer)
        _check_state(acd, now)
        # Nothing is lost.
        assert arrived == gone | set(acd.interactions)
        assert not gone & set(acd.interactions)
