"""Tier 1: what each desktop is told when the call path reports a step."""

from __future__ import annotations

from typing import Any

from callcenter.cti.journal import SUPERVISORS, agent_stream
from callcenter.cti.projector import Projector, Publication
from callcenter.stats.events import AgentStateChanged, Offered, Transferred


class FakeViews:
    def __init__(self) -> None:
        self.current: dict[str, str | None] = {}
        self.states: dict[str, str] = {}

    def agent(self, agent_id: str) -> dict[str, Any]:
        return {
            "agent": agent_id,
            "state": self.states.get(agent_id, "logged_out"),
            "wrapup_until": 99.0,
        }

    def interaction_of(self, agent_id: str) -> str | None:
        return self.current.get(agent_id)

    def screen_pop(self, interaction_id: str) -> dict[str, Any] | None:
        return {"interaction": interaction_id, "name": "Mme Claire Martin"}

    def queue(self, name: str) -> dict[str, Any]:
        return {"queue": name, "waiting": 1}

    def queue_of(self, interaction_id: str) -> str | None:
        return "support"


def move(
    projector: Projector,
    views: FakeViews,
    agent: str,
    state: str,
    interaction: str | None,
    at: float = 1.0,
) -> list[Publication]:
    views.states[agent] = state
    views.current[agent] = interaction
    return projector.apply(AgentStateChanged(at, agent, state))


def kinds(publications: list[Publication], stream: str) -> list[str]:
    return [p.kind for p in publications if p.stream == stream]


def test_a_call_from_ring_to_wrap_up() -> None:
    views = FakeViews()
    projector = Projector(views)
    own = agent_stream("a01")
    ring = move(projector, views, "a01", "reserved", "i1")
    assert kinds(ring, own) == ["agent.state", "call.ringing"]
    pop = next(p for p in ring if p.kind == "call.ringing" and p.stream == own)
    assert pop.data["name"] == "Mme Claire Martin"
    assert kinds(ring, SUPERVISORS) == ["agent.state", "call.ringing"]
    assert kinds(move(projector, views, "a01", "on_call", "i1"), own) == [
        "agent.state",
        "call.answered",
    ]
    ended = move(projector, views, "a01", "wrap_up", "i1")
    assert kinds(ended, own) == ["agent.state", "call.ended"]
    assert next(p for p in ended if p.kind == "call.ended").data["wrapup_until"] == 99.0
    assert kinds(move(projector, views, "a01", "ready", None), own) == ["agent.state"]


def test_an_offer_that_goes_away_is_cancelled_on_screen() -> None:
    views = FakeViews()
    projector = Projector(views)
    move(projector, views, "a01", "reserved", "i1")
    gone = move(projector, views, "a01", "paused", None)  # ring timeout: RONA
    cancelled = [p for p in gone if p.kind == "call.cancelled"]
    assert {p.stream for p in cancelled} == {agent_stream("a01"), SUPERVISORS}
    assert cancelled[0].data == {"interaction": "i1", "agent": "a01"}


def test_a_call_ended_without_wrap_up_still_ends_on_screen() -> None:
    views = FakeViews()
    projector = Projector(views)
    move(projector, views, "a01", "reserved", "i1")
    move(projector, views, "a01", "on_call", "i1")
    out = move(projector, views, "a01", "ready", None)
    assert kinds(out, agent_stream("a01")) == ["agent.state", "call.ended"]


def test_other_agents_hear_nothing_and_queues_go_to_supervisors() -> None:
    views = FakeViews()
    projector = Projector(views)
    out = move(projector, views, "a01", "reserved", "i1")
    assert not [p for p in out if p.stream == agent_stream("a02")]
    offered = Offered(2.0, "i2", "support")
    assert projector.apply(offered) == []
    assert projector.touched_queue(offered) == "support"
    update = projector.queue_update("support", 2.5)
    assert (update.stream, update.kind, update.data["queue"]) == (
        SUPERVISORS,
        "queue.update",
        "support",
    )


def test_a_transfer_tells_the_agent_who_had_the_call() -> None:
    views = FakeViews()
    projector = Projector(views)
    move(projector, views, "a01", "reserved", "i1")
    move(projector, views, "a01", "on_call", "i1")
    out = projector.apply(Transferred(3.0, "i1"))
    assert kinds(out, agent_stream("a01")) == ["call.transferred"]
