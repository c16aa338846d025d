"""Real SIP callers and agent phones for tests and benchmarks, played by sipp.

Scenarios are generated from the templates in ``scenarios/`` into a work
directory (sipp resolves ``pcap/...`` against its working directory, so the
RFC 4733 DTMF captures shipped by Debian's sip-tester are linked there).
Each sipp process gets its own SIP and media ports and is killed and reaped
when its context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import struct
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from callcenter.errors import SandboxError

SCENARIOS = Path(__file__).parent / "scenarios"
PCAP_DIR = Path("/usr/share/sip-tester")
DTMF_PCAP = {
    **{str(d): f"dtmf_2833_{d}.pcap" for d in range(10)},
    "*": "dtmf_2833_star.pcap",
    "#": "dtmf_2833_pound.pcap",
}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_udp_port_pair() -> int:
    """An even port whose next three ports are free too: sipp binds audio
    RTP and RTCP there, then video RTP and RTCP (port + 2, port + 3) even
    when the scenario sends no video; a taken video port ends sipp with
    "Unable to bind video RTP socket"."""
    for _ in range(200):
        port = free_udp_port()
        if port % 2 == 0 and port < 65000:
            try:
                with contextlib.ExitStack() as bound:
                    for offset in range(4):
                        sock = bound.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                        sock.bind(("127.0.0.1", port + offset))
                    return port
            except OSError:
                continue
    raise SandboxError("no free UDP port pair for sipp media")


def _fill(template: str, values: dict[str, str]) -> str:
    text = (SCENARIOS / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    # A placeholder left unfilled would reach Asterisk as literal text.
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise SandboxError(f"sipp template {template}: unfilled {left}")
    return text


def dtmf_file(index: int) -> str:
    """The capture of the *index*-th key of a call (see :func:`dtmf_pcaps`)."""
    return f"dtmf_key_{index:03d}.pcap"


def dtmf_pcaps(digits: str) -> dict[str, bytes]:
    """One RFC 4733 capture per key of *digits* (``,`` skipped), renumbered.

    The Debian captures each carry fixed RTP sequence numbers and timestamps
    (recorded in one session: 1 before 2 before 3...). Asterisk takes an
    event whose timestamp is not after the last one for a repeat and drops
    it, so "12345678" then "4567" would lose every key not greater than the
    one before. Each key gets its own copy here with sequence numbers and
    timestamps that keep increasing through the call, as a real phone sends.
    """
    files: dict[str, bytes] = {}
    keys = [d for d in digits if d != ","]
    for index, digit in enumerate(keys):
        if digit not in DTMF_PCAP:
            raise SandboxError(f"no RFC 4733 capture for DTMF {digit!r}")
        source = (PCAP_DIR / DTMF_PCAP[digit]).read_bytes()
        files[dtmf_file(index)] = _renumber(source, seq=1000 + index * 50, ts=8000 * (index + 1))
    return files


def _renumber(pcap: bytes, *, seq: int, ts: int) -> bytes:
    """A copy of a capture of RTP over UDP/IPv4/Ethernet whose packets are
    numbered from *seq* and stamped *ts* (RFC 4733: one timestamp per event);
    UDP checksums are cleared (0: none, valid for IPv4)."""
    out = bytearray(pcap[:24])
    offset, number = 24, 0
    while offset + 16 <= len(pcap):
        (length,) = struct.unpack_from("<I", pcap, offset + 8)
        packet = bytearray(pcap[offset + 16 : offset + 16 + length])
        ip = 14
        udp = ip + (packet[ip] & 0x0F) * 4
        rtp = udp + 8
        if len(packet) >= rtp + 12 and packet[rtp] >> 6 == 2:
            struct.pack_into(">HI", packet, rtp + 2, (seq + number) & 0xFFFF, ts)
            struct.pack_into(">H", packet, udp + 6, 0)
            number += 1
        out += pcap[offset : offset + 16] + packet
        offset += 16 + length
    return bytes(out)


def dtmf_steps(digits: str, first_delay_ms: int, gap_ms: int) -> str:
    """sipp XML that plays one RFC 4733 capture per digit, with waits
    (the captures of :func:`dtmf_pcaps`, which the caller's work directory holds).

    Each wait is a ``recv BYE`` with a timeout rather than a ``pause``: the far
    end may hang up at any moment (an IVR that has heard enough), and sipp
    aborts a call on a BYE that arrives during a pause.
    """
    steps: list[str] = []

    def wait(ms: int) -> None:
        label = f"w{len(steps)}"
        steps.append(f'  <recv request="BYE" timeout="{ms}" ontimeout="{label}" next="bye"/>')
        steps.append(f'  <label id="{label}"/>')

    if first_delay_ms:
        wait(first_delay_ms)
    index = 0
    for digit in digits:
        if digit == ",":
            wait(gap_ms)
            continue
        if digit not in DTMF_PCAP:
            raise SandboxError(f"no RFC 4733 capture for DTMF {digit!r}")
        steps.append(
            f'  <nop><action><exec play_pcap_audio="pcap/{dtmf_file(index)}"/></action></nop>'
        )
        index += 1
        # Each capture lasts about 0.25 s: let it finish before the next.
        wait(gap_ms)
    return "\n".join(steps)


def caller_scenario(
    *,
    digits: str = "",
    first_delay_ms: int = 1000,
    gap_ms: int = 400,
    hangup_after_ms: int | None = None,
    wait_bye_ms: int = 60_000,
    caller_num: str = "0612345678",
    caller_name: str = "Test Caller",
) -> str:
    caller = {"CALLER_NUM": caller_num, "CALLER_NAME": caller_name}
    ending = (
        _fill("ending_hangup.xml.in", {"HOLD_MS": str(hangup_after_ms), **caller})
        if hangup_after_ms is not None
        else _fill("ending_wait_bye.xml.in", {"WAIT_MS": str(wait_bye_ms), **caller})
    )
    steps = dtmf_steps(digits, first_delay_ms, gap_ms) if digits else ""
    return _fill("caller.xml.in", {"DTMF_STEPS": steps, "ENDING": ending, **caller})


def agent_scenario(*, answer_ms: int = 200, talk_ms: int | None = None, audio: bool = True) -> str:
    ending = (
        _fill("agent_ending_hangup.xml.in", {"TALK_MS": str(talk_ms)})
        if talk_ms is not None
        else _fill("agent_ending_wait_bye.xml.in", {})
    )
    capture = (
        """
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="remote_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="local_to"/>
    </action>
  """
        if talk_ms is not None
        else ""
    )
    speak = '<nop><action><exec play_pcap_audio="pcap/g711a.pcap"/></action></nop>' if audio else ""
    return _fill(
        "agent.xml.in",
        {
            "ANSWER_MS": str(answer_ms),
            "AGENT_ENDING": ending,
            "AGENT_CAPTURE": capture,
            "AGENT_AUDIO": speak,
        },
    )


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Sipp:
    """One sipp process (caller or UAS) with its own ports and work directory."""

    def __init__(
        self,
        scenario_xml: str,
        args: Sequence[str],
        *,
        name: str = "sipp",
        pcaps: Mapping[str, bytes] | None = None,
    ) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"cc-{name}-"))
        (self.workdir / "pcap").mkdir()
        for pcap in PCAP_DIR.glob("*.pcap"):
            (self.workdir / "pcap" / pcap.name).symlink_to(pcap)
        for file_name, data in (pcaps or {}).items():
            (self.workdir / "pcap" / file_name).write_bytes(data)
        self.scenario = self.workdir / "scenario.xml"
        self.scenario.write_text(scenario_xml)
        self.port = free_udp_port()
        self.media_port = free_udp_port_pair()
        self.args = list(args)
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        if shutil.which("sipp") is None:
            raise SandboxError("sipp not found: run `make setup` (Debian package sip-tester)")
        with (
            (self.workdir / "stdout.log").open("wb") as stdout,
            (self.workdir / "stderr.log").open("wb") as stderr,
        ):
            self.process = await self._spawn(stdout, stderr)

    async def _spawn(self, stdout: IO[bytes], stderr: IO[bytes]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            "sipp",
            "-sf",
            str(self.scenario),
            "-i",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(self.media_port),
            "-nostdin",
            "-trace_err",
            "-error_file",
            str(self.workdir / "errors.log"),
            *self.args,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            # Files, not pipes: sipp redraws its screen on stdout all the time
            # and a pipe nobody reads would block a long-running UAS.
            stdout=stdout,
            stderr=stderr,
        )

    async def wait(self, timeout: float) -> SippResult:
        assert self.process is not None
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise SandboxError(f"sipp did not finish within {timeout} s") from None
        errors_file = self.workdir / "errors.log"
        errors = errors_file.read_text(errors="replace") if errors_file.exists() else ""
        return SippResult(
            self.process.returncode or 0,
            self._read("stdout.log"),
            self._read("stderr.log"),
            errors,
        )

    def _read(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.asynccontextmanager
async def sipp_caller(
    sip_port: int,
    exten: str,
    *,
    calls: int = 1,
    rate: float = 1.0,
    concurrent: int | None = None,
    **scenario: object,
) -> AsyncIterator[Sipp]:
    """Place ``calls`` calls to ``exten`` on the Asterisk at 127.0.0.1:sip_port."""
    args = ["-s", exten, "-m", str(calls), "-r", str(rate)]
    if concurrent:
        args += ["-l", str(concurrent)]
    sipp = Sipp(
        caller_scenario(**scenario),  # type: ignore[arg-type]
        [*args, f"127.0.0.1:{sip_port}"],
        name="caller",
        pcaps=dtmf_pcaps(str(scenario.get("digits", ""))),
    )
    await sipp.start()
    try:
        yield sipp
    finally:
        await sipp.kill()
        sipp.cleanup()


@contextlib.asynccontextmanager
async def sipp_agents(
    sip_port: int,
    *,
    answer_ms: int = 200,
    talk_ms: int | None = None,
    port: int | None = None,
    audio: bool = True,
) -> AsyncIterator[Sipp]:
    """One UAS that answers for every phone whose contact is 127.0.0.1:<its port>."""
    scenario = agent_scenario(answer_ms=answer_ms, talk_ms=talk_ms, audio=audio)
    sipp = Sipp(scenario, [], name="agents")
    if port is not None:
        sipp.port = port
    # A UAS that hangs up sends its BYE to Asterisk: give it the address.
    sipp.args.append(f"127.0.0.1:{sip_port}")
    await sipp.start()
    try:
        yield sipp
    finally:
        await sipp.kill()
        sipp.cleanup()


@contextlib.asynccontextmanager
async def sipp_busy(sip_port: int, *, port: int) -> AsyncIterator[Sipp]:
    """A UAS on ``port`` that answers every call with 486 Busy Here."""
    sipp = Sipp(_fill("busy.xml.in", {}), [f"127.0.0.1:{sip_port}"], name="busy")
    sipp.port = port
    await sipp.start()
    try:
        yield sipp
    finally:
        await sipp.kill()
        sipp.cleanup()
