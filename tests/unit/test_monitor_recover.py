"""A monitor killed between writing a call's artifacts and committing its row stores the
call on restart, from the artifacts; a call that ended in an infrastructure error is not
recovered, and nothing is stored twice."""

from __future__ import annotations

import json

from harness.monitor.model import CallRecord
from harness.monitor.recover import recover_unstored
from harness.monitor.store import MonitorStore


def write_call(run_dir, label, cid, verdict, scores):
    d = run_dir / f"{label}.1"
    d.mkdir(parents=True)
    lines = "".join(
        json.dumps({"conversation_id": cid, "scenario": "s", "repeat": 1, **s}) + "\n"
        for s in scores
    )
    with (run_dir / "scores.jsonl").open("a") as f:
        f.write(lines)
    (d / "timings.json").write_text(
        json.dumps(
            {
                "conversation_id": cid,
                "verdict": verdict,
                "error": None,
                "failures": [],
                "trace": {"state": "complete"},
            }
        )
    )


def test_completed_calls_are_recovered_once(tmp_path):
    run = tmp_path / "runs" / "monitor"
    s = {
        "name": "e2e_latency",
        "value": 1200.0,
        "unit": "ms",
        "span": "agent_turn",
        "layer": "conversational",
        "turn": 1,
        "detail": "",
    }
    write_call(run, "20261202T061000-hours", "c-1", "pass", [s, {**s, "turn": 2}])
    write_call(run, "20261202T061030-hours", "c-2", "error", [])
    write_call(run, "20261202T061100-hours", "c-3", "fail", [s])
    with (run / "scores.jsonl").open("a") as f:
        f.write('{"conversation_id": "c-3", "name": "e2e_lat')  # a write cut by the kill
    with MonitorStore(tmp_path / "m.sqlite3") as store:
        store.add_call(CallRecord("c-3", "synthetic", 1.0, (), False))  # already stored
        found = recover_unstored(store, run)
        assert [r.conversation_id for r in found.records] == ["c-1"]
        assert found.unreadable == 1
        rec = store.call("c-1")
        assert rec is not None and rec.passed and rec.scenario == "hours"
        assert rec.cycle == 1796191800.0  # the slot, from the call's directory
        assert [x.turn for x in rec.scores] == [1, 2]
        assert recover_unstored(store, run).records == ()
