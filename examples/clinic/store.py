"""The clinic's SQLite database, shared by the background agent and the after-call workflow.

Three tables:

- ``bookings``: one row per appointment. A slot (``day``, ``time``) can be booked once per
  *calendar*; the confirmation number counts up from 1001 within a calendar.
- ``jobs``: the after-call job queue. A job is written as ``queued`` before the workflow
  answers 202, becomes ``running`` while it is processed and ends ``done`` or ``failed``.
  A job still ``running`` when a worker starts was interrupted by a crash: it is marked
  ``abandoned``, not retried, so a deliberate crash stays visible.
- ``outbox``: messages for the caller, one row per confirmed booking, or one "no booking"
  note, per job.

Each process opens its own connections (:func:`connect`); WAL mode and a busy timeout let
the two services write to the same file.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "FIRST_CONFIRMATION",
    "SlotTaken",
    "abandon_running",
    "bookings",
    "claim_job",
    "connect",
    "enqueue_job",
    "finish_job",
    "init",
    "insert_booking",
    "job",
    "opened",
    "outbox",
    "queued_jobs",
    "set_summary",
    "taken_times",
    "transaction",
    "write_outbox",
]

FIRST_CONFIRMATION = 1001
BUSY_TIMEOUT_S = 5.0

JOB_QUEUED = "queued"
JOB_RUNNING = "running"
JOB_DONE = "done"
JOB_FAILED = "failed"
JOB_ABANDONED = "abandoned"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS bookings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    calendar TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    day TEXT NOT NULL,
    time TEXT NOT NULL,
    service TEXT NOT NULL,
    conversation_id TEXT,
    approval TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (calendar, day, time),
    UNIQUE (calendar, seq)
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT '{JOB_QUEUED}' CHECK (state IN (
        '{JOB_QUEUED}', '{JOB_RUNNING}', '{JOB_DONE}', '{JOB_FAILED}', '{JOB_ABANDONED}')),
    attempts INTEGER NOT NULL DEFAULT 0,
    summary TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, id);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs (id),
    position INTEGER NOT NULL,
    conversation_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('confirmation', 'no_booking')),
    recipient TEXT,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (job_id, position)
);
"""


class SlotTaken(Exception):
    """The slot is already booked in this calendar (the unique constraint said so)."""


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection in autocommit mode (use :func:`transaction`), rows as ``sqlite3.Row``."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return conn


@contextlib.contextmanager
def opened(path: str | Path) -> Iterator[sqlite3.Connection]:
    """:func:`connect`, closed at the end of the block."""
    conn = connect(path)
    try:
        yield conn
    finally:
        conn.close()


def init(path: str | Path) -> Path:
    """Create the database file and its tables if they do not exist; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with opened(p) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA)
    return p


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an exception)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --- bookings -----------------------------------------------------------------------------


def taken_times(conn: sqlite3.Connection, calendar: str, day: str) -> set[str]:
    rows = conn.execute(
        "SELECT time FROM bookings WHERE calendar = ? AND day = ?", (calendar, day)
    ).fetchall()
    return {r["time"] for r in rows}


def insert_booking(
    conn: sqlite3.Connection,
    *,
    calendar: str,
    name: str,
    day: str,
    time_: str,
    service: str,
    approval: str,
    conversation_id: str | None = None,
) -> dict[str, Any]:
    """Write a booking; returns it with its ``confirmation_id``. Raises :class:`SlotTaken`."""
    try:
        with transaction(conn):
            row = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM bookings WHERE calendar = ?",
                (calendar,),
            ).fetchone()
            seq = int(row["next"])
            conn.execute(
                "INSERT INTO bookings (calendar, seq, name, day, time, service, "
                "conversation_id, approval, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    calendar,
                    seq,
                    name,
                    day,
                    time_,
                    service,
                    conversation_id,
                    approval,
                    time.time(),
                ),
            )
    except sqlite3.IntegrityError as e:
        raise SlotTaken(f"{time_} on {day} is already taken") from e
    return {
        "confirmation_id": str(FIRST_CONFIRMATION - 1 + seq),
        "name": name,
        "day": day,
        "time": time_,
        "service": service,
    }


def bookings(conn: sqlite3.Connection, calendar: str | None = None) -> list[dict[str, Any]]:
    """Every booking (of one calendar), oldest first, with its ``confirmation_id``."""
    sql = "SELECT * FROM bookings"
    args: tuple[Any, ...] = ()
    if calendar is not None:
        sql += " WHERE calendar = ?"
        args = (calendar,)
    out = []
    for r in conn.execute(sql + " ORDER BY id", args).fetchall():
        d = dict(r)
        d["confirmation_id"] = str(FIRST_CONFIRMATION - 1 + d["seq"])
        out.append(d)
    return out


# --- the after-call job queue -------------------------------------------------------------


def enqueue_job(conn: sqlite3.Connection, conversation_id: str, payload: dict[str, Any]) -> int:
    now = time.time()
    cur = conn.execute(
        "INSERT INTO jobs (conversation_id, payload, state, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (conversation_id, json.dumps(payload), JOB_QUEUED, now, now),
    )
    return int(cur.lastrowid or 0)


def claim_job(conn: sqlite3.Connection, job_id: int) -> dict[str, Any] | None:
    """Move a queued job to ``running``; returns its payload, or None if it was not queued."""
    with transaction(conn):
        row = conn.execute(
            "SELECT payload FROM jobs WHERE id = ? AND state = ?", (job_id, JOB_QUEUED)
        ).fetchone()
        if row is None:
            return None
        conn.execute(
            "UPDATE jobs SET state = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
            (JOB_RUNNING, time.time(), job_id),
        )
    return json.loads(row["payload"])


def finish_job(
    conn: sqlite3.Connection,
    job_id: int,
    state: str,
    *,
    summary: str | None = None,
    error: str | None = None,
) -> None:
    conn.execute(
        "UPDATE jobs SET state = ?, summary = COALESCE(?, summary), error = ?, updated_at = ? "
        "WHERE id = ?",
        (state, summary, error, time.time(), job_id),
    )


def set_summary(conn: sqlite3.Connection, job_id: int, summary: str) -> None:
    conn.execute(
        "UPDATE jobs SET summary = ?, updated_at = ? WHERE id = ?", (summary, time.time(), job_id)
    )


def queued_jobs(conn: sqlite3.Connection) -> list[int]:
    rows = conn.execute("SELECT id FROM jobs WHERE state = ? ORDER BY id", (JOB_QUEUED,))
    return [int(r["id"]) for r in rows.fetchall()]


def abandon_running(conn: sqlite3.Connection) -> int:
    """Mark jobs left ``running`` by a crashed worker as ``abandoned``; returns how many."""
    cur = conn.execute(
        "UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE state = ?",
        (JOB_ABANDONED, "the worker stopped while running it", time.time(), JOB_RUNNING),
    )
    return cur.rowcount


def job(conn: sqlite3.Connection, job_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT id, conversation_id, state, attempts, summary, error, created_at, updated_at "
        "FROM jobs WHERE id = ?",
        (job_id,),
    ).fetchone()
    return dict(row) if row is not None else None


# --- the outbox ---------------------------------------------------------------------------


def write_outbox(
    conn: sqlite3.Connection,
    *,
    job_id: int,
    position: int,
    conversation_id: str,
    kind: str,
    body: str,
    recipient: str | None = None,
) -> bool:
    """Write one message; False when this job already wrote it (a re-run adds nothing)."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO outbox (job_id, position, conversation_id, kind, recipient, body, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (job_id, position, conversation_id, kind, recipient, body, time.time()),
    )
    return cur.rowcount == 1


def outbox(conn: sqlite3.Connection, conversation_id: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM outbox"
    args: tuple[Any, ...] = ()
    if conversation_id is not None:
        sql += " WHERE conversation_id = ?"
        args = (conversation_id,)
    return [dict(r) for r in conn.execute(sql + " ORDER BY id", args).fetchall()]
