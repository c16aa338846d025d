"""End-to-end load: sipp callers into sipp agents through the real Asterisk.

Starts its own Asterisk sandbox, then for each mode:
  ours      our daemon (FastAGI queue + ACD + agent-first Originate);
  appqueue  Asterisk's app_queue (asterisk/queues.conf appqueue-compare,
            strategy leastrecent, same agents as dynamic members).
Callers arrive at --cps for --seconds; agents answer after 0.5 s and talk for
--talk seconds; no wrap-up in either mode. Measured from AMI events as this
process receives them (ours: on the daemon's own AMI link, before the daemon
handles them):
  enqueue->ring     caller enters the queue (ours: the FastAGI session;
                    app_queue: QueueCallerJoin) -> the agent's channel exists
  agent-free->ring  a caller waits for an agent; the agent who will take them
                    ends a call -> that agent's phone rings for them
plus calls lost (entered, never rang an agent), channels left over (listed
when there are any), and this process's CPU (it runs the daemon in "ours"
mode).

agent-free->ring is also given on Asterisk's own clock (``*_asterisk``: the
``Timestamp`` header Asterisk puts on each event, manager.conf
``timestampevents``): from Asterisk seeing the agent's call end to Asterisk
creating the agent's new leg. That leaves out how late this process reads
the new leg's event, which rings no phone any later, and keeps how late the
daemon read the call's end, which delays its Originate.

    .venv/bin/python bench/e2e_load.py [--cps 4] [--seconds 30] [--agents 16] [--talk 3.5]
    .venv/bin/python bench/e2e_load.py --cps 30 --seconds 60 --agents 320 --talk 9.5 --no-audio

The daemon's event loop runs at Asterisk's realtime priority, as under
``callcenter run`` (``callcenter/scheduling.py``; ``--no-realtime``: ordinary
priority). The daemon runs on uvloop, as under ``callcenter run``; ``--loop asyncio``
runs it on the standard loop (needed by ``--slow-callbacks``, which times
that loop's callbacks).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import resource
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import uvloop
from pydantic import SecretStr

from callcenter.adapters.ami import AmiClient, StreamItem
from callcenter.config import AmiConfig, SchedulingConfig, Settings
from callcenter.daemon import Daemon
from callcenter.heap import serving_heap
from callcenter.protocol.ami_events import DialBegin, Hangup, Newchannel, QueueCallerJoin
from callcenter.sandbox.asterisk import AsteriskPorts, AsteriskSandbox
from callcenter.sandbox.postgres import free_port
from callcenter.scheduling import loop_priority
from callcenter.testing.sipp import free_udp_port, sipp_agents, sipp_caller


@dataclass
class Timeline:
    """What one mode's run looked like, from AMI."""

    entered: dict[str, float] = field(default_factory=dict)  # caller uniqueid -> t
    rang: dict[str, float] = field(default_factory=dict)  # caller uniqueid -> first ring t
    rang_agent: dict[str, str] = field(default_factory=dict)  # caller -> endpoint first rung
    agent_rings: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    agent_ends: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    leg_seen: dict[str, float] = field(default_factory=dict)  # agent leg -> t
    first_leg: dict[str, str] = field(default_factory=dict)  # ours: caller -> first agent leg
    lost_as: Counter[str] = field(default_factory=Counter)  # never rung, by outcome


def endpoint_of(channel: str) -> str:
    return channel.split("/", 1)[-1].rsplit("-", 1)[0]


def print_census(mode: str) -> None:
    """What a full garbage collection would walk now: the objects the
    collector tracks (frozen start-up objects excluded), by type."""
    gc.collect()
    counts: Counter[str] = Counter(type(o).__qualname__ for o in gc.get_objects())
    print(f"  {mode}: {sum(counts.values())} objects tracked by the GC; most common:")
    for name, count in counts.most_common(15):
        print(f"    {count:9d}  {name}")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 if gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command: state is field 3, utime and stime fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_to_ring(timeline: Timeline) -> list[float]:
    """Agent free -> ring, for callers who waited for an agent: for each
    caller's first ring, when the agent rung ended a call after the caller
    entered the queue, the time from that end to the ring.

    (Until 2026-12-02 this paired every agent's call end that fell while any
    caller waited with that agent's own next ring, even when the caller went
    to another agent who was free: with spare agents it measured how long the
    freed agent stayed idle, not how fast a waiting caller was served.)"""
    return [rang - end for _caller, end, rang in freed_then_rung(timeline)]


def freed_then_rung(timeline: Timeline) -> list[tuple[str, float, float]]:
    """(caller, agent's call end, ring) of each caller who waited for the
    agent that took them (see :func:`free_to_ring`)."""
    out = []
    for caller, rang in timeline.rang.items():
        agent, entered = timeline.rang_agent.get(caller), timeline.entered.get(caller)
        if agent is None or entered is None:
            continue
        ends = [end for end in timeline.agent_ends.get(agent, ()) if entered < end <= rang]
        if ends:
            out.append((caller, max(ends), rang))
    return out


def where_free_to_ring_goes(
    timeline: Timeline, stamped: Timeline, written: dict[str, float], accepted: dict[str, float]
) -> dict[str, list[float]]:
    """Ours: agent-free -> ring in parts. ``read``: Asterisk made the
    call-end event -> the daemon's AMI link read it; ``daemon``: read -> our
    Originate written to the socket; ``asterisk``: written -> Asterisk made
    the new leg's event (its clock); ``accept``, within ``asterisk``: written
    -> Asterisk's "queued" answer to the Originate read here (how long the
    action waited for Asterisk's AMI session to take it)."""
    parts: dict[str, list[float]] = {"read": [], "daemon": [], "asterisk": [], "accept": []}
    stamped_ends = {caller: end for caller, end, _rang in freed_then_rung(stamped)}
    for caller, end, _rang in freed_then_rung(timeline):
        leg = timeline.first_leg.get(caller)
        if leg is None or leg not in written or leg not in stamped.leg_seen:
            continue
        if caller in stamped_ends:
            parts["read"].append(end - stamped_ends[caller])
        parts["daemon"].append(written[leg] - end)
        parts["asterisk"].append(stamped.leg_seen[leg] - written[leg])
        if leg in accepted:
            parts["accept"].append(accepted[leg] - written[leg])
    return parts


def noting(
    originate: Callable[..., Any], written: dict[str, float], accepted: dict[str, float]
) -> Callable[..., Any]:
    """``originate`` that notes when each leg's Originate was written and
    when Asterisk's answer to it was read."""

    def noted(*args: Any, **kwargs: Any) -> Any:
        leg = kwargs["channel_id"]
        placing = originate(*args, **kwargs)
        written[leg] = time.monotonic()

        async def answered() -> Any:
            outcome = await placing
            accepted[leg] = time.monotonic()
            return outcome

        return answered()

    return noted


def plot_free_to_ring(path: Path, mode: str, timeline: Timeline, started: float) -> None:
    """Each agent-free -> ring as a dot at the time the agent became free:
    whether the slow ones come in bursts (a stall) or are spread out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    samples = sorted(
        (end - started, (rang - end) * 1000) for _c, end, rang in freed_then_rung(timeline)
    )
    if not samples:
        return
    fig = Figure(figsize=(11, 4.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots()
    axes.scatter([t for t, _ in samples], [ms for _, ms in samples], s=3, alpha=0.5)
    axes.axhline(10, color="tab:red", linewidth=1, label="goal: 10 ms")
    axes.set_yscale("log")
    axes.set_xlabel("seconds since the first call")
    axes.set_ylabel("agent-free -> ring (ms)")
    axes.set_title(f"{mode}: {len(samples)} callers who waited for an agent")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"  {mode}: plot written to {path}")


async def loop_lag(out: list[float], period: float = 0.005) -> None:
    while True:
        before = time.perf_counter()
        await asyncio.sleep(period)
        out.append(time.perf_counter() - before - period)


@dataclass
class SlowCallbacks:
    """Event-loop callbacks that ran at least ``threshold`` seconds, by what
    they ran: what holds the loop (and every event behind it) back."""

    threshold: float
    count: Counter[str] = field(default_factory=Counter)
    worst: dict[str, float] = field(default_factory=dict)
    # Wall time well above CPU time: the process was descheduled meanwhile.
    descheduled: int = 0

    @contextlib.contextmanager
    def tracing(self) -> Iterator[None]:
        original = asyncio.events.Handle._run

        def timed(handle: asyncio.events.Handle) -> None:
            began, began_cpu = time.perf_counter(), time.thread_time()
            original(handle)
            took = time.perf_counter() - began
            if took >= self.threshold:
                name = callback_name(handle)
                self.count[name] += 1
                self.worst[name] = max(self.worst.get(name, 0.0), took)
                if time.thread_time() - began_cpu < took / 2:
                    self.descheduled += 1

        asyncio.events.Handle._run = timed  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            asyncio.events.Handle._run = original  # type: ignore[method-assign]

    def report(self, mode: str) -> None:
        total = sum(self.count.values())
        print(
            f"  {mode}: {total} callbacks ran >= {self.threshold * 1000:.0f} ms"
            f" ({self.descheduled} of them mostly descheduled); by callback:"
        )
        for name, count in self.count.most_common(12):
            print(f"    {count:6d}  worst {self.worst[name] * 1000:6.1f} ms  {name}")


def callback_name(handle: asyncio.events.Handle) -> str:
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {getattr(coro, '__qualname__', repr(coro))}"
    return getattr(callback, "__qualname__", repr(callback))


@contextlib.asynccontextmanager
async def sandbox(
    phones_needed: int,
) -> AsyncIterator[tuple[AsteriskSandbox, AsteriskPorts, int, str]]:
    phones = free_udp_port()
    ports = AsteriskPorts(
        sip=free_udp_port(),
        ami=free_port(),
        rtp_start=20000,
        rtp_end=29999,
        agi=free_port(),
        trunk=free_udp_port(),
        phones_contact=f"127.0.0.1:{phones}",
    )
    box = AsteriskSandbox(
        f"bench-{os.getpid()}",
        ports=ports,
        recordings=Path(tempfile.mkdtemp()),
        load_phones=phones_needed,
    )
    creds = box.start()
    try:
        yield box, ports, phones, creds.secret
    finally:
        box.destroy()


def site_file(agents: int) -> Path:
    lines = [
        "queues:",
        "  load: {skills: {support: 1}, wrapup: 0, first_announce_after: 3600,"
        " ring_timeout: 15, record: false, callback: false}",
        "routes:",
        "  default: {queue: load}",
        "agents:",
    ]
    lines += [
        f"  a{i}: {{name: Agent {i}, endpoint: load{i}, skills: {{support: 5}}}}"
        for i in range(1, agents + 1)
    ]
    path = Path(tempfile.mkdtemp()) / "site.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def run_mode(mode: str, args: argparse.Namespace) -> dict[str, float]:
    async with sandbox(args.agents) as (box, ports, phones, secret):
        timeline = Timeline()
        stamped = Timeline()  # the same, on Asterisk's event timestamps
        written: dict[str, float] = {}  # ours: agent leg -> Originate written
        accepted: dict[str, float] = {}  # ours: agent leg -> Originate's answer read
        clock = time.monotonic
        wall_ahead = time.time() - time.monotonic()

        def asterisk_time(item: StreamItem, fallback: float) -> float:
            stamp = item.frame.get("Timestamp") if hasattr(item, "frame") else None
            return float(stamp) - wall_ahead if stamp else fallback

        daemon: Daemon | None = None
        # ours: the daemon's own AMI stream (a second connection would double
        # the parsing in this process); app_queue: a connection of our own.
        client: AmiClient | None = None

        def listen(item: StreamItem) -> None:
            received = clock()
            for line, now in ((timeline, received), (stamped, asterisk_time(item, received))):
                note(line, item, now)

        def note(line: Timeline, item: StreamItem, now: float) -> None:
            if isinstance(item, Newchannel):
                name = item.snapshot.channel
                if name.startswith("PJSIP/load"):
                    line.agent_rings[endpoint_of(name)].append(now)
                    line.leg_seen[item.uniqueid] = now
            elif isinstance(item, QueueCallerJoin):
                line.entered[item.uniqueid] = now
            elif isinstance(item, DialBegin) and item.caller is not None and mode == "appqueue":
                caller = item.caller.uniqueid
                if caller not in line.rang:
                    line.rang[caller] = now
                    line.rang_agent[caller] = endpoint_of(item.dest.channel)
            elif (
                isinstance(item, Hangup)
                and item.snapshot.channel.startswith("PJSIP/load")
                and item.snapshot.state_desc == "Up"
            ):
                line.agent_ends[endpoint_of(item.snapshot.channel)].append(now)

        exten = "5999"
        if mode == "ours":
            settings = Settings.model_validate(
                {
                    "ami": {"port": ports.ami, "secret": secret},
                    "agi": {"port": ports.agi},
                    "http": {"port": 0, "auth": "off"},
                    "site": {"file": str(site_file(args.agents))},
                    "scheduling": {"realtime": args.realtime},
                }
            )
            daemon = Daemon(settings)
            daemon.ami.subscribe(listen, first=True)
            # When each Originate is written (AmiClient.originate writes
            # before it returns its awaitable), on whichever session sends it.
            for session in (daemon.ami, daemon.dialer):
                if session is not None:
                    session.originate = noting(session.originate, written, accepted)  # type: ignore[method-assign]
            await daemon.start()
            await daemon.ami.wait_connected(10)
            for i in range(1, args.agents + 1):
                daemon.callpath.agent_login(f"a{i}")
            exten = "3901"
        else:
            client = AmiClient(AmiConfig(port=ports.ami), SecretStr(secret))
            client.subscribe(listen)
            await client.start()
            await client.wait_connected(10)
            for i in range(1, args.agents + 1):
                await client.send(
                    "QueueAdd", {"Queue": "appqueue-compare", "Interface": f"PJSIP/load{i}"}
                )
        total = int(args.cps * args.seconds)
        lags: list[float] = []
        pauses: list[float] = []
        pauses_cpu: list[float] = []
        lag_task = asyncio.create_task(loop_lag(lags))
        gc_began = gc_began_cpu = 0.0
        slow = SlowCallbacks(args.slow_callbacks / 1000) if args.slow_callbacks else None
        measuring = False  # not the collections serving_heap and the census make

        def gc_pause(phase: str, info: dict[str, int]) -> None:
            nonlocal gc_began, gc_began_cpu
            if not measuring:
                return
            if phase == "start":
                gc_began = time.perf_counter()
                gc_began_cpu = time.thread_time()
            elif info["generation"] == 2:
                pauses.append(time.perf_counter() - gc_began)
                pauses_cpu.append(time.thread_time() - gc_began_cpu)

        gc.callbacks.append(gc_pause)
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        started = clock()
        # As `run` does: the loop's thread at Asterisk's priority, the heap
        # frozen (ours only).
        scheduling = daemon.settings.scheduling if daemon is not None else None
        async with (
            contextlib.AsyncExitStack() as serving,
            sipp_agents(
                ports.sip,
                port=phones,
                answer_ms=500,
                talk_ms=int(args.talk * 1000),
                audio=args.audio,
            ) as agents,
            sipp_caller(
                ports.sip,
                exten,
                calls=total,
                rate=args.cps,
                concurrent=400,
                wait_bye_ms=int((args.seconds + 120) * 1000),
            ) as callers,
        ):
            if daemon is not None and scheduling is not None:
                serving.enter_context(loop_priority(scheduling.realtime, scheduling.priority))
                await serving.enter_async_context(serving_heap())
            measuring = True
            tracing = contextlib.ExitStack()
            if slow is not None:
                tracing.enter_context(slow.tracing())
            # The callers and the phones are the outside world: on this
            # machine they must not take the CPU from the system under test
            # (nice), nor be starved by it (--load-realtime: with Asterisk
            # and the daemon's loop at realtime priority, phones at nice 10
            # answered and hung up late, in clumps that then came back every
            # call length, a traffic no real phones make).
            for load in (agents, callers):
                if load.process is None:
                    continue
                if args.load_realtime:
                    for thread in os.listdir(f"/proc/{load.process.pid}/task"):
                        os.sched_setscheduler(
                            int(thread), os.SCHED_RR, os.sched_param(SchedulingConfig().priority)
                        )
                else:
                    os.setpriority(os.PRIO_PROCESS, load.process.pid, args.load_nice)
            # Where the machine's CPU goes, besides the daemon.
            others = {
                "asterisk": box.pid(),
                "sipp_agents": agents.process.pid if agents.process else None,
                "sipp_callers": callers.process.pid if callers.process else None,
            }
            others_before = {name: cpu_seconds(pid) for name, pid in others.items()}
            # Read each second: a process that ended has no CPU time to read.
            others_used = dict.fromkeys(others, 0.0)
            shown = 0
            while callers.process is not None and callers.process.returncode is None:
                await asyncio.sleep(1)
                for name, pid in others.items():
                    used = cpu_seconds(pid) - others_before[name]
                    others_used[name] = max(others_used[name], used)
                rung = sum(len(r) for r in timeline.agent_rings.values())
                if rung // 25 != shown // 25:
                    print(f"  {mode}: {rung}/{total} agent rings", flush=True)
                shown = rung
                if clock() - started > args.seconds + 180:
                    break
            others_cpu = {name: used / (clock() - started) for name, used in others_used.items()}
            await callers.wait(timeout=30)
            measuring = False
            tracing.close()
            if slow is not None:
                slow.report(mode)
            if daemon is not None and args.census:
                print_census(mode)
        elapsed = clock() - started
        lag_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lag_task
        gc.callbacks.remove(gc_pause)
        usage_after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (
            usage_after.ru_utime
            + usage_after.ru_stime
            - usage_before.ru_utime
            - usage_before.ru_stime
        ) / elapsed
        await asyncio.sleep(2)
        stuck = int(box.cli("core show channels count").split()[0] or 0)
        if stuck:
            listing = box.cli("core show channels concise")
            print(f"  {mode}: channels left over:\n" + listing)
            # What each one is doing (application, PBX thread, bridge), and
            # whether our side still holds a session for it.
            for line in listing.splitlines()[:5]:
                print(box.cli(f"core show channel {line.split('!', 1)[0]}"))
            if daemon is not None:
                print(f"  {mode}: FastAGI sessions open: {daemon.agi.stats.active}")
            # Does a hang-up request clear them (what a reaper could do)?
            for line in listing.splitlines():
                print(box.cli(f"channel request hangup {line.split('!', 1)[0]}").strip())
            await asyncio.sleep(2)
            left = int(box.cli("core show channels count").split()[0] or 0)
            print(f"  {mode}: after a hang-up request, channels left over: {left}")
        if daemon is not None:
            # Ours: entry and first ring of every caller, from the call path's
            # own records (the same monotonic clock as this listener).
            for record in [*daemon.callpath.history, *daemon.callpath.calls.values()]:
                for view in (timeline, stamped):
                    view.entered[record.caller_uniqueid] = record.arrived_at
                if record.legs and record.legs[0][1] in timeline.leg_seen:
                    first_agent, first_leg = record.legs[0]
                    endpoint = daemon.site.agents[first_agent].endpoint
                    timeline.first_leg[record.caller_uniqueid] = first_leg
                    for view in (timeline, stamped):
                        view.rang[record.caller_uniqueid] = view.leg_seen[first_leg]
                        view.rang_agent[record.caller_uniqueid] = endpoint
                else:
                    # Lost: how the interaction ended says why.
                    where = record.abandoned_where or ""
                    timeline.lost_as[f"{record.phase.value} {where}".strip()] += 1
            if timeline.lost_as:
                print(f"  {mode}: callers never rung, by outcome: {dict(timeline.lost_as)}")
            await daemon.stop()
        if client is not None:
            await client.stop()
    enqueue = [timeline.rang[c] - t for c, t in timeline.entered.items() if c in timeline.rang]
    freed = free_to_ring(timeline)
    if args.plot is not None:
        plot_free_to_ring(
            args.plot.with_name(f"{args.plot.stem}-{mode}.png"), mode, timeline, started
        )
    freed_stamped = free_to_ring(stamped)
    parts = where_free_to_ring_goes(timeline, stamped, written, accepted)
    lost = sum(1 for c in timeline.entered if c not in timeline.rang)
    figures = {
        "enqueue_to_ring_p50_ms": percentile(enqueue, 0.5) * 1000,
        "enqueue_to_ring_p99_ms": percentile(enqueue, 0.99) * 1000,
        "free_to_ring_p50_ms": percentile(freed, 0.5) * 1000,
        "free_to_ring_p99_ms": percentile(freed, 0.99) * 1000,
        "free_to_ring_samples": float(len(freed)),
        # The share of waiting callers rung within the goal (10 ms).
        "free_to_ring_within_10ms_percent": (
            100.0 * sum(1 for f in freed if f <= 0.010) / len(freed) if freed else float("nan")
        ),
        "free_to_ring_asterisk_p50_ms": percentile(freed_stamped, 0.5) * 1000,
        "free_to_ring_asterisk_p99_ms": percentile(freed_stamped, 0.99) * 1000,
        # Ours only: where agent-free -> ring goes (where_free_to_ring_goes).
        **{
            f"free_to_ring_part_{part}_{name}_ms": percentile(values, q) * 1000
            for part, values in parts.items()
            for name, q in (("p50", 0.5), ("p99", 0.99))
            if values
        },
        "calls": float(len(timeline.entered)),
        "lost": float(lost),
        "stuck": float(stuck),
        "cps": total / args.seconds,
        "cpu_percent": cpu * 100,
        **{f"cpu_{name}_percent": share * 100 for name, share in others_cpu.items()},
        "mean_enqueue_ms": (statistics.mean(enqueue) * 1000) if enqueue else float("nan"),
        # The daemon's event loop: how late a 5 ms timer fires (anything the
        # loop did meanwhile delays every event), and full GC pauses.
        "loop_lag_p99_ms": percentile(lags, 0.99) * 1000,
        "loop_lag_max_ms": max(lags, default=float("nan")) * 1000,
        "gc_full_pauses": float(len(pauses)),
        "gc_full_max_ms": max(pauses, default=0.0) * 1000,
        # The same pauses in CPU time: far less means the thread was
        # descheduled during the collection (a machine short of CPU).
        "gc_full_max_cpu_ms": max(pauses_cpu, default=0.0) * 1000,
    }
    print(f"== {mode}")
    for key, value in figures.items():
        print(f"  {key:34} {value:10.1f}")
    return figures


async def main(args: argparse.Namespace) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    ours = await run_mode("ours", args)
    theirs = await run_mode("appqueue", args) if args.compare else None
    extra = ""
    if theirs is not None:
        extra = (
            f" appqueue_free_to_ring_p99_ms={theirs['free_to_ring_p99_ms']:.1f}"
            f" appqueue_free_to_ring_asterisk_p99_ms={theirs['free_to_ring_asterisk_p99_ms']:.1f}"
            f" appqueue_enqueue_to_ring_p50_ms={theirs['enqueue_to_ring_p50_ms']:.1f}"
        )
    print(
        f"RESULT e2e_free_to_ring_p99_ms={ours['free_to_ring_p99_ms']:.1f}"
        f" enqueue_to_ring_p50_ms={ours['enqueue_to_ring_p50_ms']:.1f}"
        f" lost={ours['lost']:.0f} stuck={ours['stuck']:.0f} cps={ours['cps']:.1f}"
        f" e2e_free_to_ring_asterisk_p99_ms={ours['free_to_ring_asterisk_p99_ms']:.1f}" + extra
    )


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--cps", type=float, default=4.0)
    cli.add_argument("--seconds", type=float, default=30.0)
    cli.add_argument("--agents", type=int, default=16)
    cli.add_argument("--talk", type=float, default=3.5)
    cli.add_argument("--no-compare", dest="compare", action="store_false")
    cli.add_argument(
        "--load-nice",
        type=int,
        default=10,
        help="nice value of the sipp callers and agents (0: same priority as the daemon)",
    )
    cli.add_argument(
        "--load-realtime",
        action="store_true",
        help="the sipp callers and agents under SCHED_RR at the daemon's default priority"
        " (Asterisk's, 10) instead: not starved by them, nor preempting them",
    )
    cli.add_argument(
        "--no-realtime",
        dest="realtime",
        action="store_false",
        help="the daemon's loop at ordinary priority (default: SCHED_RR 10, as `run`)",
    )
    cli.add_argument(
        "--slow-callbacks",
        type=float,
        default=0.0,
        metavar="MS",
        help="list the event-loop callbacks that ran at least MS milliseconds",
    )
    cli.add_argument(
        "--census", action="store_true", help="print the objects the GC walks at the end"
    )
    cli.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="write agent-free -> ring over time as PNG (PATH-<mode>.png)",
    )
    cli.add_argument(
        "--no-audio", dest="audio", action="store_false", help="agents send no RTP (big runs)"
    )
    cli.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the daemon's event loop (uvloop, as `callcenter run`; asyncio: the standard one)",
    )
    options = cli.parse_args()
    if options.slow_callbacks and options.loop != "asyncio":
        cli.error("--slow-callbacks times the standard loop's callbacks: add --loop asyncio")
    if options.loop == "uvloop":
        uvloop.run(main(options))
    else:
        asyncio.run(main(options))
