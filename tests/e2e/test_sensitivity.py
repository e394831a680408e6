"""harness sensitivity end to end, as CI runs it: the real clinic, a short suite, and three
faults from three layers (the recogniser, the agent's speech, the after-call workflow),
each caught by what should catch it; the clean run raises no alarm; the results reach the
terminal, sensitivity.json and JUnit XML. Sized for make test: under five minutes on a busy
2-core machine (about 3 with the runs two at a time)."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
SUITE = HERE / "suites" / "sensitivity_hours.yaml"
CATALOGUE = HERE / "faults_small.yaml"
CLINIC_CMD = "{python} -m examples.clinic.deploy start"


def test_sensitivity_catches_three_faults_of_three_layers(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(HERE.parents[1]))  # the agent imports examples.clinic
    junit = tmp_path / "sensitivity.xml"
    t0 = time.monotonic()
    code = main(
        [
            "sensitivity",
            str(SUITE),
            "--catalogue",
            str(CATALOGUE),
            "--calls",
            "3",
            "--concurrency",
            "2",
            "--agent-cmd",
            CLINIC_CMD,
            "--artifacts",
            str(tmp_path / "runs"),
            "--junitxml",
            str(junit),
        ]
    )
    took = time.monotonic() - t0
    out = capsys.readouterr().out
    print(out)
    print(f"took {took:.0f} s")
    assert code == 0, out
    # (a clean call that broke an expectation once and not when placed again is a flake)
    assert re.search(r"^\(clean\)\s+-\s+-\s+OK\s+no alarm in \d+ calls", out, re.M), out
    assert re.search(r"score: 3/3 faults caught \(100%\); clean run: 0 false alarms", out)

    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    doc = json.loads((run_dir / "sensitivity.json").read_text())
    caught = {f["name"]: f["caught_by"] for f in doc["faults"]}
    assert caught["stt_confusable"]["kind"] == "expectation"
    # broken on the first call, and again when that scenario was placed once more
    assert (caught["stt_confusable"]["call"], caught["stt_confusable"]["confirmed_at"]) == (1, 2)
    assert (caught["tts_silence_mid_reply"]["kind"], caught["tts_silence_mid_reply"]["name"]) == (
        "gate",
        "speech_gap_p99",
    )
    assert (caught["workflow_runs_twice"]["name"], caught["workflow_runs_twice"]["call"]) == (
        "duplicate_workflow_steps",
        1,
    )
    assert doc["score"] == {"caught": 3, "total": 3, "ratio": 1.0} and doc["passed"] is True
    # every call's artifacts, under its run's directory
    for run in [doc["clean"], *doc["faults"]]:
        for call in run["calls"]:
            assert (Path(call["artifacts"]) / "recording.wav").is_file(), call
    assert (run_dir / "clean-baseline.json").is_file()

    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "0", "0")
