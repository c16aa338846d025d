"""FastAGI throughput: sessions and commands per second through our server.

A scripted Asterisk side (many concurrent connections on loopback) sends the
agi_* headers, answers each command at once, and hangs up after N commands.
Measures what the daemon's FastAGI layer costs per call, without Asterisk.

    .venv/bin/python bench/agi_sessions.py [--sessions 2000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import structlog

from callcenter.adapters.fastagi import AgiSession, FastAgiServer
from callcenter.protocol.agi import AgiParser

HEADERS = (
    "agi_network: yes\nagi_network_script: bench?dnis=0800\nagi_channel: PJSIP/trunk-{n:08x}\n"
    "agi_uniqueid: node1-1.{n}\nagi_callerid: 0612345678\n\n"
)


async def handler(session: AgiSession) -> None:
    await session.answer()
    for _ in range(8):
        await session.set_variable("CC_STEP", "x")
    await session.get_data("beep", timeout_ms=1000, max_digits=1)


async def one_call(port: int, n: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEADERS.format(n=n).encode())
    while True:
        sent = time.perf_counter()
        line = await reader.readline()
        if not line:
            break
        latencies.append(time.perf_counter() - sent)
        writer.write(b"200 result=1\n")
    writer.close()
    await writer.wait_closed()


async def main(sessions: int, concurrency: int) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    server = FastAgiServer("127.0.0.1", 0, {"bench": handler})
    await server.start()
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def guarded(n: int) -> None:
        async with semaphore:
            await one_call(server.port, n, latencies)

    start = time.perf_counter()
    await asyncio.gather(*(guarded(n) for n in range(sessions)))
    elapsed = time.perf_counter() - start
    await server.stop()
    commands = server.stats.sessions * 10
    print(f"{sessions} sessions x 10 commands, {concurrency} concurrent, {elapsed:.2f} s")
    print(f"sessions/s: {sessions / elapsed:,.0f}   commands/s: {commands / elapsed:,.0f}")
    print(
        f"command turn-around (both sides in one process): "
        f"p50 {statistics.median(latencies) * 1e3:.2f} ms"
    )

    parser = AgiParser()
    parser.feed(HEADERS.format(n=1).encode())
    chunk = b"200 result=1 (value) endpos=1234\n" * 1000
    start = time.perf_counter()
    for _ in range(200):
        parser.feed(chunk)
    parse_rate = 200_000 / (time.perf_counter() - start)
    print(f"pure parser: {parse_rate:,.0f} replies/s")
    print(
        f"RESULT agi_sessions_per_s={sessions / elapsed:.0f} "
        f"agi_commands_per_s={commands / elapsed:.0f} agi_parser_replies_per_s={parse_rate:.0f}"
    )


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("--sessions", type=int, default=2000)
    cli.add_argument("--concurrency", type=int, default=50)
    options = cli.parse_args()
    asyncio.run(main(options.sessions, options.concurrency))
