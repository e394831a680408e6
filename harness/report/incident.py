"""The original incident of a replayed fixture, for the report to show beside the replay.

A fixture written by ``harness incident import`` records the original call in its own text:
the ``incident:`` block (id, severity, failing layer, the evaluators that failed on the
production call), a header comment (what failed, what was redacted), the caller's turns as
``say`` values and, before each turn, a comment with what the agent had just said. This
module reads those back; it never needs the production trace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.report.model import IncidentTurn, IncidentView

__all__ = ["incident_view", "lookup_incident"]

_AGENT_NOTE = re.compile(r"^\s*#\s*agent(?P<greeting> \(greeting\))?:\s?(?P<text>.*)$")
DEFAULT_FIXTURES = Path("scenarios/incidents")


def _unquote(text: str) -> str:
    text = text.strip()
    try:
        value = json.loads(text)
        if isinstance(value, str):
            return value
    except ValueError:
        pass
    # a comment cut at its width ends in "..." without the closing quote
    return text[1:] if text.startswith('"') else text


def _timing(turn: Any) -> str:
    parts = []
    if turn.barge_in_ms is not None:
        parts.append(f"barged in {turn.barge_in_ms} ms into the reply")
    elif turn.pause_before_ms:
        parts.append(f"spoke {turn.pause_before_ms} ms after the agent")
    if turn.silence_ms is not None:
        parts.append(f"silent {turn.silence_ms} ms")
    return ", ".join(parts)


def incident_view(scenario: Any) -> IncidentView | None:
    """The original call of an incident fixture, or None for a scenario without
    ``incident:``."""
    info = getattr(scenario, "incident", None)
    if info is None:
        return None
    path = getattr(scenario, "path", None)
    lines: list[str] = []
    if path is not None:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError:
            lines = []
    header: list[str] = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line[1:].strip())
    # what the agent said before each turn, by the turn's line in the file
    starts = [scenario.line_of("turns", i) for i in range(len(scenario.turns))]
    notes: list[tuple[int, bool, str]] = []
    for n, line in enumerate(lines, start=1):
        m = _AGENT_NOTE.match(line)
        if m:
            notes.append((n, bool(m.group("greeting")), _unquote(m.group("text"))))
    greeting = None
    replies: dict[int, str] = {}
    for n, is_greeting, text in notes:
        if is_greeting:
            greeting = text
            continue
        # a note before turn i is the reply to turn i - 1; after the last turn, to the last
        before = [i for i, s in enumerate(starts) if s is not None and s > n]
        i = before[0] if before else len(starts)
        if i >= 1:
            replies[i - 1] = text
    turns = tuple(
        IncidentTurn(i + 1, t.say, replies.get(i), _timing(t)) for i, t in enumerate(scenario.turns)
    )
    source = None
    if info.conversation_id or info.source_trace_id:
        source = " ".join(
            x
            for x in (
                f"conversation {info.conversation_id}" if info.conversation_id else "",
                f"trace {info.source_trace_id}" if info.source_trace_id else "",
            )
            if x
        )
    return IncidentView(
        id=info.id,
        severity=info.severity,
        failing_layer=info.failing_layer,
        failed_evaluators=tuple(info.failed_evaluators),
        occurred_at=info.occurred_at.isoformat() if info.occurred_at else None,
        source=source,
        header=tuple(header),
        greeting=greeting,
        turns=turns,
        fixture=str(path) if path is not None else None,
    )


def lookup_incident(
    scenario_id: str,
    scenarios: Mapping[str, Any],
    fixtures: Path = DEFAULT_FIXTURES,
) -> IncidentView | None:
    """The incident behind a call's scenario: from the scenarios the run loaded, else the
    fixture of that id in ``fixtures`` (for a report written later from the directory)."""
    scenario = scenarios.get(scenario_id)
    if scenario is None:
        candidate = fixtures / f"{scenario_id}.yaml"
        if not candidate.is_file():
            return None
        from harness.core.errors import ScenarioError
        from harness.scenario.model import load_scenario

        try:
            scenario = load_scenario(candidate)
        except ScenarioError:
            return None
    return incident_view(scenario)
