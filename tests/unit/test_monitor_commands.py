"""The monitor's command functions: exit codes of --once, versions side by side, the
candidates table, and usage errors that name the option."""

from __future__ import annotations

import time

import pytest

from harness.cli import main
from harness.evaluators.base import Score
from harness.gates import default_gates
from harness.monitor.commands import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    compare_versions,
    once_exit_code,
)
from harness.monitor.model import CallRecord, InfraFailure
from harness.monitor.runner import CycleResult
from harness.monitor.store import MonitorStore


def rec(cid: str, ms: float, *, version: str, passed: bool = True, at: float | None = None):
    scores = tuple(
        Score("e2e_latency", ms + k, "ms", span="agent_turn", layer="conversational", turn=k)
        for k in range(3)
    )
    return CallRecord(
        cid, "production", at or time.time() - 60, scores, passed, agent_version=version
    )


def test_once_exit_codes():
    ok = CycleResult(1.0, records=[rec("a", 900, version="1")])
    assert once_exit_code(ok, [], "15m") == EXIT_OK
    bad = CycleResult(1.0, records=[rec("a", 900, version="1", passed=False)])
    assert once_exit_code(bad, [], "15m") == EXIT_FAILED
    down = CycleResult(1.0, infra=[InfraFailure(1.0, "server_unreachable", "refused")])
    assert once_exit_code(down, [], "15m") == EXIT_INTERNAL


def test_compare_versions_says_which_is_worse_and_how_sure(tmp_path):
    with MonitorStore(tmp_path / "m.sqlite3") as store:
        for i in range(12):
            store.add_call(rec(f"a{i}", 1000 + 10 * i, version="2.3.0"))
            store.add_call(rec(f"b{i}", 2600 + 10 * i, version="2.4.0"))
        text = compare_versions(store, default_gates(), "2.3.0", "2.4.0", window="1h")
    row = next(line for line in text.splitlines() if line.startswith("e2e_latency_p90"))
    assert "worse" in row and "significant" in row and "not significant" not in row
    assert "2.3.0 (n calls 12)" in text


def test_candidates_are_listed_with_the_import_command(tmp_path, capsys):
    from harness.monitor.model import Candidate

    with MonitorStore(tmp_path / "monitor.sqlite3") as store:
        store.add_candidate(Candidate("prod-7", time.time(), ("a tool call failed",), "/x/t.jsonl"))
    assert main(["incident", "list", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "prod-7" in out and "a tool call failed" in out and "--candidate ID" in out
    assert main(["incident", "import", "--candidate", "nope", "--state-dir", str(tmp_path)]) == 2
    assert "no incident candidate 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--livekit-url"),
        (["--livekit-url", "ws://127.0.0.1:1", "--every", "soon"], "--every"),
        (["--livekit-url", "ws://127.0.0.1:1", "--cron", "x"], "not a cron expression"),
        (
            ["--livekit-url", "ws://127.0.0.1:1", "--every", "5m", "--channel", "pager:x"],
            "webhook:",
        ),
        (["--livekit-url", "ws://127.0.0.1:1", "--every", "5m", "--windows", "1h,1h"], "twice"),
        (["--livekit-url", "ws://127.0.0.1:1", "--every", "5m", "--alert-window", "2h"], "2h"),
    ],
)
def test_usage_errors_name_the_option(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.delenv("LIVEKIT_URL", raising=False)
    scenario = "scenarios/smoke/greeting.yaml"
    rc = main(["monitor", "run", scenario, "--state-dir", str(tmp_path), *args])
    assert rc == 2
    assert message in capsys.readouterr().err
