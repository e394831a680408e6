"""``harness load``: how many concurrent calls an agent deployment holds before its tail
breaks, and whether the rig itself distorts the answer.

Real calls at each concurrency level of a ramp (:mod:`harness.load.runner`); per step the
gate table, the p50/p90/p99 caller-measured response latency and what the harness itself
cost (:mod:`harness.load.steps`: the caller side's CPU per call-minute, the calls' event
loop lag, the callers' frame underruns and the host's CPU pressure), with a step marked
*harness-limited* when the rig, not the agent, was the bottleneck; and the knee, the first
step where a gate fails or p90 grows past a factor of step 1's (:mod:`harness.load.knee`).
The results go to the terminal, to ``load.json`` and to the run's HTML report.

Typical use::

    from harness.load import LoadConfig, run_load, render_table

    with CallSession(config) as session:
        result = run_load(session, scenarios, LoadConfig(ramp=(1, 2, 4, 8)), gates=gates)
    print(render_table(result.steps, result.knee, 2.0, result.knee_line))
"""

from harness.load.command import LoadOutcome, hold_verdict, load
from harness.load.config import (
    DEFAULT_KNEE_FACTOR,
    DEFAULT_RAMP,
    DEFAULT_STEP_S,
    LoadConfig,
    RigLimits,
    parse_duration,
    parse_ramp,
    resolve_load_config,
)
from harness.load.knee import Knee, find_knee, knee_line, step_breaks
from harness.load.runner import LOAD_FORMAT, LoadResult, run_load, step_label
from harness.load.steps import (
    GateResult,
    HarnessCost,
    StepResult,
    rig_limits_hit,
    timing_notes,
)
from harness.load.table import calls_per_core, cost_line, render_table

__all__ = [
    "DEFAULT_KNEE_FACTOR",
    "DEFAULT_RAMP",
    "DEFAULT_STEP_S",
    "LOAD_FORMAT",
    "GateResult",
    "HarnessCost",
    "Knee",
    "LoadConfig",
    "LoadOutcome",
    "LoadResult",
    "RigLimits",
    "StepResult",
    "calls_per_core",
    "cost_line",
    "find_knee",
    "hold_verdict",
    "knee_line",
    "load",
    "parse_duration",
    "parse_ramp",
    "render_table",
    "resolve_load_config",
    "rig_limits_hit",
    "run_load",
    "step_breaks",
    "step_label",
    "timing_notes",
]
