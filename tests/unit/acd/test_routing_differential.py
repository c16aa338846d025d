"""Tier 1: the indexed routing decides exactly as a plain scan of everything.

``router.best_call_for`` (a freed agent's next call) and ``router.pick_agent``
over ``AgentIndex.ready_for`` (a new call's agent) read indexes, per-agent
line lists, priority blocks and shortcuts over relaxation. The reference
below reads nothing but the engine's agents and calls and applies the
documented rules literally:

* agent freed: of every waiting call the agent is :func:`eligible` for, the
  highest ``priority * 1000 + wait / SL threshold``, ties to the earlier
  arrival;
* call arrives: of every ready eligible agent, in the order they became
  ready, the smallest (extended, lacks preferred skills, policy key).

Two engines get the same random events (hypothesis); one routes with the
reference. Every event must give the same offers, and both engines end in
the same state. Waits stay far below 1,000 SL thresholds (the formula's
priority term then always dominates, as the per-line service order
assumes).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

import pytest
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
    router,
)
from callcenter.acd import engine as engine_module
from callcenter.acd.model import LiveAgent, LiveInteraction
from callcenter.acd.queues import Requirement
from callcenter.acd.router import (
    PRIORITY_WEIGHT,
    AgentChoice,
    CallChoice,
    WaitingLines,
    eligible,
    prefers,
)
from callcenter.errors import StateError

SKILLS = ("sales", "tech", "vip")


def _queues(policy: Policy) -> list[QueueRules]:
    return [
        QueueRules(
            "sales",
            sl_threshold=20,
            wrapup=2,
            policy=policy,
            relaxations=(
                Relaxation(after=8, min_level=5),
                Relaxation(after=20, min_level=2),
                Relaxation(after=35, extended=True),
            ),
        ),
        QueueRules(
            "tech",
            sl_threshold=60,
            wrapup=0,
            policy=policy,
            relaxations=(Relaxation(after=15, overflow_to="backup"),),
            extended_skills=frozenset({"vip"}),
        ),
        QueueRules(
            "backup",
            sl_threshold=30,
            wrapup=1,
            policy=policy,
            skills={"tech": 2},
            relaxations=(Relaxation(after=40, min_level=1, extended=True),),
        ),
        QueueRules("flat", sl_threshold=15, wrapup=0, policy=policy),
    ]


PROFILES = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), min_size=1),
        st.sampled_from([("fr",), ("en",), ("fr", "en")]),
        st.booleans(),  # extended
        st.sampled_from([{"voice": 1}, {"voice": 1, "chat": 2}]),
    ),
    min_size=1,
    max_size=7,
)

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *("arrive", "arrive", "arrive", "answer", "answer", "fail", "abandon"),
                *("end", "end", "wrapup", "ready", "ready", "pause", "logout", "login"),
                *("tick", "callback", "month", "redispatch"),
            ]
        ),
        st.integers(0, 10_000),
        st.sampled_from([0.0, 0.0, 0.0, 0.5, 1.0, 2.5, 6.0, 12.0]),
    ),
    max_size=120,
)


def _request(n: int, pick: int) -> InteractionRequest:
    queue = ("sales", "tech", "backup", "flat")[pick % 4]
    skills = {SKILLS[pick % 3]: 1 + pick % 9}
    if pick % 7 == 0:
        skills[SKILLS[(pick // 7) % 3]] = 1 + pick % 4
    return InteractionRequest(
        f"n{n}",
        queue,
        skills,
        "fr" if pick % 5 else "en",
        priority=(pick // 11) % 3 if pick % 3 == 0 else 0,
        enqueued_at=None if pick % 13 else float(n % 4),  # a transfer keeps its place
        not_before=None if pick % 17 else 3.0 + n % 5,
        agent_id=None if pick % 19 else f"a{pick % 3}",
        channel="chat" if pick % 9 == 0 else "voice",
        preferred={} if pick % 6 else {SKILLS[pick % 2]: 6},
    )


# ----------------------------------------------------------- the reference
def _reference_call(engine: Engine) -> Callable[..., CallChoice | None]:
    def best_call_for(
        agent: LiveAgent,
        at: float,
        waiting: WaitingLines,
        requirement_of: Callable[[LiveInteraction, float], Requirement],
    ) -> CallChoice | None:
        best: LiveInteraction | None = None
        best_key = (0.0, 0)
        for call in engine.interactions.values():
            if not call.waiting or not eligible(agent, call, requirement_of(call, at), at):
                continue
            score = (
                call.request.priority * PRIORITY_WEIGHT
                + (at - call.enqueued_at) / engine.queues[call.queue].sl_threshold
            )
            key = (-score, call.sequence)
            if best is None or key < best_key:
                best, best_key = call, key
        return None if best is None else CallChoice(best, "reference")

    return best_call_for


def _policy_key(
    policy: Policy, agent: LiveAgent, req: Requirement, at: float, last_offer: Mapping[str, int]
) -> tuple[float, ...]:
    proficiency = sum(agent.level(skill) for skill in req.skills)
    if policy is Policy.LONGEST_IDLE:
        return (agent.idle_since, -proficiency)
    if policy is Policy.BEST_PROFICIENCY:
        return (-proficiency, agent.idle_since)
    if policy is Policy.LEAST_OCCUPIED:
        return (agent.occupancy(at), agent.idle_since)
    return (last_offer.get(agent.agent_id, -1), agent.idle_since)


def _reference_agent(engine: Engine) -> Callable[..., AgentChoice | None]:
    def pick_agent(
        policy: Policy,
        candidates: Iterable[LiveAgent],
        call: LiveInteraction,
        req: Requirement,
        at: float,
        last_offer: Mapping[str, int],
    ) -> AgentChoice | None:
        best: LiveAgent | None = None
        best_key: tuple[float, ...] = ()
        for agent in engine._index.ready.values():  # every ready agent, in ready order
            if not eligible(agent, call, req, at):
                continue
            key = (
                1.0 if agent.profile.extended else 0.0,
                0.0 if prefers(agent, call) else 1.0,
                *_policy_key(policy, agent, req, at, last_offer),
            )
            if best is None or key < best_key:
                best, best_key = agent, key
        return None if best is None else AgentChoice(best, "reference")

    return pick_agent


@contextmanager
def _routing_by_reference(engine: Engine) -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    patch.setattr(engine_module, "best_call_for", _reference_call(engine))
    patch.setattr(engine_module, "pick_agent", _reference_agent(engine))
    try:
        yield
    finally:
        patch.undo()


# ----------------------------------------------------------------- the run
def _apply(
    acd: Engine, profiles: list[AgentProfile], kind: str, pick: int, now: float, n: int
) -> list[tuple[str, str]] | str:
    offers: list[OfferDecision] = []
    deadline = acd.next_deadline()
    while deadline is not None and deadline <= now:
        offers += acd.tick(deadline)
        deadline = acd.next_deadline()
    # The agent the event is about: one it can apply to, when there is one.
    wanted = {
        "ready": AgentState.PAUSED,
        "wrapup": AgentState.WRAP_UP,
        "login": AgentState.LOGGED_OUT,
    }.get(kind)
    fitting = [p for p in profiles if wanted is None or _state_of(acd, p) is wanted]
    profile = (fitting or profiles)[pick % len(fitting or profiles)]
    calls = sorted(acd.interactions.values(), key=lambda c: c.sequence)
    if kind in ("answer", "fail"):
        calls = [c for c in calls if c.offered_to is not None]
    elif kind == "end":
        calls = [c for c in calls if c.answered_by is not None]
    call = calls[pick % len(calls)] if calls else None
    try:
        if kind == "arrive":
            offers += acd.interaction_arrived(now, _request(n, pick))
        elif kind == "login":
            offers += acd.agent_login(now, profile)
        elif kind == "logout":
            offers += acd.agent_logout(now, profile.agent_id)
        elif kind == "ready":
            offers += acd.agent_ready(now, profile.agent_id)
        elif kind == "pause":
            offers += acd.agent_pause(now, profile.agent_id, "break")
        elif kind == "wrapup":
            offers += acd.wrapup_ended(now, profile.agent_id)
        elif kind == "month":
            offers += acd.new_month(now)
        elif kind == "redispatch":
            offers += acd.redispatch(now)
        elif kind == "tick":
            offers += acd.tick(now)
        elif call is None:
            pass
        elif kind == "answer" and call.offered_to is not None:
            offers += acd.offer_answered(now, call.interaction_id, call.offered_to)
        elif kind == "fail" and call.offered_to is not None:
            offers += acd.offer_failed(now, call.interaction_id, call.offered_to)
        elif kind == "abandon" and call.answered_by is None:
            offers += acd.interaction_abandoned(now, call.interaction_id)
        elif kind == "end" and call.answered_by is not None:
            offers += acd.interaction_ended(now, call.interaction_id)
        elif kind == "callback" and call.waiting:
            offers += acd.callback_requested(now, call.interaction_id, now + 2, now + 30)
    except StateError as exc:
        return f"refused: {exc}"
    return [(offer.interaction_id, offer.agent_id) for offer in offers]


def _state_of(acd: Engine, profile: AgentProfile) -> AgentState:
    agent = acd.agents.get(profile.agent_id)
    return AgentState.LOGGED_OUT if agent is None else agent.state


def _state(acd: Engine) -> object:
    return (
        {
            a.agent_id: (a.state, a.interaction, sorted(a.items), a.month_count)
            for a in acd.agents.values()
        },
        {
            c.interaction_id: (c.queue, c.offered_to, c.answered_by)
            for c in acd.interactions.values()
        },
        acd.waiting_count(),
    )


Spec = tuple[dict[str, int], tuple[str, ...], bool, dict[str, int]]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(list(Policy)), PROFILES, EVENTS)
def test_indexed_routing_decides_as_a_full_scan(
    policy: Policy, specs: list[Spec], events: list[tuple[str, int, float]]
) -> None:
    _compare(policy, specs, events)


def _compare(policy: Policy, specs: list[Spec], events: list[tuple[str, int, float]]) -> None:
    profiles = [
        AgentProfile(
            f"a{i}",
            skills,
            frozenset(languages),
            extended=extended,
            monthly_cap=2 if extended else None,
            capacity=capacity,
        )
        for i, (skills, languages, extended, capacity) in enumerate(specs)
    ]
    fast, reference = Engine(_queues(policy)), Engine(_queues(policy))
    for profile in profiles:
        fast.agent_login(0.0, profile)
        with _routing_by_reference(reference):
            reference.agent_login(0.0, profile)
    now = 0.0
    for n, (kind, pick, step) in enumerate(events):
        now += step
        got = _apply(fast, profiles, kind, pick, now, n)
        with _routing_by_reference(reference):
            expected = _apply(reference, profiles, kind, pick, now, n)
        assert got == expected, f"event {n} {kind} at {now}"
        assert _state(fast) == _state(reference)
    assert all(a.state is not None for a in fast.agents.values())
    assert now < 1000 * 15  # far below 1,000 thresholds of the shortest queue


@pytest.mark.parametrize("seed", range(100))
def test_indexed_routing_decides_as_a_full_scan_seeded(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Longer runs than hypothesis likes: queues build up, relax, overflow.
    Every other seed, empty lines are pruned as soon as they may be (agents'
    line lists are then rebuilt all the time)."""
    if seed % 2:
        monkeypatch.setattr(router, "PRUNE_EMPTY", 0)
    rnd = random.Random(seed)
    specs: list[Spec] = [
        (
            {skill: rnd.randint(1, 10) for skill in rnd.sample(SKILLS, rnd.randint(1, 3))},
            rnd.choice([("fr",), ("en",), ("fr", "en")]),
            rnd.random() < 0.25,
            rnd.choice([{"voice": 1}, {"voice": 1, "chat": 2}]),
        )
        for _ in range(rnd.randint(2, 9))
    ]
    kinds = ["arrive"] * 6 + ["answer"] * 4 + ["end"] * 3 + ["wrapup", "ready", "ready"]
    kinds += ["fail", "abandon", "pause", "logout", "login", "tick", "callback", "month"]
    events = [
        (rnd.choice(kinds), rnd.randrange(10_000), rnd.choice([0.0, 0.0, 0.25, 1.0, 3.0]))
        for _ in range(600)
    ]
    _compare(rnd.choice(list(Policy)), specs, events)


def test_the_reference_is_really_used() -> None:
    acd = Engine(_queues(Policy.LONGEST_IDLE))
    acd.agent_login(0.0, AgentProfile("a0", {"sales": 9}))
    with _routing_by_reference(acd):
        [offer] = acd.interaction_arrived(1.0, InteractionRequest("c1", "sales", {"sales": 1}))
    assert offer.reason == "reference"
    assert acd.agents["a0"].state is AgentState.RESERVED
