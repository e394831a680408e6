"""`harness monitor run` end to end, against a clinic deployed on its own (as production runs
it), scraped by Debian's Prometheus with the exported rules, alerting through Debian's
Alertmanager and a local webhook receiver.

One session, in order: healthy calls; a bad deploy (3.5 s added to every LLM reply) makes
the latency gate pending, then firing, in Prometheus and in the monitor, which sends one
firing alert; the good deploy back makes it resolve, once; then the LiveKit server stops
during a cycle: an infrastructure alert, and no quality alert.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.call.agent_process import AgentProcess
from harness.livekit.server import LocalServer
from harness.monitor.store import MonitorStore
from harness.session.engine import otel_env
from tests.support.promstack import Receiver, Stack, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).parent / "suites" / "monitor_hours.yaml"
GATES = """\
gates:
  - name: e2e_latency_p90
    metric: e2e_latency
    span: agent_turn
    statistic: p90
    fail: 3000
    min_samples: 2
    for: 10s
    runbook_url: https://runbooks.example.com/voice/latency
"""
WINDOW = "1m"  # about two calls: one slow call in it is enough to fail the p90
LATENCY = "HarnessE2eLatencyP90"


def wait_until(what: str, predicate, timeout: float, log: Path | None = None, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    tail = log.read_text()[-4000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{tail}")


def test_monitor_alerts_on_a_bad_deploy_and_on_an_unreachable_server(tmp_path):
    t_start = time.monotonic()
    collector_port, metrics_port = free_port(), free_port()
    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES)
    rules = tmp_path / "rules.yml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "gates",
            "export",
            "--prometheus",
            "--gates",
            str(gates),
            "--window",
            WINDOW,
            "--source",
            "synthetic",
            "--monitor-rules",
            "--out",
            str(rules),
        ],
        check=True,
        cwd=ROOT,
    )
    hook = Receiver().start()
    stack = Stack(tmp_path, [f"127.0.0.1:{metrics_port}"], rules, hook.url).start()
    server = LocalServer(log_path=tmp_path / "livekit-server.log")
    info = server.start()
    endpoint = f"http://127.0.0.1:{collector_port}"
    agent_env = {**info.env(), "PYTHONPATH": str(ROOT)}
    agent_env.update(otel_env(endpoint, f"{endpoint}/v1/traces", {**os.environ, **agent_env}))

    def deploy(name: str, **faults: str) -> AgentProcess:
        agent = AgentProcess(
            f"{sys.executable} -m examples.clinic.deploy start",
            env={**agent_env, "CLINIC_DEPLOY_DIR": str(tmp_path / name), **faults},
            log_path=tmp_path / f"{name}.log",
        )
        agent.start()
        return agent

    agent = deploy("clinic-good")
    monitor_log = tmp_path / "monitor.log"
    env = {**os.environ, **info.env(), "PYTHONPATH": str(ROOT)}
    monitor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "monitor",
            "run",
            str(SCENARIO),
            "--every",
            "30s",
            "--livekit-url",
            info.url,
            "--gates",
            str(gates),
            "--windows",
            f"{WINDOW},15m",
            "--state-dir",
            str(tmp_path / "state"),
            "--listen",
            f"127.0.0.1:{collector_port}",
            "--metrics",
            f"127.0.0.1:{metrics_port}",
            "--tick",
            "2s",
            "--retries",
            "1",
            "--backoff",
            "1s",
            "--channel",
            f"webhook:{hook.url}/hook",
            "--channel",
            f"alertmanager:{stack.alertmanager_url}",
        ],
        cwd=ROOT,
        env=env,
        stdout=monitor_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    store_path = tmp_path / "state" / "monitor.sqlite3"

    def stored_calls() -> int:
        if not store_path.exists():
            return 0
        with MonitorStore(store_path) as store:
            return store.count_calls(source="synthetic")

    prom_states: list[str] = []

    def prom_latency_state() -> str | None:
        for a in stack.alerts():
            if a["labels"]["alertname"].startswith(LATENCY):
                if not prom_states or prom_states[-1] != a["state"]:
                    prom_states.append(a["state"])
                return a["state"]
        return None

    try:
        assert "HarnessE2eLatencyP90Failing" in stack.rules_loaded()
        wait_until("a healthy call stored", lambda: stored_calls() >= 1, 120, monitor_log)
        assert not [a for a in hook.alerts("/hook") if a["alertname"].startswith(LATENCY)]

        # the bad deploy
        agent.stop()
        agent = deploy("clinic-bad", CLINIC_EXTRA_LLM_LATENCY_MS="3500")
        wait_until(
            "Prometheus: latency alert firing",
            lambda: prom_latency_state() == "firing",
            150,
            monitor_log,
        )
        assert prom_states[:2] == ["pending", "firing"], prom_states
        wait_until(
            "the monitor's firing alert",
            lambda: [a for a in hook.alerts("/hook") if a["alertname"] == LATENCY],
            60,
            monitor_log,
        )

        # the good deploy back
        agent.stop()
        agent = deploy("clinic-good-again")
        wait_until(
            "the monitor's resolve",
            lambda: [a for a in hook.alerts("/hook") if a["status"] == "resolved"],
            150,
            monitor_log,
        )
        latency = [a for a in hook.alerts("/hook") if a["alertname"] == LATENCY]
        assert [a["status"] for a in latency] == ["firing", "resolved"], latency
        fired = latency[0]
        assert fired["gate"] == "e2e_latency_p90" and fired["window"] == WINDOW
        assert fired["n"] >= 2 and fired["ci"] and "s" in fired["value"]
        assert fired["runbook_url"] == "https://runbooks.example.com/voice/latency"
        assert fired["failed_calls"] is not None
        # Alertmanager received it from the monitor's v2 channel, and from Prometheus
        am = [a for a in hook.alerts("/alertmanager")]
        assert any(a["labels"]["alertname"].startswith(LATENCY) for a in am), am

        # the server stops during a cycle
        def cycle_running() -> bool:
            with MonitorStore(store_path) as store:
                cycles = store.cycles()
            return bool(cycles) and cycles[-1][1] == "running"

        wait_until("a cycle in progress", cycle_running, 60, monitor_log, every=0.2)
        time.sleep(3)  # the call is under way
        before = len(latency)
        stopped_at = time.time()
        server.stop()
        wait_until(
            "the infrastructure alert",
            lambda: [
                a
                for a in hook.alerts("/hook")
                if a["alertname"] == "HarnessMonitorCannotReachAgent"
            ],
            120,
            monitor_log,
        )
        time.sleep(4)  # one more evaluation: still no quality alert
        latency = [a for a in hook.alerts("/hook") if a["alertname"] == LATENCY]
        assert len(latency) == before, latency
        infra = [
            a for a in hook.alerts("/hook") if a["alertname"] == "HarnessMonitorCannotReachAgent"
        ]
        assert [a["status"] for a in infra] == ["firing"]
        assert "cannot reach the agent" in infra[0]["summary"]
        with MonitorStore(store_path) as store:
            failures = store.infra_failures()
            after = [r for r in store.calls(source="synthetic") if r.ended_at > stopped_at]
        # the call the server's stop cut short is infrastructure, never a failed call
        assert all(r.passed for r in after), [r.failures for r in after]
        assert failures and all(
            f.kind in ("server_unreachable", "agent_not_joined", "other") for f in failures
        )
        print(
            f"monitor e2e took {time.monotonic() - t_start:.0f}s; Prometheus states {prom_states}"
        )
    finally:
        monitor.terminate()
        try:
            monitor.wait(30)
        except subprocess.TimeoutExpired:
            monitor.kill()
        agent.stop()
        server.stop()
        stack.stop()
        hook.stop()
