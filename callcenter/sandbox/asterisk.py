"""A local Asterisk 22 for development and tests, without Docker.

Asterisk runs from a Debian sid chroot built once per machine by
``asterisk/build-root.sh``. Each *instance* has its own rendered copy of the
repository's ``asterisk/*.conf`` (ports, directories, node name rewritten), its
own run/log/spool directories inside the chroot, and bind mounts of the
repository's ``dialplans/`` (read-only) and a recordings directory, so
MixMonitor files land on the host. Several instances can run side by side
(tests give each its own ports).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from callcenter.errors import SandboxError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = Path(
    os.environ.get(
        "CALLCENTER_ASTERISK_ROOT",
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "callcenter"
        / "asterisk-root",
    )
)
AMI_USER = "callcenter"


@dataclass(frozen=True)
class AsteriskPorts:
    """Where an instance listens, and where it sends calls."""

    sip: int = 5060
    ami: int = 5038
    rtp_start: int = 10000
    rtp_end: int = 10999
    # The callcenter daemon's FastAGI server, reached from the dialplan.
    agi: int = 4573
    # Where outbound calls to customers go (callbacks): a sipp UAS in tests.
    trunk: int = 5070
    # host:port of a static contact for every agent/supervisor phone (sipp);
    # None: phones must register.
    phones_contact: str | None = None


@dataclass(frozen=True)
class AmiCredentials:
    host: str
    port: int
    username: str
    secret: str


class AsteriskSandbox:
    def __init__(
        self,
        name: str = "dev",
        *,
        ports: AsteriskPorts | None = None,
        root: Path = DEFAULT_ROOT,
        recordings: Path = REPO / "recordings",
        node: str = "node1",
        config_dir: Path = REPO / "asterisk",
        dialplans: Path = REPO / "dialplans",
        load_phones: int = 0,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise SandboxError(f"sandbox name {name!r}: use letters, digits, - and _")
        self.name = name
        self.ports = ports or AsteriskPorts()
        self.root = root
        self.recordings = recordings.resolve()
        self.node = node
        self.config_dir = config_dir
        self.dialplans = dialplans.resolve()
        # Extra agent phones load1..loadN for load benchmarks (not authenticated
        # beyond the sandbox's loopback-only transport).
        self.load_phones = load_phones
        # Paths as Asterisk sees them (inside the chroot) and as the host does.
        self.inner = Path("/callcenter") / name
        self.outer = root / "callcenter" / name

    # ------------------------------------------------------------------ paths
    @property
    def recordings_in_asterisk(self) -> Path:
        """The recordings directory as Asterisk sees it, inside the chroot."""
        return self.inner / "recordings"

    def _host(self, inner_sub: str) -> Path:
        return self.outer / inner_sub

    @property
    def log_file(self) -> Path:
        return self._host("log/messages.log")

    @property
    def console_log(self) -> Path:
        return self._host("console.log")

    @property
    def pid_file(self) -> Path:
        return self._host("asterisk.pid")

    @property
    def secret_file(self) -> Path:
        """The AMI secret, readable by root only: give it to the daemon."""
        return self._host("ami.secret")

    def credentials(self) -> AmiCredentials:
        try:
            secret = self.secret_file.read_text().strip()
        except FileNotFoundError as exc:
            raise SandboxError(f"sandbox {self.name!r} was never started") from exc
        return AmiCredentials("127.0.0.1", self.ports.ami, AMI_USER, secret)

    # -------------------------------------------------------------- lifecycle
    def build_root(self) -> None:
        if (self.root / ".callcenter-ready").exists():
            return
        script = REPO / "asterisk" / "build-root.sh"
        result = subprocess.run(["bash", str(script), str(self.root)], check=False)
        if result.returncode != 0:
            raise SandboxError(f"building the Asterisk root failed: {script} {self.root}")

    def start(self, timeout: float = 30.0) -> AmiCredentials:
        """Start the instance and return once AMI reports FullyBooted."""
        if self.running():
            raise SandboxError(f"sandbox {self.name!r} is already running (pid {self.pid()})")
        self.build_root()
        self._unmount()
        self._copy_name_service()
        self._render()
        self._mount()
        asterisk_conf = self.inner / "etc" / "asterisk.conf"
        with self.console_log.open("wb") as out:
            # -f: stay in the foreground so the pid is Asterisk's; -c is not
            # used, so no console reads stdin.
            process = subprocess.Popen(
                ["chroot", str(self.root), "asterisk", "-f", "-n", "-C", str(asterisk_conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        creds = self.credentials()
        try:
            wait_fully_booted(creds, timeout, process)
        except SandboxError:
            self.stop()
            raise
        return creds

    def _copy_name_service(self) -> None:
        # Asterisk resolves the machine's own hostname when it first places a
        # call (acl.c ast_find_ourip); without the host's /etc/hosts in the
        # chroot it logs an ERROR and then tries DNS for A.ROOT-SERVERS.NET.
        for name in ("hosts", "resolv.conf"):
            source = Path("/etc") / name
            target = self.root / "etc" / name
            if source.is_file():
                if target.is_symlink():
                    target.unlink()
                shutil.copyfile(source, target)

    def stop(self, timeout: float = 10.0) -> None:
        pid = self.pid()
        if pid is not None and _alive(pid):
            with contextlib.suppress(SandboxError):
                self.cli("core stop now", timeout=5)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                while _alive(pid):
                    time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        self._unmount()

    def destroy(self) -> None:
        """Stop and remove this instance's files (throw-away test instances)."""
        self.stop()
        base = self._host("")
        for path in sorted(base.rglob("*"), reverse=True):
            # Never follow into a bind mount: _unmount() has run, but be sure.
            if _is_mount_point(path):
                raise SandboxError(f"{path} is still mounted; not removing {base}")
        shutil.rmtree(base, ignore_errors=True)

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        return pid is not None and _alive(pid)

    def cli(self, command: str, timeout: float = 10.0) -> str:
        """Run one Asterisk CLI command on this instance and return its output."""
        if not self.running():
            raise SandboxError(f"sandbox {self.name!r} is not running")
        conf = self.inner / "etc" / "asterisk.conf"
        try:
            result = subprocess.run(
                ["chroot", str(self.root), "asterisk", "-C", str(conf), "-rx", command],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"asterisk CLI {command!r} timed out") from exc
        if result.returncode != 0:
            raise SandboxError(f"asterisk CLI {command!r} failed: {result.stderr.strip()}")
        return result.stdout

    def logs(self, lines: int = 50) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # --------------------------------------------------------------- internals
    def _render(self) -> None:
        etc = self._host("etc")
        # Only our own files: etc/dialplans is a bind mount of the repository.
        for old in etc.glob("*.conf"):
            old.unlink()
        for sub in ("etc/dialplans", "spool", "run", "log", "lib", "recordings"):
            self._host(sub).mkdir(parents=True, exist_ok=True)
        for source in sorted(self.config_dir.glob("*.conf")):
            text = render_config(source.name, source.read_text(), self)
            (etc / source.name).write_text(text)
        secret = os.environ.get("CALLCENTER_AMI_SECRET") or secrets.token_urlsafe(24)
        secret_conf = etc / "manager_callcenter_secret.conf"
        secret_conf.write_text(f"secret = {secret}\n")
        secret_conf.chmod(0o600)
        self.secret_file.write_text(secret + "\n")
        self.secret_file.chmod(0o600)

    def _mounts(self) -> list[tuple[Path, Path, bool]]:
        self.recordings.mkdir(parents=True, exist_ok=True)
        return [
            (self.dialplans, self._host("etc/dialplans"), True),
            (self.recordings, self._host("recordings"), False),
        ]

    def _mount(self) -> None:
        for source, target, read_only in self._mounts():
            target.mkdir(parents=True, exist_ok=True)
            _run(["mount", "--bind", str(source), str(target)])
            if read_only:
                _run(["mount", "-o", "remount,bind,ro", str(target)])

    def _unmount(self) -> None:
        for _source, target, _ro in reversed(self._mounts()):
            while _is_mount_point(target):
                _run(["umount", "-l", str(target)])


def render_config(filename: str, text: str, sandbox: AsteriskSandbox) -> str:
    """Rewrite the settings that differ between instances; keep the rest."""
    p = sandbox.ports
    inner = sandbox.inner
    overrides: dict[tuple[str, str], str] = {}
    if filename == "asterisk.conf":
        moddir = _module_dir(sandbox.root)
        overrides = {
            ("directories", "astetcdir"): f"{inner}/etc",
            ("directories", "astmoddir"): moddir,
            ("directories", "astdbdir"): f"{inner}/lib",
            ("directories", "astkeydir"): f"{inner}/lib",
            ("directories", "astspooldir"): f"{inner}/spool",
            ("directories", "astrundir"): f"{inner}/run",
            ("directories", "astlogdir"): f"{inner}/log",
            ("options", "systemname"): sandbox.node,
        }
    elif filename == "manager.conf":
        overrides = {("general", "port"): str(p.ami)}
    elif filename == "pjsip.conf":
        overrides = {
            ("transport-udp", "bind"): f"127.0.0.1:{p.sip}",
            ("trunk", "contact"): f"sip:127.0.0.1:{p.trunk}",
        }
    elif filename == "rtp.conf":
        overrides = {
            ("general", "rtpstart"): str(p.rtp_start),
            ("general", "rtpend"): str(p.rtp_end),
        }
    elif filename == "extensions.conf":
        overrides = {("globals", "CALLCENTER_AGI"): f"agi://127.0.0.1:{p.agi}"}
    elif filename == "pjsip_phones.conf" and p.phones_contact:
        text += "".join(
            f"\n[load{i}](endpoint-agent)\nauth = load{i}-auth\naors = load{i}\n"
            f"[load{i}](aor-phone)\n"
            f"[load{i}-auth](auth-phone)\nusername = load{i}\npassword = sandbox-load{i}\n"
            for i in range(1, sandbox.load_phones + 1)
        )
        # A static contact on every phone's AOR: sipp agents do not register.
        return re.sub(
            r"^\[(\w+)\]\(aor-phone\)$",
            lambda m: f"{m.group(0)}\ncontact = sip:{m.group(1)}@{p.phones_contact}",
            text,
            flags=re.MULTILINE,
        )
    return override_options(text, overrides)


def override_options(text: str, overrides: dict[tuple[str, str], str]) -> str:
    """Replace ``key = value`` lines inside named sections of an Asterisk config."""
    section = ""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for line in text.splitlines():
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            section = header.group(1)
        else:
            option = re.match(r"^\s*([A-Za-z_][\w-]*)\s*=>?\s*", line)
            if option and (section, option.group(1)) in overrides:
                key = (section, option.group(1))
                arrow = "=>" if "=>" in line.split(";")[0] else "="
                line = f"{option.group(1)} {arrow} {overrides[key]}"
                seen.add(key)
        out.append(line)
    missing = set(overrides) - seen
    if missing:
        raise SandboxError(f"config has no setting to override: {sorted(missing)}")
    return "\n".join(out) + "\n"


def wait_fully_booted(
    creds: AmiCredentials, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Log in to AMI and wait for FullyBooted (sent at login once booted)."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SandboxError(f"asterisk exited during start (code {process.returncode})")
        try:
            with socket.create_connection((creds.host, creds.port), timeout=2) as sock:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                login = (
                    f"Action: Login\r\nUsername: {creds.username}\r\n"
                    f"Secret: {creds.secret}\r\nEvents: system\r\n\r\n"
                )
                sock.sendall(login.encode())
                buffer = b""
                while b"Event: FullyBooted" not in buffer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("AMI closed the connection")
                    buffer += chunk
                    if b"Authentication failed" in buffer:
                        raise SandboxError("AMI login refused: wrong secret?")
                return
        except (OSError, ConnectionError) as exc:
            last_error = str(exc)
            time.sleep(0.1)
    raise SandboxError(f"Asterisk not FullyBooted after {timeout:.0f} s ({last_error})")


def _module_dir(root: Path) -> str:
    for candidate in sorted((root / "usr" / "lib").glob("*/asterisk/modules")):
        return "/" + str(candidate.relative_to(root))
    return "/usr/lib/asterisk/modules"


def _is_mount_point(path: Path) -> bool:
    # os.path.ismount misses bind mounts from the same filesystem.
    target = str(path.resolve())
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4] == target for line in mountinfo)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    with contextlib.suppress(ChildProcessError):
        waited, _status = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    return True


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
