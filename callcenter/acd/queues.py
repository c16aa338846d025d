"""Queue configuration: service-level target, relaxation steps, timers.

A queue's rules are static; what a waiting call may accept *now* is computed
from them and the call's wait by :func:`requirement`, so relaxation needs no
state besides the call's enqueue time (a callback or a RONA'd call keeps its
place and its relaxation progress).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from callcenter.errors import ConfigError

__all__ = ["Policy", "QueueRules", "Relaxation", "Requirement", "requirement"]


class Policy(StrEnum):
    """How to choose among several eligible agents for a new call."""

    LONGEST_IDLE = "longest_idle"
    BEST_PROFICIENCY = "best_proficiency"
    LEAST_OCCUPIED = "least_occupied"
    ROUND_ROBIN = "round_robin"


@dataclass(frozen=True, slots=True)
class Relaxation:
    """What a call accepts once it has waited ``after`` seconds.

    * ``min_level``: every required level is lowered to at most this
      (``1``: any agent who has the skill at all);
    * ``overflow_to``: the call moves to that queue (its skills, when the
      queue names some, and its SL threshold), keeping its enqueue time;
    * ``extended``: extended (informal) agents may take it from now on.

    Steps accumulate: after 120 s a call has every step with ``after <= 120``.
    """

    after: float
    min_level: int | None = None
    overflow_to: str | None = None
    extended: bool = False


@dataclass(frozen=True, slots=True)
class QueueRules:
    name: str
    sl_threshold: float = 20.0
    """Seconds: the T of "X % answered within T"; the next-call score divides by it."""
    wrapup: float = 10.0
    """Seconds; ``math.inf``: wrap-up ends only when the caller says so."""
    policy: Policy = Policy.LONGEST_IDLE
    relaxations: tuple[Relaxation, ...] = ()
    default_handle_time: float = 180.0
    """AHT for the expected wait until the queue has handle times of its own."""
    sl_target: float = 0.8
    """The X of "X % within T" (reporting and docs; the score uses the threshold)."""
    ring_timeout: float | None = None
    """Seconds an offer may ring before the engine itself declares RONA (tick).
    None: the caller (telephony) reports unanswered offers."""
    skills: Mapping[str, int] = field(default_factory=dict)
    """Required skills of a call that overflows *into* this queue."""
    extended_skills: frozenset[str] = frozenset()
    """Calls needing any of these skills may go to extended agents at once."""

    def __post_init__(self) -> None:
        if self.sl_threshold <= 0:
            raise ConfigError(f"queue {self.name}: sl_threshold must be > 0")
        if self.wrapup < 0:
            raise ConfigError(f"queue {self.name}: wrapup must be >= 0")
        afters = [step.after for step in self.relaxations]
        if afters != sorted(afters):
            raise ConfigError(f"queue {self.name}: relaxations must be sorted by 'after'")
        for step in self.relaxations:
            if step.min_level is not None and step.min_level < 1:
                raise ConfigError(f"queue {self.name}: relaxation min_level must be >= 1")


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a call accepts at one moment (after its queue's relaxations)."""

    skills: Mapping[str, int]
    extended: bool
    """Extended agents may take it."""
    overflow_to: str | None
    """The queue it should be in now, if its relaxations moved it."""
    step: int
    """How many relaxation steps apply (0: none yet)."""


def requirement(
    rules: QueueRules, skills: Mapping[str, int], waited: float, extended_now: bool = False
) -> Requirement:
    """The skills and agent kinds a call of ``rules`` accepts after ``waited`` s.

    ``skills`` are the call's own requirements (or its overflow queue's);
    ``extended_now`` is set when the call needs a named extended skill.
    """
    floor: int | None = None
    extended = extended_now or (
        bool(rules.extended_skills) and not rules.extended_skills.isdisjoint(skills)
    )
    overflow: str | None = None
    step = 0
    for relax in rules.relaxations:
        if waited < relax.after:
            break
        step += 1
        if relax.min_level is not None:
            floor = relax.min_level if floor is None else min(floor, relax.min_level)
        if relax.overflow_to is not None:
            overflow = relax.overflow_to
        extended = extended or relax.extended
    if floor is not None:
        skills = {skill: min(level, floor) for skill, level in skills.items()}
    return Requirement(skills, extended, overflow, step)
