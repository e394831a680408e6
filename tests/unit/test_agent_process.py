"""harness.call.agent_process: readiness is read from this process's own log lines."""

from __future__ import annotations

import sys
import time

import pytest

from harness.call.agent_process import READY_MARKER, AgentProcess
from harness.core.errors import InfrastructureError


def agent(tmp_path, script: str, timeout: float) -> AgentProcess:
    return AgentProcess(
        [sys.executable, "-c", script],
        env={},
        log_path=tmp_path / "agent.log",
        ready_timeout=timeout,
    )


def test_a_marker_left_by_an_earlier_process_is_not_readiness(tmp_path):
    # another worker's agent registered into the same log a moment ago
    (tmp_path / "agent.log").write_text(f'{{"message": "{READY_MARKER}"}}\n')
    proc = agent(tmp_path, "import time; time.sleep(30)", timeout=1.5)
    t0 = time.monotonic()
    with pytest.raises(InfrastructureError, match="did not register a worker within 2s"):
        proc.start()
    assert time.monotonic() - t0 >= 1.5
    assert proc.pid is None  # stopped, not left running


def test_the_process_own_marker_is_readiness(tmp_path):
    (tmp_path / "agent.log").write_text("an earlier run\n")
    script = f"import time; time.sleep(0.5); print({READY_MARKER!r}, flush=True); time.sleep(30)"
    proc = agent(tmp_path, script, timeout=20)
    t0 = time.monotonic()
    with proc:
        assert time.monotonic() - t0 >= 0.5
        assert proc.pid is not None
    assert (tmp_path / "agent.log").read_text().startswith("an earlier run\n")  # appended


def test_an_agent_that_exits_names_its_code_and_log(tmp_path):
    proc = agent(tmp_path, "import sys; print('bad config'); sys.exit(3)", timeout=20)
    with pytest.raises(InfrastructureError, match=r"exited with code 3 .*\n.*bad config"):
        proc.start()
