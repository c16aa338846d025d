"""Tier 1: ACD features beyond the basics of test_engine.py.

Policies, preferred skills, overflow, extended agents, capacity per channel,
ring timeout, callbacks (window, retry, failure), the engine-level state
table (every refused event changes nothing), audit reasons.
"""

from __future__ import annotations

import pytest

from callcenter.acd import (
    AgentProfile,
    AgentState,
    CallbackPolicy,
    Engine,
    InteractionRequest,
    Policy,
    QueueRules,
    Relaxation,
)
from callcenter.acd.callbacks import next_attempt
from callcenter.acd.ewt import HandleTimes
from callcenter.errors import ConfigError, IllegalTransition, RoutingError, StateError


def agent(agent_id: str, langs: tuple[str, ...] = ("fr",), **skills: int) -> AgentProfile:
    return AgentProfile(agent_id, skills, frozenset(langs))


def extended(agent_id: str, cap: int | None = 2, **skills: int) -> AgentProfile:
    return AgentProfile(agent_id, skills, extended=True, monthly_cap=cap)


def call(cid: str, queue: str = "support", **skills: int) -> InteractionRequest:
    return InteractionRequest(cid, queue, skills or {queue: 1})


# ----------------------------------------------------------------- policies
def test_least_occupied_and_round_robin() -> None:
    acd = Engine([QueueRules("support", wrapup=0, policy=Policy.LEAST_OCCUPIED)])
    acd.agent_login(0, agent("busy", support=5))
    acd.agent_login(0, agent("calm", support=5))
    [first] = acd.interaction_arrived(0, call("c1"))
    assert first.agent_id == "busy"  # both at 0 %: the longest idle
    acd.offer_answered(0, "c1", "busy")
    acd.interaction_ended(90, "c1")
    acd.tick(90)
    acd.agent_pause(90, "calm", "x")
    acd.agent_ready(95, "calm")  # ready more recently, but never busy
    [second] = acd.interaction_arrived(100, call("c2"))
    assert second.agent_id == "calm"
    assert "occupancy 0%" in second.reason

    rr = Engine([QueueRules("support", wrapup=0, policy=Policy.ROUND_ROBIN)])
    for name in ("a", "b", "c"):
        rr.agent_login(0, agent(name, support=5))
    served = []
    for i in range(4):
        [offer] = rr.interaction_arrived(i, call(f"c{i}"))
        served.append(offer.agent_id)
        rr.offer_answered(i, offer.interaction_id, offer.agent_id)
        rr.interaction_ended(i, offer.interaction_id)
        rr.tick(i)
    assert served == ["a", "b", "c", "a"]


def test_preferred_skills_win_over_the_policy() -> None:
    acd = Engine([QueueRules("support")])
    acd.agent_login(0, agent("plain", support=5))
    acd.agent_login(5, agent("expert", support=5, billing=7))
    request = InteractionRequest("c1", "support", {"support": 1}, preferred={"billing": 5})
    [offer] = acd.interaction_arrived(10, request)
    assert offer.agent_id == "expert"  # although "plain" is idle longer


# ------------------------------------------------------- relaxation, overflow
def test_overflow_moves_the_call_with_its_place_and_the_target_skills() -> None:
    acd = Engine(
        [
            QueueRules("vip", relaxations=(Relaxation(after=60, overflow_to="general"),)),
            QueueRules("general", sl_threshold=60, skills={"general": 1}),
        ]
    )
    acd.agent_login(0, agent("g", general=3))
    assert acd.interaction_arrived(0, call("c1", "vip", vip=5)) == []
    assert acd.next_deadline() == 60
    [offer] = acd.tick(60)
    assert (offer.interaction_id, offer.agent_id) == ("c1", "g")
    live = acd.interactions["c1"]
    assert (live.queue, live.request.queue, live.enqueued_at) == ("general", "vip", 0)
    assert acd.stats["vip"].overflowed_out == acd.stats["general"].overflowed_in == 1
    assert any(e.kind == "overflow" and "place kept" in e.reason for e in acd.audit)


def test_overflow_to_an_unknown_queue_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown queue"):
        Engine([QueueRules("a", relaxations=(Relaxation(after=5, overflow_to="b"),))])
    with pytest.raises(ConfigError, match="sorted"):
        QueueRules("a", relaxations=(Relaxation(after=9, min_level=1), Relaxation(after=5)))


# ---------------------------------------------------------- extended agents
def test_extended_agents_only_as_overflow_and_never_over_their_cap() -> None:
    acd = Engine(
        [QueueRules("support", wrapup=0, relaxations=(Relaxation(after=30, extended=True),))]
    )
    acd.agent_login(0, extended("shop", cap=1, support=5))
    assert acd.interaction_arrived(0, call("c1")) == []  # not before 30 s
    [offer] = acd.tick(30)
    assert offer.agent_id == "shop"
    assert "extended agent (overflow)" in offer.reason
    acd.offer_answered(31, "c1", "shop")
    acd.interaction_ended(60, "c1")
    acd.tick(60)
    acd.interaction_arrived(61, call("c2"))
    assert acd.tick(91) == []  # overflowing, but the cap (1) is reached
    assert acd.stats["support"].answered_extended == 1
    [again] = acd.new_month(100)
    assert (again.interaction_id, again.agent_id) == ("c2", "shop")


def test_extended_agents_at_once_for_named_skills_but_after_regular_ones() -> None:
    acd = Engine([QueueRules("experts", extended_skills=frozenset({"tax"}))])
    acd.agent_login(0, extended("adviser", tax=8))
    acd.agent_login(5, agent("regular", tax=2))
    [first] = acd.interaction_arrived(10, call("c1", "experts", tax=1))
    assert first.agent_id == "regular"  # regular agents first, even idle less long
    [second] = acd.interaction_arrived(11, call("c2", "experts", tax=1))
    assert second.agent_id == "adviser"  # a named skill: no need to wait


def test_an_abandoned_offer_does_not_count_against_the_cap() -> None:
    acd = Engine([QueueRules("q", extended_skills=frozenset({"q"}))])
    acd.agent_login(0, extended("x", cap=1, q=5))
    acd.interaction_arrived(1, call("c1", "q"))
    assert acd.agents["x"].month_count == 1
    acd.interaction_abandoned(2, "c1")
    assert acd.agents["x"].month_count == 0


# ------------------------------------------------------- capacity per channel
def test_chat_capacity_three_and_voice_exclusive() -> None:
    acd = Engine([QueueRules("web"), QueueRules("phone")])
    acd.agent_login(0, agent("a", web=5, phone=5))
    offers = [
        acd.interaction_arrived(
            i, InteractionRequest(f"chat{i}", "web", {"web": 1}, channel="chat")
        )
        for i in range(4)
    ]
    assert [len(o) for o in offers] == [1, 1, 1, 0]  # three at once, the fourth waits
    assert acd.agent_state("a") == "ready"
    assert acd.interaction_arrived(5, call("v1", "phone")) == []  # no voice while chatting
    for i in range(3):
        acd.offer_answered(6, f"chat{i}", "a")
    [next_chat] = acd.interaction_ended(7, "chat0")
    assert next_chat.interaction_id == "chat3"  # the freed slot takes the waiting chat
    with pytest.raises(RoutingError, match="chat"):
        acd.agent_logout(8, "a")


# ------------------------------------------------------------ ring timeout
def test_ring_timeout_in_the_engine_is_rona() -> None:
    acd = Engine([QueueRules("support", ring_timeout=15)])
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_login(1, agent("a2", support=5))
    acd.interaction_arrived(2, call("c1"))
    assert acd.next_deadline() == 17
    [offer] = acd.tick(17)
    assert offer.agent_id == "a2"
    assert (acd.agent_state("a1"), acd.agents["a1"].pause_reason) == ("paused", "no answer")
    acd.offer_answered(20, "c1", "a2")
    assert acd.next_deadline() is None  # the second ring timer died with the answer


# ---------------------------------------------------------------- callbacks
def test_callback_keeps_its_place_within_its_window() -> None:
    acd = Engine([QueueRules("support")])
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_pause(0, "a1", "break")
    acd.interaction_arrived(1, call("early"))
    acd.interaction_arrived(2, call("late"))
    assert acd.callback_requested(3, "early", not_before=100, not_after=200) == []
    [first] = acd.agent_ready(50, "a1")
    assert first.interaction_id == "late"  # the callback is not due yet
    acd.offer_answered(51, "late", "a1")
    acd.agent_login(60, agent("a2", support=5))
    acd.agent_pause(60, "a2", "break")
    acd.interaction_arrived(70, call("newer"))
    acd.agent_ready(99, "a2")  # takes "newer": the callback is still not due
    acd.agent_login(99, agent("a3", support=5))
    acd.agent_pause(99, "a3", "break")
    acd.interaction_arrived(99, call("newest"))
    acd.agent_ready(100, "a3")
    assert acd.interactions["early"].offered_to == "a3"  # due: its original place first


def test_callback_expires_when_its_window_closes() -> None:
    acd = Engine([QueueRules("support")])
    acd.interaction_arrived(0, call("cb"))
    acd.callback_requested(1, "cb", not_before=10, not_after=20)
    acd.tick(10)
    acd.tick(20)
    assert "cb" not in acd.interactions
    assert acd.stats["support"].callbacks_expired == 1


def test_a_callback_whose_offer_is_cancelled_after_its_window_expires_never_offered() -> None:
    acd = Engine([QueueRules("support")])
    acd.agent_login(0, agent("a1", support=5))
    request = InteractionRequest("cb", "support", {"support": 1}, not_after=20, kind="callback")
    [offer] = acd.interaction_arrived(0, request)
    assert offer.agent_id == "a1"
    assert acd.tick(20) == []  # its "expire" timer goes by while it rings
    assert acd.offer_cancelled(25, "cb", "a1", "not placed: AMI down") == []
    assert "cb" not in acd.interactions
    assert acd.waiting_count() == 0
    assert acd.stats["support"].callbacks_expired == 1
    assert [(e.kind, e.interaction_id) for e in acd.audit][-2:] == [
        ("cancelled", "cb"),
        ("expired", "cb"),
    ]
    assert acd.redispatch(26) == []  # telephony back: nothing to offer
    assert acd.agent_login(27, agent("a2", support=5)) == []
    assert acd.tick(1000) == []
    assert [e.kind for e in acd.audit].count("offer") == 1


def test_an_agent_ready_at_a_callbacks_window_end_does_not_get_it() -> None:
    acd = Engine([QueueRules("support")])
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_pause(0, "a1", "break")
    acd.interaction_arrived(0, call("cb"))
    acd.callback_requested(1, "cb", not_after=20)
    acd.interaction_arrived(5, call("c2"))
    # Ready at the window's end, before the engine's "expire" timer is ticked.
    [offer] = acd.agent_ready(20, "a1")
    assert offer.interaction_id == "c2"  # the older callback is expired, not offered
    assert "cb" not in acd.interactions
    assert acd.stats["support"].callbacks_expired == 1
    assert [e.kind for e in acd.audit if e.interaction_id == "cb"][-1] == "expired"
    assert acd.tick(20) == []  # its timer finds nothing left to expire
    assert acd.stats["support"].callbacks_expired == 1


def test_callback_retry_policy() -> None:
    policy = CallbackPolicy(max_attempts=2, retry_delay={"busy": 60.0, "no_answer": 300.0})
    assert next_attempt(policy, 1, "busy", 100) == 160
    assert next_attempt(policy, 1, "no_answer", 100) == 400
    assert next_attempt(policy, 2, "busy", 100) is None
    acd = Engine([QueueRules("support", wrapup=0)], callbacks=policy)
    acd.agent_login(0, agent("a1", support=5))
    request = InteractionRequest("cb", "support", {"support": 1}, enqueued_at=-50, kind="callback")
    [offer] = acd.interaction_arrived(0, request)
    acd.offer_answered(1, "cb", offer.agent_id)
    assert acd.callback_failed(30, "cb", "busy") == []
    assert acd.interactions["cb"].waiting
    assert acd.interactions["cb"].enqueued_at == -50  # place kept
    [retry] = acd.tick(90)
    assert retry.interaction_id == "cb"
    acd.offer_answered(91, "cb", "a1")
    acd.callback_failed(95, "cb", "no_answer")
    assert "cb" not in acd.interactions
    assert acd.stats["support"].callbacks_failed == 1
    assert [e.kind for e in acd.audit][-1] == "callback_failed"


# --------------------------------------------- engine-level state table
def _in_state(state: AgentState) -> Engine:
    acd = Engine([QueueRules("support", wrapup=30)])
    acd.agent_login(0, agent("a", support=5))
    if state is AgentState.LOGGED_OUT:
        acd.agent_logout(1, "a")
    elif state is AgentState.PAUSED:
        acd.agent_pause(1, "a", "lunch")
    elif state is not AgentState.READY:
        acd.interaction_arrived(1, call("c"))
        if state is not AgentState.RESERVED:
            acd.offer_answered(2, "c", "a")
        if state is AgentState.WRAP_UP:
            acd.interaction_ended(3, "c")
    assert acd.agent_state("a") == state.value
    return acd


EVENTS = {
    "login": lambda acd: acd.agent_login(9, agent("a", support=5)),
    "ready": lambda acd: acd.agent_ready(9, "a"),
    "pause": lambda acd: acd.agent_pause(9, "a", "x"),
    "logout": lambda acd: acd.agent_logout(9, "a"),
    "wrapup_ended": lambda acd: acd.wrapup_ended(9, "a"),
    "answer": lambda acd: acd.offer_answered(9, "c", "a"),
    "no_answer": lambda acd: acd.offer_failed(9, "c", "a", "no answer"),
    "end": lambda acd: acd.interaction_ended(9, "c"),
}


@pytest.mark.parametrize("state", list(AgentState))
@pytest.mark.parametrize("event", list(EVENTS))
def test_every_engine_event_in_every_state(state: AgentState, event: str) -> None:
    acd = _in_state(state)
    live = acd.agents["a"]
    before = (live.state, live.since, live.pause_reason, live.interaction, live.profile)
    calls_before = {k: (c.offered_to, c.answered_by) for k, c in acd.interactions.items()}
    refusal: StateError | None = None
    try:
        EVENTS[event](acd)
    except StateError as exc:  # the table, or "end" with no call (RoutingError)
        refusal = exc
    refused = refusal is not None
    if isinstance(refusal, IllegalTransition):
        assert refusal.state == state.value
    if refused:
        after = (live.state, live.since, live.pause_reason, live.interaction, live.profile)
        assert after == before
        assert {k: (c.offered_to, c.answered_by) for k, c in acd.interactions.items()} == (
            calls_before
        )
    else:
        assert isinstance(live.state, AgentState)


def test_refused_events_are_state_errors() -> None:
    assert issubclass(IllegalTransition, StateError)
    assert issubclass(RoutingError, StateError)


# ------------------------------------------------------------- EWT, audit
def test_handle_times_rolling_mean_and_ewt_by_position() -> None:
    times = HandleTimes(default=100.0, size=3)
    assert times.mean == 100.0
    for seconds in (10.0, 20.0, 30.0, 40.0):
        times.add(seconds)
    assert times.mean == pytest.approx(30.0)
    acd = Engine([QueueRules("support", wrapup=0, default_handle_time=60)])
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_login(0, agent("a2", ("en",), support=5))  # wrong language: not staff for it
    acd.interaction_arrived(1, call("talking"))
    acd.offer_answered(1, "talking", "a1")
    acd.interaction_arrived(2, InteractionRequest("vip", "support", {"support": 1}, priority=1))
    acd.interaction_arrived(3, call("c1"))
    assert acd.position("vip") == 1
    assert acd.position("c1") == 2
    assert acd.expected_wait(3, "c1") == pytest.approx(2 * 60 / 1)


def test_every_offer_says_why_this_agent_or_why_this_call() -> None:
    acd = Engine([QueueRules("support", wrapup=0)])
    acd.agent_login(0, agent("a1", support=5))
    [arrival] = acd.interaction_arrived(1, call("c1"))
    assert arrival.reason.startswith("policy longest_idle: agent a1 idle 1.0 s")
    acd.interaction_arrived(2, call("c2"))
    acd.offer_answered(3, "c1", "a1")
    # No wrap-up: the agent is offered the next call by the end itself.
    [freed] = acd.interaction_ended(10, "c1")
    assert acd.tick(10) == []
    assert freed.reason.startswith("highest score 0.40 = priority 0*1000 + wait 8.0 s / SL 20 s")
    audit, _states = acd.take_records()
    assert [e.kind for e in audit] == ["offer", "answered", "ended", "offer"]
