"""Tier 1: what the site file says about routing reaches the ACD as it should.

Queues: policy, relaxation steps (levels, overflow to a queue, extended
agents), extended skills, default handle time; agents: extended with a
monthly cap. Mistakes are refused at load time, naming the key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.acd import AgentProfile, Engine, InteractionRequest, Policy, QueueRules, Relaxation
from callcenter.callpath.site import DEFAULT_SITE, load_site
from callcenter.errors import ConfigError

SITE = """
queues:
  support:
    skills: {support: 6}
    sl_threshold: 30
    wrapup: 5
    policy: best_proficiency
    default_handle_time: 240
    extended_skills: [expert]
    relaxations:
      - {after: 30, min_level: 3}
      - {after: 90, min_level: 1}
      - {after: 120, overflow_to: backup}
      - {after: 150, extended: true}
  backup:
    skills: {backup: 1}
    sl_threshold: 60
routes:
  default: {queue: support}
agents:
  a01: {name: Agent 1, endpoint: agent1, skills: {support: 7}, languages: [fr, en], team: A}
  x01:
    name: Branch adviser
    endpoint: agent2
    skills: {support: 4}
    extended: true
    monthly_cap: 30
"""


def test_queue_rules_and_agent_profiles_come_from_the_site(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    site = load_site(path)
    support, backup = site.queue_rules()
    assert support == QueueRules(
        "support",
        sl_threshold=30,
        wrapup=5,
        policy=Policy.BEST_PROFICIENCY,
        relaxations=(
            Relaxation(30, min_level=3),
            Relaxation(90, min_level=1),
            Relaxation(120, overflow_to="backup"),
            Relaxation(150, extended=True),
        ),
        default_handle_time=240,
        skills={"support": 6},
        extended_skills=frozenset({"expert"}),
    )
    assert backup == QueueRules("backup", sl_threshold=60, skills={"backup": 1})
    assert site.agents["x01"].profile("x01", month_handled=12) == AgentProfile(
        "x01", {"support": 4}, frozenset({"fr"}), extended=True, monthly_cap=30, month_handled=12
    )
    assert site.agents["a01"].profile("a01") == AgentProfile(
        "a01", {"support": 7}, frozenset({"fr", "en"}), "A"
    )


def test_a_call_relaxes_then_overflows_to_the_extended_agent(tmp_path: Path) -> None:
    """The engine built as the daemon builds it: the extended adviser gets the
    call only once the queue's step lets extended agents take it."""
    path = tmp_path / "site.yaml"
    path.write_text(SITE.replace("{after: 120, overflow_to: backup}", "{after: 140, min_level: 1}"))
    site = load_site(path)
    acd = Engine(site.queue_rules())
    acd.agent_login(0, site.agents["x01"].profile("x01"))
    assert acd.interaction_arrived(0, InteractionRequest("c1", "support", {"support": 6})) == []
    offers = []
    deadline = acd.next_deadline()
    while deadline is not None and not offers:
        offers = acd.tick(deadline)
        deadline = acd.next_deadline()
    [offer] = offers
    assert (offer.agent_id, acd.interactions["c1"].offered_at) == ("x01", 150)
    assert "extended agent (overflow)" in offer.reason


def test_the_sandbox_site_builds_an_engine() -> None:
    site = load_site(DEFAULT_SITE)
    acd = Engine(site.queue_rules())
    for agent_id, setup in site.agents.items():
        acd.agent_login(0, setup.profile(agent_id))
    assert set(acd.queues) == set(site.queues)


@pytest.mark.parametrize(
    ("queue", "agent", "message"),
    [
        (
            "relaxations: [{after: 5, overflow_to: nowhere}]",
            "",
            "queues.q.relaxations.0.overflow_to: unknown queue 'nowhere' (known: other, q)",
        ),
        (
            "relaxations: [{after: 5, overflow_to: q}]",
            "",
            "queues.q.relaxations.0.overflow_to: a queue cannot overflow to itself",
        ),
        (
            "relaxations: [{after: 50, min_level: 2}, {after: 5, min_level: 1}]",
            "",
            "queues.q: relaxations.1.after: 5 s comes before the previous step (50 s)",
        ),
        (
            "relaxations: [{after: 5}]",
            "",
            "queues.q.relaxations.0: a step needs min_level, overflow_to or extended: true",
        ),
        (
            "relaxations: [{after: 5, min_level: 0}]",
            "",
            "queues.q.relaxations.0.min_level: Input should be greater than or equal to 1",
        ),
        ("relaxations: [{after: -1, min_level: 2}]", "", "queues.q.relaxations.0.after"),
        ("relaxations: [{after: 5, level: 2}]", "", "queues.q.relaxations.0.level: Extra"),
        ("policy: fastest", "", "queues.q.policy: Input should be 'longest_idle'"),
        ("default_handle_time: 0", "", "queues.q.default_handle_time"),
        (
            "skills: {q: 1}",
            "monthly_cap: 3",
            "agents.x: monthly_cap applies to extended agents only (set extended: true)",
        ),
        ("skills: {q: 1}", "extended: true, monthly_cap: -1", "agents.x.monthly_cap"),
        ("language: 'fr,en'", "", "queues.q.language"),
    ],
)
def test_mistakes_are_refused_naming_the_key(
    tmp_path: Path, queue: str, agent: str, message: str
) -> None:
    fields = ", ".join(["name: X", "endpoint: e1", *([agent] if agent else [])])
    path = tmp_path / "site.yaml"
    path.write_text(f"queues:\n  q:\n    {queue}\n  other: {{}}\nagents:\n  x: {{{fields}}}\n")
    with pytest.raises(ConfigError) as refused:
        load_site(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert message in str(refused.value)
