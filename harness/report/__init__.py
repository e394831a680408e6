"""Reports people look at: one self-contained HTML file per run, and a Perfetto export.

Typical use::

    from harness.report import write_report, write_perfetto

    write_report(".harness/runs/20261207-062309-d0f5")        # -> .../report.html
    write_perfetto(".harness/runs/20261207-062309-d0f5/booking")  # -> .../perfetto.json

The HTML file needs no network: its styles and script are inline, and each call's
recording is linked relative to it (keep the run directory together). It is written at the
end of every pytest session, ``harness run``, ``harness evaluate`` and monitor cycle
(:func:`report_at_end`), and on demand with ``harness report RUN_DIR|TRACE_FILE``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.call.rundir import RunDir
from harness.core.files import atomic_write
from harness.report.names import anchor

if TYPE_CHECKING:
    from harness.report.model import CallView, RunView

__all__ = [
    "build_run",
    "default_out",
    "report_at_end",
    "report_link",
    "write_perfetto",
    "write_report",
]


def default_out(source: str | os.PathLike[str], fmt: str = "html") -> Path:
    """Where a report of ``source`` goes: ``report.html`` (or ``perfetto.json``) in a run or
    call directory; next to a trace file, named after it (``export.report.html``)."""
    p = Path(source)
    files = RunDir(p if p.is_dir() else p.parent)
    target = files.report if fmt == "html" else files.perfetto
    return target if p.is_dir() else p.with_suffix("." + target.name)


def report_link(call_dir: str | os.PathLike[str]) -> str:
    """The report's path with the call's anchor, for a JUnit property:
    ``.harness/runs/<run>/report.html#call-booking``."""
    d = Path(call_dir)
    return f"{RunDir(d.parent).report}#{anchor(d.name)}"


def _sweep_rows(calls: Sequence[CallView]) -> list[Any]:
    from harness.session.summary import percentile
    from harness.session.sweep import SweepRow

    groups: dict[str, list[CallView]] = {}
    for call in sorted(calls, key=lambda c: c.name):
        if call.condition is not None:
            groups.setdefault(call.condition, []).append(call)
    rows = []
    for condition, group in groups.items():

        def per_call(name: str, group: list[CallView] = group) -> list[float]:
            return [s.value for c in group for s in c.scores if s.name == name and s.turn is None]

        wer, done = per_call("wer"), per_call("task_completed")
        lat = [x for c in group for x in c.response_latencies]
        rows.append(
            SweepRow(
                condition,
                len(group),
                sum(c.verdict == "pass" for c in group),
                sum(wer) / len(wer) if wer else None,
                sum(done) / len(done) if done else None,
                percentile(lat, 50),
            )
        )
    return rows


def _sensitivity_of(src: Path) -> tuple[dict[str, Any] | None, list[str]]:
    if not src.is_dir():
        return None, []
    from harness.call.rundir import RunDirError

    try:
        return RunDir.of(src).read_sensitivity(), []
    except RunDirError as exc:
        return None, [f"the sensitivity results could not be read: {exc}"]


def _alarm_calls(src: Path, doc: Any) -> list[str]:
    """The call directories of a sensitivity run that raised its alarms: what caught each
    fault, and the clean run's false alarms (``<run>/<fault>/<scenario>``, wherever the run
    directory has been moved since)."""
    out = []
    for run in [doc.get("clean"), *(doc.get("faults") or [])]:
        if not isinstance(run, dict):
            continue
        calls = [c for c in run.get("calls") or [] if isinstance(c, dict)]
        alarms = [run.get("caught_by")] if run.get("layer") else run.get("alarms") or []
        for alarm in alarms:
            k = alarm.get("call") if isinstance(alarm, dict) else None
            if isinstance(k, int) and 0 < k <= len(calls) and calls[k - 1].get("artifacts"):
                where = Path(str(calls[k - 1]["artifacts"]))
                out.append(str(src / where.parent.name / where.name))
    return out


def build_run(
    source: str | os.PathLike[str],
    *,
    calls: Iterable[str | os.PathLike[str]] | None = None,
    store: Any = None,
    verdicts: Sequence[Any] | None = None,
    gates: Any = None,
    baseline: Any = None,
    scenarios: Iterable[Any] = (),
    sweep: Sequence[Any] | None = None,
    title: str | None = None,
    load: Any = None,
) -> RunView:
    """What the report of ``source`` shows. ``store`` and ``verdicts`` are the run's own
    when the caller has them (a pytest session, ``harness run``); otherwise the scores are
    read from the run directory and the gates (``gates``, else the project's) applied to
    them. ``calls``: only these call directories (a monitor cycle's). ``load``: a load
    test's file (read from the run directory when it holds one)."""
    from harness.report.incident import lookup_incident
    from harness.report.model import RunView, load_calls

    src = Path(source)
    sensitivity, why = _sensitivity_of(src)
    if sensitivity is not None:
        # the faults' runs: each is judged alone (its verdicts are in the sensitivity
        # section), and the calls shown are those that raised an alarm
        verdicts = [] if verdicts is None else verdicts
        calls = _alarm_calls(src, sensitivity) if calls is None else calls
    views, notes = load_calls(src, only=[Path(c) for c in calls] if calls is not None else None)
    notes.extend(why)
    by_id = {s.id: s for s in scenarios}
    for call in views:
        call.incident = lookup_incident(call.scenario, by_id)
    if store is None:
        from harness.gates import ScoreStore

        store = ScoreStore()
        for call in views:
            store.add(
                call.scores,
                traced=call.instance.trace_state != "none",
                data_errors=call.instance.data_errors,
            )
    if verdicts is None:
        from harness.gates import evaluate_gates
        from harness.gates.scoring import gates_config

        gates = gates if gates is not None else gates_config(None, Path.cwd())
        verdicts = evaluate_gates(gates, store, baseline)
    if gates is None:
        gates = [v.gate for v in verdicts]
    if load is None and src.is_dir():
        from harness.call.rundir import RunDirError

        try:
            load = RunDir.of(src).read_load()
        except RunDirError as exc:
            notes.append(f"the load test's results could not be read: {exc}")
    return RunView(
        title=title or (src.name if src.is_dir() else src.stem),
        source=src,
        calls=views,
        verdicts=list(verdicts),
        store=store,
        gates=gates,
        sweep=list(sweep) if sweep is not None else _sweep_rows(views),
        notes=notes,
        load=load,
        sensitivity=sensitivity,
    )


def write_report(
    source: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None, **kw: Any
) -> Path:
    """Write the HTML report of ``source`` (a run directory, a call directory or a trace
    export) to ``out`` (default :func:`default_out`); returns its path. Keywords as
    :func:`build_run`."""
    from harness.report.page import render_page

    target = Path(out) if out is not None else default_out(source)
    run = build_run(source, **kw)
    atomic_write(target, render_page(run, target.parent))
    return target


def write_perfetto(
    source: str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None
) -> Path:
    """Write the Chrome trace-event JSON of ``source``'s calls (Perfetto, chrome://tracing)."""
    import json

    from harness.report.model import load_calls
    from harness.report.perfetto import trace_events

    target = Path(out) if out is not None else default_out(source, "perfetto")
    calls, _ = load_calls(Path(source))
    doc = trace_events(sorted(calls, key=lambda c: c.name))
    atomic_write(target, json.dumps(doc, separators=(",", ":"), ensure_ascii=False))
    return target


def report_at_end(run_dir: str | os.PathLike[str], **kw: Any) -> str:
    """Write the run's report and say where, in one line for the terminal. Never raises: a
    report that cannot be written is a line saying why, not a failed run."""
    try:
        path = write_report(run_dir, **kw)
    except Exception as exc:  # the calls' verdicts stand whatever happens to their report
        return f"report not written: {type(exc).__name__}: {exc}"
    return f"report: {path}"
