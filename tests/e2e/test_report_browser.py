"""The HTML report of real calls, checked in Debian's headless Chromium: the smoke suite's
booking call placed with ``harness run`` (all three layers) and the replay of that call
imported as an incident, each report loaded
from a file URL with the network refused. The waterfall has one bar per span, choosing turn
3 moves the recording into turn 3 and marks it as playing, and the page logs no error.
Screenshots go to .harness/test-artifacts/ (docs/report.png is one of them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.report.names import anchor
from harness.trace.otlp import load_instance
from tests.support.browser import open_report, screenshot

pytestmark = pytest.mark.e2e
BOOKING = Path(__file__).resolve().parents[2] / "scenarios" / "smoke" / "booking.yaml"
CLINIC_CMD = "{python} -m examples.clinic.deploy start"


def check_call_page(report: Path, call_dir: Path, shot: str):
    """Assert on the call's section as a browser renders it; returns the page's texts."""
    inst = load_instance(call_dir)
    caller = json.loads((call_dir / "caller.json").read_text())["caller"]
    turn3 = next(t for t in caller["turns"] if t["index"] == 3)
    into = turn3["caller_start"] - caller["started_at"]
    section = anchor(call_dir.name)
    with open_report(report, section) as seen:
        page = seen.page
        bars = page.locator(f"#{section} .wf-bar[data-span-id]")
        ids = bars.evaluate_all("els => els.map(e => e.dataset.spanId)")
        assert sorted(ids) == sorted(s.span_id for s in inst.spans), "one bar per span"
        assert len(ids) == len(inst.spans) > 20
        layers = set(
            bars.evaluate_all(
                "els => els.map(e => [...e.classList].find(c => c.startsWith('layer-')))"
            )
        )
        assert layers == {"layer-conversational", "layer-background", "layer-workflow"}

        turn = page.locator(f"#{section} li.turn[data-turn='3']")
        t0, t1 = float(turn.get_attribute("data-t0")), float(turn.get_attribute("data-t1"))
        assert abs(t0 - into) < 0.01, (t0, into)  # the page's turn 3 is the caller's turn 3
        turn.locator("button.seek").click()
        page.wait_for_function(
            f"() => {{ const a = document.querySelector('#{section} audio.rec');"
            f" return a.readyState >= 1 && a.currentTime >= {t0} - 0.01"
            f" && a.currentTime < {t1}; }}",
            timeout=10_000,
        )
        current = page.evaluate(f"document.querySelector('#{section} audio.rec').currentTime")
        assert t0 - 0.01 <= current < t1, (current, t0, t1)
        assert turn.get_attribute("aria-current") == "true"  # highlighted as it plays
        assert (
            page.locator(f"#{section} .wf-turn[data-turn='3']").get_attribute("aria-current")
            == "true"
        )
        duration = page.evaluate(f"document.querySelector('#{section} audio.rec').duration")
        assert abs(duration - (caller["ended_at"] - caller["started_at"])) < 0.5

        out = screenshot(seen, shot)
        page.keyboard.press("Tab")  # keyboard: focus moves on to the next control
        assert page.evaluate("document.activeElement !== document.body")
        text = page.locator(f"#{section}").inner_text()
        page.wait_for_timeout(300)  # a late error still counts
        assert seen.console_errors == [], seen.console_errors
        assert seen.errors == [], seen.errors
        assert seen.requests == [], f"the report asked the network for {seen.requests}"
    print(f"{report}: {len(ids)} bars, turn 3 at {current:.2f} s; screenshot {out}")
    return text


def test_report_of_a_real_call_and_of_its_incident_replay(tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(
        [
            "run",
            str(BOOKING),
            "--agent-cmd",
            CLINIC_CMD,
            "--artifacts",
            str(runs),
        ]
    )
    out, err = capsys.readouterr()
    printed = out + err
    assert code == 0, printed
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    report = run_dir / "report.html"
    assert f"report: {report}" in printed
    html = report.read_text()
    assert "http://" not in html and "https://" not in html
    check_call_page(report, run_dir / "booking", "report-call")

    fixtures, audio = tmp_path / "scenarios" / "incidents", tmp_path / "audio_fixtures"
    common = ["--out", str(fixtures)]
    imported = [
        *("incident", "from-run", str(run_dir / "booking"), "--id", "INC-REPORT"),
        *common,
        *("--audio-dir", str(audio)),
    ]
    assert main(imported) == 0
    capsys.readouterr()
    replays = tmp_path / "replays"
    code = main(
        [
            *("incident", "replay", "INC-REPORT", *common),
            *("--agent-cmd", CLINIC_CMD, "--artifacts", str(replays)),
        ]
    )
    out, err = capsys.readouterr()
    printed = out + err
    assert code == 0, printed
    (replay_dir,) = [p for p in replays.iterdir() if p.is_dir()]
    text = check_call_page(replay_dir / "report.html", replay_dir / "INC-REPORT", "report-incident")
    # the original call beside the replay: what the agent said then, from the fixture
    assert "Incident INC-REPORT" in text
    original = json.loads((run_dir / "booking" / "caller.json").read_text())["caller"]
    said_then = next(t["agent_said"] for t in original["turns"] if t["index"] == 1)
    assert said_then.split(".")[0] in text
