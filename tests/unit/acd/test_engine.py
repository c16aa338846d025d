"""Tier 1: the ACD engine, pure and synchronous."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.acd import (
    TRANSITIONS,
    AgentEvent,
    AgentProfile,
    AgentState,
    Engine,
    InteractionRequest,
    Policy,
    QueueRules,
    Relaxation,
)
from callcenter.acd.states import next_state
from callcenter.errors import IllegalTransition, RoutingError


def engine(policy: Policy = Policy.LONGEST_IDLE, **rules: object) -> Engine:
    return Engine(
        [
            QueueRules("support", policy=policy, **rules),  # type: ignore[arg-type]
            QueueRules("ventes", sl_threshold=20.0),
            QueueRules("slow", sl_threshold=120.0),
        ]
    )


def agent(agent_id: str, langs: tuple[str, ...] = ("fr",), **skills: int) -> AgentProfile:
    return AgentProfile(agent_id, skills, frozenset(langs))


def call(
    interaction_id: str, queue: str = "support", priority: int = 0, lang: str = "fr", **skills: int
) -> InteractionRequest:
    return InteractionRequest(interaction_id, queue, skills or {queue: 1}, lang, priority)


# ------------------------------------------------------------ state table
@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(list(AgentState), list(AgentEvent)))
)
def test_every_pair_is_either_in_the_table_or_refused(state: AgentState, event: AgentEvent) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state(state, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(IllegalTransition, match=event.value):
            next_state(state, event)


def test_illegal_event_leaves_agent_unchanged() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_pause(1, "a1", "lunch")
    before = (acd.agent_state("a1"), acd.agents["a1"].pause_reason, acd.agents["a1"].since)
    with pytest.raises(IllegalTransition):
        acd.wrapup_ended(2, "a1")
    assert (acd.agent_state("a1"), acd.agents["a1"].pause_reason, acd.agents["a1"].since) == before


# --------------------------------------------------------------- routing
def test_new_call_goes_to_longest_idle_eligible_agent() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_login(1, agent("a2", support=9))
    acd.agent_login(2, agent("a3", ventes=9))
    [offer] = acd.interaction_arrived(10, call("c1"))
    assert offer.agent_id == "a1"
    assert "longest_idle" in offer.reason
    assert acd.agent_state("a1") == "reserved"


def test_best_proficiency_policy() -> None:
    acd = engine(Policy.BEST_PROFICIENCY)
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_login(1, agent("a2", support=9))
    [offer] = acd.interaction_arrived(10, call("c1"))
    assert offer.agent_id == "a2"


def test_skill_level_and_language_are_required() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=3))
    acd.agent_login(0, agent("a2", ("en",), support=9))
    assert acd.interaction_arrived(1, call("c1", support=5)) == []
    assert acd.position("c1") == 1


def test_relaxation_lowers_the_level_after_a_wait() -> None:
    acd = engine(relaxations=(Relaxation(after=30, min_level=1),))
    acd.agent_login(0, agent("a1", support=2))
    assert acd.interaction_arrived(0, call("c1", support=6)) == []
    assert acd.next_deadline() == 30
    assert acd.tick(29) == []
    [offer] = acd.tick(30)
    assert (offer.interaction_id, offer.agent_id) == ("c1", "a1")
    assert any(e.kind == "relaxed" for e in acd.audit)


def test_freed_agent_takes_vip_first_then_the_call_nearest_its_sl_target() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=5, ventes=5))
    acd.agent_pause(0, "a1", "break")
    acd.interaction_arrived(0, InteractionRequest("slow1", "slow", {"support": 1}))
    acd.interaction_arrived(5, call("v1", "ventes"))
    acd.interaction_arrived(8, call("vip", "support", priority=1))
    [first] = acd.agent_ready(20, "a1")
    assert first.interaction_id == "vip"
    acd.offer_answered(21, "vip", "a1")
    acd.interaction_ended(60, "vip")
    [second] = acd.wrapup_ended(61, "a1")
    # ventes waited 56 s of a 20 s target (2.8), slow 61 s of 120 s (0.5).
    assert second.interaction_id == "v1"


def test_rona_pauses_agent_and_call_keeps_its_place() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_login(1, agent("a2", support=5))
    acd.interaction_arrived(2, call("c1"))
    [next_offer] = acd.offer_failed(17, "c1", "a1", "no answer")
    assert next_offer.agent_id == "a2"
    assert acd.agent_state("a1") == "paused"
    assert acd.agents["a1"].pause_reason == "no answer"
    assert acd.interactions["c1"].enqueued_at == 2


def test_abandon_while_ringing_frees_the_agent_for_the_next_call() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=5))
    acd.interaction_arrived(1, call("c1"))
    acd.interaction_arrived(2, call("c2"))
    [offer] = acd.interaction_abandoned(3, "c1")
    assert (offer.interaction_id, offer.agent_id) == ("c2", "a1")
    with pytest.raises(RoutingError):
        acd.position("c1")


def test_wrapup_timer_and_pause_requested_during_call() -> None:
    acd = Engine([QueueRules("support", wrapup=15)])
    acd.agent_login(0, agent("a1", support=5))
    acd.interaction_arrived(1, call("c1"))
    acd.offer_answered(2, "c1", "a1")
    acd.interaction_arrived(3, call("c2"))
    acd.agent_pause(4, "a1", "lunch")
    assert acd.agent_state("a1") == "on_call"
    acd.interaction_ended(30, "c1")
    assert acd.next_deadline() == 45
    assert acd.tick(45) == []  # the pending pause wins over the waiting call
    assert (acd.agent_state("a1"), acd.agents["a1"].pause_reason) == ("paused", "lunch")


def test_wrapup_ends_by_itself_and_serves_the_queue() -> None:
    acd = Engine([QueueRules("support", wrapup=10)])
    acd.agent_login(0, agent("a1", support=5))
    acd.interaction_arrived(1, call("c1"))
    acd.offer_answered(2, "c1", "a1")
    acd.interaction_ended(30, "c1")
    acd.interaction_arrived(31, call("c2"))
    [offer] = acd.tick(40)
    assert offer.interaction_id == "c2"


def test_expected_wait_uses_position_staff_and_handle_time() -> None:
    acd = Engine([QueueRules("support", default_handle_time=120)])
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_login(0, agent("a2", support=5))
    acd.agent_pause(0, "a1", "break")
    acd.agent_pause(0, "a2", "break")
    for i in range(4):
        acd.interaction_arrived(i, call(f"c{i}"))
    assert acd.position("c3") == 4
    assert acd.expected_wait(10, "c3") == pytest.approx(4 * 120 / 2)
    acd.agent_logout(11, "a1")
    acd.agent_logout(11, "a2")
    assert acd.expected_wait(12, "c3") is None


def test_unknown_ids_are_routing_errors() -> None:
    acd = engine()
    with pytest.raises(RoutingError, match="unknown queue"):
        acd.interaction_arrived(0, InteractionRequest("x", "nope"))
    with pytest.raises(RoutingError, match="unknown agent"):
        acd.agent_ready(0, "ghost")
    acd.agent_login(0, agent("a1", support=5))
    acd.interaction_arrived(0, call("c1"))
    acd.agent_login(0, agent("a2", support=5))
    with pytest.raises(RoutingError, match="not offered"):
        acd.offer_answered(1, "c1", "a2")


# -------------------------------------------------------------- properties
KINDS = [
    "arrive",
    "answer",
    "fail",
    "abandon",
    "end",
    "ready",
    "pause",
    "tick",
    "login",
    "aside",
    "back",
]
ACTIONS = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 5), st.integers(0, 2)),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(ACTIONS)
def test_invariants_hold_under_any_sequence(actions: list[tuple[str, int, int]]) -> None:
    acd = Engine([QueueRules("support", wrapup=5), QueueRules("ventes", wrapup=0)])
    profiles = [
        agent("a0", support=5),
        agent("a1", support=2, ventes=7),
        agent("a2", ("fr", "en"), support=9, ventes=1),
    ]
    now = 0.0
    calls = 0
    for kind, n, which in actions:
        now += 1
        a = profiles[which].agent_id
        cid = f"c{n}"
        try:
            if kind == "login":
                acd.agent_login(now, profiles[which])
            elif kind == "arrive":
                calls += 1
                acd.interaction_arrived(
                    now, call(f"c{calls}", ["support", "ventes"][n % 2], lang=["fr", "en"][n % 2])
                )
            elif kind == "answer":
                acd.offer_answered(now, cid, a)
            elif kind == "fail":
                acd.offer_failed(now, cid, a, "no answer")
            elif kind == "abandon":
                acd.interaction_abandoned(now, cid)
            elif kind == "end":
                acd.interaction_ended(now, cid)
            elif kind == "ready":
                acd.agent_ready(now, a)
            elif kind == "pause":
                acd.agent_pause(now, a, "break")
            elif kind == "aside":
                acd.interaction_set_aside(now, cid)
            elif kind == "back":
                acd.interaction_back(now, cid)
            else:
                acd.tick(now + n)
                now += n
        except (RoutingError, IllegalTransition):
            pass
        _check(acd, now)


def _check(acd: Engine, now: float) -> None:
    holders: dict[str, str] = {}
    for call_ in acd.interactions.values():
        holder = call_.offered_to or call_.answered_by
        if holder is not None:
            assert holder not in holders, "an agent holds two voice calls"
            holders[holder] = call_.interaction_id
            agent_ = acd.agents[holder]
            assert agent_.state in (AgentState.RESERVED, AgentState.ON_CALL)
            assert call_.request.language in agent_.profile.languages
    for agent_ in acd.agents.values():
        if agent_.state in (AgentState.RESERVED, AgentState.ON_CALL):
            assert agent_.agent_id in holders
        if agent_.state is AgentState.READY:
            for call_ in acd.interactions.values():
                rules = acd.queues[call_.request.queue]
                required = call_.required(rules, now)
                fits = call_.request.language in agent_.profile.languages and all(
                    agent_.level(s) >= lvl for s, lvl in required.items()
                )
                assert not (call_.waiting and not call_.aside and fits), (
                    "a call waits while a fit agent is ready"
                )
    in_line = [c for c in acd.interactions.values() if c.waiting and not c.aside]
    assert acd.waiting_count() == len(in_line), "a call set aside is in line, or lost its place"


def test_a_call_set_aside_is_offered_to_nobody_and_comes_back_in_its_place() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_pause(0, "a1", "break")
    acd.interaction_arrived(1, call("c1"))
    acd.interaction_arrived(3, call("c2"))
    assert acd.interaction_set_aside(4, "c1") == []
    assert acd.position("c2") == 1
    [offer] = acd.agent_ready(5, "a1")
    assert offer.interaction_id == "c2"  # not c1: it is aside
    acd.agent_login(6, agent("a2", support=5))
    acd.interaction_arrived(7, call("c3"))  # a2 takes c3 at once: c1 is aside
    acd.agent_login(8, agent("a3", support=5))
    acd.agent_pause(8, "a3", "break")
    acd.interaction_arrived(9, call("c4"))
    assert acd.interaction_back(10, "c1") == []  # nobody free
    assert acd.position("c1") == 1
    assert acd.interactions["c1"].enqueued_at == 1
    [first] = acd.agent_ready(11, "a3")
    assert first.interaction_id == "c1"  # ahead of c4, which came later


def test_set_aside_and_back_refuse_a_call_in_the_wrong_state_and_change_nothing() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=5))
    acd.interaction_arrived(1, call("c1"))  # offered to a1 at once
    with pytest.raises(RoutingError, match="not waiting"):
        acd.interaction_set_aside(2, "c1")
    assert acd.interactions["c1"].offered_to == "a1"
    with pytest.raises(RoutingError, match="not set aside"):
        acd.interaction_back(2, "c1")
    acd.interaction_arrived(3, call("c2"))
    acd.interaction_set_aside(4, "c2")
    with pytest.raises(RoutingError, match="not waiting"):
        acd.interaction_set_aside(5, "c2")
    assert acd.interactions["c2"].aside
    assert acd.waiting_count() == 0


def test_relaxation_due_while_aside_is_applied_when_the_call_is_back() -> None:
    acd = engine(relaxations=(Relaxation(after=30, min_level=1),))
    acd.agent_login(0, agent("a1", support=2))
    assert acd.interaction_arrived(0, call("c1", support=6)) == []
    acd.interaction_set_aside(10, "c1")
    assert acd.tick(30) == []  # relaxed, but aside: offered to nobody
    [offer] = acd.interaction_back(40, "c1")
    assert (offer.interaction_id, offer.agent_id) == ("c1", "a1")


def test_a_callback_asked_while_aside_keeps_the_call_s_place() -> None:
    acd = engine()
    acd.interaction_arrived(1, call("c1"))
    acd.interaction_set_aside(2, "c1")
    acd.callback_requested(3, "c1")
    assert not acd.interactions["c1"].aside
    [offer] = acd.agent_login(4, agent("a1", support=5))
    assert offer.interaction_id == "c1"


def test_offer_not_placed_keeps_agent_ready_and_redispatch_offers_again() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=5))
    acd.interaction_arrived(1, call("c1"))
    assert acd.offer_cancelled(2, "c1", "a1", "AMI down") == []
    assert acd.agent_state("a1") == "ready"
    assert acd.interactions["c1"].waiting
    [offer] = acd.redispatch(9)
    assert (offer.interaction_id, offer.agent_id) == ("c1", "a1")


def test_scheduled_callback_waits_for_its_time_and_keeps_its_place() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_pause(0, "a1", "break")
    callback = InteractionRequest(
        "cb1", "support", {"support": 1}, enqueued_at=1, not_before=50, kind="callback"
    )
    assert acd.interaction_arrived(10, callback) == []
    acd.interaction_arrived(20, call("c2"))
    [first] = acd.agent_ready(30, "a1")
    assert first.interaction_id == "c2"  # the callback is not due yet
    acd.offer_answered(31, "c2", "a1")
    acd.interaction_ended(40, "c2")
    assert acd.next_deadline() == 50  # due time before wrap-up end (40 + 10)
    [due] = acd.tick(50)
    assert due.interaction_id == "cb1"
    assert acd.interactions["cb1"].enqueued_at == 1


def test_take_records_gives_decisions_and_final_agent_states_once() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_pause(1, "a1", "lunch")
    acd.agent_ready(2, "a1")
    acd.interaction_arrived(3, call("c1"))
    audit, states = acd.take_records()
    assert [e.kind for e in audit] == ["offer"]
    assert [(s.agent_id, s.state, s.since) for s in states] == [("a1", "reserved", 3)]
    assert acd.take_records() == ([], [])
    acd.offer_failed(4, "c1", "a1", "no answer")
    _audit, [paused] = acd.take_records()
    assert (paused.state, paused.reason) == ("paused", "no answer")


def test_a_change_handed_an_earlier_instant_never_moves_the_agent_back_in_time() -> None:
    """States are stored in the order of their start: a pause stamped
    before the login it follows (a restart restoring agents) starts with it."""
    acd = engine()
    acd.agent_login(10, agent("a1", support=5))
    acd.take_records()
    acd.agent_pause(9.5, "a1", "lunch")
    _audit, [paused] = acd.take_records()
    assert (paused.state, paused.since) == ("paused", 10)
    assert acd.agents["a1"].since == 10


def test_ending_wrap_up_of_an_agent_on_a_call_with_a_pause_pending_is_refused() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=5))
    assert len(acd.interaction_arrived(1, call("c1"))) == 1
    acd.offer_answered(2, "c1", "a1")
    acd.agent_pause(3, "a1", "break")  # pending: after the call
    with pytest.raises(IllegalTransition):
        acd.wrapup_ended(4, "a1")
    assert acd.agent_state("a1") == "on_call"
    assert acd.agents["a1"].interaction == "c1"


def test_a_call_for_a_named_agent_waits_for_that_agent() -> None:
    acd = engine()
    acd.agent_login(0, agent("a1", support=5))
    acd.agent_login(0, agent("a2", support=5))
    acd.agent_pause(0, "a2", "break")
    named = InteractionRequest("c1", "support", {"support": 1}, agent_id="a2")
    assert acd.interaction_arrived(1, named) == []  # a1 is ready, but not a2
    [offer] = acd.agent_ready(5, "a2")
    assert (offer.interaction_id, offer.agent_id) == ("c1", "a2")
