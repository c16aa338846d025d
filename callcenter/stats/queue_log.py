"""An Asterisk-format ``queue_log`` from our interactions (pure).

Tools built for app_queue (QueueMetrics and the like) read
``/var/log/asterisk/queue_log``: one line per event,
``epoch|callid|queue|agent|EVENT|data1|data2|...``. We route calls ourselves,
so Asterisk writes none; this module writes the lines app_queue would have
written for the same calls.

Field meanings, as Asterisk's ``apps/app_queue.c`` writes them with
``ast_queue_log(queue, caller uniqueid, membername, EVENT, fmt, ...)`` and as
the Asterisk documentation describes them (docs.asterisk.org, Operation >
Logging > Queue Logs: "The pipe delimited fields from left to right are: UNIX
timestamp, [...] Unique ID for the queue callers channel, Queue name, Queue
member channel, Event type, [...] event parameters"):

``ENTERQUEUE(url|callerid|position)``
    agent ``NONE``; ``queue_exec()``: ``"%s|%s|%d", S_OR(args.url, ""),
    <caller id number>, qe.opos`` (the docs list ``url|callerid``; the third,
    the original position, was added later). We have no URL: empty.
``RINGNOANSWER(ringtime)``
    ``rna()``: ``"%d", rnatime``, in **milliseconds** (docs example
    ``...|SIP/8007|RINGNOANSWER|1000``).
``CONNECT(holdtime|bridgedchanneluniqueid|ringtime)``
    ``try_calling()``: ``"%jd|%s|%jd", time(NULL) - qe->start,
    <member channel uniqueid>, (orig - to) / 1000``: wait in whole seconds,
    the agent leg's uniqueid, ring time of the answering member in seconds.
``COMPLETECALLER`` / ``COMPLETEAGENT(holdtime|calltime|origposition)``
    ``handle_hangup()``: ``"%jd|%jd|%d", starttime - holdstart,
    time(NULL) - starttime, caller_pos``; CALLER when the caller hung up.
``ABANDON(position|origposition|waittime)``
    agent ``NONE``; ``"%d|%d|%ld", qe.pos, qe.opos, time(NULL) - qe.start``.
``BLINDTRANSFER(extension|context|holdtime|calltime|origposition)``
    ``handle_blind_transfer()`` (Asterisk 12 and later; before, ``TRANSFER``
    with the same fields, which :attr:`QueueLogOptions.transfer_event` can
    select for old tools).
``ATTENDEDTRANSFER(method|method-data|holdtime|calltime|origposition)``
    ``log_attended_transfer()``: method ``BRIDGE``, ``APP`` or ``LINK``.
``EXITWITHKEY(key|position|origposition|waittime)``
    ``queue_exec()``: ``"%s|%d|%d|%ld"``; a caller who pressed a key to leave:
    our callback requests (key :attr:`QueueLogOptions.callback_key`).

Like app_queue, times are whole seconds: every duration is the difference of
the two truncated epochs (``time(NULL)`` is an integer).

What we cannot know exactly, and what we write instead:

* **Positions**: we do not store them. They are rebuilt from the calls of the
  same queue: 1 + the calls offered before this one and still waiting at that
  moment (first in, first out: priorities are not replayed).
* **Who hung up** is not recorded: COMPLETEAGENT when the fact says so
  (``ended_by``), else COMPLETECALLER.
* **Attended transfers** have no Asterisk bridge id here: method ``BRIDGE``,
  method-data the number the caller was transferred to.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

NONE = "NONE"
"""app_queue's agent field for events that concern no member."""


@dataclass(frozen=True, slots=True)
class Ring:
    """An agent's phone rang for this call from ``start`` to ``end`` (epoch)."""

    agent: str
    start: float
    end: float
    answered: bool = False


@dataclass(frozen=True, slots=True)
class Transfer:
    extension: str
    """Queue, agent or number the caller went to."""
    context: str = "callcenter-transfer"
    attended: bool = False


@dataclass(frozen=True, slots=True)
class QueueCall:
    """One inbound interaction in one queue, as the queue_log needs it."""

    callid: str
    """The caller channel's uniqueid (app_queue's callid), else the interaction id."""
    queue: str
    enqueued_at: float
    outcome: Literal["answered", "abandoned", "callback", "open"]
    caller_number: str = ""
    answered_at: float | None = None
    ended_at: float | None = None
    """Answered: end of the conversation; abandoned/callback: when the caller left."""
    agent: str | None = None
    agent_uniqueid: str = ""
    rings: tuple[Ring, ...] = ()
    ended_by: Literal["caller", "agent"] | None = None
    transfer: Transfer | None = None


@dataclass(frozen=True, slots=True)
class QueueLogOptions:
    transfer_event: Literal["BLINDTRANSFER", "TRANSFER"] = "BLINDTRANSFER"
    callback_key: str = "1"


@dataclass(frozen=True, slots=True, order=True)
class QueueLogLine:
    epoch: int
    order: int
    """Tie-break within one second: a call's events in their logical order."""
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]

    def render(self) -> str:
        return "|".join(
            (str(self.epoch), self.callid, self.queue, self.agent, self.event, *self.data)
        )


def _s(t: float) -> int:
    return math.floor(t)


def _wait_end(call: QueueCall) -> float:
    if call.outcome == "answered" and call.answered_at is not None:
        return call.answered_at
    if call.outcome in ("abandoned", "callback") and call.ended_at is not None:
        return call.ended_at
    return math.inf


def positions(calls: Sequence[QueueCall]) -> dict[str, tuple[int, int]]:
    """callid -> (original position, position when the call left the queue).

    A call's position is 1 + the calls of the same queue offered before it
    (earlier ``enqueued_at``, ties by callid) and still waiting at that moment.
    """
    result: dict[str, tuple[int, int]] = {}
    by_queue: dict[str, list[QueueCall]] = defaultdict(list)
    for call in calls:
        by_queue[call.queue].append(call)
    for queue_calls in by_queue.values():
        # Sweep: at each moment, the waiting calls sorted by (enqueued, callid).
        events: list[tuple[float, int, QueueCall]] = []
        for call in queue_calls:
            events.append((call.enqueued_at, 1, call))
            end = _wait_end(call)
            if end != math.inf:
                events.append((end, 0, call))  # leaves before a same-time arrival
        events.sort(key=lambda e: (e[0], e[1], e[2].enqueued_at, e[2].callid))
        waiting: list[tuple[float, str]] = []
        original: dict[str, int] = {}
        for _t, kind, call in events:
            key = (call.enqueued_at, call.callid)
            if kind == 1:
                bisect.insort(waiting, key)
                original[call.callid] = bisect.bisect_left(waiting, key) + 1
            else:
                index = bisect.bisect_left(waiting, key)
                result[call.callid] = (original[call.callid], index + 1)
                del waiting[index]
        for _enqueued, callid in waiting:
            result[callid] = (original[callid], original[callid])
    return result


def queue_log_lines(
    calls: Iterable[QueueCall], options: QueueLogOptions = QueueLogOptions()
) -> list[QueueLogLine]:
    """Every event of ``calls``, in time order (one call's events in their order)."""
    chosen = list(calls)
    where = positions(chosen)
    lines: list[QueueLogLine] = []
    for call in chosen:
        opos, pos = where[call.callid]
        lines += _call_lines(call, opos, pos, options)
    lines.sort()
    return lines


def _call_lines(
    call: QueueCall, opos: int, pos: int, options: QueueLogOptions
) -> list[QueueLogLine]:
    lines: list[QueueLogLine] = []
    enq = _s(call.enqueued_at)

    def line(t: float, order: int, agent: str, event: str, *data: object) -> None:
        values = tuple(str(d) for d in data)
        lines.append(QueueLogLine(_s(t), order, call.callid, call.queue, agent, event, values))

    line(call.enqueued_at, 0, NONE, "ENTERQUEUE", "", call.caller_number, opos)
    for ring in sorted(call.rings, key=lambda r: r.start):
        if not ring.answered:
            ms = round((ring.end - ring.start) * 1000)
            line(ring.end, 1, ring.agent, "RINGNOANSWER", max(ms, 0))
    if call.outcome == "answered" and call.answered_at is not None and call.agent:
        answered = [r for r in call.rings if r.answered and r.agent == call.agent]
        ring_s = max(_s(call.answered_at - answered[-1].start), 0) if answered else 0
        hold = _s(call.answered_at) - enq
        line(call.answered_at, 2, call.agent, "CONNECT", hold, call.agent_uniqueid, ring_s)
        if call.ended_at is None:
            return lines
        talk = _s(call.ended_at) - _s(call.answered_at)
        transfer = call.transfer
        if transfer is not None and transfer.attended:
            line(
                call.ended_at, 3, call.agent, "ATTENDEDTRANSFER",
                "BRIDGE", transfer.extension, hold, talk, opos,
            )  # fmt: skip
        elif transfer is not None:
            line(
                call.ended_at, 3, call.agent, options.transfer_event,
                transfer.extension, transfer.context, hold, talk, opos,
            )  # fmt: skip
        else:
            event = "COMPLETEAGENT" if call.ended_by == "agent" else "COMPLETECALLER"
            line(call.ended_at, 3, call.agent, event, hold, talk, opos)
    elif call.outcome == "abandoned" and call.ended_at is not None:
        line(call.ended_at, 3, NONE, "ABANDON", pos, opos, _s(call.ended_at) - enq)
    elif call.outcome == "callback" and call.ended_at is not None:
        wait = _s(call.ended_at) - enq
        line(call.ended_at, 3, NONE, "EXITWITHKEY", options.callback_key, pos, opos, wait)
    return lines


def render(lines: Iterable[QueueLogLine]) -> str:
    """The file's text: one event per line, newline-terminated."""
    return "".join(line.render() + "\n" for line in lines)
