"""Tier 1: the call path's phase table (callcenter/callpath/phases.py).

Every entry of the table gives its phase; every other (phase, event) pair
raises IllegalTransition and leaves the phase as it was.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from callcenter.callpath.phases import FINISHED, TRANSITIONS, Phase, PhaseEvent, next_phase
from callcenter.callpath.service import CallRecord
from callcenter.callpath.service import Phase as ReExported
from callcenter.errors import IllegalTransition

P, E = Phase, PhaseEvent

EXPECTED = {
    (P.WAITING, E.OFFERED): P.RINGING,
    (P.WAITING, E.ABANDONED): P.ABANDONED,
    (P.WAITING, E.LEFT_FOR_CALLBACK): P.CALLBACK,
    (P.WAITING, E.EXPIRED): P.EXPIRED,
    (P.RINGING, E.ANSWERED): P.CONNECTED,
    (P.RINGING, E.CUSTOMER_DIALING): P.DIALING,
    (P.RINGING, E.RONA): P.WAITING,
    (P.RINGING, E.NOT_PLACED): P.WAITING,
    (P.RINGING, E.ABANDONED): P.ABANDONED,
    (P.DIALING, E.CUSTOMER_ANSWERED): P.CONNECTED,
    (P.DIALING, E.RETRY): P.WAITING,
    (P.DIALING, E.ATTEMPTS_EXHAUSTED): P.FAILED,
    (P.CONNECTED, E.HUNG_UP): P.COMPLETED,
}
DOC = Path(__file__).parents[3] / "docs" / "callpath.md"
FORBIDDEN = [pair for pair in itertools.product(Phase, PhaseEvent) if pair not in EXPECTED]


def record(phase: Phase) -> CallRecord:
    return CallRecord("i1", "node1", "u1", "PJSIP/trunk-1", "0612345678", "3901", "support",
                      "fr", 0, 100.0, phase=phase)  # fmt: skip


def test_the_table_is_the_one_documented_here() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("phase", "event"), list(EXPECTED), ids=lambda x: str(x))
def test_every_entry_gives_its_phase(phase: Phase, event: PhaseEvent) -> None:
    assert next_phase(phase, event) is EXPECTED[(phase, event)]
    call = record(phase)
    assert call.advance(event) is EXPECTED[(phase, event)]
    assert call.phase is EXPECTED[(phase, event)]


@pytest.mark.parametrize(("phase", "event"), FORBIDDEN, ids=lambda x: str(x))
def test_an_illegal_event_raises_and_changes_nothing(phase: Phase, event: PhaseEvent) -> None:
    with pytest.raises(IllegalTransition) as raised:
        next_phase(phase, event)
    assert (raised.value.machine, raised.value.state, raised.value.event) == (
        "call",
        phase.value,
        event.value,
    )
    call = record(phase)
    with pytest.raises(IllegalTransition):
        call.advance(event)
    assert call.phase is phase


def test_finished_phases_are_those_no_event_leaves() -> None:
    leaving = {phase for phase, _event in EXPECTED}
    assert set(Phase) - leaving == FINISHED
    assert all(record(p).finished for p in FINISHED)
    assert not any(record(p).finished for p in set(Phase) - FINISHED)


def test_every_event_and_phase_is_used() -> None:
    assert {event for _phase, event in EXPECTED} == set(PhaseEvent)
    reachable = {P.WAITING, P.CONNECTED} | set(EXPECTED.values())  # the two starting phases
    assert reachable == set(Phase)


def test_phase_is_still_importable_from_the_service() -> None:
    assert ReExported is Phase


def test_the_phase_table_of_docs_callpath_is_this_table() -> None:
    rows = re.findall(r"^\| (\w+) \| (\w+) \| (\w+) \| ", DOC.read_text(), re.MULTILINE)
    documented = {(Phase(a), PhaseEvent(e)): Phase(b) for a, e, b in rows if a != "phase"}
    assert documented == TRANSITIONS
