"""An in-process AMI server speaking the wire protocol, for tier-2 tests and
the ingest benchmark. It answers Login, Ping, CoreShowChannels, BridgeList and
Originate like Asterisk 22 does, records every action it receives, and can be
told to misbehave (stay silent, send garbage, hold replies, drop the link).

Fault behaviour is only credible next to the real thing: the tier-3 tests run
the same scenarios against the sandbox Asterisk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def frame(headers: Mapping[str, str] | list[tuple[str, str]]) -> bytes:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return "".join(f"{k}: {v}\r\n" for k, v in items).encode() + b"\r\n"


class FakeAmiServer:
    def __init__(self, secret: str = "secret") -> None:
        self.secret = secret
        self.port = 0
        self.actions: list[dict[str, str]] = []
        self.channels: list[dict[str, str]] = []
        self.silent = False  # stop answering anything (half-open link)
        self.hold_originate = False  # accept Originate but never answer it
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        self.logins = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop()
        # The handler tasks belong to asyncio.start_server: closing their
        # sockets ends them; cancelling them would trip asyncio's own callback.
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)
        if self._server is not None:
            await self._server.wait_closed()

    def drop(self) -> None:
        """Close every client connection (Asterisk restarting, link reset)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self.connected.clear()

    def send_raw(self, data: bytes) -> None:
        for writer in list(self._writers):
            writer.write(data)

    def send_event(self, headers: Mapping[str, str] | list[tuple[str, str]]) -> None:
        self.send_raw(frame(headers))

    def count(self, action: str) -> int:
        return sum(1 for a in self.actions if a.get("Action", "").lower() == action.lower())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        writer.write(BANNER)
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action: dict[str, str] = {}
                for line in raw.decode(errors="replace").split("\r\n"):
                    if ": " in line:
                        key, value = line.split(": ", 1)
                        action[key] = value
                self.actions.append(action)
                if not self.silent:
                    self._answer(action, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            self._handlers.discard(task)

    def _answer(self, action: dict[str, str], writer: asyncio.StreamWriter) -> None:
        name = action.get("Action", "").lower()
        aid = action.get("ActionID", "")
        if name == "login":
            if action.get("Secret") == self.secret:
                self.logins += 1
                writer.write(
                    frame(
                        {
                            "Response": "Success",
                            "ActionID": aid,
                            "Message": "Authentication accepted",
                        }
                    )
                )
                writer.write(
                    frame(
                        {
                            "Event": "FullyBooted",
                            "Privilege": "system,all",
                            "Uptime": "10",
                            "LastReload": "10",
                            "Status": "Fully Booted",
                        }
                    )
                )
                self.connected.set()
            else:
                writer.write(
                    frame(
                        {"Response": "Error", "ActionID": aid, "Message": "Authentication failed"}
                    )
                )
        elif name == "ping":
            writer.write(
                frame(
                    {
                        "Response": "Success",
                        "ActionID": aid,
                        "Ping": "Pong",
                        "Timestamp": "1700000000.000000",
                    }
                )
            )
        elif name == "coreshowchannels":
            writer.write(
                frame(
                    {
                        "Response": "Success",
                        "ActionID": aid,
                        "EventList": "start",
                        "Message": "Channels will follow",
                    }
                )
            )
            for channel in self.channels:
                writer.write(frame({"Event": "CoreShowChannel", "ActionID": aid, **channel}))
            writer.write(
                frame(
                    {
                        "Event": "CoreShowChannelsComplete",
                        "ActionID": aid,
                        "EventList": "Complete",
                        "ListItems": str(len(self.channels)),
                    }
                )
            )
        elif name == "bridgelist":
            writer.write(
                frame(
                    {
                        "Response": "Success",
                        "ActionID": aid,
                        "EventList": "start",
                        "Message": "Bridge listing will follow",
                    }
                )
            )
            writer.write(
                frame(
                    {
                        "Event": "BridgeListComplete",
                        "ActionID": aid,
                        "EventList": "Complete",
                        "ListItems": "0",
                    }
                )
            )
        elif name == "originate":
            if self.hold_originate:
                return
            writer.write(
                frame(
                    {
                        "Response": "Success",
                        "ActionID": aid,
                        "Message": "Originate successfully queued",
                    }
                )
            )
        elif name == "logoff":
            writer.write(
                frame(
                    {"Response": "Goodbye", "ActionID": aid, "Message": "Thanks for all the fish."}
                )
            )
        else:
            writer.write(
                frame({"Response": "Error", "ActionID": aid, "Message": "Invalid/unknown command"})
            )


def channel_entry(uniqueid: str, name: str, linkedid: str | None = None) -> dict[str, str]:
    """A CoreShowChannel body as Asterisk 22 sends it."""
    return {
        "Channel": name,
        "ChannelState": "6",
        "ChannelStateDesc": "Up",
        "CallerIDNum": "0612345678",
        "CallerIDName": "Test",
        "ConnectedLineNum": "<unknown>",
        "ConnectedLineName": "<unknown>",
        "Language": "fr",
        "AccountCode": "",
        "Context": "from-trunk",
        "Exten": "100",
        "Priority": "1",
        "Uniqueid": uniqueid,
        "Linkedid": linkedid or uniqueid,
        "Application": "AGI",
        "ApplicationData": "agi://127.0.0.1/inbound",
        "Duration": "00:00:05",
        "BridgeId": "",
    }
