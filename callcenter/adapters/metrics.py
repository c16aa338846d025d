"""Prometheus exporter: ``/metrics`` read from the real-time aggregator.

One custom collector on a private :class:`CollectorRegistry` (never the
process-global one, so two daemons or tests in one process do not collide)
builds every family from one :meth:`RealtimeStats.snapshot` per scrape:
the numbers in one scrape are consistent with each other, and nothing is
updated on the call path but the aggregator's own counters.

Labels are bounded by configuration: queue, skill, agent state, window,
outcome, IVR script/node/exit. Never a caller number, interaction or agent id.

Wiring (the HTTP server's router is frozen once started, so before start)::

    exporter = MetricsExporter(realtime_stats, health=health_probe)
    http.app.router.add_routes(metrics_routes(exporter))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from callcenter.stats.model import AGENT_STATES
from callcenter.stats.realtime import Histogram, RealtimeSnapshot, RealtimeStats

NAMESPACE = "callcenter"
NO_SKILL = "none"
"""Label value for calls routed on no skill: Prometheus drops an empty label,
and a panel grouping by skill would then lose those calls."""


@dataclass(frozen=True, slots=True)
class DaemonHealth:
    """The daemon's own health, read at each scrape."""

    ami_connected: bool
    ami_event_lag_seconds: float
    """Now minus the timestamp of the last AMI event processed (0 when idle)."""
    fastagi_sessions: int
    db_writer_backlog: int
    """Records not written to PostgreSQL yet (in memory and spooled)."""
    db_writer_memory_rows: int = 0
    db_writer_spooled_rows: int = 0
    db_writer_oldest_seconds: float = 0.0
    db_writer_failures: int = 0
    db_writer_spool_failures: int = 0
    db_writer_rejected_rows: int = 0
    users_backlog: int = 0
    """Logins, logouts and audit rows not written to PostgreSQL yet."""
    users_spool_failures: int = 0
    ami_dialer_connected: bool = True
    """The dialer session (Originates) is up; True when there is none (the
    main session sends them)."""


HealthProbe = Callable[[], DaemonHealth]


def _bucket_pairs(h: Histogram) -> list[tuple[str, float]]:
    pairs = [(_le(bound), float(n)) for bound, n in zip(h.bounds, h.cumulative, strict=True)]
    pairs.append(("+Inf", float(h.count)))
    return pairs


def _le(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


def _ratio(value: float | None) -> float:
    # An empty window has no service level; NaN is Prometheus' "no value".
    return math.nan if value is None else value


class StatsCollector(Collector):
    def __init__(self, stats: RealtimeStats, health: HealthProbe | None = None) -> None:
        self._stats = stats
        self._health = health

    def describe(self) -> Iterable[Metric]:
        # Families depend on what has been seen; nothing to pre-register.
        return []

    def collect(self) -> Iterator[Metric]:
        snap = self._stats.snapshot()
        yield from self._queue_counters(snap)
        yield from self._queue_now(snap)
        yield from self._histograms(snap)
        yield from self._agents(snap)
        yield from self._others(snap)
        if self._health is not None:
            yield from self._daemon(self._health())

    def _queue_counters(self, snap: RealtimeSnapshot) -> Iterator[Metric]:
        specs = (
            ("offered", "Calls that entered the queue.", "offered"),
            ("answered", "Calls answered by an agent.", "answered"),
            (
                "answered_within_sl",
                "Calls answered within the queue's service-level threshold (<= T).",
                "answered_in_sl",
            ),
            (
                "abandoned",
                "Calls abandoned after at least the short-abandon threshold.",
                "abandoned",
            ),
            (
                "abandoned_within_sl",
                "Abandoned (not short) within the service-level threshold (SL2).",
                "abandoned_in_sl",
            ),
            (
                "short_abandoned",
                "Calls abandoned before the short-abandon threshold (counted apart).",
                "short_abandoned",
            ),
            (
                "callbacks_requested",
                "Callers who left the queue asking for a callback.",
                "callbacks",
            ),
            ("transferred", "Answered calls transferred away by the agent.", "transferred"),
            (
                "callbacks_failed",
                "Callbacks that ended without reaching the customer (attempts exhausted).",
                "callbacks_failed",
            ),
            (
                "callbacks_expired",
                "Callbacks nobody took before the end of their window.",
                "callbacks_expired",
            ),
        )
        for name, doc, attribute in specs:
            family = CounterMetricFamily(
                f"{NAMESPACE}_queue_{name}", doc, labels=("queue", "skill")
            )
            for c in snap.counters:
                family.add_metric((c.queue, c.skill or NO_SKILL), getattr(c, attribute))
            yield family

    def _queue_now(self, snap: RealtimeSnapshot) -> Iterator[Metric]:
        waiting = GaugeMetricFamily(
            f"{NAMESPACE}_queue_calls_waiting",
            "Callers waiting in the queue now.",
            labels=["queue"],
        )
        longest = GaugeMetricFamily(
            f"{NAMESPACE}_queue_longest_wait_seconds",
            "How long the oldest caller still waiting has waited.",
            labels=["queue"],
        )
        threshold = GaugeMetricFamily(
            f"{NAMESPACE}_queue_sl_threshold_seconds",
            "The queue's service-level threshold T.",
            labels=["queue"],
        )
        sl = GaugeMetricFamily(
            f"{NAMESPACE}_queue_service_level_ratio",
            "SL over a sliding window: answered within T / answered (NaN: none).",
            labels=["queue", "window"],
        )
        sl2 = GaugeMetricFamily(
            f"{NAMESPACE}_queue_service_level2_ratio",
            "SL2 over a sliding window: (answered + abandoned within T) / (answered + abandoned).",
            labels=["queue", "window"],
        )
        for q in snap.queues:
            waiting.add_metric([q.queue], q.waiting)
            longest.add_metric([q.queue], q.longest_wait)
            threshold.add_metric([q.queue], q.threshold)
            for window, value in q.service_level.items():
                sl.add_metric([q.queue, window], _ratio(value))
            for window, value in q.service_level2.items():
                sl2.add_metric([q.queue, window], _ratio(value))
        yield from (waiting, longest, threshold, sl, sl2)

    def _histograms(self, snap: RealtimeSnapshot) -> Iterator[Metric]:
        wait = HistogramMetricFamily(
            f"{NAMESPACE}_queue_wait_seconds",
            "Time in queue until answered or abandoned (short abandons not observed).",
            labels=["queue", "outcome"],
        )
        for (queue, outcome), h in snap.wait.items():
            wait.add_metric([queue, outcome], _bucket_pairs(h), h.total)
        handle = HistogramMetricFamily(
            f"{NAMESPACE}_queue_handle_seconds",
            "Handle time of completed calls: talk + hold + wrap-up.",
            labels=["queue"],
        )
        for queue, h in snap.handle.items():
            handle.add_metric([queue], _bucket_pairs(h), h.total)
        yield from (wait, handle)

    def _agents(self, snap: RealtimeSnapshot) -> Iterator[Metric]:
        agents = GaugeMetricFamily(
            f"{NAMESPACE}_agents", "Agents in each state now.", labels=["state"]
        )
        # Every state is exported, at zero too, so a panel never loses a series.
        for state in AGENT_STATES:
            agents.add_metric([state], snap.agents_by_state.get(state, 0))
        skill_agents = GaugeMetricFamily(
            f"{NAMESPACE}_skill_agents",
            "Agents holding a skill, by state.",
            labels=["skill", "state"],
        )
        for (skill, state), count in snap.skill_agents.items():
            skill_agents.add_metric([skill, state], count)
        yield from (agents, skill_agents)

    def _others(self, snap: RealtimeSnapshot) -> Iterator[Metric]:
        pending = GaugeMetricFamily(
            f"{NAMESPACE}_callbacks_pending", "Callbacks waiting to be made.", labels=["queue"]
        )
        for queue, count in snap.callbacks_pending.items():
            pending.add_metric([queue], count)
        exits = CounterMetricFamily(
            f"{NAMESPACE}_ivr_node_exits",
            "IVR node exits, by script, node and exit taken.",
            labels=["script", "node", "exit"],
        )
        for (script, node, exit_), count in snap.ivr_exits.items():
            exits.add_metric([script, node, exit_], count)
        nomatch = CounterMetricFamily(
            f"{NAMESPACE}_speech_nomatch",
            "Speech recognitions that matched no choice.",
            labels=["script", "node"],
        )
        for (script, node), count in snap.speech_nomatch.items():
            nomatch.add_metric([script, node], count)
        recordings = CounterMetricFamily(
            f"{NAMESPACE}_recordings_written", "Call recordings written.", labels=["queue"]
        )
        for queue, count in snap.recordings.items():
            recordings.add_metric([queue], count)
        ignored = CounterMetricFamily(
            f"{NAMESPACE}_stats_events_ignored",
            "Statistics events that did not fit an interaction's state (a wiring bug).",
            value=snap.ignored_events,
        )
        yield from (pending, exits, nomatch, recordings, ignored)

    def _daemon(self, health: DaemonHealth) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            f"{NAMESPACE}_ami_connected",
            "1 when the AMI connection is up.",
            value=1.0 if health.ami_connected else 0.0,
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_ami_dialer_connected",
            "1 when the AMI session for Originates is up (or there is none: the main"
            " session sends them); 0: rings go on the main session meanwhile.",
            value=1.0 if health.ami_dialer_connected else 0.0,
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_ami_event_lag_seconds",
            "Delay between an AMI event's arrival and its processing.",
            value=health.ami_event_lag_seconds,
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_fastagi_sessions",
            "FastAGI sessions open now.",
            value=health.fastagi_sessions,
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_db_writer_backlog",
            "Records waiting to be written to PostgreSQL (in memory and spooled).",
            value=health.db_writer_backlog,
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_db_writer_memory_rows",
            "Records waiting in memory.",
            value=health.db_writer_memory_rows,
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_db_writer_spooled_rows",
            "Records waiting in the writer's spool file on disk.",
            value=health.db_writer_spooled_rows,
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_db_writer_oldest_seconds",
            "Age of the oldest record not written yet (0 when none).",
            value=health.db_writer_oldest_seconds,
        )
        yield CounterMetricFamily(
            f"{NAMESPACE}_db_writer_failures",
            "Record writes that failed or timed out (each is retried).",
            value=health.db_writer_failures,
        )
        yield CounterMetricFamily(
            f"{NAMESPACE}_db_writer_spool_failures",
            "Spool file operations that failed (records kept in memory meanwhile).",
            value=health.db_writer_spool_failures,
        )
        yield CounterMetricFamily(
            f"{NAMESPACE}_db_writer_rejected_rows",
            "Records PostgreSQL refused (data or integrity error), set aside in the"
            " rejected file and not retried.",
            value=health.db_writer_rejected_rows,
        )
        yield GaugeMetricFamily(
            f"{NAMESPACE}_users_backlog",
            "Logins, logouts and audit rows waiting for PostgreSQL (in memory and spooled).",
            value=health.users_backlog,
        )
        yield CounterMetricFamily(
            f"{NAMESPACE}_users_spool_failures",
            "User store spool file operations that failed (kept in memory meanwhile:"
            " a restart would lose them).",
            value=health.users_spool_failures,
        )


# prometheus_client's value formatting (Go's float syntax: +Inf, NaN, 1e+06),
# typed for mypy.
_go_float: Callable[[float], str] = floatToGoString


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(registry: CollectorRegistry) -> bytes:
    """What ``generate_latest`` writes, for families with valid legacy names.

    ``generate_latest`` re-validates and escapes every label name of every
    sample: two thirds of a scrape at 50 queues. Our names are fixed and
    valid, so only label values need escaping (tested equal to
    ``generate_latest`` output).
    """
    out: list[str] = []
    for metric in registry.collect():
        name = f"{metric.name}_total" if metric.type == "counter" else metric.name
        doc = metric.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {metric.type}\n")
        for sample in metric.samples:
            value = _go_float(sample.value)
            if sample.labels:
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels.items()))
                out.append(f"{sample.name}{{{labels}}} {value}\n")
            else:
                out.append(f"{sample.name} {value}\n")
    return "".join(out).encode()


class MetricsExporter:
    def __init__(self, stats: RealtimeStats, health: HealthProbe | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatsCollector(stats, health))

    def render(self) -> bytes:
        """The exposition text of one scrape (text format 0.0.4)."""
        return exposition(self.registry)

    async def handle(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def metrics_routes(exporter: MetricsExporter, path: str = "/metrics") -> list[web.RouteDef]:
    """Routes to add to the daemon's aiohttp app (before it starts)."""
    return [web.get(path, exporter.handle)]
