"""Tier 1: which write failures refuse a row for good (set aside, never
retried) and which are the database's state (retried); the rejected file."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest
from asyncpg import exceptions as pg

from callcenter.store.db import Refusal, refusal
from callcenter.store.rows import DecisionRow
from callcenter.store.spool import (
    Entry,
    append_rejected,
    encode_rejected,
    read_rejected,
    settle_rejected,
)


@pytest.mark.parametrize(
    ("exc", "sqlstate"),
    [
        (pg.CharacterNotInRepertoireError("invalid byte sequence for encoding"), "22021"),
        (pg.UntranslatableCharacterError("unsupported Unicode escape sequence"), "22P05"),
        (pg.StringDataRightTruncationError("value too long"), "22001"),
        (pg.NumericValueOutOfRangeError("integer out of range"), "22003"),
        (pg.DataError("invalid input for query argument $8"), "22000"),
        (pg.InvalidTextRepresentationError("invalid input syntax for type uuid"), "22P02"),
        (pg.CheckViolationError("violates check constraint"), "23514"),
        (pg.NotNullViolationError("null value in column"), "23502"),
        (pg.ForeignKeyViolationError("violates foreign key constraint"), "23503"),
        (pg.UniqueViolationError("duplicate key value (node, linkedid)"), "23505"),
    ],
)
def test_data_and_integrity_errors_refuse_the_row(
    exc: asyncpg.PostgresError, sqlstate: str
) -> None:
    refused = refusal(exc)
    assert refused == Refusal(sqlstate, f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize(
    "exc",
    [
        pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        pg.ConnectionFailureError("connection failure"),
        pg.TooManyConnectionsError("sorry, too many clients already"),
        pg.AdminShutdownError("terminating connection due to administrator command"),
        pg.CannotConnectNowError("the database system is starting up"),
        pg.QueryCanceledError("canceling statement due to statement timeout"),
        pg.SerializationError("could not serialize access"),
        pg.DeadlockDetectedError("deadlock detected"),
        pg.UndefinedTableError('relation "interactions" does not exist'),
        pg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
        pg.DiskFullError("could not extend file"),
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        TimeoutError("no answer from PostgreSQL within 10.0 s"),
        ConnectionResetError(104, "Connection reset by peer"),
        OSError("Network is unreachable"),
        RuntimeError("a bug somewhere"),
        ValueError("a bug in the row's conversion"),
    ],
)
def test_the_database_state_and_bugs_are_retried(exc: BaseException) -> None:
    assert refusal(exc) is None


def _entry(reason: str) -> Entry:
    return Entry(DecisionRow(1.7e9, "offer", None, "a01", reason), uuid.uuid4(), 1.7e9)


def test_the_rejected_file_keeps_lines_appended_during_a_replay(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl.rejected"
    assert read_rejected(path) == ([], 0)
    path.write_bytes(b'{"v":1,"key":')  # a line cut short by a crash
    append_rejected(path, encode_rejected(_entry("r0"), "22021", "NUL", 1.8e9))
    lines, consumed = read_rejected(path)
    assert [isinstance(decoded, Entry) for _, decoded in lines] == [False, True]
    assert lines[1][0].endswith(
        b'"rejected":{"sqlstate":"22021","error":"NUL","at":1800000000.0}}\n'
    )
    # A writer sets another row aside while the replay writes these.
    late = encode_rejected(_entry("r1"), "23514", "check", 1.8e9)
    append_rejected(path, late)
    settle_rejected(path, lines[0][0], consumed)  # r0 written, the corrupt line kept
    assert path.read_bytes() == b'{"v":1,"key":\n' + late
    lines, consumed = read_rejected(path)
    settle_rejected(path, b"", consumed)
    assert not path.exists()
