"""Call-centre statistics, pure: KPI definitions, interval aggregates, real time.

Input contract: :class:`InteractionRecord` and :class:`AgentSpan` for history,
the events of :mod:`callcenter.stats.events` for real time (the real-time
aggregator also folds them into records). docs/kpis.md defines every KPI.
"""

from callcenter.stats.intervals import IntervalRow, aggregate_intervals, interval_of
from callcenter.stats.kpis import (
    AgentTime,
    Counts,
    Dimension,
    Fcr,
    abandon_rate,
    agent_time,
    aht,
    asa,
    dimension_key,
    fcr_by,
    first_contact_resolution,
    occupancy,
    service_level,
    service_level2,
    summarize,
    summarize_by,
)
from callcenter.stats.model import AgentSpan, InteractionRecord, Outcome, StatsConfig
from callcenter.stats.realtime import RealtimeSnapshot, RealtimeStats

__all__ = [
    "AgentSpan",
    "AgentTime",
    "Counts",
    "Dimension",
    "Fcr",
    "InteractionRecord",
    "IntervalRow",
    "Outcome",
    "RealtimeSnapshot",
    "RealtimeStats",
    "StatsConfig",
    "abandon_rate",
    "agent_time",
    "aggregate_intervals",
    "aht",
    "asa",
    "dimension_key",
    "fcr_by",
    "first_contact_resolution",
    "interval_of",
    "occupancy",
    "service_level",
    "service_level2",
    "summarize",
    "summarize_by",
]
