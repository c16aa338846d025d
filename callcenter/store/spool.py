"""The interaction writer's spool file: rows waiting for PostgreSQL.

``<spool_dir>/interactions-<node>.jsonl``: UTF-8 (ASCII) JSON, one row per
line, in submission order::

    {"v":1,"key":"<uuid>","at":<submitted, epoch s>,"kind":"<kind>","row":{...}}

``kind`` is ``interaction``, ``callback``, ``decision`` or
``agent_state``; ``row`` holds the fields of :class:`InteractionRow`
(``legs``: a list of :class:`Leg` objects), :class:`CallbackRow`,
:class:`DecisionRow` or :class:`AgentStateRow`, by name. A line that
cannot be read back is appended to ``<file>.bad`` and logged
(``store.spool_line_corrupt``, with the file and line number); the other
lines go on. ``<file>.lock`` is locked (``flock``) while a writer uses the
file: a second daemon on the same file refuses to start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import uuid
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


def encode_entry(entry: Entry) -> bytes:
    """One spool line (with its newline)."""
    line = json_text(
        {
            "v": SPOOL_VERSION,
            "key": str(entry.key),
            "at": entry.at,
            "kind": _KIND_OF[type(entry.row)],
            "row": dataclasses.asdict(entry.row),
        }
    )
    return (line + "\n").encode()


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
        return Entry(row, uuid.UUID(record["key"]), float(record["at"]), from_spool=True)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolFile:
    """The spool's blocking file operations (the writer runs them in a thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bad = path.with_name(path.name + ".bad")
        self.lock_path = path.with_name(path.name + ".lock")
        self._lock_fd: int | None = None

    def open(self) -> tuple[int, int, float | None]:
        """Create the directory, lock the file; (lines, bytes, first row's
        submit time) of what a previous writer left. A last line cut short
        (a crash while appending) is ended, so it is read back as one
        corrupt line, not glued to the next row."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
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
        with self.path.open("ab") as f:
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

    def quarantine(self, lines: list[bytes]) -> None:
        with self.bad.open("ab") as f:
            f.write(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())

    def rewrite(self, head: bytes, offset: int, tail: bytes) -> None:
        """The file becomes ``head``, its own bytes from ``offset``, ``tail``."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("wb") as out:
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
