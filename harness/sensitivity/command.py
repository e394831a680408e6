"""``harness sensitivity``: one session (server, agent, trace receiver), the clean run, the
faults' runs, and the results written where the report and CI read them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.call.rundir import RunDir
from harness.core.errors import ScenarioError
from harness.report import report_at_end
from harness.sensitivity.catalogue import load_catalogue
from harness.sensitivity.report import render_table, write_json, write_junit
from harness.sensitivity.runner import RunResult, SensitivityResult, run_sensitivity
from harness.session.config import SessionConfig

__all__ = ["Outcome", "sensitivity"]


@dataclass(frozen=True)
class Outcome:
    result: SensitivityResult
    table: str
    json_path: Path
    junit_path: Path | None
    baseline_path: Path | None
    report: str = ""
    """Where the run's report went (its sensitivity section and the calls), in one line."""


def sensitivity(
    config: SessionConfig,
    paths: Sequence[str],
    catalogue_path: str,
    *,
    gates_file: str | None = None,
    baseline_file: str | None = None,
    scale: float = 1.0,
    faults: Sequence[str] = (),
    junitxml: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Outcome:
    """Run the suite under ``paths`` clean and once per fault of the catalogue (``faults``:
    only those), ``config.calls`` rounds at most each, ``config.concurrency`` calls at a
    time; write ``sensitivity.json`` (and the clean run as a baseline file, when it is the
    baseline) in the run directory, and ``junitxml`` when given."""
    from harness.gates.baseline import load_baseline, save_baseline
    from harness.gates.scoring import gates_config
    from harness.scenario.model import load_scenarios, resolve_agent_name
    from harness.session.engine import CallSession

    if not scale > 0:
        raise ScenarioError(f"--scale {scale!r}: a positive multiplier (0.5: half magnitude)")
    scenarios = load_scenarios(paths)
    if not scenarios:
        raise ScenarioError("no scenario files found", file=" ".join(paths))
    for s in scenarios:
        resolve_agent_name(s, config.agent_name)
    catalogue = load_catalogue(catalogue_path)
    if faults:
        catalogue = catalogue.select(list(faults))
    gates = gates_config(gates_file)
    baseline = load_baseline(baseline_file) if baseline_file else None
    saved: list[Path] = []

    def keep_clean(run: RunResult) -> None:
        if baseline is None and run.calls:
            meta = {"source": "harness sensitivity clean run", "calls": len(run.calls)}
            path = RunDir(config.run_dir).clean_baseline  # the clean run, as a baseline file
            saved.append(save_baseline(run.store, path, meta=meta))

    n = len(catalogue.faults)
    progress(
        f"sensitivity of {len(scenarios)} scenarios to {n} faults of {catalogue.name}: "
        f"up to {config.calls} rounds each, run {config.run_id}"
    )
    with CallSession(config, on_progress=progress) as session:
        result = run_sensitivity(
            session,
            scenarios,
            catalogue,
            calls=config.calls,
            gates=gates,
            baseline=baseline,
            scale=scale,
            concurrency=config.concurrency,
            progress=progress,
            on_clean=keep_clean,
        )
    result.run_dir = config.run_dir
    json_path = write_json(result, config.run_dir)
    junit = write_junit(result, junitxml) if junitxml else None
    # the gate table of all calls together would mix the faults: each run's verdicts are in
    # the sensitivity section
    report = report_at_end(config.run_dir, gates=gates, verdicts=[])
    return Outcome(
        result, render_table(result), json_path, junit, saved[0] if saved else None, report
    )
