"""The sensitivity results: the terminal table, ``sensitivity.json`` in the run directory
(read by the HTML report) and a JUnit XML file.

``sensitivity.json`` (format ``harness.sensitivity/1``)::

    {
      "format": "harness.sensitivity/1",
      "created_at": "2026-12-07T06:00:00Z",
      "catalogue": {"name": "clinic", "path": "examples/clinic/faults.yaml"},
      "suite": ["booking", "greeting", "silent_caller"],   # scenario ids, in run order
      "calls": 2,                   # rounds of the suite per run (the most a fault run places)
      "scale": 1.0,                 # --scale: the magnitude knobs' multiplier
      "baseline": "the clean run",  # or "the baseline file"
      "wall_time_s": 1834.2,
      "score": {"caught": 23, "total": 24, "ratio": 0.958},
      "passed": false,              # every fault caught and no false alarm
      "clean": <run>,
      "faults": [<run>, ...]        # in the catalogue's order
    }

    <run> = {
      "name": "llm_ttft",           # the fault's id, or "clean"
      "layer": "llm",               # null for the clean run
      "description": "...",
      "injected": "extra_llm_latency_ms=1300 extra_llm_latency_share=0.5",
      "agent": {...} | null,        # the dispatch metadata's "faults" object, as sent
      "conditions": ... | null,     # the audio conditions, as given
      "caller": {...} | null,       # the caller behaviour, as given
      "expect": ["llm_ttft_p99"],   # what the catalogue says should catch it
      "status": "caught",           # caught | missed | error (faults); clean | false_alarm
      "caught_by": <alarm> | null,  # the first alarm that stood (a fault run stops there)
      "alarms": [<alarm>, ...],     # every alarm raised at that point (the clean run: all)
      "flakes": [<alarm>, ...],     # broken expectations the scenario placed again did not
                                    # break: not alarms
      "calls_to_catch": 4 | null,   # calls placed until caught, the confirming one included
      "errors": 0,                  # calls the harness could not place
      "duration_s": 212.5,
      "calls": [{"scenario", "repeat", "conversation_id", "artifacts", "verdict",
                 "failures", "error", "duration_s"}, ...],
      "gates": [{"gate", "status", "value", "unit", "n", "threshold", "detail"}, ...]
    }

    <alarm> = {"kind": "gate" | "expectation", "name": "<gate> | <scenario id>",
               "detail": "<the verdict's or the broken expectation's line>",
               "call": 4,               # the call that raised it (1-based)
               "confirmed_at": 5 | null}  # an expectation: the scenario's second call

Each run's calls keep their artifacts under ``<run dir>/<run name>/<scenario>[.<n>]/``.
"""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.call.rundir import NAMES, RunDir
from harness.core.files import atomic_write
from harness.core.text import text_table
from harness.gates import Verdict
from harness.sensitivity.runner import RunResult, SensitivityResult

__all__ = ["FORMAT", "SENSITIVITY_FILE", "render_table", "to_dict", "write_json", "write_junit"]

FORMAT = "harness.sensitivity/1"
SENSITIVITY_FILE = NAMES.sensitivity
_HEADER = ("fault", "layer", "injected", "result", "caught by", "calls")
_WIDTH = {"injected": 44, "caught by": 64}


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _row(run: RunResult, scale: float) -> tuple[str, ...]:
    fault = run.fault
    if fault is None:
        n = len(run.calls) - run.errors
        if run.alarms:
            result = "ALARM"
            by = "; ".join(a.describe() for a in run.alarms)
        else:
            result = "OK" if n else "ERROR"
            by = f"no alarm in {n} calls" if n else "no call could be placed"
            if run.flakes:
                by += f" ({len(run.flakes)} flaky, not reproduced)"
        return ("(clean)", "-", "-", result, _clip(by, _WIDTH["caught by"]), str(len(run.calls)))
    status = run.status
    if status == "caught":
        a = run.caught_by
        assert a is not None
        by, calls = a.describe(), str(len(run.calls))
    elif status == "missed":
        by, calls = f"nothing in {len(run.calls)} calls", str(len(run.calls))
    else:
        by, calls = "no call could be placed", str(len(run.calls))
    return (
        fault.id,
        fault.layer,
        _clip(fault.injected(scale), _WIDTH["injected"]),
        status.upper(),
        _clip(by, _WIDTH["caught by"]),
        calls,
    )


def render_table(result: SensitivityResult) -> str:
    """One row per run (the clean run first), then the score."""
    rows = [_row(result.clean, result.scale)] + [_row(r, result.scale) for r in result.faults]
    lines = text_table(_HEADER, rows)
    total = len(result.faults)
    clean_calls = len(result.clean.calls) - result.clean.errors
    all_calls = len(result.clean.calls) + sum(len(r.calls) for r in result.faults)
    ratio = f" ({result.caught / total:.0%})" if total else ""
    lines.append(
        f"score: {result.caught}/{total} faults caught{ratio}; clean run: "
        f"{len(result.clean.alarms)} false alarms in {clean_calls} calls; baselines: "
        f"{result.baseline_source}; {all_calls} calls in {result.wall_time_s / 60:.1f} min"
    )
    missed = [r.name for r in result.faults if r.status == "missed"]
    if missed:
        lines.append(f"missed: {', '.join(missed)}")
    errors = [r.name for r in result.faults if r.status == "error"]
    if errors:
        lines.append(f"errors (no call could be placed): {', '.join(errors)}")
    return "\n".join(lines)


def _verdict(v: Verdict) -> dict[str, Any]:
    return {
        "gate": v.name,
        "status": v.status,
        "value": v.value,
        "unit": v.unit,
        "n": v.n,
        "threshold": v.threshold,
        "detail": v.detail,
    }


def _run_dict(run: RunResult, scale: float) -> dict[str, Any]:
    f = run.fault
    caught = run.caught_by if f is not None else None
    return {
        "name": run.name,
        "layer": f.layer if f else None,
        "description": f.description if f else "the suite without a fault",
        "injected": f.injected(scale) if f else "",
        "agent": (f.metadata(scale) or {}).get("faults") if f else None,
        "conditions": f.conditions if f else None,
        "caller": f.caller.model_dump(exclude_none=True) if f and f.caller else None,
        "expect": list(f.expect) if f else [],
        "status": run.status,
        "caught_by": caught.to_dict() if caught else None,
        "alarms": [a.to_dict() for a in run.alarms],
        "flakes": [a.to_dict() for a in run.flakes],
        "calls_to_catch": len(run.calls) if caught else None,
        "errors": run.errors,
        "duration_s": round(run.duration_s, 1),
        "calls": [c.to_dict() for c in run.calls],
        "gates": [_verdict(v) for v in run.verdicts],
    }


def to_dict(result: SensitivityResult) -> dict[str, Any]:
    total = len(result.faults)
    source = result.catalogue.source
    return {
        "format": FORMAT,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "catalogue": {"name": result.catalogue.name, "path": str(source) if source else None},
        "suite": list(result.suite),
        "calls": result.calls,
        "scale": result.scale,
        "baseline": result.baseline_source,
        "wall_time_s": round(result.wall_time_s, 1),
        "score": {
            "caught": result.caught,
            "total": total,
            "ratio": round(result.caught / total, 4) if total else None,
        },
        "passed": result.passed,
        "clean": _run_dict(result.clean, result.scale),
        "faults": [_run_dict(r, result.scale) for r in result.faults],
    }


def write_json(result: SensitivityResult, run_dir: str | os.PathLike[str]) -> Path:
    """``sensitivity.json`` in the run directory (the schema above), written atomically."""
    text = json.dumps(to_dict(result), indent=1, default=str, allow_nan=False) + "\n"
    return atomic_write(RunDir(Path(run_dir)).sensitivity, text)


def write_junit(result: SensitivityResult, path: str | os.PathLike[str]) -> Path:
    """A JUnit XML file: one test case per fault (failed when missed, an error when no call
    could be placed) and one for the clean run (failed on a false alarm), each with its
    properties (layer, status, caught_by, calls_to_catch, injected)."""
    runs = [result.clean, *result.faults]
    failures = sum(1 for r in runs if r.status in ("missed", "false_alarm"))
    errors = sum(1 for r in runs if r.status == "error")
    suite = ET.Element(
        "testsuite",
        name=f"harness.sensitivity.{result.catalogue.name}",
        tests=str(len(runs)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{result.wall_time_s:.1f}",
    )
    props = ET.SubElement(suite, "properties")
    for k, v in (
        ("score", f"{result.caught}/{len(result.faults)}"),
        ("suite", ",".join(result.suite)),
        ("calls", result.calls),
        ("scale", result.scale),
        ("baseline", result.baseline_source),
    ):
        ET.SubElement(props, "property", name=k, value=str(v))
    for run in runs:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="sensitivity",
            name=run.name,
            time=f"{run.duration_s:.1f}",
        )
        d = _run_dict(run, result.scale)
        cp = ET.SubElement(case, "properties")
        caught = d["caught_by"]
        for k, v in (
            ("layer", d["layer"] or "-"),
            ("status", d["status"]),
            ("injected", d["injected"]),
            ("caught_by", f"{caught['kind']} {caught['name']}" if caught else ""),
            ("calls_to_catch", d["calls_to_catch"] if caught else ""),
            ("calls", len(run.calls)),
        ):
            ET.SubElement(cp, "property", name=k, value=str(v))
        if run.status == "missed":
            ET.SubElement(
                case, "failure", message=f"missed in {len(run.calls)} calls"
            ).text = "no gate failed and no expectation broke"
        elif run.status == "false_alarm":
            ET.SubElement(
                case, "failure", message=f"{len(run.alarms)} false alarms"
            ).text = "\n".join(a.describe() for a in run.alarms)
        elif run.status == "error":
            ET.SubElement(case, "error", message="no call could be placed").text = "\n".join(
                c.error or "" for c in run.calls
            )
    ET.indent(suite)
    text = '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode")
    return atomic_write(Path(path), text + "\n")
