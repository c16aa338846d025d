"""What agents, queues and calls look like on a screen (REST, CTI, wallboard).

One place builds these views from the live call path and ACD, so the REST
API, the WebSocket events and the snapshots never disagree. Times shown to
people are epoch seconds (wall clock); durations are seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from callcenter.acd import NO_ANSWER, Engine
from callcenter.callpath.service import CallPath, CallRecord, Phase
from callcenter.cti.access import Principal, Role
from callcenter.stats.kpis import Counts
from callcenter.stats.realtime import RealtimeSnapshot


class LiveViews:
    def __init__(self, callpath: CallPath, engine: Engine) -> None:
        self.callpath = callpath
        self.engine = engine
        self.contacts: dict[str, dict[str, Any]] = {}
        """CRM data per interaction (contact card, history), filled by the bridge."""

    def _wall(self, t: float | None) -> float | None:
        if t is None:
            return None
        clock = self.callpath.clock
        return round(clock.wall() - (clock.now() - t), 3)

    def agent(self, agent_id: str) -> dict[str, Any]:
        live = self.engine.agents.get(agent_id)
        setup = self.callpath.site.agents[agent_id]
        until = live.wrapup_until if live else None
        if until == float("inf"):
            until = None  # wrap-up without a timer: the agent ends it
        return {
            "agent": agent_id,
            "name": setup.name,
            "endpoint": self.callpath.agent_endpoints.get(agent_id, setup.endpoint),
            "team": setup.team,
            "state": live.state.value if live else "logged_out",
            "since": self._wall(live.since) if live else None,
            "reason": live.pause_reason if live else None,
            "interaction": live.interaction if live else None,
            "wrapup_until": self._wall(until),
            "handled": live.handled if live else 0,
        }

    def snapshot(self, principal: Principal, kpis: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """What a desktop starts from when it cannot resume (docs/cti-protocol.md)."""
        site = self.callpath.site
        # "no answer" is the ACD's own reason (RONA), not one a person picks.
        pause_reasons = [r for r in site.pause_reasons if r != NO_ANSWER]
        if principal.role is Role.AGENT and principal.site_id in site.agents:
            agent = self.agent(principal.site_id)
            current = agent["interaction"]
            return {
                "agent": agent,
                "call": self.screen_pop(current) if current else None,
                "queues": sorted(site.queues),
                "pause_reasons": pause_reasons,
                "dispositions": list(site.dispositions),
                "agents": [{"agent": a, "name": s.name} for a, s in sorted(site.agents.items())],
            }
        return {
            "agents": self.agents(),
            "queues": self.queues(),
            "calls": self.live_calls(),
            "supervisors": sorted(site.supervisors),
            "kpis": kpis(),
            "pause_reasons": pause_reasons,
        }

    def agents(self) -> list[dict[str, Any]]:
        return [self.agent(a) for a in sorted(self.callpath.site.agents)]

    def interaction_of(self, agent_id: str) -> str | None:
        live = self.engine.agents.get(agent_id)
        return live.interaction if live else None

    def queue_of(self, interaction_id: str) -> str | None:
        record = self.callpath.recent(interaction_id)
        return record.queue if record else None

    def queue(self, name: str) -> dict[str, Any]:
        # One pass: this runs on every queue change, over every live call
        # (it was 4 % of the daemon's CPU at 30 calls/s with two passes).
        now = self.callpath.clock.now()
        counts = {Phase.WAITING: 0, Phase.RINGING: 0, Phase.CONNECTED: 0}
        longest = 0.0
        for record in self.callpath.calls.values():
            if record.queue != name or record.phase not in counts:
                continue
            counts[record.phase] += 1
            if record.phase is not Phase.CONNECTED:
                longest = max(longest, now - record.arrived_at)
        return {
            "queue": name,
            "waiting": counts[Phase.WAITING],
            "ringing": counts[Phase.RINGING],
            "longest_wait": round(longest, 1),
            "talking": counts[Phase.CONNECTED],
        }

    def queues(self) -> dict[str, dict[str, Any]]:
        return {name: self.queue(name) for name in self.callpath.site.queues}

    def live_calls(self) -> list[dict[str, Any]]:
        return [self.call(r) for r in self.callpath.calls.values()]

    def call(self, record: CallRecord) -> dict[str, Any]:
        """The full record (REST ``GET /api/interactions/{id}``)."""
        return {
            "interaction": record.interaction_id,
            "node": record.node,
            "caller_uniqueid": record.caller_uniqueid,
            "caller_number": record.caller_number,
            "queue": record.queue,
            "language": record.language,
            "phase": record.phase.value,
            "agent": record.agent_id,
            "offers": record.offers,
            "arrived_at": record.arrived_at,
            "answered_at": record.answered_at,
            "arrived_wall": self._wall(record.arrived_at),
            "answered_wall": self._wall(record.answered_at),
            "ended_at": record.ended_at,
            "abandoned_where": record.abandoned_where,
            "recording": record.recording,
            "callback_number": record.callback_number,
            "origin": record.origin,
            "context": record.context,
            "disposition": record.disposition,
            "notes": record.notes,
        }

    def screen_pop(self, interaction_id: str) -> dict[str, Any] | None:
        """What the agent sees when their phone rings."""
        record = self.callpath.recent(interaction_id)
        if record is None:
            return None
        ivr = record.context.get("ivr")
        ivr = ivr if isinstance(ivr, dict) else {}
        crm = self.contacts.get(interaction_id, {})
        contact = crm.get("contact")
        number = record.callback_number if record.kind == "callback" else record.caller_number
        return {
            "interaction": interaction_id,
            "kind": record.kind,
            "number": number,
            "name": contact.get("name") if isinstance(contact, dict) else None,
            "queue": record.queue,
            "language": record.language,
            "priority": record.priority,
            "arrived_at": self._wall(record.arrived_at),
            "waited": round(self.callpath.clock.now() - record.arrived_at, 1),
            "vip": bool(ivr.get("vip")) or bool(isinstance(contact, dict) and contact.get("vip")),
            "intent": ivr.get("intent"),
            "customer_id": ivr.get("customer_id"),
            "ivr_path": ivr.get("path", []),
            "ivr_data": ivr.get("variables", {}),
            "contact": contact,
            "history": crm.get("history", []),
            "transfer": record.context.get("transfer"),
            "transferred_by": record.context.get("transferred_by"),
            "notes": record.notes,
        }


def queue_kpis(snapshot: RealtimeSnapshot) -> dict[str, dict[str, Any]]:
    """Per queue since start: offered, answered, abandoned, SL (last 15 min),
    ASA and abandon rate, with the KPI definitions of callcenter.stats.kpis."""
    totals: dict[str, Counts] = {}
    for c in snapshot.counters:
        counts = Counts(
            offered=c.offered,
            answered=c.answered,
            answered_in_sl=c.answered_in_sl,
            abandoned=c.abandoned,
            abandoned_in_sl=c.abandoned_in_sl,
            short_abandoned=c.short_abandoned,
        )
        totals[c.queue] = totals.get(c.queue, Counts()) + counts
    out: dict[str, dict[str, Any]] = {}
    for now in snapshot.queues:
        counts = totals.get(now.queue, Counts())
        wait = snapshot.wait.get((now.queue, "answered"))
        # Waits come from the histogram (one per queue, all skills).
        counts = counts + Counts(wait_answered=wait.total if wait else 0.0)
        out[now.queue] = {
            "queue": now.queue,
            "offered": counts.offered,
            "answered": counts.answered,
            "abandoned": counts.abandoned,
            "service_level": now.service_level.get("15m"),
            "sl_threshold": now.threshold,
            "asa": None if counts.asa is None else round(counts.asa, 1),
            "abandon_rate": counts.abandon_rate,
        }
    return out
