"""Placing a load test's calls: for each step of the ramp, N callers each place calls back
to back (a closed loop, as N phone lines would) until the step's time is up; a call started
before then runs to its end. The step is then scored on its own: its gates, its latency
percentiles, what the rig cost, and whether the rig was the bottleneck."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.call.selfload import read_host_cpu
from harness.core.errors import InfrastructureError
from harness.gates import GatesConfig, ScoreStore, evaluate_gates
from harness.load.config import LoadConfig
from harness.load.knee import Knee, find_knee, knee_line
from harness.load.steps import (
    GateResult,
    HarnessCost,
    StepResult,
    rig_limits_hit,
    summarise_calls,
    timing_notes,
)
from harness.scenario.model import Scenario

__all__ = ["LOAD_FORMAT", "LoadResult", "run_load", "step_label"]

LOAD_FORMAT = "harness.load/1"
CALL_GRACE_S = 180.0
"""Beyond a scenario's own call limit, how long a call may take to come back (rendering,
collecting its trace, scoring) before the step gives up on it."""


class _Session(Protocol):
    """What the runner needs of :class:`harness.session.engine.CallSession`."""

    def submit(
        self, scenario: Scenario, repeat: int = 1, *, label: str | None = None
    ) -> concurrent.futures.Future[Any]: ...


def step_label(concurrency: int, width: int, scenario_id: str) -> str:
    """The call directory's name stem for a step's call: ``c04-booking``."""
    return f"c{concurrency:0{width}d}-{scenario_id}"


@dataclass
class LoadResult:
    config: LoadConfig
    scenarios: list[str]
    steps: list[StepResult] = field(default_factory=list)
    knee: Knee | None = None
    wall_time_s: float = 0.0
    run_dir: Path | None = None

    @property
    def cost(self) -> HarnessCost:
        """The caller side's cost over every step."""
        cpu = sum(s.cost.caller_cpu_s for s in self.steps)
        minutes = sum(s.cost.call_minutes for s in self.steps)
        return HarnessCost(caller_cpu_s=cpu, call_minutes=minutes)

    @property
    def knee_line(self) -> str:
        return knee_line(self.knee, self.steps, self.config.knee_factor)

    def to_dict(self) -> dict[str, Any]:
        cost = self.cost
        return {
            "format": LOAD_FORMAT,
            "config": self.config.to_dict(),
            "scenarios": list(self.scenarios),
            "steps": [s.to_dict() for s in self.steps],
            "knee": self.knee.to_dict() if self.knee is not None else None,
            "knee_line": self.knee_line,
            "cost": cost.to_dict(),
            "wall_time_s": round(self.wall_time_s, 3),
        }


@dataclass
class _Step:
    """A step in progress."""

    result: StepResult
    store: ScoreStore
    loads: list[Any] = field(default_factory=list)
    underruns: list[float] = field(default_factory=list)
    pressures: list[float | None] = field(default_factory=list)

    def add(self, outcome: Any) -> None:
        r = self.result
        r.calls += 1
        r.call_dirs.append(str(outcome.artifacts))
        verdict = outcome.verdict
        if verdict == "pass":
            r.passed += 1
        elif verdict == "fail":
            r.failed += 1
        else:
            r.errors += 1
            if not r.first_error and outcome.error is not None:
                r.first_error = str(outcome.error).split("\n")[0]
        if outcome.trace is not None:  # the call was scored: as the session counts it
            self.store.add(
                outcome.scores,
                traced=outcome.trace.state != "none",
                data_errors=getattr(outcome, "data_errors", ()),
            )
        res = outcome.result
        self.underruns.append(sum(t.caller_underrun_ms for t in res.turns) if res else 0.0)
        self.loads.append(getattr(outcome, "harness_load", None))
        self.pressures.append(getattr(outcome, "host_cpu_pressure", None))


def run_load(
    session: _Session,
    scenarios: Sequence[Scenario],
    config: LoadConfig,
    *,
    gates: GatesConfig,
    progress: Callable[[str], None] = lambda _: None,
    clock: Callable[[], float] = time.monotonic,
    host_cpu: Callable[[], Any] = read_host_cpu,
) -> LoadResult:
    """Every step of ``config.ramp`` in order (stopping after the knee when
    ``config.stop_at_knee``); scenarios are placed round-robin. The session must run at
    least ``config.max_concurrency`` calls at once."""
    if not scenarios:
        raise ValueError("no scenarios: a load test needs at least one")
    t0 = clock()
    result = LoadResult(config, [s.id for s in scenarios])
    width = len(str(config.max_concurrency))
    placed = 0
    for i, n in enumerate(config.ramp):
        progress(
            f"step {i + 1}/{len(config.ramp)}: {n} concurrent call{'s' if n != 1 else ''} "
            f"for {config.step_s:g}s"
        )
        step, placed = _run_step(
            session, scenarios, n, config, width, placed, gates, progress, clock, host_cpu
        )
        result.steps.append(step)
        progress(_step_line(step))
        result.knee = find_knee(result.steps, config.knee_factor)
        if result.knee is not None and config.stop_at_knee:
            break
    result.wall_time_s = clock() - t0
    progress(result.knee_line)
    return result


def _run_step(
    session: _Session,
    scenarios: Sequence[Scenario],
    n: int,
    config: LoadConfig,
    width: int,
    placed: int,
    gates: GatesConfig,
    progress: Callable[[str], None],
    clock: Callable[[], float],
    host_cpu: Callable[[], Any],
) -> tuple[StepResult, int]:
    step = _Step(StepResult(n), ScoreStore())
    repeats: dict[str, int] = {}
    start = clock()
    deadline = start + config.step_s
    stagger = min(config.stagger_s, config.step_s / (2 * n))
    host0 = host_cpu()
    running: dict[concurrent.futures.Future[Any], tuple[Scenario, float]] = {}
    lines = list(range(n))  # phone lines not yet started, in order

    def place(line_start: float) -> None:
        nonlocal placed
        scenario = scenarios[placed % len(scenarios)]
        placed += 1
        label = step_label(n, width, scenario.id)
        repeat = repeats[label] = repeats.get(label, 0) + 1
        future = session.submit(scenario, repeat, label=label)
        running[future] = (scenario, line_start)

    while True:
        now = clock()
        while lines and now >= start + lines[0] * stagger and now < deadline:
            place(now)
            lines.pop(0)
        if not running and (not lines or now >= deadline):
            break
        wait_for = 1.0
        if lines and now < deadline:
            wait_for = max(0.0, min(wait_for, start + lines[0] * stagger - now))
        done, _ = concurrent.futures.wait(
            list(running), timeout=wait_for, return_when=concurrent.futures.FIRST_COMPLETED
        )
        for future in done:
            scenario, _ = running.pop(future)
            step.add(future.result())
            if clock() < deadline:  # the line is free: the next call, back to back
                place(clock())
        for future, (scenario, began) in list(running.items()):
            limit = scenario.timeouts.call_s + CALL_GRACE_S
            if clock() - began > limit:
                future.cancel()
                raise InfrastructureError(
                    f"a call of {scenario.id} at {n} concurrent calls did not come back "
                    f"within {limit:.0f}s: the harness is stuck"
                )
    r = step.result
    r.duration_s = clock() - start
    host1 = host_cpu()
    rig_share = None
    cost = summarise_calls(step.loads, step.underruns, step.pressures)
    if host0 is not None and host1 is not None and host1.busy > host0.busy:
        rig_share = min(1.0, cost.caller_cpu_s / (host1.busy - host0.busy))
    r.cost = summarise_calls(step.loads, step.underruns, step.pressures, rig_share=rig_share)
    r.gates = [GateResult.of(v) for v in evaluate_gates(gates, step.store)]
    r.set_latency(step.store)
    r.harness_limited = rig_limits_hit(r.cost, config.limits)
    r.timing = timing_notes(r.cost, config.limits)
    r.store = step.store
    return r, placed


def _step_line(s: StepResult) -> str:
    from harness.gates.verdict import format_value

    failed = [g.name for g in s.failed_gates]
    per_min = s.cost.cpu_per_call_minute
    parts = [
        f"{s.concurrency} concurrent: {s.calls} calls ({s.passed} passed, {s.failed} failed, "
        f"{s.errors} errors)",
        f"p50/p90/p99 {format_value(s.p50_ms, 'ms')}/{format_value(s.p90_ms, 'ms')}/"
        f"{format_value(s.p99_ms, 'ms')}",
        f"gates failed: {', '.join(failed)}" if failed else "gates held",
        f"caller CPU {per_min:.2f} s per call-minute" if per_min is not None else "",
        "HARNESS-LIMITED: " + "; ".join(s.harness_limited) if s.harness_limited else "",
        "timing: " + "; ".join(s.timing) if s.timing else "",
    ]
    return "; ".join(p for p in parts if p)
