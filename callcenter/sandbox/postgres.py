"""A throw-away PostgreSQL cluster for development and tests.

PostgreSQL refuses to run as root, so when we are root the cluster is created
and started as the ``postgres`` system user (created by Debian's package).
The cluster listens on loopback only, on the port given (0: a free one).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from callcenter.errors import SandboxError

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _bin(name: str) -> str:
    for directory in BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        raise SandboxError(f"PostgreSQL binary {name!r} not found: run `make setup`")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresSandbox:
    def __init__(self, data_dir: Path, port: int = 0, database: str = "callcenter") -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.database = database
        self._as_user: str | None = "postgres" if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://{self._role}@127.0.0.1:{self.port}/{self.database}"

    @property
    def _role(self) -> str:
        return self._as_user or pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if self._as_user:
            args = ["runuser", "-u", self._as_user, "--", *args]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise SandboxError(
                f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()[-800:]}"
            )
        return result

    def start(self, timeout: float = 30.0) -> str:
        """Create the cluster if needed, start it, create the database; return its DSN."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self._as_user:
            # The postgres user must reach the data directory.
            self.data_dir.parent.chmod(0o755)
            shutil.chown(self.data_dir.parent, self._as_user)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                [
                    _bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "-U",
                    self._role,
                ]
            )
        log = self.data_dir / "server.log"
        self._run(
            [
                _bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(log),
                "-w",
                "-t",
                str(int(timeout)),
                "-o",
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k /tmp -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off",
                "start",
            ]
        )
        deadline = time.monotonic() + timeout
        while True:
            created = self._run(
                [
                    _bin("createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    self._role,
                    self.database,
                ],
                check=False,
            )
            if created.returncode == 0 or "already exists" in created.stderr:
                return self.dsn
            if time.monotonic() > deadline:
                raise SandboxError(f"createdb failed: {created.stderr.strip()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(SandboxError):
                self._run(
                    [_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"]
                )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
