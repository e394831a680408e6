"""MonitorStore: round trips, idempotence, windows equal to a direct ScoreStore, cycles,
migrations, refusals, retention, and durability when the writer is SIGKILLed."""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core.errors import HarnessError
from harness.evaluators.base import Score
from harness.gates.store import ScoreStore
from harness.monitor import store as store_mod
from harness.monitor.model import CallRecord, Candidate, InfraFailure
from harness.monitor.store import MIGRATIONS, SCHEMA_VERSION, MonitorStore, StoreError, migrate

REPO = Path(__file__).resolve().parents[2]


def _rec(cid: str, ended_at: float, **kw: object) -> CallRecord:
    """A call with a few scores of different kinds (per-call and per-turn)."""
    scores = kw.pop(
        "scores",
        (
            Score("latency", 812.5, "ms", span="llm_node", layer="conversational", turn=1),
            Score("latency", 640.0, "ms", span="llm_node", layer="conversational", turn=2),
            Score("task_success", 1.0, "bool", detail="booked"),
            Score("wer", 0.125, "ratio", span="stt_node"),
        ),
    )
    base: dict[str, object] = {
        "conversation_id": cid,
        "source": "synthetic",
        "ended_at": ended_at,
        "scores": scores,
        "passed": True,
    }
    base.update(kw)
    return CallRecord(**base)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path):
    with MonitorStore(tmp_path / "state" / "monitor.sqlite") as s:
        yield s


# --- calls ---


def test_round_trip_equal(store: MonitorStore) -> None:
    rec = _rec(
        "conv-1",
        1_700_000_000.25,
        passed=False,
        scenario="book-appointment",
        cycle=1_699_999_900.0,
        agent_version="v1.2.3",
        environment="staging",
        failures=("turn 2: expected a confirmation", "latency p95 over 2 s"),
        artifacts="/runs/monitor/conv-1",
        traced=False,
    )
    assert store.add_call(rec)
    assert store.call("conv-1") == rec
    assert store.calls() == [rec]
    assert store.has_call("conv-1")
    assert not store.has_call("conv-2")
    assert store.call("conv-2") is None
    bare = _rec("conv-2", 5.0, scores=(), source="production")
    assert store.add_call(bare)
    assert store.call("conv-2") == bare


def test_round_trip_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    rec = _rec("a", 10.0, agent_version="v2")
    with MonitorStore(path) as s:
        s.add_call(rec)
    with MonitorStore(path) as s:
        assert s.call("a") == rec


def test_add_call_idempotent(store: MonitorStore) -> None:
    rec = _rec("dup", 1.0)
    assert store.add_call(rec) is True
    other = _rec("dup", 2.0, passed=False, scores=(Score("latency", 1.0, "ms"),))
    assert store.add_call(other) is False
    assert store.call("dup") == rec
    st_ = store.stats()
    assert st_["calls"] == 1
    assert st_["scores"] == len(rec.scores)


def test_add_call_refuses_bad_records(store: MonitorStore) -> None:
    with pytest.raises(StoreError, match="conversation id"):
        store.add_call(_rec("", 1.0))
    with pytest.raises(StoreError, match="source"):
        store.add_call(_rec("x", 1.0, source="mars"))
    with pytest.raises(StoreError, match="ended_at"):
        store.add_call(_rec("x", float("nan")))
    mixed = (Score("latency", 1.0, "ms"), Score("latency", 1.0, "s"))
    with pytest.raises(StoreError, match=r"'x'.*unit"):
        store.add_call(_rec("x", 1.0, scores=mixed))
    assert store.stats()["calls"] == 0


def ids(records: list[CallRecord]) -> list[str]:
    return [r.conversation_id for r in records]


def test_filters_and_order(store: MonitorStore) -> None:
    recs = [
        _rec("p1", 30.0, source="production", agent_version="v1", environment="prod"),
        _rec("s1", 10.0, scenario="a", agent_version="v1", environment="staging"),
        _rec("s2", 20.0, scenario="b", agent_version="v2", environment="staging"),
        _rec("s3", 40.0, scenario="a"),
    ]
    for r in recs:
        store.add_call(r)
    assert ids(store.calls()) == ["s1", "s2", "p1", "s3"]
    assert ids(store.calls(since=20.0)) == ["s2", "p1", "s3"]  # since inclusive
    assert ids(store.calls(until=30.0)) == ["s1", "s2"]  # until exclusive
    assert ids(store.calls(since=10.0, until=40.0, source="synthetic")) == ["s1", "s2"]
    assert ids(store.calls(agent_version="v1")) == ["s1", "p1"]
    assert ids(store.calls(environment="staging", agent_version="v2")) == ["s2"]
    assert ids(store.calls(scenario="a")) == ["s1", "s3"]
    assert store.count_calls() == 4
    assert store.count_calls(source="production") == 1
    assert store.count_calls(since=20.0, until=40.0) == 2
    assert store.count_calls(scenario="a", since=11.0) == 1
    assert store.calls(scenario="zzz") == []
    assert store.versions() == [(None, None), ("v1", "prod"), ("v1", "staging"), ("v2", "staging")]
    assert store.versions("production") == [("v1", "prod")]
    scores, calls = store.window(since=0.0, source="synthetic", agent_version="v1")
    assert ids(calls) == ["s1"]
    assert scores.calls == 1


def test_concurrent_writers_threads(store: MonitorStore) -> None:
    def work(t: int) -> None:
        for i in range(20):
            assert store.add_call(_rec(f"t{t}-{i}", float(i)))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert store.count_calls() == 80
    assert store.stats()["scores"] == 80 * 4


# --- windows ---

_latencies = st.lists(
    st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=1e5, allow_nan=False, allow_infinity=False),
            st.sampled_from(["llm_node", "tts_node", None]),
        ),
        max_size=15,
    ),
    max_size=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=_latencies, traced=st.lists(st.booleans(), min_size=8, max_size=8))
def test_window_equals_direct_store(
    calls: list[list[tuple[float, str | None]]], traced: list[bool]
) -> None:
    direct = ScoreStore()
    recs = []
    for i, values in enumerate(calls):
        scores = tuple(Score("latency", v, "ms", span=span) for v, span in values)
        recs.append(_rec(f"c{i}", 100.0 + i, scores=scores, traced=traced[i]))
        direct.add(scores, traced=traced[i])
    with tempfile.TemporaryDirectory() as d, MonitorStore(Path(d) / "m.sqlite") as s:
        for r in recs:
            s.add_call(r)
        merged, got = s.window(since=0.0)
    assert got == recs
    assert merged.calls == direct.calls == len(calls)
    assert merged.untraced_calls == direct.untraced_calls
    assert merged.metrics == direct.metrics
    assert dict(iter(merged)) == dict(iter(direct))
    for span in ("llm_node", "tts_node", None):
        a, b = merged.select("latency", span), direct.select("latency", span)
        assert a.count == b.count
        for q in (0.0, 0.5, 0.9, 0.95, 0.99, 1.0):
            assert a.quantile(q) == b.quantile(q)


def test_window_bounds_and_empty(store: MonitorStore) -> None:
    merged, calls = store.window(since=0.0)
    assert calls == [] and merged.calls == 0 and len(merged) == 0
    store.add_call(_rec("old", 50.0))
    store.add_call(_rec("in", 100.0))
    store.add_call(_rec("edge", 200.0))
    merged, calls = store.window(since=100.0, until=200.0)
    assert [c.conversation_id for c in calls] == ["in"]
    assert merged.calls == 1
    assert merged.select("latency").count == 2


# --- cycles, infra failures, candidates, alert state ---


def test_cycles(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    with MonitorStore(path) as s:
        assert s.last_cycle() is None
        assert s.begin_cycle(60.0, 61.0) is True
        assert s.begin_cycle(60.0, 62.0) is False  # running: never twice
        s.finish_cycle(60.0, "pass", 90.0)
        assert s.begin_cycle(60.0, 95.0) is False  # finished: never again either
        assert s.begin_cycle(120.0, 121.0) is True
        with pytest.raises(StoreError, match="never begun"):
            s.finish_cycle(180.0, "pass", 200.0)
    with MonitorStore(path) as s:
        assert s.last_cycle() == (120.0, "running")
        assert s.cycles() == [(60.0, "pass", 61.0, 90.0), (120.0, "running", 121.0, None)]
        assert s.cycles(since=100.0) == [(120.0, "running", 121.0, None)]
        assert s.begin_cycle(120.0, 300.0) is False


def test_infra_failures(store: MonitorStore) -> None:
    a = InfraFailure(10.0, "server_unreachable", "connection refused", "greet", 5.0)
    b = InfraFailure(20.0, "agent_not_joined", "no agent in 30 s")
    store.add_infra_failure(b)
    store.add_infra_failure(a)
    assert store.infra_failures() == [a, b]
    assert store.infra_failures(since=15.0) == [b]


def test_candidates(store: MonitorStore) -> None:
    old = Candidate("c-old", 10.0, ("silence",), "/t/old.json")
    new = Candidate("c-new", 20.0, ("latency", "left early"), "/t/new.json", "/t/s.json")
    assert store.add_candidate(old)
    assert store.add_candidate(new)
    assert not store.add_candidate(Candidate("c-old", 30.0, (), "/elsewhere"))
    assert store.candidates() == [new, old]
    assert store.candidate("c-old") == old
    assert store.candidate("nope") is None


def test_alert_state(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    with MonitorStore(path) as s:
        s.save_alert_state("tracker", {"firing": {"g": 1.5}}, 1.0)
        s.save_alert_state("tracker", {"firing": {}, "n": [1, 2]}, 2.0)
        s.save_alert_state("other", {}, 3.0)
        with pytest.raises(StoreError, match="'bad'"):
            s.save_alert_state("bad", {"x": object()}, 4.0)
    with MonitorStore(path) as s:
        assert s.load_alert_states() == {"tracker": {"firing": {}, "n": [1, 2]}, "other": {}}
        s.delete_alert_state("other")
        s.delete_alert_state("never")
        assert list(s.load_alert_states()) == ["tracker"]


# --- schema, settings and refusals ---


def test_wal_and_pragmas(store: MonitorStore) -> None:
    other = sqlite3.connect(store.path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()
    conn = store._conn
    assert conn is not None
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_stats(store: MonitorStore) -> None:
    store.add_call(_rec("a", 1.0))
    store.begin_cycle(1.0, 1.0)
    st_ = store.stats()
    assert st_["calls"] == 1 and st_["scores"] == 4 and st_["cycles"] == 1
    assert st_["infra_failures"] == 0 and st_["candidates"] == 0 and st_["alert_state"] == 0
    assert st_["schema_version"] == SCHEMA_VERSION == len(MIGRATIONS) >= 2
    assert st_["path"] == str(store.path)


def test_migration_from_v1(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    rec = _rec("from-v1", 42.0, agent_version="v0", failures=("x",))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(conn, path, MIGRATIONS[:1]) == 1
        # what a v1 harness wrote: the v1 tables, nothing of v2
        conn.execute(
            f"INSERT INTO calls ({store_mod._CALL_COLUMNS}, sketch) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            store_mod._call_row(rec),
        )
        conn.executemany(
            "INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", store_mod._score_rows(rec)
        )
        conn.execute("INSERT INTO cycles VALUES (60.0, 61.0, 62.0, 'pass')")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "candidates" not in tables
    finally:
        conn.close()
    with MonitorStore(path) as s:
        assert s.stats()["schema_version"] == SCHEMA_VERSION
        assert s.call("from-v1") == rec
        assert s.last_cycle() == (60.0, "pass")
        assert s.add_candidate(Candidate("from-v1", 42.0, ("x",), "/t.json"))
    with MonitorStore(path) as s:  # opening again migrates nothing
        assert s.candidates()[0].id == "from-v1"


def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    MonitorStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as info:
        MonitorStore(path)
    msg = str(info.value)
    assert str(path) in msg
    assert f"version {SCHEMA_VERSION + 1}" in msg and f"version {SCHEMA_VERSION}" in msg
    assert "Upgrade the harness" in msg
    assert isinstance(info.value, HarnessError)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("this is a text file, not a database\n" * 200)
    with pytest.raises(StoreError, match="not a SQLite database") as info:
        MonitorStore(path)
    assert str(path) in str(info.value)
    assert path.read_text().startswith("this is a text file")  # left untouched


def test_corrupt_rows_named(store: MonitorStore) -> None:
    store.add_call(_rec("bad-failures", 1.0))
    store.add_call(_rec("bad-sketch", 2.0))
    store.add_call(_rec("bad-score", 3.0))
    conn = store._conn
    assert conn is not None
    conn.execute("UPDATE calls SET failures = '[oops' WHERE conversation_id = 'bad-failures'")
    conn.execute("UPDATE calls SET sketch = '{}' WHERE conversation_id = 'bad-sketch'")
    conn.execute("UPDATE scores SET value = 'abc' WHERE conversation_id = 'bad-score'")
    with pytest.raises(StoreError, match=r"table calls.*'bad-failures'.*failures"):
        store.call("bad-failures")
    with pytest.raises(StoreError, match=r"table calls.*'bad-sketch'.*sketch"):
        store.window(since=1.5, until=2.5)
    with pytest.raises(StoreError, match=r"table scores.*'bad-score'"):
        store.calls(since=3.0)
    conn.execute("INSERT INTO alert_state VALUES ('k', 'nope', 1.0)")
    with pytest.raises(StoreError, match=r"alert_state.*'k'"):
        store.load_alert_states()


def test_closed_store(tmp_path: Path) -> None:
    s = MonitorStore(tmp_path / "m.sqlite")
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.count_calls()


# --- retention ---


def test_prune(tmp_path: Path) -> None:
    now = 10_000.0
    with MonitorStore(tmp_path / "m.sqlite", retention_s=100.0) as s:
        s.add_call(_rec("old", now - 200))
        s.add_call(_rec("new", now - 50))
        s.add_infra_failure(InfraFailure(now - 200, "other", "x"))
        s.add_infra_failure(InfraFailure(now - 10, "other", "y"))
        for slot, status in ((now - 400, "pass"), (now - 300, None), (now - 200, "fail")):
            s.begin_cycle(slot, slot)
            if status:
                s.finish_cycle(slot, status, slot + 1)
        s.add_candidate(Candidate("old", now - 200, ("r",), "/t"))
        s.add_candidate(Candidate("new", now - 50, ("r",), "/t"))
        # one call, one failure, the finished cycle at -400 and one candidate; the cycle
        # still running and the most recent one are kept
        assert s.prune(now) == 4
        assert [c.conversation_id for c in s.calls()] == ["new"]
        assert s.stats()["scores"] == 4
        assert [f.detail for f in s.infra_failures()] == ["y"]
        assert [c[0] for c in s.cycles()] == [now - 300, now - 200]
        assert s.last_cycle() == (now - 200, "fail")
        assert [c.id for c in s.candidates()] == ["new"]
        assert s.prune(now) == 0
        # the rest of the calls, failures and candidates; still the cycles are kept
        assert s.prune(now + 1000) == 3
        assert s.count_calls() == 0 and s.stats()["scores"] == 0
        assert len(s.cycles()) == 2


def test_prune_keeps_last_cycle_and_noop_without_retention(tmp_path: Path) -> None:
    with MonitorStore(tmp_path / "a.sqlite", retention_s=10.0) as s:
        s.begin_cycle(1.0, 1.0)
        s.finish_cycle(1.0, "pass", 2.0)
        assert s.prune(1_000.0) == 0
        assert s.last_cycle() == (1.0, "pass")
    with MonitorStore(tmp_path / "b.sqlite") as s:
        s.add_call(_rec("a", 1.0))
        assert s.prune(1e9) == 0
        assert s.count_calls() == 1


def test_add_call_prunes_at_most_once_a_minute(tmp_path: Path) -> None:
    with MonitorStore(tmp_path / "m.sqlite", retention_s=3600.0) as s:
        ancient = time.time() - 7200
        s.add_call(_rec("ancient", ancient))
        s.add_call(_rec("ancient-2", ancient))
        assert s.count_calls() == 2  # opened less than a minute ago: no prune yet
        s._last_prune -= 61
        s.add_call(_rec("fresh", time.time()))
        assert [c.conversation_id for c in s.calls()] == ["fresh"]
        assert s.stats()["scores"] == 4


# --- durability: SIGKILL at random moments ---

_ZYGOTE = textwrap.dedent(
    """
    import os, sys
    from harness.evaluators.base import Score
    from harness.monitor.model import CallRecord
    from harness.monitor.store import MonitorStore

    path = sys.argv[1]

    def say(*words):
        # one write(2) per line: parent and child share the pipe, and a line under
        # PIPE_BUF is never interleaved with another (print() may write a word at a time)
        os.write(1, (" ".join(map(str, words)) + "\\n").encode())

    def writer():
        # add calls 0, 1, 2, ... (re-submitting those already stored, as a restarted
        # monitor does) and print each id once its transaction committed
        with MonitorStore(path) as store:
            say("ready")
            i = 0
            while True:
                cid = f"call-{i}"
                scores = tuple(Score(f"m{k}", float(i * 10 + k), "ms") for k in range(5))
                rec = CallRecord(cid, "synthetic", float(i), scores, True, scenario="s")
                if store.add_call(rec):
                    say("committed", cid)
                if store.begin_cycle(float(i), float(i)):
                    store.finish_cycle(float(i), "pass", float(i))
                i += 1

    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            try:
                writer()
            finally:
                os._exit(1)
        say("pid", pid)
        os.waitpid(pid, 0)
        say("dead")
    """
)


class _Lines:
    """Lines from a pipe with a deadline, so a hung child fails the test, not the run."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def next(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise AssertionError("the writer process stopped answering")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise AssertionError(f"the writer process exited; got {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


def test_sigkill_never_loses_a_commit_or_half_writes(tmp_path: Path) -> None:
    """A writer is SIGKILLed at random moments, five times, on one file: every call it
    reported committed is there, none has a partial set of scores, none is doubled.

    The writer is a ``sys.executable -c`` process that imports the harness once (scipy
    makes that slow) and forks one writer per round; the fork is what gets killed."""
    path = tmp_path / "crash.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _ZYGOTE, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    lines = _Lines(proc.stdout.fileno())
    rng = random.Random(20240607)
    committed: set[str] = set()
    writer: int | None = None
    try:
        for _round in range(5):
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
            # the parent prints the pid, the child "ready" and its commits: they share
            # one pipe, so the child's lines may come before the parent's
            new: list[str] = []
            ready = False
            while writer is None or not ready:
                line = lines.next(60.0)
                if line.startswith("pid "):
                    writer = int(line.split()[1])
                elif line == "ready":
                    ready = True
                else:
                    assert ready and line.startswith("committed "), line
                    new.append(line.split()[1])
            time.sleep(rng.uniform(0.05, 0.5))
            os.kill(writer, signal.SIGKILL)
            while (line := lines.next()) != "dead":
                assert line.startswith("committed "), line
                new.append(line.split()[1])
            assert not committed & set(new), "a stored call was stored again"
            committed |= set(new)
            _check_after_crash(path, committed, rounds=_round + 1)
            writer = None
    finally:
        if writer is not None:  # a failed round: its writer must not outlive the test
            with contextlib.suppress(ProcessLookupError):
                os.kill(writer, signal.SIGKILL)
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert len(committed) > 5  # the writer did get calls in before being killed


def _check_after_crash(path: Path, committed: set[str], *, rounds: int) -> None:
    with MonitorStore(path) as s:
        conn = s._conn
        assert conn is not None
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        calls = s.calls()
        stored = [c.conversation_id for c in calls]
        assert len(stored) == len(set(stored))
        assert committed <= set(stored)
        # calls are written in order; per round at most the one committed but killed
        # before its line was printed is unreported
        assert stored == [f"call-{i}" for i in range(len(stored))]
        assert len(set(stored) - committed) <= rounds
        per_call = dict(conn.execute("SELECT conversation_id, COUNT(*) FROM scores GROUP BY 1"))
        assert per_call == {cid: 5 for cid in stored}
        for i, c in enumerate(calls):
            assert [sc.value for sc in c.scores] == [float(i * 10 + k) for k in range(5)]
        merged, _ = s.window(since=0.0)
        assert merged.calls == len(stored)
        assert json.loads(merged.to_json())["calls"] == len(stored)
        assert s.count_calls() == len(stored)
