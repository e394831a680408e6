"""The deploy gate end to end: a pytest session of 16 real calls fails the p90 latency gate
when the agent regressed, passes when it did not, and says the same with pytest-xdist.

Sized for a busy 2-core machine: two calls at a time. At four, the host's CPU pressure
stays above 50 % and a healthy clinic mishears and answers late (its recogniser is
starved): the harness then says "host overloaded", but the gate cannot pass."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
pytest_plugins = ["pytester"]

SUITE = Path(__file__).parent / "suites" / "quick_hours.yaml"
ROOT = Path(__file__).resolve().parents[2]
CALLS = 16
CONCURRENCY = 2


def verdicts(text: str) -> dict[str, str]:
    """gate name -> verdict, from a gates table."""
    pattern = r"^(\w+)\s.*\s(PASS|WARN|FAIL|INSUFFICIENT)\s*$"
    return {m.group(1): m.group(2) for m in re.finditer(pattern, text, re.M)}


def run_session(pytester: pytest.Pytester, monkeypatch, *, fault: bool, workers: int):
    (pytester.path / "scenarios").mkdir()
    shutil.copy(SUITE, pytester.path / "scenarios" / SUITE.name)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the agent command imports examples.clinic
    if fault:
        # a delayed reply lands at about 1 s + 3.5 s, a second clear of the 3.5 s fail
        # threshold: at 2.5 s it landed on the threshold, and a fast host gave WARN
        monkeypatch.setenv("CLINIC_EXTRA_LLM_LATENCY_MS", "3500")
        # 30 % of 48 replies: the p90 moves once 5 are delayed, which Binomial(48, 0.3)
        # misses about once in a thousand sessions (at 20 % of 60 it was one in twenty)
        monkeypatch.setenv("CLINIC_EXTRA_LLM_LATENCY_SHARE", "0.3")
    else:
        monkeypatch.delenv("CLINIC_EXTRA_LLM_LATENCY_MS", raising=False)
    args = [
        str(pytester.path / "scenarios"),
        f"--rootdir={pytester.path}",
        "-o",
        "harness_scenarios=scenarios/*.yaml",
        "-p",
        "no:cacheprovider",
        "--calls",
        str(CALLS),
        "--concurrency",
        str(CONCURRENCY),  # for the whole session: each of N workers takes its share
        "--agent-cmd",
        "{python} -m examples.clinic.deploy start",
        "--artifacts",
        str(pytester.path / "runs"),
    ]
    if workers:
        args += ["-n", str(workers)]
    result = pytester.runpytest_subprocess(*args, timeout=1500)
    out = result.stdout.str()
    row = re.search(r"^e2e_latency_p90\s.*?(PASS|WARN|FAIL|INSUFFICIENT)\s*$", out, re.M)
    assert row, out[-4000:]
    print(row.group(0))
    # one agent per process, each ready on its own registration (they share the run dir)
    (run_dir,) = [p for p in (pytester.path / "runs").iterdir() if p.is_dir()]
    names = [f"agent.gw{i}.log" for i in range(workers)] if workers else ["agent.log"]
    for name in names:
        assert (run_dir / name).read_text().count("registered worker") == 1, name
    return result, row.group(1), out, run_dir


# Each gate session runs serially in `make test`, and again under pytest-xdist (-n 2) in
# `make test-gates-xdist`: 12 more minutes is more than the CI budget has room for.
WORKERS = [
    pytest.param(0, id="serial"),
    pytest.param(2, id="xdist-2", marks=pytest.mark.xdist_gate),
]


@pytest.mark.parametrize("workers", WORKERS)
def test_latency_regression_fails_the_p90_gate(pytester, monkeypatch, workers):
    result, verdict, out, _ = run_session(pytester, monkeypatch, fault=True, workers=workers)
    assert verdict == "FAIL", out[-4000:]
    assert f"{CALLS} passed" in out  # every call passed its own expectations ...
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # ... yet the session fails: a gate


@pytest.mark.parametrize("workers", WORKERS)
def test_healthy_agent_passes_the_p90_gate(pytester, monkeypatch, capsys, workers):
    result, verdict, out, run_dir = run_session(pytester, monkeypatch, fault=False, workers=workers)
    assert verdict == "PASS", out[-4000:]
    assert result.ret == pytest.ExitCode.OK, out[-4000:]
    # the saved instances give the same verdicts outside pytest: the production path
    from harness.cli import main

    capsys.readouterr()
    assert main(["evaluate", str(run_dir)]) == 0
    session_table = out.split("harness gates")[-1]
    assert verdicts(capsys.readouterr().out) == verdicts(session_table)
