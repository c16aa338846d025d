"""A real Prometheus server for tests: Debian's ``prometheus`` on a free port.

Each instance has its own configuration and storage in a temporary folder,
scrapes the given targets every ``scrape_interval`` seconds, and is stopped
(terminated, then killed if need be, and reaped) and its folder removed
when the context exits.

Prometheus 2.x applies a new target list only every 5 seconds, so the first
scrape comes about 5 s after start whatever the scrape interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from callcenter.errors import SandboxError
from callcenter.sandbox.postgres import free_port

PROMETHEUS = Path("/usr/bin/prometheus")
DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
"""A ``{{label}}`` in a panel's legend: the series must carry that label."""
# What Grafana puts in place of its built-in variables (a test's range is short).
GRAFANA_VARIABLES = {"$__rate_interval": "30s", "$__interval": "5s", "$__range": "1h"}

Series = dict[str, Any]
"""One result of an instant query: {"metric": {labels}, "value": [t, "v"]}."""


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a Grafana dashboard, rows' panels included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def promql(expr: str, board: dict[str, Any]) -> str:
    """A panel's query with the dashboard's variables set to "all"."""
    for variable in board["templating"]["list"]:
        expr = expr.replace(f"${variable['name']}", variable["allValue"])
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    if "$" in expr:
        raise ValueError(f"unresolved variable in {expr}")
    return expr


def _config(targets: Sequence[str], scrape_interval: float) -> str:
    interval = f"{int(scrape_interval * 1000)}ms"
    quoted = ", ".join(f'"{t}"' for t in targets)
    # scrape_timeout defaults to 10 s and must not exceed the interval.
    return (
        "global:\n"
        f"  scrape_interval: {interval}\n"
        f"  scrape_timeout: {interval}\n"
        f"  evaluation_interval: {interval}\n"
        "scrape_configs:\n"
        "  - job_name: callcenter\n"
        "    metrics_path: /metrics\n"
        "    static_configs:\n"
        f"      - targets: [{quoted}]\n"
    )


@dataclass
class PrometheusServer:
    url: str
    session: aiohttp.ClientSession
    log: Path

    async def _get(self, path: str, **params: str) -> Any:
        async with self.session.get(self.url + path, params=params) as response:
            body = await response.json()
        if body.get("status") != "success":
            raise SandboxError(f"Prometheus {path} {params}: {body.get('error', body)}")
        return body["data"]

    async def query(self, promql: str) -> list[Series]:
        """Instant query; raises SandboxError for a query Prometheus rejects."""
        data = await self._get("/api/v1/query", query=promql)
        if data["resultType"] != "vector":
            raise SandboxError(f"{promql!r} gave a {data['resultType']}, not a vector")
        result: list[Series] = data["result"]
        return result

    async def targets_up(self) -> bool:
        targets = await self._active_targets()
        return bool(targets) and all(t["health"] == "up" for t in targets)

    async def scrapes(self) -> int:
        """Scrapes so far (of the least-scraped target): samples of its ``up``."""
        result = await self.query("count_over_time(up[1h])")
        if not result or len(result) < len(await self._active_targets()):
            return 0
        return min(int(float(r["value"][1])) for r in result)

    async def _active_targets(self) -> list[Any]:
        data = await self._get("/api/v1/targets", state="active")
        targets: list[Any] = data["activeTargets"]
        return targets

    async def wait_for_scrapes(self, count: int, timeout: float = 20.0) -> None:
        """Wait until every target has been scraped ``count`` more times."""
        deadline = time.monotonic() + timeout
        goal = await self.scrapes() + count
        while await self.scrapes() < goal:
            if time.monotonic() > deadline:
                raise SandboxError(f"Prometheus did not scrape {count} times in {timeout} s")
            await asyncio.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _prepare(targets: Sequence[str], scrape_interval: float, binary: Path) -> Path:
    if not binary.exists():
        raise SandboxError(f"{binary} not found: apt-get install prometheus")
    workdir = Path(tempfile.mkdtemp(prefix="cc-prometheus-"))
    (workdir / "prometheus.yml").write_text(_config(targets, scrape_interval))
    return workdir


@contextlib.asynccontextmanager
async def prometheus(
    targets: Sequence[str],
    *,
    scrape_interval: float = 1.0,
    binary: Path = PROMETHEUS,
    start_timeout: float = 30.0,
) -> AsyncIterator[PrometheusServer]:
    """Run Prometheus scraping ``targets`` ("host:port") until the context exits."""
    workdir = _prepare(targets, scrape_interval, binary)
    config, log = workdir / "prometheus.yml", workdir / "prometheus.log"
    port = free_port()
    process: asyncio.subprocess.Process | None = None
    session: aiohttp.ClientSession | None = None
    try:
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                str(binary),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        server = PrometheusServer(f"http://127.0.0.1:{port}", session, log)
        deadline = time.monotonic() + start_timeout
        while True:
            if process.returncode is not None:
                raise SandboxError(f"Prometheus exited at start:\n{server.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(server.url + "/-/ready") as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"Prometheus not ready in {start_timeout} s:\n{server.log_tail()}"
                )
            await asyncio.sleep(0.1)
        yield server
    finally:
        if session is not None:
            await session.close()
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
