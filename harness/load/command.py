"""``harness load``: one session (server, agent, trace receiver) sized for the ramp's top
step, the ramp, and the results where the report and CI read them (``load.json`` in the
run directory, the run's HTML report with its load section)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.call.rundir import RunDir
from harness.core.errors import ScenarioError
from harness.load.config import LoadConfig
from harness.load.runner import LoadResult, run_load
from harness.load.table import cost_line, render_table
from harness.session.config import SessionConfig

__all__ = ["LoadOutcome", "hold_verdict", "load"]


@dataclass(frozen=True)
class LoadOutcome:
    result: LoadResult
    table: str
    json_path: Path
    report: str
    """The report's line for the terminal (where it was written, or why not)."""


def load(
    config: SessionConfig,
    paths: Sequence[str],
    load_config: LoadConfig,
    *,
    gates_file: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> LoadOutcome:
    """Run the scenarios under ``paths`` as a load test: each step of the ramp keeps that
    many calls going for ``load_config.step_s``; writes ``load.json`` and the report in the
    run directory."""
    from harness.gates import evaluate_gates
    from harness.gates.scoring import gates_config
    from harness.report import report_at_end
    from harness.scenario.model import load_scenarios, resolve_agent_name
    from harness.session.engine import CallSession

    scenarios = load_scenarios(paths)
    if not scenarios:
        raise ScenarioError("no scenario files found", file=" ".join(paths))
    for s in scenarios:
        resolve_agent_name(s, config.agent_name)
    gates = gates_config(gates_file)
    cfg = replace(config, concurrency=max(config.concurrency, load_config.max_concurrency))
    ramp = ",".join(map(str, load_config.ramp))
    progress(
        f"load test of {len(scenarios)} scenarios: ramp {ramp}, {load_config.step_s:g}s a step, "
        f"knee at a failed gate or p90 over {load_config.knee_factor:g}x step 1's; run {cfg.run_id}"
    )
    with CallSession(cfg, on_progress=progress) as session:
        result = run_load(session, scenarios, load_config, gates=gates, progress=progress)
        store = session.scores.store
    result.run_dir = cfg.run_dir
    json_path = RunDir(cfg.run_dir).write_load(result.to_dict())  # type: ignore[arg-type]
    table = render_table(result.steps, result.knee, load_config.knee_factor, result.knee_line)
    table += "\n" + cost_line(result.cost)
    report = report_at_end(
        cfg.run_dir, store=store, verdicts=evaluate_gates(gates, store), scenarios=scenarios
    )
    return LoadOutcome(result, table, json_path, report)


def hold_verdict(result: LoadResult, hold: int | None) -> tuple[int, str | None]:
    """The exit code for ``--hold N`` (the deployment must hold N concurrent calls): 0 when
    no step at or below N broke, 1 when one did because of the agent, 2 when the rig was the
    bottleneck there (the test could not tell); with a line saying which."""
    if hold is None:
        return 0, None
    knee = result.knee
    if knee is None or knee.concurrency > hold:
        top = result.steps[-1].concurrency if result.steps else 0
        if top < hold:
            return 2, f"--hold {hold}: the ramp stopped at {top} concurrent calls"
        return 0, f"--hold {hold}: held"
    if knee.blame == "harness":
        return 2, (
            f"--hold {hold}: the rig was the bottleneck at {knee.concurrency} concurrent "
            "calls; the agent's capacity there is unknown"
        )
    return 1, f"--hold {hold}: the deployment broke at {knee.concurrency} concurrent calls"
