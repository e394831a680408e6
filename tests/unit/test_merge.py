"""harness merge: run directories written by separate processes or machines, merged into
the gate table one run over all their calls gives (within the sketch's relative accuracy).

The runs here are written by the same writers the call engine uses (the run directory's
timings files and ``SessionScores``, which appends ``scores.jsonl``)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.call.rundir import RunDir, TimingsFile
from harness.cli import main
from harness.core.errors import ScenarioError
from harness.evaluators.base import Score
from harness.gates import ScoreStore, default_gates, evaluate_gates
from harness.gates.scoring import SessionScores
from harness.session.merge import merge_runs, run_scores
from harness.trace.validate import DataError

ALPHA = 0.01  # the sketch's relative accuracy

# --- stores -------------------------------------------------------------------------------

calls_strategy = st.lists(
    st.lists(st.floats(1, 60_000, allow_nan=False), min_size=1, max_size=30),
    min_size=1,
    max_size=80,
)


def store_of(calls: list[list[float]], exact_limit: int) -> ScoreStore:
    s = ScoreStore(exact_limit=exact_limit)
    for values in calls:
        s.add([Score("response_latency", v, "ms") for v in values])
    return s


@settings(max_examples=60, deadline=None)
@given(calls_strategy, st.integers(1, 5), st.sampled_from([0, 10, 2000]), st.randoms())
def test_a_random_split_merges_to_the_whole(calls, shards, exact_limit, rnd):
    """However the calls are dealt out to shards, the merged store's counts are the whole's
    and its quantiles are within the sketch's accuracy (exactly equal while the values are
    kept)."""
    parts: list[list[list[float]]] = [[] for _ in range(shards)]
    for c in calls:
        parts[rnd.randrange(shards)].append(c)
    whole = store_of(calls, exact_limit)
    merged = ScoreStore.merged(store_of(p, exact_limit) for p in parts)
    assert merged.calls == whole.calls
    a, b = whole.select("response_latency"), merged.select("response_latency")
    assert a.count == b.count
    for q in (0.5, 0.9, 0.95, 0.99):
        x, y = a.quantile(q), b.quantile(q)
        assert x is not None and y is not None
        assert abs(x - y) <= ALPHA * abs(x) * 2 + 1e-9
        if a.is_exact:
            assert x == y


# --- run directories ------------------------------------------------------------------------


def write_run(run: Path, n: int, seed: int = 7) -> SessionScores:
    """``n`` calls the way a session writes them: a directory each with its timings file,
    their Scores appended to ``scores.jsonl``. Call 3 sent no trace; call 5 has a data
    error on its e2e latency."""
    rnd = random.Random(seed)
    session = SessionScores(run)
    for i in range(n):
        cid = f"c-{i:03d}"
        traced = i != 3
        errors = (
            (
                DataError(
                    "negative", "agent_turn", f"s{i}", "lk.e2e_latency", "-5 ms", ("e2e_latency",)
                ),
            )
            if i == 5
            else ()
        )
        scores = [Score("response_latency", rnd.lognormvariate(7, 0.4), "ms") for _ in range(4)]
        if traced:
            scores += [
                Score("e2e_latency", rnd.lognormvariate(7.2, 0.5), "ms", span="agent_turn")
                for _ in range(4)
            ]
            scores.append(Score("wer", rnd.random() * 0.1, "ratio"))
        call = RunDir(run).call(f"booking.{i + 1}")
        call.path.mkdir(parents=True, exist_ok=True)
        call.write_timings(
            TimingsFile(
                conversation_id=cid,
                verdict="pass",
                trace={"state": "complete" if traced else "none", "spans": 0, "reason": ""},
                data_errors=[e.to_dict() for e in errors],
            )
        )
        session.record(scores, traced=traced, data_errors=errors, conversation_id=cid)
    return session


def same_store(a: ScoreStore, b: ScoreStore) -> None:
    """Equal, but for the float sum of each sketch (added in another order)."""
    da, db = a.to_dict(), b.to_dict()
    sums = []
    for d in (da, db):
        sums.append([s["distribution"]["sketch"].pop("sum") for s in d["series"]])
    assert da == db
    assert sums[0] == pytest.approx(sums[1], rel=1e-12)


def split(run: Path, into: list[Path]) -> None:
    """Deal the run's calls (directories and score lines) out to ``into``, round-robin."""
    calls = RunDir(run).calls()
    records, _ = RunDir(run).read_scores()
    for i, call in enumerate(calls):
        target = RunDir(into[i % len(into)])
        shutil.copytree(call.path, target.call(call.name).path)
        cid = call.read_timings()["conversation_id"]
        target.append_scores(r for r in records if r["conversation_id"] == cid)


def test_a_run_dir_reads_back_as_its_session_stored_it(tmp_path: Path):
    session = write_run(tmp_path / "run", 12)
    back = run_scores(tmp_path / "run")
    same_store(back.store, session.store)
    assert (back.calls, back.store.untraced_calls, back.store.data_error_calls) == (12, 1, 1)


def test_a_run_split_in_three_merges_to_the_single_runs_gate_table(tmp_path: Path, capsys):
    whole = tmp_path / "whole"
    write_run(whole, 30)
    shards = [tmp_path / f"shard-{i}" for i in range(3)]
    split(whole, shards)
    assert [len(RunDir(s).calls()) for s in shards] == [10, 10, 10]

    merged = merge_runs(shards)
    single = run_scores(whole).store
    assert merged.calls == 30
    same_store(merged.store, single)
    gates = default_gates()
    for a, b in zip(
        evaluate_gates(gates, single), evaluate_gates(gates, merged.store), strict=True
    ):
        assert (a.name, a.status, a.n, a.no_trace, a.data_errors) == (
            b.name,
            b.status,
            b.n,
            b.no_trace,
            b.data_errors,
        )
        if a.value is not None:
            assert b.value == pytest.approx(a.value, rel=ALPHA)

    # the command prints the same gate table for the three shards as for the whole run
    code_whole = main(["merge", str(whole)])
    out_whole = capsys.readouterr().out
    code_split = main(["merge", *map(str, shards)])
    out_split = capsys.readouterr().out
    assert code_whole == code_split
    assert "merged: 3 runs, 30 calls" in out_split
    table = lambda out: out[out.index("gate ") :]  # noqa: E731
    assert table(out_split) == table(out_whole)
    assert "e2e_latency" in table(out_split)


def test_merge_writes_the_merged_scores_as_a_baseline(tmp_path: Path, capsys):
    from harness.gates.baseline import load_baseline

    write_run(tmp_path / "a", 4)
    write_run(tmp_path / "b", 4, seed=8)
    for i, call in enumerate(RunDir(tmp_path / "b").calls()):  # other conversation ids
        t = call.read_timings()
        t["conversation_id"] = f"b-{i}"
        call.write_timings(t)
    records, _ = RunDir(tmp_path / "b").read_scores()
    (tmp_path / "b" / "scores.jsonl").unlink()
    RunDir(tmp_path / "b").append_scores(
        {**r, "conversation_id": "b-" + r["conversation_id"][-1]} for r in records
    )
    out = tmp_path / "merged.json"
    main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)])
    assert "merged scores written to" in capsys.readouterr().out
    assert load_baseline(out).calls == 8


def test_the_same_call_in_two_runs_is_refused(tmp_path: Path, capsys):
    write_run(tmp_path / "a", 3)
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    with pytest.raises(ScenarioError, match=r"call c-000 is in both .* a run given twice"):
        merge_runs([tmp_path / "a", tmp_path / "copy"])
    assert main(["merge", str(tmp_path / "a"), str(tmp_path / "a")]) == 2
    assert "a run given twice" in capsys.readouterr().err


def test_what_is_not_a_run_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ScenarioError, match="not a run directory"):
        run_scores(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScenarioError, match=r"no scores\.jsonl here"):
        run_scores(tmp_path / "empty")
    with pytest.raises(ScenarioError, match="at least one run directory"):
        merge_runs([])


def test_a_cut_short_score_line_and_a_bad_timings_file_are_counted(tmp_path: Path):
    run = tmp_path / "run"
    write_run(run, 3)
    with (run / "scores.jsonl").open("a") as f:
        f.write('{"conversation_id": "c-009", "name": "respo')
    (run / "booking.2" / "timings.json").write_text("{not json")
    got = run_scores(run)
    assert got.bad_records == 1 and got.calls == 3
    assert len(got.unreadable) == 1 and "timings.json" in got.unreadable[0]
    lines = merge_runs([run]).lines()
    assert "1 unreadable score lines skipped" in lines[0]


def test_calls_nested_a_level_down_count_too(tmp_path: Path):
    """A sensitivity run keeps each fault's calls under a directory of its own."""
    run = tmp_path / "run"
    write_run(run, 6)
    (run / "clean").mkdir()
    for call in RunDir(run).calls()[:3]:
        shutil.move(call.path, run / "clean" / call.name)
    got = run_scores(run)
    assert (got.calls, got.store.untraced_calls, got.store.data_error_calls) == (6, 1, 1)
