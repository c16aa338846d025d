"""The interaction writer's spool file: rows waiting for PostgreSQL.

``<spool_dir>/interactions-<node>.jsonl``: UTF-8 (ASCII) JSON, one row per
line, in submission order::

    {"v":1,"key":"<uuid>","at":<submitted, epoch s>,"kind":"<kind>","row":{...}}

``at`` is the row's version too (``version_at``); a line whose ``at`` is
absent or null (written by hand, or by a tool older than versions) is read
as a row without a version: it is stored only where no row is (see
:mod:`callcenter.store.interactions`), never replacing one.
``kind`` is ``interaction``, ``callback``, ``decision`` or
``agent_state``; ``row`` holds the fields of :class:`InteractionRow`
(``legs``: a list of :class:`Leg` objects), :class:`CallbackRow`,
:class:`DecisionRow` or :class:`AgentStateRow`, by name. A line that
cannot be read back is appended to ``<file>.bad`` and logged
(``store.spool_line_corrupt``, with the file and line number); the other
lines go on. ``<file>.lock`` is locked (``flock``) while a writer uses the
file: a second daemon on the same file refuses to start.

``<file>.rejected`` holds the rows PostgreSQL refused for what they hold
(a data exception or an integrity violation: writing them again can never
succeed), never retried automatically: the same lines, each with why::

    {"v":1,"key":...,"kind":...,"row":{...},
     "rejected":{"sqlstate":"22021","error":"<message>","at":<epoch s>}}

``callcenter db replay-rejected`` writes them again once the cause is fixed
and keeps those still refused. Both sides lock the file itself (``flock``)
and check, once they hold the lock, that it is still the file at that path
(the replay replaces or removes it). One replay at a time: it holds
``<file>.replay.lock`` (``flock``, not waiting) from start to end, and a
second one stops at once ("a replay is already running"). The replay then
settles the file only if it is still the one it read (same device and inode,
the lines it read unchanged): replaced or edited meanwhile, nothing is
settled and it says so (its rows, written again by the next replay, are
stored once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callcenter.errors import StoreError
from callcenter.store.rows import (
    AgentStateRow,
    CallbackRow,
    DecisionRow,
    InteractionRow,
    Leg,
    Row,
    json_text,
)

SPOOL_VERSION = 1


_KIND_OF: dict[type[Any], str] = {
    InteractionRow: "interaction",
    CallbackRow: "callback",
    DecisionRow: "decision",
    AgentStateRow: "agent_state",
}


@dataclass(slots=True)
class Entry:
    """A submitted row, its idempotency key and when it was submitted."""

    row: Row
    key: uuid.UUID
    at: float
    from_spool: bool = False
    versioned: bool = True
    """False: a line without its submit time (``"at"`` absent or null:
    written by hand or by a tool that predates versions); ``at`` is then
    only when it was read back, and the row must never replace a stored one
    (see :data:`~callcenter.store.interactions._UPSERT`)."""

    @property
    def version(self) -> float | None:
        """The row's version (``version_at``): its submit time, if known."""
        return self.at if self.versioned else None


def spool_path(spool_dir: Path, node: str) -> Path:
    """The writer's spool file for ``node`` in ``database.spool_dir``."""
    return spool_dir / f"interactions-{node}.jsonl"


def rejected_path(spool: Path) -> Path:
    """The file of the rows PostgreSQL refused, beside the spool file."""
    return spool.with_name(spool.name + ".rejected")


def kind_of(row: Row) -> str:
    """The row's kind as the spool names it (``interaction``...)."""
    return _KIND_OF[type(row)]


def _record(entry: Entry) -> dict[str, Any]:
    return {
        "v": SPOOL_VERSION,
        "key": str(entry.key),
        "at": entry.version,  # null stays null: a rewritten line gains no version
        "kind": kind_of(entry.row),
        "row": dataclasses.asdict(entry.row),
    }


def encode_entry(entry: Entry) -> bytes:
    """One spool line (with its newline)."""
    return (json_text(_record(entry)) + "\n").encode()


def encode_rejected(entry: Entry, sqlstate: str, error: str, at: float) -> bytes:
    """One line of the rejected file: the spool line and why PostgreSQL
    refused the row."""
    record = _record(entry)
    record["rejected"] = {"sqlstate": sqlstate, "error": error, "at": at}
    return (json_text(record) + "\n").encode()


def decode_entry(line: bytes) -> Entry:
    """A spool line back; ValueError saying what is wrong with it."""
    try:
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        if record.get("v") != SPOOL_VERSION:
            raise ValueError(f"unknown format version {record.get('v')!r}")
        kind, fields = record["kind"], dict(record["row"])
        row: Row
        if kind == "interaction":
            fields["legs"] = tuple(Leg(**leg) for leg in fields.get("legs", ()))
            row = InteractionRow(**fields)
        elif kind == "callback":
            fields["attempts"] = tuple(fields.get("attempts", ()))
            row = CallbackRow(**fields)
        elif kind == "decision":
            row = DecisionRow(**fields)
        elif kind == "agent_state":
            row = AgentStateRow(**fields)
        else:
            raise ValueError(f"unknown row kind {kind!r}")
        key = uuid.UUID(record["key"])
        if record.get("at") is None:
            # No version: read back now, stored only where nothing is (a
            # guessed time could make an old row look newer than a stored one).
            rejected = record.get("rejected")
            seen = rejected.get("at") if isinstance(rejected, dict) else None
            at = float(seen) if seen is not None else time.time()
            return Entry(row, key, at, from_spool=True, versioned=False)
        return Entry(row, key, float(record["at"]), from_spool=True)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolFile:
    """The spool's blocking file operations (the writer runs them in a thread).

    ``mode``: the permissions of the files it creates (the spool, its
    rewrite, its lock and ``.bad`` file), and given back to a spool file
    found with others; None: the umask's (0644 usually). The user store's
    spool (session digests) is 0600.
    """

    def __init__(self, path: Path, *, mode: int | None = None) -> None:
        self.path = path
        self.bad = path.with_name(path.name + ".bad")
        self.rejected = rejected_path(path)
        self.lock_path = path.with_name(path.name + ".lock")
        self._lock_fd: int | None = None
        self._mode = mode

    def _create(self, path: Path, flags: int) -> int:
        fd = os.open(path, flags | os.O_CREAT, 0o666 if self._mode is None else self._mode)
        if self._mode is not None:
            os.fchmod(fd, self._mode)  # whatever the umask, or an older file
        return fd

    def open(self) -> tuple[int, int, float | None]:
        """Create the directory, lock the file; (lines, bytes, first row's
        submit time) of what a previous writer left. A last line cut short
        (a crash while appending) is ended, so it is read back as one
        corrupt line, not glued to the next row."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, self._mode or 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreError(
                f"spool file {self.path} is in use by another writer (pid {holder}):"
                " give each daemon its own database.spool_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        if not self.path.exists():
            return 0, 0, None
        if self._mode is not None:
            os.chmod(self.path, self._mode)
        lines, first, last = 0, b"", b"\n"
        with self.path.open("rb") as f:
            first = f.readline()
            f.seek(0)
            while chunk := f.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        if last != b"\n":
            self.append(b"\n")
            lines += 1
        try:
            first_at: float | None = decode_entry(first).at
        except ValueError:
            first_at = None
        return lines, self.path.stat().st_size, first_at

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    def append(self, data: bytes) -> None:
        created = not self.path.exists()
        with os.fdopen(self._create(self.path, os.O_WRONLY | os.O_APPEND), "ab") as f:
            start = f.tell()
            try:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            except OSError:
                # No half line left behind for the next append to glue onto.
                with contextlib.suppress(OSError):
                    f.truncate(start)
                raise
        if created:
            _fsync_dir(self.path.parent)

    def read(self, offset: int, limit: int) -> tuple[list[tuple[bytes, Entry | str]], int]:
        """Up to ``limit`` lines from ``offset``, each decoded (or why not);
        the offset after them."""
        out: list[tuple[bytes, Entry | str]] = []
        with self.path.open("rb") as f:
            f.seek(offset)
            while len(out) < limit and (line := f.readline()):
                try:
                    out.append((line, decode_entry(line)))
                except ValueError as exc:
                    out.append((line, str(exc)))
            return out, f.tell()

    def read_lines(self) -> list[bytes]:
        """Every line as it is (another format than the writer's rows: the
        user store's); nothing when there is no file."""
        try:
            return self.path.read_bytes().splitlines(keepends=True)
        except FileNotFoundError:
            return []

    def quarantine(self, lines: list[bytes]) -> None:
        with os.fdopen(self._create(self.bad, os.O_WRONLY | os.O_APPEND), "ab") as f:
            f.write(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())

    def rewrite(self, head: bytes, offset: int, tail: bytes) -> None:
        """The file becomes ``head``, its own bytes from ``offset``, ``tail``."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with os.fdopen(self._create(tmp, os.O_WRONLY | os.O_TRUNC), "wb") as out:
            out.write(head)
            if self.path.exists():
                with self.path.open("rb") as src:
                    src.seek(offset)
                    shutil.copyfileobj(src, out)
            out.write(tail)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)
        _fsync_dir(self.path.parent)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


# -- the rejected file -------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path, *, create: bool) -> Iterator[int | None]:
    """``path`` open for appending and locked (``flock``); None when it does
    not exist (and not ``create``). Opened again if it was replaced or
    removed while we waited for the lock."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            if create:
                raise
            yield None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                named = os.stat(path)
            except FileNotFoundError:
                continue
            held = os.fstat(fd)
            if (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
                yield fd
                return
        finally:
            os.close(fd)  # releases the lock


def _holds_key(fd: int, size: int, key: str, slack: int) -> bool:
    """The file's last line (complete) is the row ``key``'s: an append whose
    failure could not be undone (the truncate failed too) left it there."""
    start = max(0, size - slack)
    tail = os.pread(fd, size - start, start)
    if not tail.endswith(b"\n"):
        return False
    cut = tail.rfind(b"\n", 0, len(tail) - 1)
    if cut < 0 and start > 0:
        return False  # longer than any line of this row
    try:
        return bool(json.loads(tail[cut + 1 :]).get("key") == key)
    except (ValueError, AttributeError):
        return False


def append_rejected(path: Path, data: bytes, key: str | None = None) -> None:
    """Append lines to the rejected file (locked, fsync): there once it
    returns, not there when it raises (a new file's directory is synced
    first, so nothing can fail once the lines are in; a failed write is cut
    off again). ``key``: ``data`` is that row's one line, not appended again
    if the file already ends with it (an earlier attempt whose failure could
    not be undone: the truncate failed too)."""
    with _locked(path, create=True) as fd:
        assert fd is not None
        with open(fd, "ab", closefd=False) as f:
            start = f.tell()
            if not start:
                # New (or left empty by a failed attempt): its name is made
                # durable before any line goes in.
                _fsync_dir(path.parent)
            if key is not None and start and _holds_key(fd, start, key, len(data) + 4096):
                os.fsync(fd)
                return
            if start and os.pread(fd, 1, start - 1) != b"\n":
                data = b"\n" + data  # a line cut short by a crash stays one line
            try:
                f.write(data)
                f.flush()
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    f.truncate(start)
                raise


@dataclass(frozen=True, slots=True)
class RejectedRead:
    """What a replay read from the rejected file, to settle it by."""

    lines: list[tuple[bytes, Entry | str]]
    """Every line, decoded (or why not)."""
    consumed: int
    """Bytes read."""
    identity: tuple[int, int, str] | None
    """(device, inode, sha256 of the bytes read); None: no file."""


def read_rejected_file(path: Path) -> RejectedRead:
    """Every line of the rejected file, decoded (or why not), the bytes read
    and which file it was; nothing when there is no file."""
    with _locked(path, create=False) as fd:
        if fd is None:
            return RejectedRead([], 0, None)
        held = os.fstat(fd)
        data = path.read_bytes()
    out: list[tuple[bytes, Entry | str]] = []
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            line += b"\n"
        try:
            out.append((line, decode_entry(line)))
        except ValueError as exc:
            out.append((line, str(exc)))
    digest = hashlib.sha256(data).hexdigest()
    return RejectedRead(out, len(data), (held.st_dev, held.st_ino, digest))


def read_rejected(path: Path) -> tuple[list[tuple[bytes, Entry | str]], int]:
    """Every line of the rejected file, decoded (or why not), and the bytes
    read; nothing when there is no file."""
    read = read_rejected_file(path)
    return read.lines, read.consumed


def settle_rejected(
    path: Path, keep: bytes, consumed: int, identity: tuple[int, int, str] | None = None
) -> None:
    """The rejected file becomes ``keep`` and what was appended to it after
    its first ``consumed`` bytes (by a writer, during the replay); removed
    when that is nothing. With ``identity`` (:class:`RejectedRead`), a
    StoreError, nothing changed, if the file is no longer the one read: gone,
    replaced, cut short or its first ``consumed`` bytes edited."""
    with _locked(path, create=identity is None) as fd:
        if fd is None:
            raise StoreError(
                f"{path}: removed during the replay: nothing settled"
                " (the rows written are stored once if replayed again)"
            )
        if identity is not None:
            held = os.fstat(fd)
            head = os.pread(fd, consumed, 0)
            if (
                (held.st_dev, held.st_ino) != identity[:2]
                or len(head) != consumed
                or hashlib.sha256(head).hexdigest() != identity[2]
            ):
                raise StoreError(
                    f"{path}: replaced or edited during the replay: nothing settled"
                    " (the rows written are stored once if replayed again)"
                )
        with path.open("rb") as src:
            src.seek(consumed)
            rest = src.read()
        if not keep and not rest:
            path.unlink()
        else:
            tmp = path.with_name(path.name + ".tmp")
            with tmp.open("wb") as out:
                out.write(keep + rest)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(path)
        _fsync_dir(path.parent)


@contextlib.contextmanager
def replay_lock(path: Path) -> Iterator[None]:
    """Held for a whole replay of the rejected file ``path``
    (``<path>.replay.lock``, ``flock``); StoreError at once if another
    replay holds it. FileNotFoundError: no such directory (so no file)."""
    lock_path = path.with_name(path.name + ".replay.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"{lock_path}: cannot take the replay lock: {exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            raise StoreError(
                f"{path}: a replay is already running (pid {holder}); run it again once"
                " that one has ended"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
