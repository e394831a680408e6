"""A stranger's agent: examples/minimal_agent imports nothing from this project, yet gets
the whole Instance, whether it has no tracing code, the tracing a team already has, or
runs on its own beside a server and an OpenTelemetry Collector the harness did not start.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from harness.call.agent_process import AgentProcess
from harness.gates import default_gates, evaluate_gates
from harness.livekit import LocalServer
from harness.scenario.model import load_scenario
from harness.session.engine import CallSession, SessionConfig
from harness.trace.otlp import load_instance
from tests.support.loopback import NOT_ISOLATED, Capture, host_addresses, is_loopback, listeners

pytestmark = pytest.mark.e2e
pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "minimal_agent"
PLAIN = f"{{python}} {EXAMPLE / 'agent.py'} start"
ZERO_CODE = f"{{python}} -m harness agent -- {PLAIN}"
TRACED = f"{{python}} {EXAMPLE / 'traced_agent.py'} start"
LIVEKIT_SPANS = {"job_entrypoint", "agent_turn", "user_turn", "llm_node", "tts_node"}
OTELCOL = ROOT / ".tools" / "bin" / "otelcol-harness"


def scenario(name: str):
    return load_scenario(EXAMPLE / "scenarios" / f"{name}.yaml")


def span_names(call_dir: Path) -> Counter[str]:
    return Counter(s.name for s in load_instance(call_dir).spans)


def test_zero_code_agent_gets_the_whole_instance_and_traffic_stays_on_loopback(tmp_path):
    others = [a for a in host_addresses() if not is_loopback(a)]
    assert not others, NOT_ISOLATED.format(", ".join(others))
    seen: list = []
    cfg = SessionConfig(agent_cmd=ZERO_CODE, concurrency=2, artifacts=tmp_path / "runs")
    with Capture(tmp_path / "call.pcap") as cap:
        with CallSession(cfg, on_turn=lambda *_: seen.append(listeners())) as session:
            futures = [session.submit(scenario("order")), session.submit(scenario("hours"))]
            outcomes = [f.result(240) for f in futures]
            store = session.scores.store
    for o in outcomes:
        assert o.verdict == "pass", o.describe()
        assert o.trace is not None and o.trace.state == "complete", o.trace
        names = span_names(o.artifacts)
        assert LIVEKIT_SPANS <= set(names), names
        assert {s.service_name for s in load_instance(o.artifacts).spans} == {"agent"}
    verdicts = {v.name: v for v in evaluate_gates(default_gates(), store)}
    assert verdicts["e2e_latency_p90"].n >= 5 and not verdicts["e2e_latency_p90"].no_trace
    assert verdicts["interruption_rate"].n >= 5
    # loopback: every socket that listens, mid-call, and every packet of the session
    assert seen, "no turn started"
    for snapshot in seen:
        outside = [s for s in snapshot if not s.loopback]
        assert not outside, outside
    print(f"listeners mid-call: {sorted({(s.proto, s.address) for s in seen[-1]})}")
    assert len(cap.packets) > 1000  # the calls' media was captured
    strays = [p for p in cap.packets if not (is_loopback(p.src) and is_loopback(p.dst))]
    assert not strays, strays[:5]
    print(f"{len(cap.packets)} packets, all between loopback addresses")


def test_the_tracing_a_team_already_has_gives_the_livekit_spans(tmp_path):
    cfg = SessionConfig(agent_cmd=TRACED, artifacts=tmp_path / "runs")
    with CallSession(cfg) as session:
        outcome = session.run(scenario("hours"))
        store = session.scores.store
    assert outcome.verdict == "pass", outcome.describe()
    names = span_names(outcome.artifacts)
    assert LIVEKIT_SPANS - {"job_entrypoint"} <= set(names), names
    verdicts = {v.name: v for v in evaluate_gates(default_gates(), store)}
    assert verdicts["e2e_latency_p90"].n >= 2
    # a plain SDK provider is never shut down in livekit-agents' job process: its root
    # span is lost, and the harness says so instead of calling the Instance complete
    assert outcome.trace is not None
    if outcome.trace.state != "complete":
        assert outcome.trace.state == "partial", outcome.trace
        assert "job_entrypoint" in outcome.trace.reason
        assert "multiprocessing.util.Finalize" in outcome.trace.reason
    print(f"trace: {outcome.trace.state}: {outcome.trace.reason}")


def test_an_agent_without_tracing_says_no_trace_with_the_fix(tmp_path):
    artifacts = tmp_path / "runs"
    hours = str(EXAMPLE / "scenarios" / "hours.yaml")
    args = ["run", hours, "--agent-cmd", PLAIN, "--artifacts", str(artifacts)]
    run = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    out = run.stdout
    assert run.returncode == 0, run.stdout + run.stderr
    assert "trace none in 1 of 1 calls: no trace from the agent" in out, out
    assert f"`harness agent -- python {EXAMPLE / 'agent.py'} start`" in out, out
    # every gate that reads spans says NO TRACE (latency, tools, interruptions, the layers'
    # actions and workflow, ...), and the summary counts them
    no_trace = [ln.split()[0] for ln in out.splitlines() if ln.rstrip().endswith("NO TRACE")]
    counted = re.search(r"\((\d+) for want of a trace\)", out)
    assert counted is not None and int(counted.group(1)) == len(no_trace), out
    assert {"e2e_latency_p90", "interruption_rate", "tool_success"} <= set(no_trace), out
    (call_dir,) = artifacts.glob("*/pizza_hours")
    shown = subprocess.run(
        [sys.executable, "-m", "harness", "show", str(call_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert shown.startswith(
        f"conversation {load_instance(call_dir).conversation_id}  (INCOMPLETE: no trace"
    )
    assert "(complete)" not in shown
    timings = json.loads((call_dir / "timings.json").read_text())
    assert timings["trace"]["state"] == "none"
    print(out.splitlines()[3])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_collector_and_agent_started_apart_from_the_harness(
    pytester: pytest.Pytester, monkeypatch, tmp_path
):
    assert OTELCOL.is_file(), f"{OTELCOL} is missing: run `make tools`"
    receiver, otlp_in = _free_port(), _free_port()
    config = tmp_path / "otelcol.yaml"
    config.write_text(
        f"""receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:{otlp_in}"}}
processors:
  batch: {{timeout: 200ms}}
exporters:
  otlp_http: {{endpoint: "http://127.0.0.1:{receiver}"}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [otlp_http]}}
"""
    )
    with (
        LocalServer(log_path=tmp_path / "livekit-server.log") as server,
        open(tmp_path / "otelcol.log", "wb") as col_log,
    ):
        collector = subprocess.Popen(
            [str(OTELCOL), "--config", str(config)], stdout=col_log, stderr=subprocess.STDOUT
        )
        # the deployment's agent: exports to its collector, with the SDK's default delays
        env = {
            **server.env(),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_in}",
            "OTEL_SERVICE_NAME": "pizza-agent",
        }
        agent = AgentProcess(ZERO_CODE, env=env, log_path=tmp_path / "agent.log")
        try:
            agent.start()
            (pytester.path / "scenarios").mkdir()
            shutil.copy(EXAMPLE / "scenarios" / "order.yaml", pytester.path / "scenarios")
            pytester.makeini("[pytest]\nharness_agent_cmd = never-started-agent\n")
            monkeypatch.setenv("LIVEKIT_API_KEY", server.api_key)
            monkeypatch.setenv("LIVEKIT_API_SECRET", server.api_secret)
            result = pytester.runpytest_subprocess(
                "scenarios",
                "-o",
                "harness_scenarios=scenarios/*.yaml",
                "--livekit-url",
                server.url,
                "--collector",
                f"127.0.0.1:{receiver}",
                "--artifacts",
                str(pytester.path / "runs"),
                timeout=240,
            )
        finally:
            agent.stop()
            collector.terminate()
            collector.wait(10)
    out = result.stdout.str()
    assert result.ret == 0, out[-3000:]
    result.stdout.fnmatch_lines(
        [
            "*not starting the ini's harness_agent_cmd: a remote LiveKit server was given*",
            f"*the agent must export OTLP/HTTP there (OTEL_EXPORTER_OTLP_ENDPOINT="
            f"http://127.0.0.1:{receiver})*",
            "*pizza_order*ok*PASS*",
        ]
    )
    assert server.api_secret not in out + result.stderr.str()
    (call_dir,) = (pytester.path / "runs").glob("*/pizza_order")
    instance = load_instance(call_dir)
    assert instance.trace_state == "complete", instance.incomplete_reason
    assert LIVEKIT_SPANS <= {s.name for s in instance.spans}
    assert instance.services == ("pizza-agent",)
    print(f"{len(instance.spans)} spans through the collector, {instance.trace_state}")


def test_monitor_scores_a_strangers_agent_synthetic_and_production(tmp_path, monkeypatch):
    """`harness monitor run` against the stranger's agent deployed on its own, zero-code
    traced, exporting to the monitor: one scheduled synthetic call, and one call that is
    not the harness's (a room outside its `harness-` prefix) scored as production, with the
    version and environment from the agent's resource attributes."""
    import os
    import time

    from harness.livekit import rooms
    from harness.monitor.store import MonitorStore
    from harness.session.engine import CallSession

    listen = _free_port()
    state = tmp_path / "state"
    with LocalServer(log_path=tmp_path / "livekit-server.log") as server:
        env = {
            **server.env(),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{listen}",
            "OTEL_SERVICE_NAME": "pizza-agent",
            "OTEL_RESOURCE_ATTRIBUTES": "service.version=1.4.2,deployment.environment.name=prod",
        }
        agent = AgentProcess(ZERO_CODE, env=env, log_path=tmp_path / "agent.log")
        monitor_log = tmp_path / "monitor.log"
        monitor = None
        try:
            agent.start()
            monitor = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "harness",
                    "monitor",
                    "run",
                    str(EXAMPLE / "scenarios" / "hours.yaml"),
                    "--every",
                    "1m",
                    "--livekit-url",
                    server.url,
                    "--state-dir",
                    str(state),
                    "--listen",
                    f"127.0.0.1:{listen}",
                    "--tick",
                    "1s",
                ],
                cwd=ROOT,
                env={**os.environ, **server.env()},
                stdout=monitor_log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            # the receiver is open before the first slot: production is scored from the start
            deadline = time.monotonic() + 60
            while "trace receiver on" not in monitor_log.read_text():
                assert time.monotonic() < deadline and monitor.poll() is None, (
                    monitor_log.read_text()[-3000:]
                )
                time.sleep(0.5)
            # a customer's call: the same agent, a room the harness did not name
            monkeypatch.setattr(rooms, "HARNESS_ROOM_PREFIX", "shop-")
            monkeypatch.setenv("LIVEKIT_API_KEY", server.api_key)
            monkeypatch.setenv("LIVEKIT_API_SECRET", server.api_secret)
            cfg = SessionConfig(
                livekit_url=server.url, collect_traces=False, artifacts=tmp_path / "prod"
            )
            with CallSession(cfg) as session:
                customer = session.run(scenario("order"))
            assert customer.verdict == "pass", customer.describe()

            def stored() -> dict[str, list]:
                if not (state / "monitor.sqlite3").exists():
                    return {}
                with MonitorStore(state / "monitor.sqlite3") as store:
                    return {s: store.calls(source=s) for s in ("synthetic", "production")}

            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                calls = stored()
                if calls.get("synthetic") and calls.get("production"):
                    break
                assert monitor.poll() is None, monitor_log.read_text()[-3000:]
                time.sleep(1)
            else:
                raise AssertionError(f"not stored: {calls}\n{monitor_log.read_text()[-3000:]}")
        finally:
            if monitor is not None:
                monitor.terminate()
                monitor.wait(30)
            agent.stop()
    synthetic = calls["synthetic"][0]  # a second slot may have begun meanwhile
    (production,) = calls["production"]
    assert synthetic.passed and synthetic.scenario == "pizza_hours" and synthetic.traced
    assert production.passed and production.traced, production.failures
    assert (production.agent_version, production.environment) == ("1.4.2", "prod")
    for record in (synthetic, production):
        names = {s.name for s in record.scores}
        assert {"e2e_latency", "interrupted"} <= names, names
    assert monitor.returncode == 0, monitor_log.read_text()[-3000:]
    status = subprocess.run(
        [sys.executable, "-m", "harness", "monitor", "status", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    ).stdout
    print(status.strip())
    n = {r.name for r in production.scores}
    print(f"production call {production.conversation_id}: {len(production.scores)} scores {n}")
