"""A production call (or a saved synthetic call) in, a regression scenario out.

:func:`import_incident` reads the call's trace export (OTLP JSON lines from any service),
scores it with the evaluators, classifies what failed, redacts PII, cuts the caller's
turns out of the recording, and writes ``<out_dir>/<ID>.yaml`` plus
``<audio_dir>/<ID>/turn-N.wav``. Everything is computed in memory first and written to
temporary names that are renamed at the end, so a failed import leaves nothing behind.

Caller turns come from the synthetic caller's side-file when there is one (its scripted
text and its measured timing), else from the agent's ``user_turn`` spans (the transcript
``lk.pii.user_transcript`` and the span's start and end).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import HarnessError, ScenarioError
from harness.incident.classify import (
    Classification,
    Finding,
    IncidentSignals,
    RuleTable,
    classify,
    find_failures,
    load_rules,
)
from harness.incident.conversations import load_conversation, shown_id
from harness.incident.errors import IncidentError
from harness.incident.estimate import (
    ConditionsEstimate,
    Recording,
    align_offset,
    estimate_conditions,
    fill,
    read_recording,
    write_wav,
)
from harness.incident.filenames import safe_id
from harness.incident.fixture import FixtureSpec, FixtureTurn, check_fixture, render_fixture
from harness.incident.redact import KINDS, Redacted, RedactionConfig, Redactor
from harness.trace import conventions as c

__all__ = [
    "OFFLINE_VOICE",
    "WORD_DURATION",
    "WORD_EVENT",
    "WORD_TEXT",
    "ImportResult",
    "find_fixture",
    "from_run",
    "import_incident",
]

log = logging.getLogger("harness.incident")

OFFLINE_VOICE = "espeak:en-us"
"""The voice of caller turns that have no usable recorded audio."""

# Word timings, when the speech recognizer reports them: events on the user_turn span.
WORD_EVENT = "word"
"""Span event name of one recognized word; the event's time is the word's start."""
WORD_TEXT = "word.pii.text"
"""The word's text (user data, hence ``pii``)."""
WORD_DURATION = "word.duration"
"""The word's duration in seconds."""

LEAD_PAD_S = 0.15
"""Audio kept before the caller's speech start in a cut turn."""
TAIL_PAD_S = 0.25
MIN_TURN_AUDIO_S = 0.1
SILENT_DBFS = -60.0
WORD_PAD_S = 0.03
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ID_MAX = 100  # a file name (id + ".yaml") stays far below the file system's 255 bytes
_NS = 1_000_000_000


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote and found. ``redactions`` counts by kind, never values."""

    incident_id: str
    scenario_path: Path
    audio_paths: tuple[Path, ...]
    classification: Classification
    redactions: Mapping[str, int]
    warnings: tuple[str, ...]
    source_trace_id: str | None
    conversation_id: str
    """The conversation id as written in the fixture (redacted)."""
    text: str = field(repr=False)
    """The fixture's YAML text."""

    @property
    def severity(self) -> str:
        return self.classification.severity

    @property
    def failing_layer(self) -> str:
        return self.classification.failing_layer

    @property
    def failed_evaluators(self) -> tuple[str, ...]:
        return self.classification.failed_evaluators

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (for ``--json`` output): paths, classification, counts."""
        cl = self.classification
        return {
            "incident_id": self.incident_id,
            "scenario": str(self.scenario_path),
            "audio": [str(p) for p in self.audio_paths],
            "severity": cl.severity,
            "failing_layer": cl.failing_layer,
            "rule": cl.rule,
            "failed_evaluators": list(cl.failed_evaluators),
            "findings": [f.describe() for f in cl.findings],
            "redactions": dict(self.redactions),
            "warnings": list(self.warnings),
            "source_trace_id": self.source_trace_id,
            "conversation_id": self.conversation_id,
        }

    def describe(self) -> str:
        """A few lines for a terminal: what was written, the classification, the redactions."""
        cl = self.classification
        lines = [
            f"incident {self.incident_id}: {cl.severity}, {cl.failing_layer} ({cl.rule})",
            f"  scenario: {self.scenario_path}",
        ]
        if self.audio_paths:
            lines.append(
                f"  audio:    {len(self.audio_paths)} recorded turn(s) in "
                f"{self.audio_paths[0].parent}"
            )
        failed = ", ".join(self.failed_evaluators) or "none"
        lines.append(f"  failed:   {failed}")
        lines.append(f"  redacted: {_redaction_summary(self.redactions)}")
        lines.extend(f"  warning:  {w}" for w in self.warnings)
        return "\n".join(lines)


def _redaction_summary(counts: Mapping[str, int]) -> str:
    parts = [f"{k} x{counts[k]}" for k in KINDS if counts.get(k)]
    return ", ".join(parts) if parts else "nothing"


# --- reading the call -------------------------------------------------------------------------


@dataclass
class _CallerTurn:
    index: int
    kind: str
    text: str | None
    start: float | None
    end: float | None
    audio_end: float | None
    words: list[tuple[str, float, float]]
    barge_in_measured: float | None
    agent_said: str | None
    agent_onset: float | None
    agent_offset: float | None
    interrupted: bool


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _check_forest(instance: Any, trace: Path) -> None:
    """Refuse a trace whose parent links loop: the Instance cut the loop to read it
    (:mod:`harness.trace.validate`), but a fixture must not replay a guessed tree."""
    for e in instance.data_errors:
        if e.kind == "parent_cycle":
            raise IncidentError(
                f"span {e.span_id} ({e.span!r}) is its own ancestor: the parent links form a cycle",
                file=trace,
            )


def _agent_speech(instance: Any, agent_turns: Sequence[Any]) -> tuple[float | None, float | None]:
    """The agent's audio onset and offset (epoch s) for a turn's agent_turn spans."""
    if not agent_turns:
        return None, None
    first = agent_turns[0]
    onset = first.start_ns / _NS
    for d in instance.descendants(first):
        if d.name == c.SPAN_AGENT_SPEAKING:
            onset = d.start_ns / _NS
            break
        if d.name == c.SPAN_TTS_NODE:
            ttfb = _num(d.attributes.get(c.LK_RESPONSE_TTFB))
            onset = d.start_ns / _NS + (ttfb or 0.0)
            break
    offset = max(a.end_ns for a in agent_turns) / _NS
    return onset, max(onset, offset)


def _span_words(span: Any) -> list[tuple[str, float, float]]:
    out = []
    for e in getattr(span, "events", ()):
        if e.name != WORD_EVENT:
            continue
        text = e.attributes.get(WORD_TEXT)
        dur = _num(e.attributes.get(WORD_DURATION))
        if isinstance(text, str) and dur is not None and dur >= 0:
            start = e.time_ns / _NS
            out.append((text, start, start + dur))
    return out


def _caller_words(raw: Any) -> list[tuple[str, float, float]]:
    out = []
    if isinstance(raw, list):
        for w in raw:
            if isinstance(w, Mapping) and isinstance(w.get("text"), str):
                s, e = _num(w.get("start")), _num(w.get("end"))
                if s is not None and e is not None and e >= s:
                    out.append((w["text"], s, e))
    return out


def _caller_turns(instance: Any) -> tuple[list[_CallerTurn], _CallerTurn | None, bool]:
    """The caller's turns, the greeting (as a pseudo-turn), and whether a side-file drove it."""
    side = instance.caller if isinstance(instance.caller, Mapping) else None
    raw_turns = {}
    if side and isinstance(side.get("turns"), list):
        for t in side["turns"]:
            if isinstance(t, Mapping) and isinstance(t.get("index"), int):
                raw_turns[t["index"]] = t
    from_side = bool(raw_turns)
    greeting = None
    out: list[_CallerTurn] = []
    for t in instance.turns:
        ct = raw_turns.get(t.index, {}) if from_side else {}
        if from_side:
            onset, offset = t.agent_onset, t.agent_offset
            if onset is None and t.agent_turns:
                onset, offset = _agent_speech(instance, t.agent_turns)
        else:
            onset, offset = _agent_speech(instance, t.agent_turns)
        interrupted = bool(t.interrupted)
        if t.kind == "greeting":
            greeting = _CallerTurn(
                t.index, "greeting", None, None, None, None, [], None,
                t.agent_said, onset, offset, interrupted,
            )  # fmt: skip
            continue
        ut = t.user_turn
        if from_side:
            kind = "silence" if t.kind == "silence" else "say"
            spoken = ct.get("spoken_text")
            text = spoken if isinstance(spoken, str) and spoken.strip() else t.caller_said
            if not (text and text.strip()):
                text = t.agent_heard
            start = t.caller_start if t.caller_start is not None else None
            end = t.caller_end
            if start is None and ut is not None:
                start, end = ut.start_ns / _NS, ut.end_ns / _NS
            audio_end = end
            words = _caller_words(ct.get("words")) or (_span_words(ut) if ut else [])
            barge = _num(ct.get("barge_in_ms"))
        else:
            kind = "say"
            text = t.agent_heard
            start = ut.start_ns / _NS if ut is not None else None
            end = ut.end_ns / _NS if ut is not None else None
            audio_end = end
            words = _span_words(ut) if ut is not None else []
            barge = None
        out.append(
            _CallerTurn(
                t.index, kind, text, start, end, audio_end, words, barge,
                t.agent_said, onset, offset, interrupted,
            )
        )  # fmt: skip
    return out, greeting, from_side


def _trace_id(instance: Any) -> str | None:
    for s in instance.spans:
        if s.name == c.SPAN_AGENT_SESSION:
            return s.trace_id
    counts = Counter(s.trace_id for s in instance.spans if s.layer == c.LAYER_CONVERSATIONAL)
    if not counts:
        counts = Counter(s.trace_id for s in instance.spans)
    return counts.most_common(1)[0][0] if counts else None


def _agent_name(instance: Any) -> str | None:
    for s in instance.spans:
        v = s.attributes.get(c.LK_AGENT_NAME)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def _anchor(instance: Any) -> float:
    starts = [
        s.start_ns
        for s in instance.spans
        if s.name in (c.SPAN_JOB_ENTRYPOINT, c.SPAN_AGENT_SESSION)
    ]
    return min(starts or [s.start_ns for s in instance.spans]) / _NS


# --- scoring ----------------------------------------------------------------------------------


def _score(instance: Any, expected: Any, warnings: list[str], rec: Recording | None) -> list[Any]:
    from harness.evaluators import default_evaluators

    target = instance
    if (
        rec is not None
        and instance.recording_path is None
        and rec.channels == 2
        and rec.caller_channel == 0
    ):
        target = replace(instance, recording=str(rec.path.resolve()))
    params = {"task_completion": {"expected": expected}} if expected is not None else None
    try:
        evaluators = [*default_evaluators(params), IncidentSignals()]
    except HarnessError as e:
        raise IncidentError(f"cannot build the evaluators: {e}") from None
    scores = []
    for ev in evaluators:
        name = getattr(ev, "name", type(ev).__name__)
        try:
            scores.extend(ev.evaluate(target))
        except Exception as e:  # one broken evaluator must not sink the import
            warnings.append(f"evaluator {name!r} could not run: {type(e).__name__}: {e}")
    return scores


# --- timing -----------------------------------------------------------------------------------


def _ms(seconds: float) -> int:
    return round(seconds * 100) * 10


def _timing(turn: _CallerTurn, prev: _CallerTurn | None, recorded: bool) -> tuple[int, int | None]:
    """``pause_before_ms`` and ``barge_in_ms`` for a turn, from its predecessor."""
    if turn.start is None or prev is None:
        return 0, None
    lead = LEAD_PAD_S if recorded else 0.0
    if turn.kind == "say":
        if turn.barge_in_measured is not None and turn.barge_in_measured >= 0:
            return 0, min(60_000, max(0, _ms(turn.barge_in_measured / 1000 - lead)))
        on, off = prev.agent_onset, prev.agent_offset
        if on is not None and off is not None and on <= turn.start < off - 0.05:
            return 0, min(60_000, max(0, _ms(turn.start - on - lead)))
    refs = [x for x in (prev.agent_offset, prev.end if prev.kind != "greeting" else None) if x]
    if not refs:
        return 0, None
    gap = turn.start - max(refs) - lead
    return min(120_000, max(0, _ms(gap))), None


# --- audio ------------------------------------------------------------------------------------


def _cut_bounds(turns: list[_CallerTurn]) -> dict[int, tuple[float, float]]:
    out: dict[int, tuple[float, float]] = {}
    prev_end = -math.inf
    for i, t in enumerate(turns):
        if t.kind != "say" or t.start is None:
            continue
        end = t.audio_end if t.audio_end is not None else t.start
        a = max(t.start - LEAD_PAD_S, prev_end)
        b = end + TAIL_PAD_S
        nxt = next((u.start for u in turns[i + 1 :] if u.start is not None), None)
        if nxt is not None:
            b = min(b, nxt - 0.05)
        if b > a:
            out[t.index] = (a, b)
            prev_end = b
    return out


def _word_ranges(
    turn: _CallerTurn, redacted: Redacted, redactor: Redactor, seg_start: float, rate: int
) -> list[tuple[int, int]] | None:
    """Sample ranges of the redacted words, or None when word timings cannot locate them."""
    if not turn.words:
        return None
    joined, offsets = "", []
    for text, s, e in turn.words:
        if joined:
            joined += " "
        offsets.append((len(joined), len(joined) + len(text), s, e))
        joined += text
    found = redactor.find(joined)
    if Counter(m.kind for m in found) != redacted.kinds:
        return None
    ranges = []
    for m in found:
        times = [(s, e) for a, b, s, e in offsets if a < m.end and b > m.start]
        if not times:
            return None
        t0 = min(s for s, _ in times) - WORD_PAD_S
        t1 = max(e for _, e in times) + WORD_PAD_S
        ranges.append((round((t0 - seg_start) * rate), round((t1 - seg_start) * rate)))
    return ranges


def _silent(samples: np.ndarray) -> bool:
    if len(samples) == 0:
        return True
    peak = float(np.max(np.abs(samples.astype(np.int32)))) / 32768.0
    return peak == 0.0 or 20 * math.log10(peak) < SILENT_DBFS


# --- writing ----------------------------------------------------------------------------------


def _write(
    scenario_path: Path,
    text: str,
    audio_dir: Path | None,
    clips: list[tuple[str, np.ndarray]],
    rate: int,
    overwrite: bool,
) -> None:
    """Stage every file under a temporary name, then rename; undo everything on failure."""
    created: list[Path] = []

    def mkdirs(d: Path) -> None:
        missing = []
        p = d
        while not p.exists():
            missing.append(p)
            p = p.parent
        d.mkdir(parents=True, exist_ok=True)
        created.extend(reversed(missing))

    token = uuid.uuid4().hex[:8]
    staging: Path | None = None
    tmp_yaml: Path | None = None
    aside: Path | None = None
    placed = False  # the new audio directory is in place
    try:
        mkdirs(scenario_path.parent)
        tmp_yaml = scenario_path.with_name(f".{scenario_path.name}.{token}.tmp")
        with open(tmp_yaml, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if audio_dir is not None and clips:
            mkdirs(audio_dir.parent)
            staging = audio_dir.with_name(f".{audio_dir.name}.{token}.tmp")
            staging.mkdir()
            for name, samples in clips:
                write_wav(staging / name, samples, rate)
        if audio_dir is not None and audio_dir.exists():
            if not overwrite:
                raise IncidentError("already exists; pass --force to overwrite it", file=audio_dir)
            aside = audio_dir.with_name(f".{audio_dir.name}.{token}.old")
            os.replace(audio_dir, aside)
        if staging is not None and audio_dir is not None:
            os.replace(staging, audio_dir)
            staging, placed = None, True
        os.replace(tmp_yaml, scenario_path)
        tmp_yaml = None
    except BaseException as e:
        if placed and audio_dir is not None:
            shutil.rmtree(audio_dir, ignore_errors=True)
        if aside is not None and audio_dir is not None:
            os.replace(aside, audio_dir)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if tmp_yaml is not None:
            tmp_yaml.unlink(missing_ok=True)
        for d in reversed(created):
            try:
                d.rmdir()
            except OSError:
                pass
        if isinstance(e, OSError):
            raise IncidentError(f"cannot write the fixture: {e}", file=e.filename) from None
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _relpath(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


# --- the import -------------------------------------------------------------------------------


def _default_id(when: datetime, trace_id: str | None, cid: str) -> str:
    digest = hashlib.sha256(f"{trace_id}\n{cid}".encode()).hexdigest()[:6]
    return f"INC-{when:%Y%m%d}-{digest}"


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class _NoRedaction(Redactor):
    def find(self, text: str, *, speaker: Any = "caller") -> list[Any]:
        return []


def _place_recording(
    instance: Any,
    recording: Path | None,
    caller_channel: int | None,
    recording_start: float | None,
    warnings: list[str],
) -> tuple[Recording | None, str]:
    """The recording with its start on the trace's clock, and a note on how it was placed."""
    rec_path = Path(recording) if recording is not None else instance.recording_path
    if rec_path is None:
        return None, ""
    if recording is None and not rec_path.is_file():
        warnings.append("the instance names a recording that is not there; turns use TTS")
        return None, ""
    rec = read_recording(rec_path, caller_channel)
    if rec.channels == 1:
        warnings.append("mono recording: the cut turns may contain the agent's voice as well")
    side = instance.caller if isinstance(instance.caller, Mapping) else {}
    start = recording_start
    if start is None:
        start = _num(side.get("started_at"))
    if start is not None:
        return rec.with_start(start), ""
    rec = rec.with_start(_anchor(instance))
    speech = [
        (u.start_ns / _NS, u.end_ns / _NS - (_num(u.get(c.LK_END_OF_TURN_DELAY)) or 0.0))
        for u in instance.find(c.SPAN_USER_TURN)
    ]
    shift = align_offset(rec, speech)
    return rec.with_start(rec.start + shift), f", aligned by {shift:+.2f} s to the user_turn spans"


_CALLER_KEYS = frozenset({c.LK_PII_USER_TRANSCRIPT, c.LK_PII_USER_INPUT, WORD_TEXT})
_AGENT_KEYS = frozenset({c.LK_PII_RESPONSE_TEXT, c.LK_PII_TTS_INPUT_TEXT})
_TOOL_KEYS = frozenset({c.LK_PII_FUNCTION_TOOL_ARGUMENTS, c.LK_PII_FUNCTION_TOOL_OUTPUT})


def _learn_payload(redactor: Redactor, payload: Any) -> None:
    """A tool's arguments or result: JSON (personal keys and every string) or plain text."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            redactor.learn_text(payload, speaker="system")
            return
    redactor.learn_arguments(payload)


def _learn(
    redactor: Redactor, turns: list[_CallerTurn], greeting: _CallerTurn | None, instance: Any
) -> None:
    """Teach the redactor the call's names and personal values before anything is redacted:
    every caller turn (with the agent's question it answers), every agent reply, tool
    arguments and results, span status messages and the spans' other user-data attributes."""
    asked = greeting.agent_said if greeting is not None else None
    if asked:
        redactor.learn_text(asked, speaker="agent")
    for t in turns:
        heard = " ".join(w for w, _, _ in t.words)
        for text in (t.text, heard):
            if text:
                redactor.learn_text(text, speaker="caller", asked=asked)
        if t.agent_said:
            redactor.learn_text(t.agent_said, speaker="agent")
        asked = t.agent_said
    asked = None
    for turn in instance.turns:
        for text in (turn.caller_said, turn.agent_heard):
            if text:
                redactor.learn_text(text, speaker="caller", asked=asked)
        if turn.agent_said:
            redactor.learn_text(turn.agent_said, speaker="agent")
        asked = turn.agent_said
    for tc in instance.tool_calls:
        _learn_payload(redactor, tc.arguments)
        if tc.output:
            _learn_payload(redactor, tc.output)
    for span in instance.spans:
        if span.status_message:
            redactor.learn_text(span.status_message, speaker="system")
        for key, value in span.attributes.items():
            if not isinstance(value, str) or not c.is_pii(key) or key in _TOOL_KEYS:
                continue
            if "chat_ctx" in key:
                continue  # the whole prompt: instructions, not this call's data
            speaker = "caller" if key in _CALLER_KEYS else "agent" if key in _AGENT_KEYS else None
            redactor.learn_text(value, speaker=speaker or "system")


@dataclass
class _Built:
    turns: list[FixtureTurn] = field(default_factory=list)
    clips: list[tuple[str, np.ndarray]] = field(default_factory=list)
    audio_paths: list[Path] = field(default_factory=list)
    position_of: dict[int, int] = field(default_factory=dict)
    """Instance turn index -> 1-based position in the fixture."""
    estimate: ConditionsEstimate | None = None


def _build_turns(
    turns: list[_CallerTurn],
    greeting: _CallerTurn | None,
    rec: Recording | None,
    redactor: Redactor,
    fill_kind: str,
    out_dir: Path,
    turn_audio_dir: Path,
    warnings: list[str],
) -> _Built:
    """The fixture's turns, and the recorded audio each one replays."""
    built = _Built()
    bounds = _cut_bounds(turns) if rec is not None else {}
    cuts = {idx: rec.cut(a, b) for idx, (a, b) in bounds.items()} if rec is not None else {}
    if rec is not None:
        built.estimate = estimate_conditions(list(cuts.values()), rec.rate)
    tts_conditions = built.estimate.conditions() if built.estimate is not None else None
    prev = greeting
    for t in turns:
        notes: list[str] = []
        trailing: list[str] = []
        if prev is not None and prev.agent_said:
            who = "agent (greeting)" if prev is greeting else "agent"
            said = redactor.redact(prev.agent_said, speaker="agent").text
            notes.append(f"{who}: {json.dumps(said, ensure_ascii=False)}")
        if t.kind == "silence":
            length = 0 if t.start is None or t.end is None else _ms(max(0.0, t.end - t.start))
            pause, _ = _timing(t, prev, recorded=False)
            built.turns.append(
                FixtureTurn(
                    silence_ms=min(600_000, length), pause_before_ms=pause, notes=tuple(notes)
                )
            )
            built.position_of[t.index] = len(built.turns)
            prev = t
            continue
        raw = (t.text or "").strip()
        red = redactor.redact(raw, style="synthetic") if raw else Redacted("")
        say = red.text.strip()
        samples = cuts.get(t.index)
        if samples is not None and rec is not None:
            if len(samples) < MIN_TURN_AUDIO_S * rec.rate or _silent(samples):
                trailing.append("no caller audio at this turn's time in the recording")
                warnings.append(
                    f"turn {len(built.turns) + 1}: no caller audio in the recording at its "
                    "time (check caller_channel and recording_start); it uses the offline voice"
                )
                samples = None
            elif red.changed:
                ranges = _word_ranges(t, red, redactor, bounds[t.index][0], rec.rate)
                if ranges is None:
                    trailing.append(
                        "recorded audio dropped: it holds redacted words that no word "
                        "timings locate"
                    )
                    samples = None
                else:
                    samples = fill(samples, ranges, rec.rate, fill_kind)
                    trailing.append(f"redacted words replaced by {fill_kind} in the audio")
        if not say:
            if samples is None:
                warnings.append(
                    f"caller turn {t.index} has no transcript and no audio; it is left out"
                )
                continue
            say = "[unintelligible]"
        position = len(built.turns) + 1
        voice: Any = None
        conditions: Any = None
        if samples is not None:
            name = f"turn-{position}.wav"
            path = turn_audio_dir / name
            built.clips.append((name, samples))
            built.audio_paths.append(path)
            voice = {"engine": "recorded", "turns": [_relpath(path, out_dir)]}
        elif rec is not None:
            voice, conditions = OFFLINE_VOICE, tts_conditions
        if red.changed:
            kinds = ", ".join(f"{k} x{n}" for k, n in sorted(red.kinds.items()))
            trailing.insert(0, f"redacted: {kinds} (spoken as synthetic values)")
        pause, barge = _timing(t, prev, recorded=samples is not None)
        built.turns.append(
            FixtureTurn(
                say=say,
                pause_before_ms=pause,
                barge_in_ms=barge,
                voice=voice,
                conditions=conditions,
                notes=tuple(notes),
                trailing=tuple(trailing),
            )
        )
        built.position_of[t.index] = position
        prev = t
    return built


def _mark_findings(
    built: _Built, findings: Sequence[Finding], greeting: _CallerTurn | None
) -> None:
    """A comment on the turn whose reply failed a check (the first turn for the greeting)."""
    for f in findings:
        if f.turn is None:
            continue
        if greeting is not None and f.turn == greeting.index:
            ft = built.turns[0]
            built.turns[0] = replace(
                ft, notes=(*ft.notes, f"production (greeting): {f.describe()}")
            )
            continue
        pos = built.position_of.get(f.turn)
        if pos is not None:
            ft = built.turns[pos - 1]
            line = f"production: {f.describe()} on the reply"
            built.turns[pos - 1] = replace(ft, trailing=(*ft.trailing, line))


def import_incident(
    trace: Path,
    *,
    recording: Path | None = None,
    caller_channel: int | None = None,
    incident_id: str | None = None,
    out_dir: Path = Path("scenarios/incidents"),
    audio_dir: Path = Path("audio_fixtures/incidents"),
    redact: bool = True,
    redaction_config: RedactionConfig | None = None,
    conversation_id: str | None = None,
    agent_name: str | None = None,
    recording_start: float | None = None,
    expected: Any = None,
    scores: Sequence[Any] | None = None,
    rules: RuleTable | None = None,
    overwrite: bool = False,
    now: datetime | None = None,
) -> ImportResult:
    """Turn one call's trace (and recording) into ``<out_dir>/<ID>.yaml`` and its turn WAVs.

    ``trace``: an OTLP JSON-lines export, or an instance directory (``trace.jsonl`` and
    ``caller.json``). ``conversation_id`` picks a call in a file holding several (its id,
    or the redacted form the error listing them printed; ``--conversation-id``).
    ``recording``: the call's WAV (default: the instance's own recording, if any);
    ``caller_channel`` picks its caller channel (default 0; a mono file is used as is).
    ``recording_start``: the epoch time of the recording's first sample; without it, the
    side-file's ``started_at``, else the session's start refined by lining the caller's
    audio up with the ``user_turn`` spans.
    ``expected``: the call's expected end state (anything
    :meth:`harness.evaluators.task.EndState.parse` reads), for ``task_completion``.
    ``scores``: Scores already computed for this call (then nothing is re-evaluated).
    ``rules``: a classification table other than the built-in one.
    An ``incident_id`` holding personal data is renamed (``sip_5558675309`` ->
    ``sip_PHONE``, with a warning): it names files.
    Raises :class:`IncidentError`; nothing is written then.
    """
    trace = Path(trace)
    out_dir, audio_root = Path(out_dir), Path(audio_dir)
    warnings: list[str] = []
    if incident_id is not None and not _ID_PATTERN.match(incident_id):
        raise IncidentError(
            f"{incident_id!r}: use letters, digits, '.', '_' and '-' (e.g. INC-2041)",
            field="--id",
        )
    if incident_id is not None and len(incident_id) > _ID_MAX:
        raise IncidentError(
            f"{len(incident_id)} characters; use at most {_ID_MAX} (e.g. INC-2041)",
            field="--id",
        )
    if caller_channel is not None and (
        isinstance(caller_channel, bool)
        or not isinstance(caller_channel, int)
        or caller_channel < 0
    ):
        raise IncidentError(f"caller_channel={caller_channel!r}: a channel index, 0 or more")
    table = rules or load_rules()

    instance = load_conversation(trace, conversation_id)
    if not instance.spans:
        raise IncidentError("no spans for this conversation", file=trace)
    _check_forest(instance, trace)
    turns, greeting, from_side = _caller_turns(instance)
    if not turns:
        raise IncidentError(
            f"no user turns: conversation {shown_id(instance.conversation_id)!r} has no "
            f"{c.SPAN_USER_TURN!r} spans"
            + ("" if from_side else " (and no caller side-file)")
            + ", so there is nothing for a caller to say",
            file=trace,
        )

    rec, alignment = _place_recording(
        instance, recording, caller_channel, recording_start, warnings
    )
    if rec is None and not any(t.text and t.text.strip() for t in turns if t.kind == "say"):
        raise IncidentError(
            f"no user transcripts ({c.LK_PII_USER_TRANSCRIPT}) and no recording: nothing "
            "for a caller to say",
            file=trace,
        )

    # scores, findings, classification
    if scores is None:
        all_scores = _score(instance, expected, warnings, rec)
    else:
        all_scores = [*scores, *IncidentSignals().evaluate(instance)]
    findings = find_failures(all_scores, table)
    classification = classify(findings, table)
    if not findings:
        warnings.append("no evaluator failed on this call; it was imported as reported")

    occurred = datetime.fromtimestamp(min(s.start_ns for s in instance.spans) / _NS, UTC)
    imported = (now or datetime.now(UTC)).astimezone(UTC)

    # redaction: learn names and personal values from the whole call first
    config = redaction_config or RedactionConfig()
    if config.reference_date is None:
        config = replace(config, reference_date=occurred.date())
    redactor = Redactor(config) if redact else _NoRedaction(config)
    if not redact:
        warnings.append(
            "PII redaction is OFF: the fixture and its audio may hold personal data; "
            "do not commit them"
        )
    _learn(redactor, turns, greeting, instance)

    trace_id = _trace_id(instance)
    cid = redactor.redact(instance.conversation_id, speaker="system").text
    if incident_id is None:
        incident_id = _default_id(occurred, trace_id, instance.conversation_id)
    elif redact:
        incident_id, kinds = safe_id(incident_id, redactor)
        if kinds:
            warnings.append(
                f"the incident id held personal data ({', '.join(kinds)}); the fixture is "
                f"named {incident_id} instead"
            )
    scenario_path = out_dir / f"{incident_id}.yaml"
    turn_audio_dir = audio_root / incident_id
    if not overwrite:
        for p in (scenario_path, turn_audio_dir):
            if p.exists():
                raise IncidentError(
                    "already exists; pass another --id, or --force to overwrite it", file=p
                )

    fill_kind = config.audio_fill
    built = _build_turns(
        turns, greeting, rec, redactor, fill_kind, out_dir, turn_audio_dir, warnings
    )
    if not built.turns:
        raise IncidentError("no caller turn could be imported", file=trace)
    _mark_findings(built, findings, greeting)
    expect, expect_notes, unasserted = _expectations(
        findings, instance, expected, redactor, warnings
    )
    footer = ()
    if turns[-1].agent_said:
        said = redactor.redact(turns[-1].agent_said, speaker="agent").text
        footer = (f"agent: {json.dumps(said, ensure_ascii=False)}",)
    counts = dict(redactor.counts)  # every string is redacted by now

    header = [
        f"Incident {incident_id}: {classification.severity}, failing layer "
        f"{classification.failing_layer} (rule {classification.rule}).",
        classification.rationale,
        f"Source: trace {trace_id or 'unknown'}, conversation {cid}, {_iso(occurred)}.",
    ]
    if findings:
        header.append("Failed on the production call:")
        for f in findings:
            detail = f.detail and redactor.redact(f.detail, count=False, speaker="agent").text
            header.append(f"  - {f.describe()}" + (f": {detail}" if detail else ""))
    else:
        header.append("No evaluator failed on the production call; imported as reported.")
    if unasserted:
        header.append(f"Not asserted by any scenario field: {', '.join(unasserted)}.")
    if redact:
        header.append(
            f"Redacted before writing: {_redaction_summary(counts)}"
            + ("; values in `say` are synthetic replay values." if counts else ".")
        )
    else:
        header.append("PII REDACTION WAS OFF: this file and its audio may hold personal data.")
    if rec is not None and built.estimate is not None:
        rec_name = redactor.redact(rec.path.name, count=False, speaker="system").text
        header.append(
            f"Caller audio: cut from {rec_name} (channel {rec.caller_channel} of "
            f"{rec.channels}{alignment})."
        )
        header.append(f"Estimated caller conditions: {built.estimate.describe()}.")
    else:
        header.append(f"No recording: caller turns use the offline voice {OFFLINE_VOICE}.")

    agent = agent_name or _agent_name(instance)
    spec = FixtureSpec(
        id=incident_id,
        description=f"Regression test for incident {incident_id} "
        f"({classification.severity}, {classification.failing_layer}): "
        f"{classification.rationale}",
        header=tuple(header),
        incident={
            "id": incident_id,
            "source_trace_id": trace_id,
            "conversation_id": cid,
            "imported_at": _iso(imported),
            "occurred_at": _iso(occurred),
            "severity": classification.severity,
            "failing_layer": classification.failing_layer,
            "failed_evaluators": list(classification.failed_evaluators),
        },
        agent=agent,
        agent_comment=None
        if agent
        else "agent name not in the trace: add `agent: <agent_name>` or pass --agent-name",
        agent_speaks_first=greeting is not None,
        voice=OFFLINE_VOICE if rec is None else None,
        expect=expect,
        expect_notes=tuple(expect_notes),
        timeouts=_timeouts(turns),
        turns=built.turns,
        footer=footer,
    )
    text = render_fixture(spec)
    try:
        check_fixture(text, scenario_path)
    except ScenarioError as e:  # a bug here, not in the trace: say so plainly
        raise IncidentError(f"the generated fixture does not parse: {e}", file=trace) from None

    _write(
        scenario_path,
        text,
        turn_audio_dir if (built.clips or overwrite) else None,
        built.clips,
        rec.rate if rec is not None else 16000,
        overwrite,
    )
    result = ImportResult(
        incident_id=incident_id,
        scenario_path=scenario_path,
        audio_paths=tuple(built.audio_paths),
        classification=classification,
        redactions=counts,
        warnings=tuple(redactor.redact(w, count=False, speaker="system").text for w in warnings),
        source_trace_id=trace_id,
        conversation_id=cid,
        text=text,
    )
    log.info("%s", result.describe())
    return result


def _timeouts(turns: list[_CallerTurn]) -> dict[str, Any] | None:
    times = [x for t in turns for x in (t.start, t.end, t.agent_offset) if x is not None]
    if len(times) < 2:
        return None
    duration = max(times) - min(times)
    call_s = math.ceil(min(3600.0, duration * 1.5 + 60))  # huge times must not overflow
    return {"call_s": call_s} if call_s > 180 else None


def _expectations(
    findings: Sequence[Finding],
    instance: Any,
    expected: Any,
    redactor: Redactor,
    warnings: list[str],
) -> tuple[dict[str, Any], list[str], list[str]]:
    """The call-level ``expect:`` mapping, a comment per source, and unasserted checks."""
    from harness.evaluators.task import EndState

    background: dict[str, dict[str, Any]] = {}
    after_call: dict[str, dict[str, Any]] = {}
    literal: dict[str, Any] = {}
    tools: dict[str, Any] = {}
    actions: dict[str, Any] = {}
    notes: list[str] = []
    unasserted: list[str] = []
    end_state = None
    if expected is not None:
        try:
            end_state = EndState.parse(expected)
        except (TypeError, ValueError) as e:
            raise IncidentError(f"expected={expected!r}: {e}", field="expected") from None
    for f in findings:
        want = f.check.expect
        if want is None:
            unasserted.append(f.name)
            continue
        if isinstance(want, Mapping):
            for k, v in want.items():
                if k == "max_response_latency_ms" and k in literal:
                    literal[k] = min(literal[k], v)
                else:
                    literal[k] = v
            notes.append(f"{', '.join(want)}: from {f.evaluator} ({f.check})")
        elif want == "background":
            for a in instance.actions:
                if a.mutating is True and a.approval in (None, c.APPROVAL_SKIPPED):
                    background.setdefault(a.name, {"action": a.name, "approval": "approved"})
            notes.append(f"background: from {f.evaluator} ({f.check})")
        elif want == "after_call":
            steps = [w for w in instance.workflow if w.status == c.STATUS_ERROR]
            steps = steps or list(instance.workflow)
            for w in steps:
                after_call.setdefault(w.name, {"step": w.name})
            if not steps:
                warnings.append("the after-call workflow failed without any step to assert")
            notes.append(f"after_call: from {f.evaluator} ({f.check})")
        elif want == "end_state":
            if f.name == "tool_failed":
                for tc in instance.tool_calls:
                    if tc.is_error:
                        tools.setdefault(tc.name, tc.name)
            elif f.name == "action_failed":
                for a in instance.actions:
                    if a.status == c.STATUS_ERROR:
                        actions.setdefault(a.name, a.name)
            elif end_state is None:
                warnings.append(
                    f"{f.evaluator} failed but the expected end state is unknown; "
                    "pass expected= to assert it"
                )
            notes.append(f"end_state: from {f.evaluator} ({f.check})")
    if end_state is not None and any(f.name == "task_failed" for f in findings):
        for t in end_state.tools:
            args = {
                k: redactor.redact(v, style="synthetic", count=False).text
                if isinstance(v, str)
                else v
                for k, v in t.args.items()
            }
            tools[t.name] = {"name": t.name, "args": args} if args else t.name
        for a in end_state.actions:
            actions[a.name] = {"name": a.name, "approved": True} if a.approved else a.name
    expect: dict[str, Any] = {}
    if background:
        expect["background"] = list(background.values())
    if after_call:
        expect["after_call"] = list(after_call.values())
    expect.update(literal)
    if tools or actions:
        state: dict[str, Any] = {}
        if tools:
            state["tool_called"] = list(tools.values())
        if actions:
            state["action_done"] = list(actions.values())
        expect["end_state"] = state
    return expect, list(dict.fromkeys(notes)), list(dict.fromkeys(unasserted))


def find_fixture(incident: str | Path, out_dir: Path = Path("scenarios/incidents")) -> Path:
    """The fixture file of an incident: an id (``INC-20251113-099336``) looked up in
    ``out_dir``, or a path to the YAML itself."""
    p = Path(incident)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise IncidentError("no such incident fixture", file=p)
        return p
    candidate = Path(out_dir) / f"{incident}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(x.stem for x in Path(out_dir).glob("*.yaml")) if Path(out_dir).is_dir() else []
    near = difflib.get_close_matches(str(incident), known, n=1)
    hint = f"; did you mean {near[0]}?" if near else (f" ({len(known)} incidents there)")
    raise IncidentError(f"no incident {str(incident)!r} in {out_dir}{hint}", file=candidate)


def from_run(run_dir: Path, **kwargs: Any) -> ImportResult:
    """Import a saved synthetic call: ``trace.jsonl``, ``caller.json`` and ``recording.wav``
    in ``run_dir`` (the caller on channel 0). Keywords as :func:`import_incident`."""
    run = Path(run_dir)
    if not run.is_dir():
        raise IncidentError("not a run directory", file=run)
    trace = run / "trace.jsonl"
    if not trace.is_file():
        raise IncidentError(
            "no trace.jsonl: this call was not traced, so there is nothing to import", file=run
        )
    if kwargs.get("recording") is None and (run / "recording.wav").is_file():
        kwargs["recording"] = run / "recording.wav"
    kwargs.setdefault("caller_channel", 0)
    return import_incident(trace, **kwargs)
