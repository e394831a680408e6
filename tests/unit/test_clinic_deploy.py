"""The clinic deployment command, run for real against a stand-in agent (no LiveKit)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[2]

# The stand-in agent: says what it was given, registers, and on SIGTERM reports whether
# both services still answer (they must outlive it), then exits.
STAND_IN = textwrap.dedent(
    """
    import json, os, signal, sys, urllib.request

    def up(url):
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    env = {k: os.environ.get(k) for k in
           ("CLINIC_BACKEND_URL", "CLINIC_WORKFLOW_URL", "CLINIC_DB", "OTEL_SERVICE_NAME")}
    print("stand-in env " + json.dumps(env), flush=True)
    print("registered worker", flush=True)
    if sys.argv[1] == "die":
        sys.exit(3)
    sig = signal.sigwait({signal.SIGTERM, signal.SIGINT})
    alive = up(env["CLINIC_BACKEND_URL"]) and up(env["CLINIC_WORKFLOW_URL"])
    print(f"stand-in got {signal.Signals(sig).name}; services alive: {alive}", flush=True)
    """
)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


class Deploy:
    """``python -m examples.clinic.deploy start`` in its own process group, as the harness
    runs an agent command; stdout read line by line, stderr (its log) to a file."""

    def __init__(self, tmp_path: Path, mode: str = "serve", **env: str) -> None:
        script = tmp_path / "stand_in_agent.py"
        script.write_text(STAND_IN)
        self.dir = tmp_path / "deploy"
        self.log = tmp_path / "deploy.err"
        full = {
            **os.environ,
            "CLINIC_AGENT_CMD": f"{{python}} {script} {mode}",
            "CLINIC_DEPLOY_DIR": str(self.dir),
            "CLINIC_STOP_TIMEOUT_S": "20",
            "OTEL_SERVICE_NAME": "passed-through",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",  # nothing there; never waited on
            **env,
        }
        for k in (
            "CLINIC_DB",
            "CLINIC_BACKEND_URL",
            "CLINIC_WORKFLOW_URL",
            "CLINIC_SUPERVISOR_PID",
        ):
            full.pop(k, None)
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "examples.clinic.deploy", "start"],
                cwd=ROOT,
                env=full,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def read_until(self, pattern: str, timeout: float = 30.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if m := re.search(pattern, line, re.M):
                return m
        pytest.fail(
            f"no line matching {pattern!r} within {timeout}s\nstdout:\n{self.stdout()}"
            f"\nlog:\n{self.stderr()}"
        )

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def stdout(self, wait_s: float = 0.0) -> str:
        self._reader.join(wait_s)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return "".join(self.lines)

    def ready(self) -> dict[str, str]:
        env = json.loads(self.read_until(r"^stand-in env (.*)$").group(1))
        self.read_until(r"^registered worker$")
        return env

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"deploy still running after {timeout}s; log:\n{self.stderr()}")
        self.stdout(wait_s=5)
        return code

    def service_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"\(pid (\d+), log ", self.stderr())]

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._reader.join(5)


@pytest.fixture
def deploy(tmp_path):
    made: list[Deploy] = []

    def start(mode: str = "serve", **env: str) -> Deploy:
        d = Deploy(tmp_path, mode, **env)
        made.append(d)
        return d

    yield start
    for d in made:
        d.close()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_start_runs_both_services_then_the_agent_and_a_group_sigterm_stops_all(deploy):
    d = deploy()
    env = d.ready()
    backend, workflow = env["CLINIC_BACKEND_URL"], env["CLINIC_WORKFLOW_URL"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", backend)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", workflow) and workflow != backend
    assert env["CLINIC_DB"] == str(d.dir.resolve() / "clinic.db")
    assert env["OTEL_SERVICE_NAME"] == "passed-through"
    assert healthy(backend) and healthy(workflow)
    pids = d.service_pids()
    assert len(pids) == 2

    os.killpg(d.proc.pid, signal.SIGTERM)  # as the harness stops its agent command
    assert d.wait(timeout=20) == 0
    out, log = d.stdout(), d.stderr()
    assert "stand-in got SIGTERM; services alive: True" in out  # the agent stopped first
    assert "which got the signal too" in log  # and was not signalled a second time
    assert "deployment stopped" in log
    assert not healthy(backend) and not healthy(workflow)
    assert all(gone(p) for p in pids)
    assert (d.dir / "clinic-backend.log").read_text().count("listening on") == 1


def test_a_signal_to_the_supervisor_alone_is_passed_to_the_agent(deploy):
    d = deploy()
    env = d.ready()
    # from a process other than its parent: only the supervisor gets it
    send = f"import os, signal; os.kill({d.proc.pid}, signal.SIGINT)"
    subprocess.run([sys.executable, "-c", send], check=True)
    assert d.wait(timeout=15) == 0
    out, log = d.stdout(), d.stderr()
    assert "stand-in got SIGTERM; services alive: True" in out
    assert "stopping the agent" in log and "which got the signal too" not in log
    assert not healthy(env["CLINIC_BACKEND_URL"])


def test_when_the_agent_dies_everything_stops_and_the_exit_is_nonzero(deploy):
    d = deploy("die")
    env = d.ready()
    assert d.wait(timeout=20) == 3
    log = d.stderr()
    assert re.search(r"!!! the agent clinic-agent \(pid \d+\) exited unexpectedly with code 3", log)
    assert "deployment stopped" in log
    assert not healthy(env["CLINIC_BACKEND_URL"]) and not healthy(env["CLINIC_WORKFLOW_URL"])
    assert all(gone(p) for p in d.service_pids())


def test_a_service_that_cannot_start_is_named_with_its_log(deploy):
    d = deploy(CLINIC_TOOL_FAILURE_RATE="lots")
    assert d.wait(timeout=30) == 1
    log = d.stderr()
    backend_log = d.dir.resolve() / "clinic-backend.log"
    assert f"clinic-backend exited with code 1 before it was ready; log {backend_log}" in log
    assert "CLINIC_TOOL_FAILURE_RATE must be a number between 0 and 1, got 'lots'" in log
    assert not any("registered worker" in line for line in d.lines)  # no agent without it


def test_a_crashed_service_comes_back_on_the_same_url(deploy):
    d = deploy(CLINIC_WORKFLOW_CRASH="1")
    env = d.ready()
    workflow = env["CLINIC_WORKFLOW_URL"]

    async def post_job() -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.post(workflow + "/jobs", json={"conversation_id": "c-1"}) as resp,
        ):
            return resp.status

    assert asyncio.run(post_job()) == 202  # then the worker dies in the middle of the job
    deadline = time.monotonic() + 30
    while "is back" not in d.stderr():
        assert d.proc.poll() is None, d.stderr()
        assert time.monotonic() < deadline, d.stderr()
        time.sleep(0.05)
    log = d.stderr()
    assert re.search(r"!!! clinic-workflow \(pid \d+\) exited unexpectedly with code 1", log)
    assert "CLINIC_WORKFLOW_CRASH: crashing in the middle of job 1 on purpose" in log
    assert f"restarting clinic-workflow on {workflow} (restart 1)" in log
    assert healthy(workflow)
    os.killpg(d.proc.pid, signal.SIGTERM)
    assert d.wait(timeout=20) == 0
