"""Ring -> screen-pop latency with 200 connected agent desktops.

The real CTI WebSocket server (aiohttp, journal, per-connection queues) and
200 real WebSocket clients over loopback, all in one process. Each round,
every agent's phone "rings" at once (the worst burst: 200 screen-pops pushed
in the same instant); latency is from the moment the bridge publishes the
screen-pop to the moment the client has parsed it. Clients and server share
one event loop and one core, so this is an upper bound for the server alone.

    .venv/bin/python bench/cti_fanout.py [--sockets 200] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import aiohttp
from aiohttp import web

from callcenter import logs
from callcenter.adapters.cti_ws import CtiServer
from callcenter.clock import SystemClock
from callcenter.cti.access import Principal, Role
from callcenter.cti.journal import Journal, agent_stream
from callcenter.cti.projector import Publication


def screen_pop(agent: str, round_no: int) -> dict[str, Any]:
    """About the size of a real screen-pop (IVR path, contact card, history)."""
    return {
        "interaction": f"{agent}-{round_no}",
        "kind": "call",
        "number": "0612345678",
        "name": "Mme Claire Martin",
        "queue": "support",
        "language": "fr",
        "priority": 5,
        "waited": 12.4,
        "vip": True,
        "intent": "facturation",
        "ivr_path": ["accueil", "langue", "identification", "menu", "facturation"],
        "ivr_data": {"account": "12345678", "montant": 42.5},
        "contact": {"id": "C001", "name": "Mme Claire Martin", "segment": "gestion privée"},
        "history": [{"at": "2026-11-20T10:00:00Z", "queue": "support", "disposition": "resolved"}]
        * 5,
        "sent": time.perf_counter(),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    logs.configure("warning", "console")

    async def authenticate(token: str) -> Principal:
        return Principal(token, Role.AGENT, token)

    server = CtiServer(Journal("bench"), authenticate, lambda _p: {}, SystemClock())
    app = web.Application()
    app.add_routes(server.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    latencies: list[float] = []
    steady: list[float] = []
    agents = [f"a{i:03d}" for i in range(args.sockets)]
    done = asyncio.Event()
    expected = args.sockets * args.rounds

    async def desktop(http: aiohttp.ClientSession, agent: str, ready: asyncio.Event) -> None:
        async with http.ws_connect(f"http://127.0.0.1:{port}/cti/ws") as ws:
            await ws.send_str(json.dumps({"type": "hello", "token": agent}))
            await ws.receive()  # welcome
            ready.set()
            async for message in ws:
                data = json.loads(message.data)
                if data["type"] == "event" and data["kind"] == "call.ringing":
                    lag = time.perf_counter() - data["data"]["sent"]
                    (steady if data["data"]["interaction"].endswith("-s") else latencies).append(
                        lag
                    )
                    if len(latencies) == expected:
                        done.set()

    # One connection per desktop (the default connector stops at 100).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        readies = [asyncio.Event() for _ in agents]
        clients = [
            asyncio.create_task(desktop(http, a, r)) for a, r in zip(agents, readies, strict=True)
        ]
        await asyncio.gather(*(r.wait() for r in readies))
        print(f"{server.connections} desktops connected")
        started = time.perf_counter()
        for round_no in range(args.rounds):
            for agent in agents:
                server.publish(
                    Publication(
                        agent_stream(agent),
                        time.time(),
                        "call.ringing",
                        screen_pop(agent, round_no),
                    )
                )
            await asyncio.sleep(0.25)
        try:
            await asyncio.wait_for(done.wait(), 60)
        except TimeoutError:
            raise SystemExit(f"only {len(latencies)} of {expected} screen-pops arrived") from None
        elapsed = time.perf_counter() - started
        # Then a busy but ordinary day: 50 rings a second spread over the agents.
        for i in range(500):
            agent = agents[i % len(agents)]
            pop = screen_pop(agent, i)
            pop["interaction"] = f"{agent}-{i}-s"
            server.publish(Publication(agent_stream(agent), time.time(), "call.ringing", pop))
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    await runner.cleanup()

    ms = sorted(x * 1000 for x in latencies)
    p50 = statistics.median(ms)
    p99 = ms[int(len(ms) * 0.99) - 1]
    print(f"screen-pops delivered: {len(ms)} in {args.rounds} bursts of {args.sockets}")
    print(f"ring -> screen-pop: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms")
    print(f"wall time {elapsed:.1f} s")
    calm = sorted(x * 1000 for x in steady)
    calm_p99 = calm[int(len(calm) * 0.99) - 1]
    print(
        f"steady 50 rings/s: {len(calm)} screen-pops, p50 {statistics.median(calm):.2f} ms, "
        f"p99 {calm_p99:.2f} ms"
    )
    print(
        f"RESULT screenpop_p99_ms={p99:.1f} sockets={args.sockets} screenpop_p50_ms={p50:.1f} "
        f"steady_p99_ms={calm_p99:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
