"""Write a scenario's caller audio to disk, exactly as the synthetic caller will send it.

    harness audio render scenarios/conditions/bad_cell.yaml --out rendered/

gives, in ``rendered/``::

    turn-01.wav   48 kHz mono 16-bit PCM: turn 1's audio after voice, behaviours and conditions
    turn-02.wav
    plan.json     per turn: text, spoken text, voice, conditions, duration and timing

Silent turns (``silence_ms``) send nothing, so they have no WAV; their ``file`` in
``plan.json`` is ``null``. The same scenario, conditions and seed give byte-identical files.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.audio import parse_conditions
from harness.core.errors import ScenarioError
from harness.core.files import atomic_write
from harness.plan.callplan import CALL_RATE, CallPlan, PlannedTurn, render_plan
from harness.scenario.model import Scenario, load_scenario

__all__ = ["PLAN_FILE", "plan_summary", "render_scenario_audio", "turn_file_name"]

PLAN_FILE = "plan.json"
_TURN_FILE = re.compile(r"^turn-\d{2,}\.wav$")


def turn_file_name(index: int) -> str:
    """``turn-01.wav`` for turn 1 (two digits at least, so files sort in turn order)."""
    return f"turn-{index:02d}.wav"


def _turn_entry(turn: PlannedTurn) -> dict[str, Any]:
    audio = turn.audio
    return {
        "index": turn.index,
        "kind": turn.kind,
        "file": turn_file_name(turn.index) if audio is not None else None,
        "text": turn.text,
        "spoken_text": turn.spoken_text,
        "voice": turn.voice,
        "conditions": [dict(c) for c in turn.conditions],
        "duration_s": round(audio.duration, 6) if audio is not None else None,
        "pause_before_ms": round(turn.pause_before_s * 1000),
        "barge_in_ms": turn.barge_in_ms,
        "silence_ms": round(turn.silence_s * 1000) if turn.kind == "silence" else None,
    }


def plan_summary(plan: CallPlan, *, source: str | Path | None = None) -> dict[str, Any]:
    """The ``plan.json`` document for ``plan``: the call, then one entry per turn."""
    return {
        "scenario": plan.scenario_id,
        "source": str(source) if source is not None else None,
        "agent": plan.agent_name,
        "seed": plan.seed,
        "rate": CALL_RATE,
        "turns": [_turn_entry(t) for t in plan.turns],
    }


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def render_scenario_audio(
    path_or_scenario: str | Path | Scenario,
    out_dir: str | Path,
    *,
    conditions: Any = None,
    seed: int | None = None,
    progress: Callable[[str], None] | None = _stderr,
) -> list[Path]:
    """Render a scenario's caller turns and write them to ``out_dir``; return the files.

    Each ``say`` turn's :attr:`~harness.plan.callplan.PlannedTurn.audio` from
    :func:`~harness.plan.callplan.render_plan` is written as ``turn-NN.wav`` (48 kHz mono 16-bit),
    followed by ``plan.json`` (see :func:`plan_summary`); the returned list is in that
    order. ``conditions`` replaces every turn's audio conditions (any spec
    ``parse_conditions`` takes) and ``seed`` the scenario's seed, as in ``render_plan``.

    ``out_dir`` is created if needed. When it holds an earlier render (a ``plan.json``),
    ``turn-NN.wav`` files the new plan does not have are removed, so the directory always
    matches its ``plan.json``. Progress lines go to ``progress`` (stderr by default;
    ``None`` for silence).

    A bad scenario raises :class:`~harness.core.errors.ScenarioError` naming ``file:line``; a bad
    ``conditions`` argument raises :class:`~harness.audio.ConditionError`; a voice that
    cannot run here raises :class:`~harness.voices.VoiceUnavailable`.
    """
    say = progress or (lambda _line: None)
    if isinstance(path_or_scenario, Scenario):
        scenario = path_or_scenario
    elif isinstance(path_or_scenario, str | Path):
        scenario = load_scenario(path_or_scenario)
    else:
        raise ScenarioError(
            f"path_or_scenario={path_or_scenario!r} must be a scenario file or a Scenario"
        )
    if conditions is not None:
        parse_conditions(conditions, field="conditions")  # a clear error before any work
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ScenarioError(f"seed={seed!r} must be a whole number >= 0", field="seed")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ScenarioError(f"output {out} exists and is not a directory")

    where = scenario.path or scenario.id
    n_say = sum(t.say is not None for t in scenario.turns)
    say(f"{where}: rendering {n_say} caller turn(s) of {len(scenario.turns)} at {CALL_RATE} Hz")
    started = time.monotonic()
    if conditions is not None:
        # The override replaces the call's and every turn's own conditions. It is applied
        # to a copy rather than passed to render_plan, whose override skips an empty chain
        # ("clean") and falls back to the scenario's own conditions.
        turns = [t.model_copy(update={"conditions": None}) for t in scenario.turns]
        scenario = scenario.model_copy(update={"conditions": conditions, "turns": turns})
    plan = render_plan(scenario, seed=seed)

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for turn in plan.turns:
        if turn.audio is None:
            say(f"  turn {turn.index}: silence {turn.silence_s:.2f} s (nothing sent)")
            continue
        path = turn.audio.write_wav(out / turn_file_name(turn.index))
        written.append(path)
        say(f"  {path.name}  {turn.audio.duration:5.2f} s  {turn.spoken_text!r}")

    keep = {p.name for p in written}
    if (out / PLAN_FILE).is_file():
        for stale in sorted(out.iterdir()):
            if _TURN_FILE.match(stale.name) and stale.name not in keep:
                stale.unlink()
                say(f"  removed stale {stale.name}")

    doc = plan_summary(plan, source=scenario.path)
    plan_path = out / PLAN_FILE
    atomic_write(plan_path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    written.append(plan_path)
    say(f"wrote {len(written)} file(s) to {out} in {time.monotonic() - started:.1f} s")
    return written
