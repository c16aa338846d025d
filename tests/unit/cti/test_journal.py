"""Tier 1: resume gives exactly the missed events, or says it cannot."""

from __future__ import annotations

import json

from callcenter.cti.journal import SUPERVISORS, Journal, agent_stream


def fill(journal: Journal, stream: str, count: int) -> None:
    for i in range(count):
        journal.append(stream, float(i), "tick", {"i": i})


def test_sequence_numbers_are_per_stream() -> None:
    journal = Journal("e1")
    fill(journal, agent_stream("a01"), 3)
    fill(journal, SUPERVISORS, 1)
    assert journal.seq(agent_stream("a01")) == 3
    assert journal.seq(SUPERVISORS) == 1
    assert journal.seq(agent_stream("a02")) == 0


def test_resume_replays_the_missed_events_in_order() -> None:
    journal = Journal("e1")
    fill(journal, "s", 5)
    missed = journal.since("s", "e1", 2)
    assert missed is not None
    sent = [json.loads(frame) for frame in missed]
    assert [e["seq"] for e in sent] == [3, 4, 5]
    assert [e["data"]["i"] for e in sent] == [2, 3, 4]
    assert {e["type"] for e in sent} == {"event"}
    assert journal.since("s", "e1", 5) == []


def test_resume_is_refused_when_it_cannot_be_complete() -> None:
    journal = Journal("e1", capacity=3)
    fill(journal, "s", 10)
    assert journal.since("s", "e1", 6) is None  # event 7 is gone
    missed = journal.since("s", "e1", 7)
    assert missed is not None
    assert [json.loads(frame)["seq"] for frame in missed] == [8, 9, 10]
    assert journal.since("s", "other-epoch", 9) is None  # the daemon restarted
    assert journal.since("s", "e1", 11) is None  # a number we never gave
    assert journal.since("s", None, None) is None  # a first connection
    assert journal.since("never", "e1", 0) == []
