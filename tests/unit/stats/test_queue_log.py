"""queue_log export (pure): the lines app_queue would write, hand-computed."""

from __future__ import annotations

from callcenter.stats.queue_log import (
    QueueCall,
    QueueLogOptions,
    Ring,
    Transfer,
    positions,
    queue_log_lines,
    render,
)

# A: rang a2 for 8.5 s (no answer), then a1 for 2.7 s; 12.5 s in queue; 88 s talk.
A = QueueCall(
    "1700000000.1",
    "support",
    1000.4,
    "answered",
    caller_number="0612345678",
    answered_at=1012.9,
    ended_at=1100.2,
    agent="a1",
    agent_uniqueid="1700000001.7",
    rings=(Ring("a2", 1001.0, 1009.5), Ring("a1", 1010.2, 1012.9, answered=True)),
)
# B: arrives while A waits (position 2), hangs up at 1030 once A is gone (position 1).
B = QueueCall("1700000000.2", "support", 1005.0, "abandoned", caller_number="0611", ended_at=1030.0)
# C: arrives behind A and B (position 3), asks for a callback at 1020 (B still waits: 2).
C = QueueCall("1700000000.3", "support", 1006.0, "callback", ended_at=1020.0)
# D: another queue: its own positions; transferred by a3 to the billing queue.
D = QueueCall(
    "1700000000.4",
    "sales",
    1003.0,
    "answered",
    answered_at=1004.0,
    ended_at=1050.0,
    agent="a3",
    agent_uniqueid="1700000001.9",
    rings=(Ring("a3", 1003.2, 1004.0, answered=True),),
    transfer=Transfer("qbilling"),
)
# E: still waiting when the export runs: entered, nothing else.
E = QueueCall("1700000000.5", "support", 1040.0, "open")


def test_every_event_with_app_queue_fields_in_time_order() -> None:
    text = render(queue_log_lines([E, D, C, B, A]))
    assert text.splitlines() == [
        "1000|1700000000.1|support|NONE|ENTERQUEUE||0612345678|1",
        "1003|1700000000.4|sales|NONE|ENTERQUEUE|||1",
        "1004|1700000000.4|sales|a3|CONNECT|1|1700000001.9|0",
        "1005|1700000000.2|support|NONE|ENTERQUEUE||0611|2",
        "1006|1700000000.3|support|NONE|ENTERQUEUE|||3",
        "1009|1700000000.1|support|a2|RINGNOANSWER|8500",
        # hold = 1012 - 1000 (whole seconds, as time(NULL)); ring = int(2.7)
        "1012|1700000000.1|support|a1|CONNECT|12|1700000001.7|2",
        "1020|1700000000.3|support|NONE|EXITWITHKEY|1|2|3|14",
        "1030|1700000000.2|support|NONE|ABANDON|1|2|25",
        "1040|1700000000.5|support|NONE|ENTERQUEUE|||1",
        "1050|1700000000.4|sales|a3|BLINDTRANSFER|qbilling|callcenter-transfer|1|46|1",
        "1100|1700000000.1|support|a1|COMPLETECALLER|12|88|1",
    ]
    assert text.endswith("\n")


def test_positions_are_first_in_first_out_per_queue() -> None:
    assert positions([A, B, C, D, E]) == {
        A.callid: (1, 1),
        B.callid: (2, 1),
        C.callid: (3, 2),
        D.callid: (1, 1),
        E.callid: (1, 1),
    }


def test_agent_hangup_attended_transfer_and_legacy_transfer_event() -> None:
    agent_first = QueueCall(
        "x1", "q", 10.0, "answered", answered_at=20.0, ended_at=50.0, agent="a1", ended_by="agent"
    )
    attended = QueueCall(
        "x2",
        "q",
        100.0,
        "answered",
        answered_at=101.0,
        ended_at=160.0,
        agent="a1",
        transfer=Transfer("0142", attended=True),
    )
    blind = QueueCall(
        "x3", "q", 200.0, "answered", answered_at=203.0, ended_at=230.0, agent="a2",
        transfer=Transfer("a05"),
    )  # fmt: skip
    lines = [
        line.render()
        for line in queue_log_lines(
            [agent_first, attended, blind], QueueLogOptions(transfer_event="TRANSFER")
        )
        if line.event not in ("ENTERQUEUE", "CONNECT")
    ]
    assert lines == [
        "50|x1|q|a1|COMPLETEAGENT|10|30|1",
        "160|x2|q|a1|ATTENDEDTRANSFER|BRIDGE|0142|1|59|1",
        "230|x3|q|a2|TRANSFER|a05|callcenter-transfer|3|27|1",
    ]


def test_an_answered_call_still_talking_has_no_end_event() -> None:
    talking = QueueCall("t", "q", 10.0, "answered", answered_at=12.5, agent="a1")
    assert [x.event for x in queue_log_lines([talking])] == ["ENTERQUEUE", "CONNECT"]


def test_same_second_events_keep_the_call_order() -> None:
    quick = QueueCall(
        "z", "q", 10.1, "answered", answered_at=10.2, ended_at=10.9, agent="a1",
        rings=(Ring("a9", 10.1, 10.15), Ring("a1", 10.15, 10.2, answered=True)),
    )  # fmt: skip
    assert [x.render() for x in queue_log_lines([quick])] == [
        "10|z|q|NONE|ENTERQUEUE|||1",
        "10|z|q|a9|RINGNOANSWER|50",
        "10|z|q|a1|CONNECT|0||0",
        "10|z|q|a1|COMPLETECALLER|0|0|1",
    ]
