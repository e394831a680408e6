"""The monitor's durable store: one SQLite file (WAL) of calls, cycles and alert state.

Why SQLite and why these settings:

- **WAL** lets the evaluation tick read windows while the schedule and the production
  ingest write calls; ``synchronous=FULL`` makes each commit survive a power cut, not only
  a killed process; ``busy_timeout`` waits for a writer in another process (``harness
  monitor status`` while the monitor runs) instead of failing at once.
- **One transaction per call** (:meth:`MonitorStore.add_call`): the call row and all of its
  score rows land together or not at all, so a monitor killed mid-write never leaves a call
  with half its scores; a call already stored is refused, so a restart that re-submits it
  never counts it twice.
- **Cycles are claimed** (:meth:`MonitorStore.begin_cycle`) before they run, so a restart
  never runs a slot twice, whatever state the killed run left it in.
- Each call keeps its own :class:`~harness.gates.store.ScoreStore` JSON ("sketch"); a
  window is the exact merge of its calls' sketches (see :mod:`harness.gates.sketch`), so reading
  a window never re-adds every score. The per-score rows are kept too, so a
  :class:`~harness.monitor.model.CallRecord` reads back equal to the one stored.

The schema is versioned in ``PRAGMA user_version``; :data:`MIGRATIONS` are applied in
order, each in its own transaction. A file written by a newer harness is refused with
:class:`StoreError` rather than misread.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.core.errors import HarnessError
from harness.evaluators.base import Score
from harness.gates.store import ScoreStore
from harness.monitor.model import SOURCES, CallRecord, Candidate, InfraFailure

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "MonitorStore", "StoreError", "migrate"]

MIGRATIONS: tuple[str, ...] = (
    # v1: calls with their scores and sketch, cycles, infrastructure failures, alert state
    """
    CREATE TABLE calls (
        conversation_id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        scenario TEXT,
        cycle REAL,
        ended_at REAL NOT NULL,
        agent_version TEXT,
        environment TEXT,
        passed INTEGER NOT NULL,
        failures TEXT NOT NULL,
        artifacts TEXT,
        traced INTEGER NOT NULL,
        sketch TEXT NOT NULL
    );
    CREATE INDEX calls_ended_at ON calls (ended_at);
    CREATE INDEX calls_source_ended_at ON calls (source, ended_at);
    CREATE TABLE scores (
        conversation_id TEXT NOT NULL
            REFERENCES calls (conversation_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        unit TEXT NOT NULL,
        span TEXT,
        layer TEXT,
        turn INTEGER,
        detail TEXT NOT NULL,
        PRIMARY KEY (conversation_id, seq)
    );
    CREATE TABLE cycles (
        slot REAL PRIMARY KEY,
        started_at REAL NOT NULL,
        finished_at REAL,
        status TEXT NOT NULL
    );
    CREATE TABLE infra_failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL,
        scenario TEXT,
        cycle REAL
    );
    CREATE TABLE alert_state (
        key TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # v2: incident candidates; indexes for the per-version windows and for pruning
    """
    CREATE TABLE candidates (
        id TEXT PRIMARY KEY,
        at REAL NOT NULL,
        reasons TEXT NOT NULL,
        trace_path TEXT NOT NULL,
        scores_path TEXT
    );
    CREATE INDEX candidates_at ON candidates (at);
    CREATE INDEX calls_version ON calls (agent_version, environment, ended_at);
    CREATE INDEX infra_failures_at ON infra_failures (at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_BUSY_TIMEOUT_MS = 10_000
_AUTO_PRUNE_EVERY_S = 60.0
_TABLES = ("calls", "scores", "cycles", "infra_failures", "candidates", "alert_state")
_CALL_COLUMNS = (
    "conversation_id, source, scenario, cycle, ended_at, agent_version, environment, "
    "passed, failures, artifacts, traced"
)
_N_CALL_COLUMNS = len(_CALL_COLUMNS.split(","))


class StoreError(HarnessError):
    """The monitor's store cannot be opened or read: not a database, written by a newer
    harness, a corrupt row, or a record it refuses to write."""


# --- opening and migrating ---


def _statements(script: str) -> Iterator[str]:
    """The complete SQL statements of ``script``, one by one.

    ``executescript`` would commit any open transaction first, so migrations run their
    statements one at a time inside their own ``BEGIN IMMEDIATE``."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending.strip()
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()!r}")


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _newer_error(path: Path, found: int) -> StoreError:
    return StoreError(
        f"{path}: the monitor store has schema version {found}, but this harness knows "
        f"only up to version {SCHEMA_VERSION}: it was written by a newer harness. Upgrade "
        "the harness (pip install -U livekit-call-harness), or point the monitor at "
        "another state directory"
    )


def migrate(
    conn: sqlite3.Connection,
    path: Path,
    migrations: Sequence[str] = MIGRATIONS,
) -> int:
    """Bring the database on ``conn`` (autocommit mode) up to ``len(migrations)``.

    Each migration runs in its own ``BEGIN IMMEDIATE`` transaction that also sets
    ``user_version``, and re-reads the version under the write lock, so two processes
    opening one fresh file never apply a migration twice. Returns the final version.
    Passing a prefix of :data:`MIGRATIONS` builds an old schema (the tests do)."""
    target = len(migrations)
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _user_version(conn)
            if version > SCHEMA_VERSION:
                raise _newer_error(path, version)
            if version >= target:
                conn.execute("COMMIT")
                return version
            for stmt in _statements(migrations[version]):
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open (SQLite ends some on its own errors)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with WAL, full sync,
    a busy timeout and foreign keys (for the scores' ON DELETE CASCADE)."""
    conn = sqlite3.connect(
        str(path),
        timeout=_BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{path}: could not switch the store to WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


# --- rows to records and back ---


def _finite(value: float | None, what: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StoreError(f"{what} must be a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise StoreError(f"{what} must be finite, got {value!r}")
    return x


def _sketch_json(rec: CallRecord) -> str:
    """The call's own ScoreStore, as JSON: what windows merge."""
    store = ScoreStore()
    try:
        store.add(rec.scores, traced=rec.traced, data_errors=rec.data_errors)
    except ValueError as e:
        raise StoreError(f"call {rec.conversation_id!r}: {e}") from None
    return store.to_json()


def _call_row(rec: CallRecord) -> tuple[Any, ...]:
    """The ``calls`` row of ``rec``, validated: a bad record is refused before any write."""
    cid = rec.conversation_id
    if not isinstance(cid, str) or not cid:
        raise StoreError(f"a call needs a non-empty conversation id, got {cid!r}")
    if rec.source not in SOURCES:
        raise StoreError(f"call {cid!r}: source {rec.source!r} is not one of {SOURCES}")
    for s in rec.scores:
        if not isinstance(s, Score):
            raise StoreError(f"call {cid!r}: scores must be Score, got {type(s).__name__}")
    return (
        cid,
        rec.source,
        rec.scenario,
        _finite(rec.cycle, f"call {cid!r}: cycle", optional=True),
        _finite(rec.ended_at, f"call {cid!r}: ended_at"),
        rec.agent_version,
        rec.environment,
        int(bool(rec.passed)),
        json.dumps([str(f) for f in rec.failures]),
        rec.artifacts,
        int(bool(rec.traced)),
        _sketch_json(rec),
    )


def _score_rows(rec: CallRecord) -> list[tuple[Any, ...]]:
    return [
        (rec.conversation_id, i, s.name, s.value, s.unit, s.span, s.layer, s.turn, s.detail)
        for i, s in enumerate(rec.scores)
    ]


def _json_list(text: Any, table: str, key: str, column: str) -> tuple[str, ...]:
    """A JSON list of strings read back from ``table``; StoreError names the row."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as e:
        raise StoreError(f"table {table}, {key}: column {column} is not JSON: {e}") from None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise StoreError(f"table {table}, {key}: column {column} is not a list of strings")
    return tuple(value)


def _score(row: Sequence[Any], cid: str) -> Score:
    _, _seq, name, value, unit, span, layer, turn, detail = row
    try:
        return Score(name, value, unit, span, layer, turn, detail)
    except (TypeError, ValueError) as e:
        raise StoreError(f"table scores, conversation_id {cid!r}: {e}") from None


def _record(row: Sequence[Any], scores: Iterable[Score]) -> CallRecord:
    cid, source, scenario, cycle, ended_at, version, env, passed, failures, artifacts, traced = row
    where = f"conversation_id {cid!r}"
    if source not in SOURCES:
        raise StoreError(f"table calls, {where}: unknown source {source!r}")
    if not isinstance(ended_at, (int, float)):
        raise StoreError(f"table calls, {where}: ended_at is not a number: {ended_at!r}")
    return CallRecord(
        conversation_id=cid,
        source=source,
        ended_at=float(ended_at),
        scores=tuple(scores),
        passed=bool(passed),
        scenario=scenario,
        cycle=None if cycle is None else float(cycle),
        agent_version=version,
        environment=env,
        failures=_json_list(failures, "calls", where, "failures"),
        artifacts=artifacts,
        traced=bool(traced),
    )


def _sketch(text: Any, cid: str) -> ScoreStore:
    try:
        return ScoreStore.from_json(text)
    except (TypeError, ValueError, KeyError) as e:
        raise StoreError(
            f"table calls, conversation_id {cid!r}: column sketch is not a score store: {e}"
        ) from None


def _filters(
    *,
    since: float | None = None,
    until: float | None = None,
    source: str | None = None,
    agent_version: str | None = None,
    environment: str | None = None,
    scenario: str | None = None,
    prefix: str = "",
) -> tuple[str, list[Any]]:
    """A WHERE clause over ``calls`` (columns qualified by ``prefix``): ``since`` inclusive,
    ``until`` exclusive; a None filter matches everything."""
    clauses: list[str] = []
    args: list[Any] = []
    if since is not None:
        clauses.append(f"{prefix}ended_at >= ?")
        args.append(float(since))
    if until is not None:
        clauses.append(f"{prefix}ended_at < ?")
        args.append(float(until))
    for column, value in (
        ("source", source),
        ("agent_version", agent_version),
        ("environment", environment),
        ("scenario", scenario),
    ):
        if value is not None:
            clauses.append(f"{prefix}{column} = ?")
            args.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


class MonitorStore:
    """The monitor's SQLite store; see the module docstring.

    Thread-safe: one connection, used under a lock. ``retention_s`` bounds what is kept
    (see :meth:`prune`); None keeps everything. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str | Path, *, retention_s: float | None = None) -> None:
        self.path = Path(path)
        if retention_s is not None:
            retention_s = _finite(retention_s, "retention_s")
            if retention_s <= 0:  # type: ignore[operator]
                raise StoreError(f"retention_s must be positive, got {retention_s!r}")
        self.retention_s = retention_s
        self._lock = threading.RLock()
        self._last_prune = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = _connect(self.path)
        except sqlite3.Error as e:
            raise self._open_error(e) from None
        try:
            self.schema_version = migrate(conn, self.path)
        except sqlite3.Error as e:
            conn.close()
            raise self._open_error(e) from None
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn

    def _open_error(self, e: sqlite3.Error) -> StoreError:
        if isinstance(e, sqlite3.DatabaseError) and "not a database" in str(e):
            return StoreError(
                f"{self.path}: not a SQLite database (or an encrypted/corrupt one); the "
                "monitor store must be a file the harness created: move it away or choose "
                "another state directory"
            )
        return StoreError(f"{self.path}: cannot open the monitor store: {e}")

    # --- lifecycle ---

    def close(self) -> None:
        """Close the connection (idempotent); WAL contents are checkpointed by SQLite."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> MonitorStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MonitorStore({str(self.path)!r}, retention_s={self.retention_s!r})"

    # --- transactions ---

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the monitor store is closed")
        return self._conn

    @contextmanager
    def _tx(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """A transaction under the lock: ``IMMEDIATE`` takes the write lock at once (no
        upgrade deadlock between writers), ``DEFERRED`` is a consistent read snapshot."""
        with self._lock:
            db = self._db
            try:
                db.execute(f"BEGIN {mode}")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    _rollback(db)
                    raise
            except sqlite3.Error as e:
                raise StoreError(f"{self.path}: {e}") from e

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement outside any explicit transaction (SQLite's own snapshot)."""
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"{self.path}: {e}") from e

    # --- calls ---

    def add_call(self, rec: CallRecord) -> bool:
        """Store one call and its scores in one transaction. False, writing nothing, when
        the conversation id is already stored: re-submitting a call is harmless."""
        row = _call_row(rec)
        with self._tx() as db:
            cur = db.execute(
                f"INSERT OR IGNORE INTO calls ({_CALL_COLUMNS}, sketch) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            if cur.rowcount != 1:
                return False
            db.executemany(
                "INSERT INTO scores (conversation_id, seq, name, value, unit, span, layer, "
                "turn, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _score_rows(rec),
            )
        self._maybe_prune()
        return True

    def has_call(self, conversation_id: str) -> bool:
        rows = self._read("SELECT 1 FROM calls WHERE conversation_id = ?", (conversation_id,))
        return bool(rows)

    def call(self, conversation_id: str) -> CallRecord | None:
        """The stored call, equal to the record that was added; None if unknown."""
        with self._tx("DEFERRED") as db:
            row = db.execute(
                f"SELECT {_CALL_COLUMNS} FROM calls WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
            if row is None:
                return None
            scores = db.execute(
                "SELECT * FROM scores WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            ).fetchall()
        return _record(row, (_score(s, conversation_id) for s in scores))

    def _records(
        self, db: sqlite3.Connection, filters: Mapping[str, Any], *, sketch: bool = False
    ) -> tuple[list[CallRecord], list[Any]]:
        """The calls matching ``filters`` (see :func:`_filters`) ordered by end time, and
        their sketch column when asked; two queries inside the caller's transaction, so
        both see one snapshot."""
        where, args = _filters(**filters)
        extra = ", sketch" if sketch else ""
        rows = db.execute(
            f"SELECT {_CALL_COLUMNS}{extra} FROM calls{where} ORDER BY ended_at, conversation_id",
            args,
        ).fetchall()
        if not rows:
            return [], []
        where_c, args_c = _filters(**filters, prefix="c.")
        score_rows = db.execute(
            "SELECT s.* FROM scores s JOIN calls c ON c.conversation_id = s.conversation_id"
            f"{where_c} ORDER BY s.conversation_id, s.seq",
            args_c,
        ).fetchall()
        by_call: dict[str, list[Score]] = {}
        for s in score_rows:
            by_call.setdefault(s[0], []).append(_score(s, s[0]))
        records = [_record(r[:_N_CALL_COLUMNS], by_call.get(r[0], ())) for r in rows]
        return records, [r[_N_CALL_COLUMNS] for r in rows] if sketch else []

    def calls(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        source: str | None = None,
        agent_version: str | None = None,
        environment: str | None = None,
        scenario: str | None = None,
    ) -> list[CallRecord]:
        """The stored calls that ended in ``[since, until)`` and match every given filter,
        oldest first."""
        filters = {
            "since": since,
            "until": until,
            "source": source,
            "agent_version": agent_version,
            "environment": environment,
            "scenario": scenario,
        }
        with self._tx("DEFERRED") as db:
            records, _ = self._records(db, filters)
        return records

    def count_calls(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        source: str | None = None,
        agent_version: str | None = None,
        environment: str | None = None,
        scenario: str | None = None,
    ) -> int:
        """How many calls :meth:`calls` would return, without reading them."""
        where, args = _filters(
            since=since,
            until=until,
            source=source,
            agent_version=agent_version,
            environment=environment,
            scenario=scenario,
        )
        return int(self._read(f"SELECT COUNT(*) FROM calls{where}", args)[0][0])

    def window(
        self,
        *,
        since: float,
        until: float | None = None,
        source: str | None = None,
        agent_version: str | None = None,
        environment: str | None = None,
    ) -> tuple[ScoreStore, list[CallRecord]]:
        """The merged ScoreStore of the calls that ended in ``[since, until)`` (exactly the
        store of all their scores) and the calls themselves, oldest first (to name the
        failed ones)."""
        filters = {
            "since": since,
            "until": until,
            "source": source,
            "agent_version": agent_version,
            "environment": environment,
        }
        with self._tx("DEFERRED") as db:
            records, sketches = self._records(db, filters, sketch=True)
        merged = ScoreStore.merged(
            _sketch(text, rec.conversation_id) for rec, text in zip(records, sketches, strict=True)
        )
        return merged, records

    def versions(self, source: str | None = None) -> list[tuple[str | None, str | None]]:
        """The distinct (agent_version, environment) pairs of the stored calls."""
        where, args = _filters(source=source)
        rows = self._read(
            f"SELECT DISTINCT agent_version, environment FROM calls{where} "
            "ORDER BY agent_version, environment",
            args,
        )
        return [(r[0], r[1]) for r in rows]

    # --- cycles ---

    def begin_cycle(self, slot: float, now: float) -> bool:
        """Claim ``slot`` as ``running``. False when the slot was ever begun (whatever its
        status): a restarted monitor never runs a slot twice."""
        slot_f = _finite(slot, "cycle slot")
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO cycles (slot, started_at, status) VALUES (?, ?, ?)",
                (slot_f, _finite(now, "now"), "running"),
            )
            return cur.rowcount == 1

    def finish_cycle(self, slot: float, status: str, now: float) -> None:
        """Record how the cycle of ``slot`` ended (``pass``, ``fail``, ``interrupted``...)."""
        if not isinstance(status, str) or not status:
            raise StoreError(f"cycle {slot!r}: status must be a non-empty string")
        with self._tx() as db:
            cur = db.execute(
                "UPDATE cycles SET status = ?, finished_at = ? WHERE slot = ?",
                (status, _finite(now, "now"), _finite(slot, "cycle slot")),
            )
            if cur.rowcount != 1:
                raise StoreError(f"{self.path}: cycle {slot!r} was never begun")

    def last_cycle(self) -> tuple[float, str] | None:
        """The highest slot ever begun and its status; None before the first cycle."""
        rows = self._read("SELECT slot, status FROM cycles ORDER BY slot DESC LIMIT 1")
        return (float(rows[0][0]), str(rows[0][1])) if rows else None

    def cycles(self, since: float | None = None) -> list[tuple[float, str, float, float | None]]:
        """(slot, status, started_at, finished_at) of the cycles from ``since`` on, oldest
        first; finished_at is None while running."""
        where, args = ("", []) if since is None else (" WHERE slot >= ?", [float(since)])
        rows = self._read(
            f"SELECT slot, status, started_at, finished_at FROM cycles{where} ORDER BY slot",
            args,
        )
        return [
            (float(s), str(st), float(a), None if f is None else float(f)) for s, st, a, f in rows
        ]

    # --- infrastructure failures ---

    def add_infra_failure(self, f: InfraFailure) -> None:
        """Record a call the monitor could not place (never a quality result)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO infra_failures (at, kind, detail, scenario, cycle) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    _finite(f.at, "infrastructure failure: at"),
                    str(f.kind),
                    str(f.detail),
                    f.scenario,
                    _finite(f.cycle, "infrastructure failure: cycle", optional=True),
                ),
            )

    def infra_failures(self, since: float | None = None) -> list[InfraFailure]:
        """The infrastructure failures from ``since`` on, oldest first."""
        where, args = ("", []) if since is None else (" WHERE at >= ?", [float(since)])
        rows = self._read(
            f"SELECT at, kind, detail, scenario, cycle FROM infra_failures{where} ORDER BY at, id",
            args,
        )
        return [
            InfraFailure(float(at), kind, detail, scenario, None if c is None else float(c))
            for at, kind, detail, scenario, c in rows
        ]

    # --- incident candidates ---

    def add_candidate(self, c: Candidate) -> bool:
        """Keep an incident candidate; False (nothing written) if its id is stored."""
        if not isinstance(c.id, str) or not c.id:
            raise StoreError(f"a candidate needs a non-empty id, got {c.id!r}")
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO candidates (id, at, reasons, trace_path, scores_path) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    c.id,
                    _finite(c.at, f"candidate {c.id!r}: at"),
                    json.dumps([str(r) for r in c.reasons]),
                    str(c.trace_path),
                    c.scores_path,
                ),
            )
            return cur.rowcount == 1

    def candidates(self) -> list[Candidate]:
        """Every incident candidate, newest first."""
        rows = self._read(
            "SELECT id, at, reasons, trace_path, scores_path FROM candidates "
            "ORDER BY at DESC, id DESC"
        )
        return [_candidate(r) for r in rows]

    def candidate(self, candidate_id: str) -> Candidate | None:
        rows = self._read(
            "SELECT id, at, reasons, trace_path, scores_path FROM candidates WHERE id = ?",
            (candidate_id,),
        )
        return _candidate(rows[0]) if rows else None

    # --- alert state ---

    def save_alert_state(self, key: str, data: Mapping[str, Any], now: float) -> None:
        """Keep the alert tracker's state under ``key`` so a restart neither re-sends nor
        forgets a firing alert."""
        try:
            text = json.dumps(dict(data), sort_keys=True)
        except (TypeError, ValueError) as e:
            raise StoreError(f"alert state {key!r} is not JSON-serialisable: {e}") from None
        with self._tx() as db:
            db.execute(
                "INSERT INTO alert_state (key, data, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET data = excluded.data, "
                "updated_at = excluded.updated_at",
                (key, text, _finite(now, "now")),
            )

    def load_alert_states(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for key, text in self._read("SELECT key, data FROM alert_state ORDER BY key"):
            try:
                value = json.loads(text)
            except (TypeError, ValueError) as e:
                raise StoreError(f"table alert_state, key {key!r}: data is not JSON: {e}") from None
            if not isinstance(value, dict):
                raise StoreError(f"table alert_state, key {key!r}: data is not a JSON object")
            out[key] = value
        return out

    def delete_alert_state(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM alert_state WHERE key = ?", (key,))

    # --- retention and status ---

    def prune(self, now: float) -> int:
        """Delete what is older than ``now - retention_s``: calls (their scores cascade),
        infrastructure failures, finished cycles and candidates; nothing without a
        retention. The most recent cycle is always kept (the schedule resumes from it), and
        so is any cycle still running. Returns the rows removed (scores not counted)."""
        self._last_prune = time.monotonic()
        if self.retention_s is None:
            return 0
        cutoff = _finite(now, "now") - self.retention_s  # type: ignore[operator]
        with self._tx() as db:
            removed = db.execute("DELETE FROM calls WHERE ended_at < ?", (cutoff,)).rowcount
            removed += db.execute("DELETE FROM infra_failures WHERE at < ?", (cutoff,)).rowcount
            removed += db.execute(
                "DELETE FROM cycles WHERE slot < ? AND status != 'running' "
                "AND slot < (SELECT MAX(slot) FROM cycles)",
                (cutoff,),
            ).rowcount
            removed += db.execute("DELETE FROM candidates WHERE at < ?", (cutoff,)).rowcount
        return removed

    def _maybe_prune(self) -> None:
        """Prune at most once a minute from :meth:`add_call`, so a busy ingest stays cheap."""
        if self.retention_s is None:
            return
        if time.monotonic() - self._last_prune >= _AUTO_PRUNE_EVERY_S:
            self.prune(time.time())

    def stats(self) -> dict[str, Any]:
        """Rows per table, the schema version and the file: ``harness monitor status``."""
        with self._tx("DEFERRED") as db:
            out: dict[str, Any] = {
                t: int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in _TABLES
            }
            out["schema_version"] = _user_version(db)
        out["path"] = str(self.path)
        return out


def _candidate(row: Sequence[Any]) -> Candidate:
    cid, at, reasons, trace_path, scores_path = row
    return Candidate(
        id=cid,
        at=float(at),
        reasons=_json_list(reasons, "candidates", f"id {cid!r}", "reasons"),
        trace_path=trace_path,
        scores_path=scores_path,
    )
