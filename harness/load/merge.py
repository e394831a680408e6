"""A load test run on many machines at once, as one: each machine (a pod of
``deploy/kubernetes/load-job.yaml``) ramps its own share of the calls and writes its run
directory; their ``load.json`` files merge step by step. Step *i* of the merged test is step
*i* of every shard: its concurrency is theirs added up, its scores their sketches merged
(so its percentiles and gates are those of all its calls, within the sketch's accuracy),
and what the harness cost is added up per machine (a step is harness-limited when any
machine's rig was the bottleneck). The knee is found again over the merged steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import ScenarioError
from harness.gates import GatesConfig, ScoreStore, evaluate_gates
from harness.load.config import LoadConfig, RigLimits
from harness.load.knee import find_knee
from harness.load.runner import LoadResult
from harness.load.steps import GateResult, HarnessCost, StepResult

__all__ = ["merge_load_files", "merged_load_text"]


def _config(doc: Mapping[str, Any], where: Path) -> LoadConfig:
    c = doc.get("config")
    if not isinstance(c, Mapping):
        raise ScenarioError("load file without its config", file=where)
    limits = c.get("limits") if isinstance(c.get("limits"), Mapping) else {}
    try:
        return LoadConfig(
            ramp=tuple(int(x) for x in c.get("ramp") or ()),
            step_s=float(c.get("step_s") or 0),
            knee_factor=float(c.get("knee_factor") or 0),
            stop_at_knee=bool(c.get("stop_at_knee", True)),
            limits=RigLimits(**{k: float(v) for k, v in limits.items()}),
        )
    except (TypeError, ValueError) as e:
        raise ScenarioError(f"load file config: {e}", file=where) from None


def _merge_step(shards: Sequence[StepResult], gates: GatesConfig) -> StepResult:
    stores = [s.store for s in shards]
    out = StepResult(sum(s.concurrency for s in shards))
    for s in shards:
        out.calls += s.calls
        out.passed += s.passed
        out.failed += s.failed
        out.errors += s.errors
        out.first_error = out.first_error or s.first_error
        out.call_dirs += s.call_dirs
    out.duration_s = max(s.duration_s for s in shards)
    if all(st is not None for st in stores):
        store = ScoreStore.merged(st for st in stores if st is not None)
        out.store = store
        out.gates = [GateResult.of(v) for v in evaluate_gates(gates, store)]
        out.set_latency(store)
    costs = [s.cost for s in shards]

    def most(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return max(known) if known else None

    press = [c.host_pressure for c in costs if c.host_pressure is not None]
    shares = [c.rig_share for c in costs if c.rig_share is not None]
    out.cost = HarnessCost(
        caller_cpu_s=sum(c.caller_cpu_s for c in costs),
        call_minutes=sum(c.call_minutes for c in costs),
        loop_lag_p99_ms=most([c.loop_lag_p99_ms for c in costs]),
        loop_lag_max_ms=most([c.loop_lag_max_ms for c in costs]),
        loop_busy=most([c.loop_busy for c in costs]),
        underrun_ms=sum(c.underrun_ms for c in costs),
        underrun_calls=sum(c.underrun_calls for c in costs),
        host_pressure=sum(press) / len(press) if press else None,
        host_pressure_max=most([c.host_pressure_max for c in costs]),
        rig_share=sum(shares) / len(shares) if shares else None,
    )
    out.harness_limited = [
        f"shard {i + 1}: {why}" for i, s in enumerate(shards) for why in s.harness_limited
    ]
    out.timing = [f"shard {i + 1}: {why}" for i, s in enumerate(shards) for why in s.timing]
    return out


def merge_load_files(
    docs: Sequence[tuple[Path, Mapping[str, Any]]], gates: GatesConfig
) -> tuple[LoadResult, list[str]]:
    """The load files of several run directories (``(run dir, load file)``), merged step by
    step; with notes (steps some shard never ran, steps without their scores). The shards
    must have run the same ramp for the same step duration."""
    if not docs:
        raise ScenarioError("no load files to merge")
    configs = [_config(doc, where) for where, doc in docs]
    first = configs[0]
    for (where, _), c in zip(docs, configs, strict=True):
        if (c.ramp, c.step_s) != (first.ramp, first.step_s):
            raise ScenarioError(
                f"its ramp {','.join(map(str, c.ramp))} every {c.step_s:g}s differs from "
                f"{','.join(map(str, first.ramp))} every {first.step_s:g}s of {docs[0][0]}: "
                "the steps of shards that ramped differently do not line up",
                file=where,
            )
    shards = [[StepResult.from_dict(s) for s in doc.get("steps") or []] for _, doc in docs]
    notes: list[str] = []
    depth = min(len(s) for s in shards)
    longest = max(len(s) for s in shards)
    if depth < longest:
        notes.append(
            f"only the first {depth} steps ran on every shard (some stopped at their knee): "
            "later steps are left out"
        )
    steps = []
    for i in range(depth):
        at = [s[i] for s in shards]
        if any(s.store is None for s in at):
            notes.append(
                f"step {i + 1}: a shard's load file holds no scores (an older harness wrote "
                "it): its latency and gates are left blank"
            )
        steps.append(_merge_step(at, gates))
    scenarios = sorted({str(x) for _, doc in docs for x in doc.get("scenarios") or []})
    config = LoadConfig(
        ramp=tuple(s.concurrency for s in steps) or first.ramp,
        step_s=first.step_s,
        knee_factor=first.knee_factor,
        stop_at_knee=first.stop_at_knee,
        limits=first.limits,
    )
    result = LoadResult(config, scenarios, steps, find_knee(steps, first.knee_factor))
    return result, notes


def merged_load_text(paths: Sequence[str | Path], gates: GatesConfig) -> str | None:
    """For ``harness merge``: the merged load table of the runs that are load tests (with
    their knee and notes), or None when none is."""
    from harness.call.rundir import RunDir
    from harness.load.table import cost_line, render_table

    docs = []
    for p in paths:
        doc = RunDir(Path(p)).read_load()
        if doc is not None:
            docs.append((Path(p), doc))
    if not docs:
        return None
    notes = []
    if len(docs) < len(paths):
        notes.append(
            f"only {len(docs)} of the {len(paths)} runs are load tests: the load table merges those"
        )
    result, more = merge_load_files(docs, gates)
    notes += more
    table = render_table(result.steps, result.knee, result.config.knee_factor, result.knee_line)
    shards = f"{len(docs)} shard{'s' if len(docs) != 1 else ''}"
    lines = [f"load test, {shards} merged step by step:", table, cost_line(result.cost)]
    return "\n".join(lines + [f"note: {n}" for n in notes])
