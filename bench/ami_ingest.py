"""AMI ingest: events per second through the adapter.

An in-process AMI server writes N realistic events (a mix of Newchannel,
Newstate, DialBegin, BridgeEnter, Hangup) over loopback TCP; we time from the
first byte to the last event handed to a subscriber, through the whole path:
socket -> pure framing parser -> typed event dataclasses -> ordered consumer.
Also reports the pure parser alone (bytes already in memory).

Last line: RESULT ami_events_per_s=<n> parser_events_per_s=<n>
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pydantic import SecretStr

from callcenter.adapters.ami import AmiClient, Resync, StreamItem
from callcenter.config import AmiConfig
from callcenter.protocol.ami import AmiParser
from callcenter.protocol.ami_events import parse_event
from callcenter.testing.ami_server import FakeAmiServer, frame


def channel_fields(i: int, name: str) -> list[tuple[str, str]]:
    return [
        ("Privilege", "call,all"),
        ("Channel", f"PJSIP/{name}-{i:08x}"),
        ("ChannelState", "6"),
        ("ChannelStateDesc", "Up"),
        ("CallerIDNum", "0612345678"),
        ("CallerIDName", "Jean Dupont"),
        ("ConnectedLineNum", "<unknown>"),
        ("ConnectedLineName", "<unknown>"),
        ("Language", "fr"),
        ("AccountCode", ""),
        ("Context", "from-trunk"),
        ("Exten", "3900"),
        ("Priority", "1"),
        ("Uniqueid", f"node1-1700000000.{i}"),
        ("Linkedid", f"node1-1700000000.{i - i % 2}"),
    ]


def build_stream(n: int) -> bytes:
    chunks: list[bytes] = []
    kinds = ("Newchannel", "Newstate", "DialBegin", "BridgeEnter", "Hangup")
    for i in range(n):
        kind = kinds[i % len(kinds)]
        fields = [("Event", kind), *channel_fields(i, "trunk")]
        if kind == "DialBegin":
            dest = [(f"Dest{k}", v) for k, v in channel_fields(i + 1, "agent1")[1:]]
            fields += [*dest, ("DialString", "agent1")]
        elif kind == "BridgeEnter":
            fields += [
                ("BridgeUniqueid", f"b-{i}"),
                ("BridgeType", "basic"),
                ("BridgeTechnology", "simple_bridge"),
                ("BridgeCreator", "<unknown>"),
                ("BridgeName", "<unknown>"),
                ("BridgeNumChannels", "2"),
                ("BridgeVideoSourceMode", "none"),
            ]
        elif kind == "Hangup":
            fields += [("Cause", "16"), ("Cause-txt", "Normal Clearing")]
        chunks.append(frame(fields))
    return b"".join(chunks)


def bench_parser(stream: bytes, n: int) -> float:
    parser = AmiParser()
    start = time.perf_counter()
    count = 0
    # Feed in 64 KiB reads, as a socket would deliver them.
    for offset in range(0, len(stream), 65536):
        for item in parser.feed(stream[offset : offset + 65536]):
            parse_event(item)  # type: ignore[arg-type]
            count += 1
    elapsed = time.perf_counter() - start
    assert count == n, (count, n)
    return n / elapsed


async def bench_adapter(stream: bytes, n: int) -> float:
    server = FakeAmiServer()
    await server.start()
    client = AmiClient(AmiConfig(port=server.port, ping_interval=60), SecretStr(server.secret))
    done = asyncio.Event()
    resynced = asyncio.Event()
    count = 0

    def handler(item: StreamItem) -> None:
        nonlocal count
        if isinstance(item, Resync):
            resynced.set()
        if type(item).__name__ in ("Newchannel", "Newstate", "DialBegin", "BridgeEnter", "Hangup"):
            count += 1
            if count == n:
                done.set()

    client.subscribe(handler)
    await client.start()
    try:
        await client.wait_connected(5)
        await asyncio.wait_for(resynced.wait(), 10)
        await client.drain()
        start = time.perf_counter()
        server.send_raw(stream)
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - start
    finally:
        await client.stop()
        await server.stop()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    stream = build_stream(args.events)
    print(f"{args.events} events, {len(stream) / 1e6:.1f} MB of AMI text")
    parser_rate = bench_parser(stream, args.events)
    print(f"pure parser + typed events: {parser_rate:,.0f} events/s")
    adapter_rate = asyncio.run(bench_adapter(stream, args.events))
    print(f"through the adapter (TCP, ordered consumer): {adapter_rate:,.0f} events/s")
    print(f"RESULT ami_events_per_s={adapter_rate:.0f} parser_events_per_s={parser_rate:.0f}")


if __name__ == "__main__":
    main()
