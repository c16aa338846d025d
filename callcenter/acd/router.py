"""Routing: who takes a new call, and which call a freed agent takes.

Both decisions read indexes, not the whole centre:

* ready agents per skill, in the order they became ready (a dict keeps
  insertion order, so "longest idle" is the first eligible one met);
* waiting calls per *line* (:data:`LineKey`: queue, origin queue, required
  skills with levels, language, channel), each sorted in service order
  (priority, then enqueue time, then arrival sequence). Lines are filed in
  groups by (first skill name, language); a group keeps, per agent level in
  its skill, a view of its lines by how such an agent meets their levels:
  before any relaxation (the line's first call is the candidate: nothing
  else to check for a regular agent), from some wait on (known per line: a
  line of one priority whose first call has not waited that long is passed
  over), or never (skipped). A freed agent's lines are the merge of the
  views of its (skill, language) groups, kept until one of the groups gets
  a new line. In a line it looks only at the head of each priority block
  (the rest of a block waited less, so it is no more relaxed): in practice
  one call per line.

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
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from callcenter.acd.messages import AgentProfile
from callcenter.acd.model import LiveAgent, LiveInteraction
from callcenter.acd.queues import Policy, QueueRules, Requirement

__all__ = [
    "PRIORITY_WEIGHT",
    "AgentChoice",
    "AgentIndex",
    "CallChoice",
    "Line",
    "WaitingLines",
    "best_call_for",
    "eligible",
    "pick_agent",
]

PRIORITY_WEIGHT = 1000.0


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
    longest_idle = policy is Policy.LONGEST_IDLE
    preferred = bool(call.request.preferred)
    for agent in candidates:
        # Candidates come longest idle first: once the best possible kind of
        # agent is found, a later one can only tie on idle time, so stop.
        if (
            longest_idle
            and best is not None
            and best_key[0] == 0
            and best_key[1] == 0
            and agent.idle_since > best.idle_since
        ):
            break
        if not eligible(agent, call, req, at):
            continue
        checked += 1
        overflow = 1.0 if agent.profile.extended else 0.0
        prefer = 0.0 if not preferred or prefers(agent, call) else 1.0
        if longest_idle:
            key: tuple[float, ...] = (overflow, prefer, agent.idle_since, -_proficiency(agent, req))
        else:
            key = (overflow, prefer, *_policy_key(policy, agent, req, at, last_offer))
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
    skills = agent.profile.skills
    return sum([skills.get(skill, 0) for skill in req.skills])


def _describe(policy: Policy, agent: LiveAgent, req: Requirement, at: float) -> str:
    if policy is Policy.BEST_PROFICIENCY:
        return f"proficiency {_proficiency(agent, req)}"
    if policy is Policy.LEAST_OCCUPIED:
        return f"occupancy {agent.occupancy(at):.0%}"
    if policy is Policy.ROUND_ROBIN:
        return "offered least recently"
    return f"idle {at - agent.idle_since:.1f} s"


# ------------------------------------------------------------------- calls
LineKey = tuple[str, str, frozenset[tuple[str, int]], str, str]
"""Calls that differ only by wait and priority share a line: (queue, origin
queue, required skills with levels, language, channel).

Within one line, whether an agent may take a call depends on the call's
wait alone (relaxation and extended overflow only ever widen with it),
unless the call carries a restriction of its own (scheduled, named agent)."""

Entry = tuple[int, float, int, LiveInteraction]
"""A waiting call in service order: (-priority, enqueue time, arrival
sequence, the call). Sequences are unique, so the call is never compared."""


def line_key(call: LiveInteraction) -> LineKey:
    return (
        call.queue,
        call.request.queue,
        frozenset(call.skills.items()),
        call.request.language,
        call.channel,
    )


class Line:
    """The waiting calls of one :data:`LineKey`, in service order, with what
    routing needs of the key at hand."""

    __slots__ = (
        "channel",
        "entries",
        "key",
        "language",
        "names",
        "queue",
        "skills",
        "steps",
        "threshold",
    )

    def __init__(self, key: LineKey, queues: Mapping[str, QueueRules]) -> None:
        self.key = key
        self.queue, origin, skills, self.language, self.channel = key
        self.skills: tuple[tuple[str, int], ...] = tuple(sorted(skills))
        self.names: tuple[str, ...] = tuple(name for name, _level in self.skills)
        self.threshold = queues[self.queue].sl_threshold
        """The queue's SL threshold (queue rules never change once defined)."""
        self.steps = queues[origin].relaxations
        """The origin queue's relaxations (they run on the whole wait)."""
        self.entries: list[Entry] = []


LineRef = tuple[list[Entry], float]
"""A line's entries and SL threshold, as the hot loop wants them."""


@dataclass(slots=True)
class AgentLines:
    """The lines of one channel an agent may serve (skill names, language),
    by how the agent meets their levels."""

    channel: str
    meets: list[LineRef] = field(default_factory=list)
    may_meet: list[tuple[list[Entry], float, float]] = field(default_factory=list)
    """With the wait from which the agent meets the relaxed levels."""
    never: list[list[Entry]] = field(default_factory=list)
    """Only counted (the audit says how many lines were looked at)."""

    def add(self, skills: Mapping[str, int], line: Line) -> None:
        after = _meets_after(skills, line)
        if after is None:
            self.never.append(line.entries)
        elif after == -math.inf:
            self.meets.append((line.entries, line.threshold))
        else:
            self.may_meet.append((line.entries, line.threshold, after))

    def every(self) -> list[LineRef]:
        """``meets`` then ``may_meet``: what an extended agent checks call by call."""
        return self.meets + [(entries, threshold) for entries, threshold, _ in self.may_meet]


class Group:
    """The lines filed under one (first skill name, language), or needing no
    skill (``name`` empty). Lines are only appended (until pruning)."""

    __slots__ = ("lines", "name", "views")

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[Line] = []
        self.views: dict[int, GroupView] = {}

    def view(self, level: int) -> GroupView:
        """The group as agents with ``level`` in its skill see it."""
        view = self.views.get(level)
        if view is None:
            view = self.views[level] = GroupView(level)
        if view.size != len(self.lines):
            view.take(self.lines[view.size :], self.name)
            view.size = len(self.lines)
        return view


class GroupView:
    """A group's one-skill lines sorted by how an agent with ``level`` in
    the skill meets them (shared by every such agent), and the group's lines
    that need several skills (checked per agent)."""

    __slots__ = ("by_channel", "level", "multi", "size")

    def __init__(self, level: int) -> None:
        self.level = level
        self.size = 0
        self.by_channel: dict[str, AgentLines] = {}
        self.multi: list[Line] = []

    def take(self, lines: list[Line], name: str) -> None:
        skills = {name: self.level} if name else {}
        for line in lines:
            if len(line.names) > 1:
                self.multi.append(line)
                continue
            found = self.by_channel.get(line.channel)
            if found is None:
                found = self.by_channel[line.channel] = AgentLines(line.channel)
            found.add(skills, line)


class AgentCache:
    """An agent's lines per channel, merged from the views of the groups
    they may serve, with the size each group had then (a group that grew
    means new lines: the merge is made again)."""

    __slots__ = ("groups", "profile", "pruned", "refs", "sizes")

    def __init__(self, profile: AgentProfile, pruned: int, refs: list[tuple[Group, int]]) -> None:
        self.profile = profile
        self.pruned = pruned
        self.refs = refs
        """(group, the agent's level in its skill)."""
        self.sizes: list[int] = []
        self.groups: list[AgentLines] = []
        self.merge()

    def current(self) -> bool:
        for (group, _level), size in zip(self.refs, self.sizes, strict=True):
            if len(group.lines) != size:
                return False
        return True

    def merge(self) -> None:
        skills = self.profile.skills
        by_channel: dict[str, AgentLines] = {}
        self.sizes = []
        for group, level in self.refs:
            view = group.view(level)
            self.sizes.append(view.size)
            for channel, lines in view.by_channel.items():
                mine = by_channel.get(channel)
                if mine is None:
                    mine = by_channel[channel] = AgentLines(channel)
                mine.meets.extend(lines.meets)
                mine.may_meet.extend(lines.may_meet)
                mine.never.extend(lines.never)
            for line in view.multi:
                # Filed under its first name: the others are still to be checked.
                if all(name in skills for name in line.names):
                    mine = by_channel.get(line.channel)
                    if mine is None:
                        mine = by_channel[line.channel] = AgentLines(line.channel)
                    mine.add(skills, line)
        self.groups = list(by_channel.values())


PRUNE_EMPTY = 1024
"""Empty lines are kept (their calls come back; agents' line lists stay
valid) until there are more than this many, and twice as many as non-empty
ones; then they are dropped and every agent's lines are rebuilt."""


class WaitingLines:
    """Waiting calls per line, each line in service order.

    Lines are filed under (their first skill name, their language) in
    groups that only grow (until empty lines are pruned), and each agent
    keeps the list of lines they may serve, taking in new lines of their
    groups as they appear: a freed agent goes straight to the heads of its
    lines.
    """

    def __init__(self, queues: Mapping[str, QueueRules]) -> None:
        self.queues = queues
        self.lines: dict[LineKey, Line] = {}
        self.by_skill: dict[tuple[str, str], Group] = {}
        """Lines filed under (the first of their skill names, their language)."""
        self.no_skill: dict[str, Group] = {}
        """Lines that need no skill, per language."""
        self.by_queue: dict[str, list[Line]] = {}
        self.pruned = 0
        """How many times empty lines were dropped (agents' lists are rebuilt)."""
        self._where: dict[str, tuple[Line, Entry]] = {}
        self._empty = 0
        self._agents: dict[str, AgentCache] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, interaction_id: str) -> bool:
        return interaction_id in self._where

    def add(self, call: LiveInteraction) -> None:
        key = line_key(call)
        line = self.lines.get(key)
        if line is None:
            line = self.lines[key] = Line(key, self.queues)
            self._file(line).lines.append(line)
            self.by_queue.setdefault(line.queue, []).append(line)
        elif not line.entries:
            self._empty -= 1
        entries = line.entries
        entry = (-call.request.priority, call.enqueued_at, call.sequence, call)
        # New calls almost always go last (latest enqueue time): check that first.
        if not entries or entries[-1] < entry:
            entries.append(entry)
        else:
            entries.insert(bisect_left(entries, entry), entry)
        self._where[call.interaction_id] = (line, entry)

    def remove(self, interaction_id: str) -> None:
        found = self._where.pop(interaction_id, None)
        if found is None:
            return
        line, entry = found
        entries = line.entries
        if entries[0] is entry:
            del entries[0]
        else:
            index = bisect_left(entries, entry)
            if index < len(entries) and entries[index] is entry:
                del entries[index]
        if not entries:
            self._empty += 1
            if self._empty > PRUNE_EMPTY and self._empty > 2 * (len(self.lines) - self._empty):
                self._prune()

    def _prune(self) -> None:
        self.lines = {key: line for key, line in self.lines.items() if line.entries}
        self.by_skill, self.no_skill, self.by_queue = {}, {}, {}
        for line in self.lines.values():
            self._file(line).lines.append(line)
            self.by_queue.setdefault(line.queue, []).append(line)
        self._empty = 0
        self.pruned += 1

    def _file(self, line: Line) -> Group:
        if line.names:
            return self._skill_group(line.names[0], line.language)
        return self._no_skill_group(line.language)

    def _skill_group(self, skill: str, language: str) -> Group:
        group = self.by_skill.get((skill, language))
        if group is None:
            group = self.by_skill[(skill, language)] = Group(skill)
        return group

    def _no_skill_group(self, language: str) -> Group:
        group = self.no_skill.get(language)
        if group is None:
            group = self.no_skill[language] = Group("")
        return group

    def position(self, queue: str, interaction_id: str) -> int:
        """1 + the waiting calls of ``queue`` served before this one."""
        _line, entry = self._where[interaction_id]
        order = entry[:3]
        return 1 + sum(bisect_left(line.entries, order) for line in self.by_queue.get(queue, ()))

    def in_queue(self, queue: str) -> Iterator[str]:
        for line in self.by_queue.get(queue, ()):
            for entry in line.entries:
                yield entry[3].interaction_id

    def lines_for(self, agent: LiveAgent) -> list[AgentLines]:
        """The lines that may hold calls for ``agent`` (its skill names and
        languages), per channel."""
        profile = agent.profile
        cached = self._agents.get(profile.agent_id)
        if cached is None or cached.pruned != self.pruned or cached.profile is not profile:
            refs: list[tuple[Group, int]] = []
            for language in profile.languages:
                # Groups are created empty if need be: the agent sees lines filed later.
                refs.append((self._no_skill_group(language), 0))
                for skill, level in profile.skills.items():
                    refs.append((self._skill_group(skill, language), level))
            cached = self._agents[profile.agent_id] = AgentCache(profile, self.pruned, refs)
        elif not cached.current():
            cached.merge()
        return cached.groups


def _meets_after(skills: Mapping[str, int], line: Line) -> float | None:
    """The wait from which an agent with ``skills`` meets the line's levels:
    ``-inf`` before any relaxation, None never."""
    short = [skills.get(name, 0) for name, level in line.skills if skills.get(name, 0) < level]
    if not short:
        return -math.inf
    # Relaxed to ``floor``, a level becomes min(level, floor): the agent's
    # lowest short level must reach the floor.
    lowest = min(short)
    floor: int | None = None
    for step in line.steps:
        if step.min_level is not None:
            floor = step.min_level if floor is None else min(floor, step.min_level)
        if floor is not None and floor <= lowest:
            return step.after
    return None


def _first_fit(
    agent: LiveAgent,
    entries: list[Entry],
    at: float,
    requirement_of: Callable[[LiveInteraction, float], Requirement],
    check_levels: bool,
) -> LiveInteraction | None:
    """The first call of a line ``agent`` may take now. Service order within
    a line is score order (one queue, one threshold), so it is the line's
    best. ``check_levels``: the agent does not meet the line's levels before
    relaxation, or is extended (then each call's requirement decides)."""
    profile = agent.profile
    skills = profile.skills
    extended = profile.extended
    extended_ok = not extended or agent.under_cap()
    agent_id = profile.agent_id
    i, size = 0, len(entries)
    while i < size:
        entry = entries[i]
        call = entry[3]
        own = call.not_before is not None or call.request.agent_id is not None
        fits = not own or _own_ok(call, agent_id, at)
        if fits and check_levels:
            req = call.req_cache
            if req is None or not call.req_from <= at < call.req_until:
                req = requirement_of(call, at)
            fits = extended_ok if req.extended else not extended
            if fits:
                for skill, level in req.skills.items():
                    if skills.get(skill, 0) < level:
                        fits = False
                        break
        if fits:
            return call
        if own:
            i += 1  # a restriction of its own: the next call may do
        else:
            # Later calls of the same priority waited less, so they are no
            # more relaxed than this one: next priority block.
            i = bisect_left(entries, (entry[0], math.inf))
    return None


@dataclass(frozen=True, slots=True)
class CallChoice:
    call: LiveInteraction
    reason: str


def best_call_for(
    agent: LiveAgent,
    at: float,
    waiting: WaitingLines,
    requirement_of: Callable[[LiveInteraction, float], Requirement],
) -> CallChoice | None:
    """The waiting call a freed ``agent`` should take (highest score).

    This is the hot path of a busy centre (every agent freed runs it), so
    it is written flat: line-wide conditions (skill names, language, levels
    before relaxation) come from the agent's cached list of lines, channel
    room is checked once per channel, and per call only what can differ
    within a line (wait-dependent levels, extended overflow, a schedule or a
    named agent). A regular agent who meets a line's levels before any
    relaxation may take any call of it that has no restriction of its own,
    so the call's requirement is not even looked at.
    """
    if not waiting:
        return None
    profile = agent.profile
    extended = profile.extended
    best: LiveInteraction | None = None
    best_score = 0.0
    best_sequence = 0
    lines = 0
    for group in waiting.lines_for(agent):
        if not agent.has_room(group.channel):
            continue
        for entries in group.never:
            if entries:
                lines += 1
        if extended:
            checked = group.every()
        else:
            checked = []
            for entries, threshold, after in group.may_meet:
                if not entries:
                    continue
                head = entries[0]
                enqueued = head[1]
                call = head[3]
                if (
                    at - enqueued < after
                    and at < enqueued + after
                    and call.not_before is None
                    and call.request.agent_id is None
                    and entries[-1][0] == head[0]
                ):
                    # One priority block, and its oldest call is not relaxed
                    # enough for this agent (whether its requirement is
                    # cached or not): no call of the line is.
                    lines += 1
                    continue
                checked.append((entries, threshold))
            for entries, threshold in group.meets:
                if not entries:
                    continue
                lines += 1
                call = entries[0][3]
                if call.not_before is not None or call.request.agent_id is not None:
                    found = _first_fit(agent, entries, at, requirement_of, False)
                    if found is None:
                        continue
                    call = found
                # The usual case: the line's first call, nothing to check.
                score = (
                    call.request.priority * PRIORITY_WEIGHT + (at - call.enqueued_at) / threshold
                )
                if (
                    best is None
                    or score > best_score
                    or (score == best_score and call.sequence < best_sequence)
                ):
                    best, best_score, best_sequence = call, score, call.sequence
        for entries, threshold in checked:
            if not entries:
                continue
            lines += 1
            found = _first_fit(agent, entries, at, requirement_of, True)
            if found is None:
                continue
            call = found
            score = call.request.priority * PRIORITY_WEIGHT + (at - call.enqueued_at) / threshold
            if (
                best is None
                or score > best_score
                or (score == best_score and call.sequence < best_sequence)
            ):
                best, best_score, best_sequence = call, score, call.sequence
    if best is None:
        return None
    rules = waiting.queues[best.queue]
    reason = (
        f"highest score {best_score:.2f} = priority {best.request.priority}*1000 + "
        f"wait {at - best.enqueued_at:.1f} s / SL {rules.sl_threshold:.0f} s "
        f"(queue {best.queue}; {lines} lines looked at)"
    )
    return CallChoice(best, reason)
