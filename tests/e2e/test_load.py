"""harness load end to end, short enough for make test: the real clinic, a ramp of 1 then 2
concurrent calls for 25 s each (about two minutes on a 2-core machine). Every step prints its
row with latency percentiles and what the harness itself cost; every call records its
caller-side CPU; load.json and the report's load section are written; and the run, split in
two by step, merges back into the single run's gate table. The long ramp is `make load`."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from harness.call.rundir import RunDir
from harness.cli import main

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
SCENARIO = HERE / "suites" / "hours_short.yaml"
CLINIC_CMD = "{python} -m examples.clinic.deploy start"


def test_a_short_ramp_prints_each_step_the_knee_and_the_harness_cost(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(HERE.parents[1]))  # the agent imports examples.clinic
    t0 = time.monotonic()
    code = main(
        [
            "load",
            str(SCENARIO),
            "--ramp",
            "1,2",
            "--step-duration",
            "25s",
            "--keep-going",
            "--agent-cmd",
            CLINIC_CMD,
            "--artifacts",
            str(tmp_path / "runs"),
        ]
    )
    took = time.monotonic() - t0
    out = capsys.readouterr().out
    print(out)
    print(f"took {took:.0f} s")
    assert code == 0, out
    assert took < 240, f"the load e2e test must stay under 4 minutes (took {took:.0f} s)"

    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(
            r"^(1|2)\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+ ms\s+\d+ ms\s+\d+ ms.*$", out, re.M
        )
    }
    assert set(rows) == {"1", "2"}, out
    assert re.search(r"^knee: ", out, re.M), out
    assert re.search(r"harness cost: the caller side spent \d+\.\d\d CPU s per call-minute", out)

    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    doc = RunDir(run_dir).read_load()
    assert doc is not None and [s["concurrency"] for s in doc["steps"]] == [1, 2]
    for step in doc["steps"]:
        assert step["calls"] >= step["concurrency"], step
        assert step["latency"]["n"] > 0 and step["latency"]["p50_ms"] > 0, step
        cost = step["harness"]
        assert cost["caller_cpu_s"] > 0 and cost["cpu_per_call_minute"] > 0, step
        assert cost["loop_lag_p99_ms"] is not None, step
    # every call records the caller's CPU and its loop's lag
    calls = RunDir(run_dir).calls()
    assert len(calls) == sum(s["calls"] for s in doc["steps"])
    for call in calls:
        harness = call.read_timings()["harness"]
        assert harness["caller_cpu_s"] > 0 and harness["wall_s"] > 1, call.name
    assert {c.name.split("-")[0] for c in calls} == {"c1", "c2"}
    html = RunDir(run_dir).report.read_text()
    assert 'id="load"' in html and "load-chart" in html

    # the run split in two (the calls of each step in a run directory of their own) merges
    # back into the gate table of the whole run
    shards = [tmp_path / "shard-c1", tmp_path / "shard-c2"]
    records, _ = RunDir(run_dir).read_scores()
    for shard, step in zip(shards, doc["steps"], strict=True):
        for d in step["call_dirs"]:
            shutil.copytree(d, shard / Path(d).name)
            cid = RunDir(shard).call(Path(d).name).read_timings()["conversation_id"]
            RunDir(shard).append_scores(r for r in records if r["conversation_id"] == cid)
    capsys.readouterr()  # what this test printed so far
    assert main(["merge", str(run_dir)]) in (0, 1)
    whole = capsys.readouterr().out
    assert main(["merge", *map(str, shards)]) in (0, 1)
    split = capsys.readouterr().out
    assert f"merged: 2 runs, {len(calls)} calls" in split

    def gate_table(out: str) -> str:
        table = re.search(r"^gate\s+layer/span.*?^\d+ gates: [^\n]*$", out, re.M | re.S)
        assert table is not None, out
        return table.group(0)

    assert gate_table(split) == gate_table(whole)
    print(json.dumps(doc["cost"]))
