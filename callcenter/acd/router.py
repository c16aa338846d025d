"""Routing: who takes a new call, and which call a freed agent takes.

Both decisions read indexes, not the whole centre:

* ready agents per skill, in the order they became ready (a dict keeps
  insertion order, so "longest idle" is the first eligible one met);
* waiting calls per *line* (:class:`LineKey`: queue, origin queue, required
  skills with levels, language, channel), each sorted in service order
  (priority, then enqueue time, then arrival sequence). A line is filed
  under one of its skill names, so a freed agent only looks at lines whose
  skill names, language and channel it has, and in each line only at the
  head of each priority block (the rest of a block waited less, so it is no
  more relaxed): in practice one call per line.

**A call arrives** (or relaxes, overflows, comes back after RONA): the
eligible ready agents are the ready agents of the call's rarest required
skill that pass :func:`eligible`; the queue's :class:`Policy` ranks them,
after two rules that apply to every policy: regular agents before extended
ones (extended agents are overflow), and agents who hold the call's
*preferred* skills before those who do not.

* ``longest_idle``: ready the longest; ties: higher proficiency;
* ``best_proficiency``: highest sum of levels in the required skills; ties:
  longest idle;
* ``least_occupied``: lowest busy / logged-in time; ties: longest idle;
* ``round_robin``: offered a call least recently; ties: longest idle.

**An agent is freed**: among the first eligible call of each line it may
serve, the highest

    score = priority * 1000 + wait / sl_threshold(queue)

priority first (a VIP level outranks any wait), then the wait in units of
the queue's service-level threshold: a call at 19 s of a 20 s target (0.95)
comes before one at 40 s of a 120 s target (0.33), because it is about to
miss its target and the other is not. Ties: the earlier arrival.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from callcenter.acd.model import LiveAgent, LiveInteraction
from callcenter.acd.queues import Policy, QueueRules, Requirement

__all__ = [
    "PRIORITY_WEIGHT",
    "AgentChoice",
    "AgentIndex",
    "CallChoice",
    "WaitingLines",
    "best_call_for",
    "eligible",
    "pick_agent",
]

PRIORITY_WEIGHT = 1000.0

OrderKey = tuple[float, float, int]


def eligible(agent: LiveAgent, call: LiveInteraction, req: Requirement, at: float) -> bool:
    """May ``agent`` take ``call`` now (its state aside)? The one definition,
    used by routing, the expected wait and the tests."""
    if call.not_before is not None and at < call.not_before:
        return False
    named = call.request.agent_id
    if named is not None and named != agent.agent_id:
        return False
    if call.request.language not in agent.profile.languages:
        return False
    if agent.profile.extended and not (req.extended and agent.under_cap()):
        return False
    if not agent.has_room(call.channel):
        return False
    skills = agent.profile.skills
    return all(skills.get(skill, 0) >= level for skill, level in req.skills.items())


def _own_ok(call: LiveInteraction, agent_id: str, at: float) -> bool:
    if call.not_before is not None and at < call.not_before:
        return False
    named = call.request.agent_id
    return named is None or named == agent_id


def prefers(agent: LiveAgent, call: LiveInteraction) -> bool:
    skills = agent.profile.skills
    return all(skills.get(skill, 0) >= level for skill, level in call.request.preferred.items())


# ------------------------------------------------------------------ agents
class AgentIndex:
    """Ready and logged-in agents per skill."""

    def __init__(self) -> None:
        self.ready: dict[str, LiveAgent] = {}
        self.ready_by_skill: dict[str, dict[str, LiveAgent]] = {}
        self.logged_by_skill: dict[str, dict[str, LiveAgent]] = {}
        self.logged: dict[str, LiveAgent] = {}

    def add_ready(self, agent: LiveAgent) -> None:
        key = agent.agent_id
        self.ready[key] = agent
        for skill in agent.profile.skills:
            self.ready_by_skill.setdefault(skill, {})[key] = agent

    def remove_ready(self, agent: LiveAgent) -> None:
        key = agent.agent_id
        if self.ready.pop(key, None) is None:
            return
        for skill in agent.profile.skills:
            self.ready_by_skill[skill].pop(key, None)

    def add_logged(self, agent: LiveAgent) -> None:
        self.logged[agent.agent_id] = agent
        for skill in agent.profile.skills:
            self.logged_by_skill.setdefault(skill, {})[agent.agent_id] = agent

    def remove_logged(self, agent: LiveAgent) -> None:
        if self.logged.pop(agent.agent_id, None) is None:
            return
        for skill in agent.profile.skills:
            self.logged_by_skill[skill].pop(agent.agent_id, None)

    def ready_for(self, skills: Mapping[str, int]) -> Iterable[LiveAgent]:
        """Ready agents who hold the rarest of ``skills`` (all ready if none)."""
        return _smallest(self.ready_by_skill, skills, self.ready).values()

    def logged_for(self, skills: Mapping[str, int]) -> Iterable[LiveAgent]:
        return _smallest(self.logged_by_skill, skills, self.logged).values()


_EMPTY: dict[str, LiveAgent] = {}


def _smallest(
    index: dict[str, dict[str, LiveAgent]],
    skills: Mapping[str, int],
    everyone: dict[str, LiveAgent],
) -> dict[str, LiveAgent]:
    best: dict[str, LiveAgent] | None = None
    for skill in skills:
        group = index.get(skill, _EMPTY)
        if best is None or len(group) < len(best):
            best = group
    return everyone if best is None else best


@dataclass(frozen=True, slots=True)
class AgentChoice:
    agent: LiveAgent
    reason: str


def pick_agent(
    policy: Policy,
    candidates: Iterable[LiveAgent],
    call: LiveInteraction,
    req: Requirement,
    at: float,
    last_offer: Mapping[str, int],
) -> AgentChoice | None:
    """The queue policy's choice among eligible ``candidates`` (in ready order)."""
    best: LiveAgent | None = None
    best_key: tuple[float, ...] = ()
    checked = 0
    for agent in candidates:
        # Candidates come longest idle first: once the best possible kind of
        # agent is found, a later one can only tie on idle time, so stop.
        if (
            best is not None
            and policy is Policy.LONGEST_IDLE
            and best_key[0] == 0
            and best_key[1] == 0
            and agent.idle_since > best.idle_since
        ):
            break
        if not eligible(agent, call, req, at):
            continue
        checked += 1
        key = (
            1.0 if agent.profile.extended else 0.0,
            0.0 if prefers(agent, call) else 1.0,
            *_policy_key(policy, agent, req, at, last_offer),
        )
        if best is None or key < best_key:
            best, best_key = agent, key
    if best is None:
        return None
    detail = _describe(policy, best, req, at)
    kind = "extended agent (overflow)" if best.profile.extended else "agent"
    reason = f"policy {policy.value}: {kind} {best.agent_id} {detail}; {checked} eligible seen"
    return AgentChoice(best, reason)


def _policy_key(
    policy: Policy, agent: LiveAgent, req: Requirement, at: float, last_offer: Mapping[str, int]
) -> tuple[float, ...]:
    if policy is Policy.LONGEST_IDLE:
        return (agent.idle_since, -_proficiency(agent, req))
    if policy is Policy.BEST_PROFICIENCY:
        return (-_proficiency(agent, req), agent.idle_since)
    if policy is Policy.LEAST_OCCUPIED:
        return (agent.occupancy(at), agent.idle_since)
    return (last_offer.get(agent.agent_id, -1), agent.idle_since)


def _proficiency(agent: LiveAgent, req: Requirement) -> int:
    return sum(agent.level(skill) for skill in req.skills)


def _describe(policy: Policy, agent: LiveAgent, req: Requirement, at: float) -> str:
    if policy is Policy.BEST_PROFICIENCY:
        return f"proficiency {_proficiency(agent, req)}"
    if policy is Policy.LEAST_OCCUPIED:
        return f"occupancy {agent.occupancy(at):.0%}"
    if policy is Policy.ROUND_ROBIN:
        return "offered least recently"
    return f"idle {at - agent.idle_since:.1f} s"


# ------------------------------------------------------------------- calls
def order_key(call: LiveInteraction) -> OrderKey:
    return (-call.request.priority, call.enqueued_at, call.sequence)


@dataclass(frozen=True, slots=True)
class LineKey:
    """Calls that differ only by wait and priority share a line.

    Within one line, whether an agent may take a call depends on the call's
    wait alone (relaxation and extended overflow only ever widen with it),
    unless the call carries a restriction of its own (scheduled, named agent).
    """

    queue: str
    origin: str
    skills: frozenset[tuple[str, int]]
    language: str
    channel: str
    names: tuple[str, ...]


Line = list[tuple[OrderKey, str]]


def line_key(call: LiveInteraction) -> LineKey:
    return LineKey(
        call.queue,
        call.request.queue,
        frozenset(call.skills.items()),
        call.request.language,
        call.channel,
        tuple(sorted(call.skills)),
    )


class WaitingLines:
    """Waiting calls per :class:`LineKey`, each line in service order."""

    def __init__(self) -> None:
        self.lines: dict[LineKey, Line] = {}
        self.by_skill: dict[tuple[str, str], dict[LineKey, Line]] = {}
        """Lines filed under (one of their skill names, their language)."""
        self.no_skill: dict[str, dict[LineKey, Line]] = {}
        """Lines that need no skill, per language."""
        self.by_queue: dict[str, set[LineKey]] = {}
        self._keys: dict[str, tuple[LineKey, OrderKey]] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, interaction_id: str) -> bool:
        return interaction_id in self._keys

    def add(self, call: LiveInteraction) -> None:
        key = line_key(call)
        entry = (order_key(call), call.interaction_id)
        line = self.lines.get(key)
        if line is None:
            line = self.lines[key] = []
            self._group(key, create=True)[key] = line
            self.by_queue.setdefault(key.queue, set()).add(key)
        _insort(line, entry)
        self._keys[call.interaction_id] = (key, entry[0])

    def remove(self, interaction_id: str) -> None:
        found = self._keys.pop(interaction_id, None)
        if found is None:
            return
        key, order = found
        line = self.lines[key]
        entry = (order, interaction_id)
        index = _bisect(line, entry)
        if index < len(line) and line[index] == entry:
            del line[index]
        if not line:
            del self.lines[key]
            group = self._group(key, create=False)
            del group[key]
            if not group:
                self._drop_group(key)
            self.by_queue[key.queue].discard(key)

    def position(self, queue: str, interaction_id: str) -> int:
        """1 + the waiting calls of ``queue`` served before this one."""
        _key, order = self._keys[interaction_id]
        entry = (order, interaction_id)
        return 1 + sum(_bisect(self.lines[key], entry) for key in self.by_queue.get(queue, ()))

    def in_queue(self, queue: str) -> Iterator[str]:
        for key in self.by_queue.get(queue, ()):
            for _order, interaction_id in self.lines[key]:
                yield interaction_id

    def _group(self, key: LineKey, *, create: bool) -> dict[LineKey, Line]:
        if key.names:
            filed = (key.names[0], key.language)
            if create:
                return self.by_skill.setdefault(filed, {})
            return self.by_skill[filed]
        if create:
            return self.no_skill.setdefault(key.language, {})
        return self.no_skill[key.language]

    def _drop_group(self, key: LineKey) -> None:
        if key.names:
            del self.by_skill[(key.names[0], key.language)]
        else:
            del self.no_skill[key.language]

    def filed_for(
        self, skills: Mapping[str, int], languages: frozenset[str]
    ) -> Iterator[dict[LineKey, Line]]:
        """The groups of lines that may hold calls for an agent with ``skills``
        and ``languages`` (a line with several skill names is filed under its
        first: the others are still to be checked)."""
        by_skill = self.by_skill
        for language in languages:
            if self.no_skill:
                filed = self.no_skill.get(language)
                if filed:
                    yield filed
            for skill in skills:
                filed = by_skill.get((skill, language))
                if filed:
                    yield filed


def _bisect(line: Line, entry: tuple[OrderKey, str]) -> int:
    lo, hi = 0, len(line)
    while lo < hi:
        mid = (lo + hi) // 2
        if line[mid] < entry:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _insort(line: Line, entry: tuple[OrderKey, str]) -> None:
    # New calls almost always go last (latest enqueue time): check that first.
    if not line or line[-1] < entry:
        line.append(entry)
    else:
        line.insert(_bisect(line, entry), entry)


@dataclass(frozen=True, slots=True)
class CallChoice:
    call: LiveInteraction
    reason: str


def best_call_for(
    agent: LiveAgent,
    at: float,
    waiting: WaitingLines,
    calls: Mapping[str, LiveInteraction],
    queues: Mapping[str, QueueRules],
    requirement_of: Callable[[LiveInteraction, float], Requirement],
) -> CallChoice | None:
    """The waiting call a freed ``agent`` should take (highest score).

    This is the hot path of a busy centre (every agent freed runs it), so
    it is written flat: line-wide conditions (skill names, language,
    channel room) are checked once per line, and per call only what can
    differ within a line (wait-dependent levels, extended overflow, a
    schedule or a named agent), with the call's requirement cached.
    """
    profile = agent.profile
    skills = profile.skills
    languages = profile.languages
    agent_id = agent.agent_id
    extended_ok = not profile.extended or agent.under_cap()
    room: dict[str, bool] = {}
    best: LiveInteraction | None = None
    best_key = (0.0, 0)
    lines = 0
    for filed in waiting.filed_for(skills, languages):
        for key, line in filed.items():
            if len(key.names) > 1 and not all(name in skills for name in key.names):
                continue
            fits_channel = room.get(key.channel)
            if fits_channel is None:
                fits_channel = room[key.channel] = agent.has_room(key.channel)
            if not fits_channel:
                continue
            lines += 1
            # Service order within a line is score order (one queue, one
            # threshold): the first call this agent may take is the line's best.
            i, size = 0, len(line)
            while i < size:
                order, interaction_id = line[i]
                call = calls[interaction_id]
                req = call.req_cache
                if req is None or not call.req_from <= at < call.req_until:
                    req = requirement_of(call, at)
                own = call.not_before is not None or call.request.agent_id is not None
                fits = (not own or _own_ok(call, agent_id, at)) and (
                    extended_ok if req.extended else not profile.extended
                )
                if fits:
                    for skill, level in req.skills.items():
                        if skills.get(skill, 0) < level:
                            fits = False
                            break
                if fits:
                    score = (
                        call.request.priority * PRIORITY_WEIGHT
                        + (at - call.enqueued_at) / queues[call.queue].sl_threshold
                    )
                    candidate = (-score, call.sequence)
                    if best is None or candidate < best_key:
                        best, best_key = call, candidate
                    break
                if own:
                    i += 1  # a restriction of its own: the next call may do
                else:
                    # Later calls of the same priority waited less, so they
                    # are no more relaxed than this one: next priority block.
                    i = _bisect(line, ((order[0], math.inf, 0), ""))
    if best is None:
        return None
    rules = queues[best.queue]
    reason = (
        f"highest score {-best_key[0]:.2f} = priority {best.request.priority}*1000 + "
        f"wait {at - best.enqueued_at:.1f} s / SL {rules.sl_threshold:.0f} s "
        f"(queue {best.queue}; {lines} lines looked at)"
    )
    return CallChoice(best, reason)
