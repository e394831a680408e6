"""The run directory: its layout, the schema of each file in it, reading and writing them.

No other module spells a file name of a run directory; they ask :class:`RunDir` and
:class:`CallDir`. Every file is written atomically (:func:`harness.core.files.atomic_write`),
except ``scores.jsonl``, which concurrent calls append to one whole line set at a time.

::

    .harness/runs/<run-id>/                 RunDir
        scores.jsonl                        every Score of every call (ScoreLine per line)
        report.html, perfetto.json          the report (harness.report)
        sensitivity.json, clean-baseline.json   a sensitivity run's results
        load.json                           a load test's steps and knee (LoadFile)
        agent.log, livekit-server.log       the processes the session started
        agent.gw0.log, ...                  ... one per pytest-xdist worker
        <scenario>[.<repeat>][@<condition>]/    CallDir, one per call
            recording.wav    16-bit stereo: caller left as sent, agent right as received
            caller.json      CallerFile: the saved Instance's header and what the caller measured
            trace.jsonl      the call's spans, OTLP JSON lines (the Collector's file exporter)
            transcript.json  TranscriptFile: who said what, per turn
            timings.json     TimingsFile: the call's verdict, failures, trace health, data errors

The trace file's encoding is OTLP's (:mod:`harness.trace.otlp`); this module says where it
is. ``caller.json`` has one schema (:class:`CallerFile`); files an older harness wrote
directly from the caller's measurements are still read (:func:`CallDir.read_caller`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from harness.core.errors import ScenarioError
from harness.core.files import atomic_write

__all__ = [
    "CALLER_FORMAT",
    "NAMES",
    "CallDir",
    "CallerFile",
    "FileNames",
    "LoadFile",
    "RunDir",
    "RunDirError",
    "TimingsFile",
    "TranscriptFile",
    "call_dir_name",
]


@dataclass(frozen=True)
class FileNames:
    """The file names of a run directory: here and nowhere else (:data:`NAMES`)."""

    recording: str = "recording.wav"
    caller: str = "caller.json"
    trace: str = "trace.jsonl"
    transcript: str = "transcript.json"
    timings: str = "timings.json"
    scores: str = "scores.jsonl"
    report: str = "report.html"
    perfetto: str = "perfetto.json"
    sensitivity: str = "sensitivity.json"
    clean_baseline: str = "clean-baseline.json"
    load: str = "load.json"


NAMES = FileNames()
"""What a message shows a person: ``f"no {NAMES.trace} here"``."""
_CALL_MARKERS = (NAMES.timings, NAMES.caller, NAMES.trace)

CALLER_FORMAT = "harness.instance/1"
"""The ``format`` of :class:`CallerFile`."""


class RunDirError(ScenarioError):
    """A file of a run directory that cannot be read: names the file and what is wrong."""


class CallerFile(TypedDict, total=False):
    """``caller.json``: the header of a saved Instance (the spans are in ``trace.jsonl``).

    ``caller`` is what the synthetic caller measured (its turns with their timing, the
    recording's name, the plan it followed and the end state it expected), or None for a
    production call."""

    format: str
    conversation_id: str
    recording: str | None
    complete: bool
    incomplete_reason: str | None
    caller: dict[str, Any] | None


class TranscriptFile(TypedDict):
    """``transcript.json``: per turn, what the caller said, what the agent heard and said."""

    conversation_id: str
    scenario_id: str
    turns: list[dict[str, Any]]


class TimingsFile(TypedDict, total=False):
    """``timings.json``: how the call went. Written last, so a call with a verdict here has
    all its other files."""

    conversation_id: str
    verdict: str
    duration_s: float
    error: str | None
    failures: list[str]
    call: dict[str, Any] | None
    trace: dict[str, Any] | None
    host_cpu_pressure: float | None
    data_errors: list[dict[str, Any]]
    harness: dict[str, Any] | None
    """What the caller side cost the call and how its event loop kept time
    (:class:`harness.call.selfload.CallerLoad`)."""


class LoadFile(TypedDict, total=False):
    """``load.json``: a load test (``harness load``). ``steps`` holds one object per
    concurrency level: ``concurrency``, ``calls``, ``passed``, ``failed``, ``errors``,
    ``duration_s``, ``latency`` (``n``, ``p50_ms``, ``p90_ms``, ``p99_ms`` of the
    caller-measured response latency), ``gates`` (``name``, ``status``, ``value``, ``unit``,
    ``n``, ``detail``), ``harness`` (what the caller side cost: ``caller_cpu_s``,
    ``call_minutes``, ``cpu_per_call_minute``, ``loop_lag_p99_ms``, ``loop_busy``,
    ``underrun_ms``, ``host_pressure``, ``rig_share``, ...), ``harness_limited`` (why the rig
    was the bottleneck; empty when it was not) and ``call_dirs``. ``knee`` is the first step
    that broke (``concurrency``, ``reasons``, ``harness_limited``, ``held``, ``blame``) or
    None. The schema's owner is :mod:`harness.load`."""

    format: str
    config: dict[str, Any]
    scenarios: list[str]
    steps: list[dict[str, Any]]
    knee: dict[str, Any] | None
    knee_line: str
    cost: dict[str, Any]
    wall_time_s: float


def call_dir_name(scenario_id: str, repeat: int) -> str:
    """``booking`` for a scenario's first call, ``booking.2`` for its second."""
    return scenario_id if repeat == 1 else f"{scenario_id}.{repeat}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RunDirError(f"cannot read: {e.strerror or e}", file=path) from None
    except RecursionError:
        raise RunDirError("JSON nested too deeply", file=path) from None
    except ValueError as e:
        raise RunDirError(f"not JSON ({e}); the file may be truncated", file=path) from None


def _json_text(doc: Any) -> str:
    return json.dumps(doc, indent=2, default=str) + "\n"


@dataclass(frozen=True)
class CallDir:
    """One call's directory."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def recording(self) -> Path:
        return self.path / NAMES.recording

    @property
    def recording_name(self) -> str:
        """The recording as the caller file names it: relative to the call's directory."""
        return NAMES.recording

    @property
    def caller(self) -> Path:
        return self.path / NAMES.caller

    @property
    def trace(self) -> Path:
        return self.path / NAMES.trace

    @property
    def transcript(self) -> Path:
        return self.path / NAMES.transcript

    @property
    def timings(self) -> Path:
        return self.path / NAMES.timings

    @property
    def run(self) -> RunDir:
        return RunDir(self.path.parent)

    def is_call(self) -> bool:
        """Whether the directory holds a call (any of its timings, caller or trace file)."""
        return any((self.path / n).is_file() for n in _CALL_MARKERS)

    def write_caller(self, doc: CallerFile) -> Path:
        return atomic_write(self.caller, json.dumps(doc, indent=2, allow_nan=False) + "\n")

    def read_caller(self) -> CallerFile | None:
        """The caller file as a :class:`CallerFile`; None when there is none. A file in the
        older shape (the caller's measurements at the top level) is read as one without a
        ``format``."""
        if not self.caller.is_file():
            return None
        doc = _read_json(self.caller)
        if not isinstance(doc, dict):
            raise RunDirError("expected a JSON object", file=self.caller)
        if doc.get("format") == CALLER_FORMAT:
            return doc  # type: ignore[return-value]
        # the older shape has no ``format``: it is not a saved Instance's header, so a
        # trace beside it is grouped by conversation as any export is
        return CallerFile(
            conversation_id=doc.get("conversation_id"),  # type: ignore[typeddict-item]
            recording=doc.get("recording"),
            complete=True,
            incomplete_reason=None,
            caller=doc,
        )

    def write_transcript(self, doc: TranscriptFile) -> Path:
        return atomic_write(self.transcript, _json_text(doc))

    def write_timings(self, doc: TimingsFile) -> Path:
        return atomic_write(self.timings, _json_text(doc))

    def read_timings(self) -> TimingsFile:
        doc = _read_json(self.timings)
        if not isinstance(doc, dict):
            raise RunDirError("expected a JSON object", file=self.timings)
        return doc  # type: ignore[return-value]


@dataclass(frozen=True)
class RunDir:
    """A run's directory: its calls and the files about all of them."""

    path: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> RunDir:
        """The run directory of ``path``: itself, or its parent when ``path`` is a call's."""
        p = Path(path)
        return cls(p.parent) if CallDir(p).is_call() else cls(p)

    @property
    def scores(self) -> Path:
        return self.path / NAMES.scores

    @property
    def report(self) -> Path:
        return self.path / NAMES.report

    @property
    def perfetto(self) -> Path:
        return self.path / NAMES.perfetto

    @property
    def sensitivity(self) -> Path:
        return self.path / NAMES.sensitivity

    @property
    def clean_baseline(self) -> Path:
        return self.path / NAMES.clean_baseline

    @property
    def load(self) -> Path:
        return self.path / NAMES.load

    def write_load(self, doc: LoadFile) -> Path:
        return atomic_write(self.load, json.dumps(doc, indent=2, allow_nan=False) + "\n")

    def read_load(self) -> LoadFile | None:
        """The load test's file; None when the run was not a load test."""
        if not self.load.is_file():
            return None
        doc = _read_json(self.load)
        if not isinstance(doc, dict) or not isinstance(doc.get("steps"), list):
            raise RunDirError("expected a JSON object with a list of steps", file=self.load)
        return doc  # type: ignore[return-value]

    def read_sensitivity(self) -> dict[str, Any] | None:
        """A sensitivity run's results (schema in :mod:`harness.sensitivity.report`); None
        when the run was not one."""
        if not self.sensitivity.is_file():
            return None
        doc = _read_json(self.sensitivity)
        if not isinstance(doc, dict) or not isinstance(doc.get("faults"), list):
            raise RunDirError("expected a JSON object with a list of faults", file=self.sensitivity)
        return doc

    def walk_calls(self) -> list[CallDir]:
        """Every call under the run, however deep (a sensitivity run keeps its calls under
        one directory per fault), by path."""
        if CallDir(self.path).is_call():
            return [CallDir(self.path)]
        if not self.path.is_dir():
            return []
        found = {
            f.parent
            for name in _CALL_MARKERS
            for f in self.path.rglob(name)
            if f.is_file() and f.parent != self.path
        }
        return [CallDir(d) for d in sorted(found)]

    def log(self, name: str, worker: str | None = None) -> Path:
        """Where a process the session starts writes its log: ``<name>.log``, or
        ``<name>.gw0.log`` for a pytest-xdist worker, whose siblings share the run dir."""
        return self.path / f"{name}{f'.{worker}' if worker else ''}.log"

    def call(self, name: str) -> CallDir:
        return CallDir(self.path / name)

    def calls(self) -> list[CallDir]:
        """Its calls, by name; the directory itself when it is one call's."""
        if CallDir(self.path).is_call():
            return [CallDir(self.path)]
        if not self.path.is_dir():
            return []
        return [
            CallDir(d) for d in sorted(self.path.iterdir()) if d.is_dir() and CallDir(d).is_call()
        ]

    def append_scores(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append one call's score records to ``scores.jsonl`` in one write with O_APPEND,
        so the lines of concurrent writers never interleave."""
        lines = "".join(json.dumps(dict(r), default=str) + "\n" for r in records)
        if not lines:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.scores, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)

    def read_scores(self) -> tuple[list[dict[str, Any]], int]:
        """Every score record of ``scores.jsonl`` and how many lines could not be read (a
        line cut short by a crash, say); no file is no records."""
        if not self.scores.is_file():
            return [], 0
        out: list[dict[str, Any]] = []
        bad = 0
        try:
            text = self.scores.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise RunDirError(f"cannot read: {e.strerror or e}", file=self.scores) from None
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):
                bad += 1
                continue
            if isinstance(rec, dict):
                out.append(rec)
            else:
                bad += 1
        return out, bad
