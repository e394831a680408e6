"""`kill -9` of `harness monitor run` at 20 random moments, some of them mid-call, each
followed by a restart: the store holds every call that had completed, none twice, and no
scheduled slot ran twice. Not in `make test` (about 10 minutes): `make test-monitor-crash`."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.call.agent_process import AgentProcess
from harness.livekit.server import LocalServer
from harness.monitor.store import MonitorStore
from harness.session.engine import otel_env
from tests.support.promstack import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).parent / "suites" / "monitor_hours.yaml"
KILLS = 20


def completed_calls(run_dir: Path) -> set[str]:
    """Calls whose artifacts were fully written (timings.json is written last) with a
    verdict: the calls that completed, whatever happened to the monitor afterwards."""
    import json

    out = set()
    for t in run_dir.glob("*/timings.json"):
        d = json.loads(t.read_text())
        if d["verdict"] in ("pass", "fail"):
            out.add(d["conversation_id"])
    return out


def test_kill_9_loses_no_completed_call_and_runs_no_slot_twice(tmp_path):
    rng = random.Random(20261202)
    collector_port = free_port()
    server = LocalServer(log_path=tmp_path / "livekit-server.log")
    info = server.start()
    endpoint = f"http://127.0.0.1:{collector_port}"
    agent_env = {**info.env(), "PYTHONPATH": str(ROOT)}
    agent_env.update(otel_env(endpoint, f"{endpoint}/v1/traces", {**os.environ, **agent_env}))
    agent = AgentProcess(
        f"{sys.executable} -m examples.clinic.deploy start",
        env={**agent_env, "CLINIC_DEPLOY_DIR": str(tmp_path / "clinic")},
        log_path=tmp_path / "clinic.log",
    )
    agent.start()
    state = tmp_path / "state"
    cmd = [
        sys.executable, "-m", "harness", "monitor", "run", str(SCENARIO), "--every", "10s",
        "--livekit-url", info.url, "--state-dir", str(state),
        "--listen", f"127.0.0.1:{collector_port}", "--metrics", "", "--tick", "1s",
    ]  # fmt: skip
    env = {**os.environ, **info.env(), "PYTHONPATH": str(ROOT)}
    log = tmp_path / "monitor.log"
    moments = []
    try:
        for k in range(KILLS):
            start = log.stat().st_size if log.exists() else 0
            with log.open("ab") as out:
                proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out)
                # half before or during the first call, half after one has completed
                # (start-up takes about 5 s, a call 20-30 s)
                delay = rng.uniform(3.0, 25.0) if k % 2 else rng.uniform(36.0, 50.0)
                time.sleep(delay)
                run = log.read_bytes()[start:]
                mid_call = b"calling " in run and b"#1: " not in run.rsplit(b"calling ", 1)[-1]
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                moments.append((round(delay, 1), mid_call))
            print(f"kill {k + 1}/{KILLS} after {delay:.1f}s{' (mid-call)' if mid_call else ''}")
        # a last clean run recovers what the last kill left on disk
        start = log.stat().st_size
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while b"monitor: " not in log.read_bytes()[start:] and time.monotonic() < deadline:
            time.sleep(0.5)
        subprocess.run(["pkill", "-TERM", "-f", str(state)], check=False)
        time.sleep(5)
    finally:
        subprocess.run(["pkill", "-KILL", "-f", str(state)], check=False)
        agent.stop()
        server.stop()
    completed = completed_calls(state / "runs" / "monitor")
    db = state / "monitor.sqlite3"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute(
            "SELECT conversation_id, cycle FROM calls WHERE source = 'synthetic'"
        ).fetchall()
        production = conn.execute(
            "SELECT COUNT(*) FROM calls WHERE source = 'production'"
        ).fetchone()[0]
        orphans = conn.execute(
            "SELECT COUNT(*) FROM calls WHERE conversation_id NOT IN "
            "(SELECT conversation_id FROM scores)"
        ).fetchone()[0]
    stored = [cid for cid, _ in rows]
    with MonitorStore(db) as store:
        cycles = store.cycles()
    print(f"{len(completed)} calls completed, {len(stored)} stored; {len(cycles)} cycles")
    print(f"kill moments (s, mid-call): {moments}")
    assert production == 0, "a synthetic call cut short was scored as production"
    assert len(stored) == len(set(stored)), "a call stored twice"
    assert completed <= set(stored), f"completed but lost: {completed - set(stored)}"
    assert orphans == 0, "a call without its scores (a half row)"
    slots = [cyc for _, cyc in rows]
    assert len(slots) == len(set(slots)), "a slot ran twice"
    assert sum(mid for _, mid in moments) >= 3, moments
    assert len(completed) >= 5
