"""The incident fixture: a scenario YAML written by hand, so that order and comments are ours.

The text is emitted line by line (no YAML library decides the layout): a header of
comments naming the source trace, the failed evaluators and what was redacted; the
scenario's keys in a fixed order; then the turns as the call happened, each preceded by a
comment with what the agent said before it. Strings are always double-quoted, with YAML
escapes for anything unprintable, so any transcript round-trips through ``yaml.safe_load``.

:func:`check_fixture` parses the text as a :class:`~harness.scenario.model.Scenario` before
anything is written. The fields this module emits that the scenario model may not have yet
(``incident:``, ``expect.no_loop``, ``expect.max_response_latency_ms``,
``expect.end_state``) are checked against :class:`IncidentInfo` and :class:`IncidentExpect`
here until the model has them.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from harness.scenario.model import EndStateSpec, IncidentInfo, Scenario, parse_scenario

__all__ = [
    "FixtureSpec",
    "FixtureTurn",
    "IncidentExpect",
    "IncidentInfo",
    "check_fixture",
    "comment",
    "quote",
    "render_fixture",
]

COMMENT_WIDTH = 96

# --- the fields this fixture adds to a scenario ---------------------------------------------


class IncidentExpect(BaseModel):
    """The call-level expectations an incident fixture may set (see ``CallExpect``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    no_loop: bool | None = None
    max_response_latency_ms: Annotated[int, Field(gt=0, le=120_000)] | None = None
    end_state: EndStateSpec | None = None


# --- emitting ---------------------------------------------------------------------------------

_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029\ufeff]"
)


def _escape(ch: str) -> str:
    o = ord(ch)
    if o <= 0xFF:
        return f"\\x{o:02x}"
    if o <= 0xFFFF:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def quote(text: str) -> str:
    """``text`` as a YAML double-quoted scalar that loads back to exactly ``text``."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return '"' + _PRINTABLE.sub(lambda m: _escape(m.group(0)), out) + '"'


def comment(text: str, width: int = COMMENT_WIDTH) -> str:
    """One line, fit for a ``#`` comment: no control characters, at most ``width`` chars
    (leading spaces kept, for indented lists)."""
    raw = _PRINTABLE.sub(" ", str(text).replace("\t", " "))
    indent = len(raw) - len(raw.lstrip(" "))
    flat = " " * indent + " ".join(raw.split())
    if len(flat) > width:
        flat = flat[: width - 3].rstrip() + "..."
    return flat


def _wrapped(text: str, width: int = COMMENT_WIDTH) -> list[str]:
    """A header comment over as many lines as it needs (continuations indented)."""
    line = comment(text, width=1 << 20)
    indent = len(line) - len(line.lstrip(" "))
    return textwrap.wrap(
        line.lstrip(" "),
        width=width,
        initial_indent=" " * indent,
        subsequent_indent=" " * (indent + 2),
        break_long_words=True,
        break_on_hyphens=False,
    ) or [""]


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} in a fixture")
        return repr(value)
    if isinstance(value, datetime):
        return quote(value.isoformat().replace("+00:00", "Z"))
    return quote(str(value))


def _flow(value: Any) -> str:
    """A value in flow style: ``{a: 1, b: [x, y]}``."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


def _key(key: Any) -> str:
    k = str(key)
    return k if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) else quote(k)


def _block(value: Mapping[str, Any], indent: int) -> list[str]:
    """A mapping in block style; small leaves (scalars, lists of scalars) stay on one line."""
    pad = " " * indent
    lines = []
    for k, v in value.items():
        if isinstance(v, Mapping) and v and any(isinstance(x, Mapping | list) for x in v.values()):
            lines.append(f"{pad}{_key(k)}:")
            lines.extend(_block(v, indent + 2))
        elif isinstance(v, list) and v and any(isinstance(x, Mapping) for x in v):
            lines.append(f"{pad}{_key(k)}:")
            lines.extend(f"{pad}  - {_flow(x)}" for x in v)
        elif isinstance(v, Mapping) and v:
            lines.append(f"{pad}{_key(k)}:")
            lines.extend(_block(v, indent + 2))
        else:
            lines.append(f"{pad}{_key(k)}: {_flow(v)}")
    return lines


@dataclass(frozen=True)
class FixtureTurn:
    """One caller turn as written: ``say`` or ``silence_ms``, its timing and its voice."""

    say: str | None = None
    silence_ms: int | None = None
    pause_before_ms: int = 0
    barge_in_ms: int | None = None
    voice: Any = None
    conditions: Any = None
    expect: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()
    """Comment lines above the turn (what the agent said before it, what failed here)."""
    trailing: tuple[str, ...] = ()
    """Comment lines inside the turn, after its keys (why its voice is what it is)."""


@dataclass(frozen=True)
class FixtureSpec:
    """Everything a fixture file holds, in the order it is written."""

    id: str
    incident: Mapping[str, Any]
    turns: Sequence[FixtureTurn]
    description: str = ""
    header: tuple[str, ...] = ()
    agent: str | None = None
    agent_comment: str | None = None
    agent_speaks_first: bool = True
    voice: Any = None
    expect: Mapping[str, Any] = field(default_factory=dict)
    expect_notes: tuple[str, ...] = ()
    timeouts: Mapping[str, Any] | None = None
    footer: tuple[str, ...] = ()


def render_fixture(spec: FixtureSpec) -> str:
    """The fixture's YAML text."""
    lines = [f"# {w}".rstrip() for h in spec.header for w in _wrapped(h)]
    lines.append(f"id: {spec.id}")
    if spec.description:
        lines.append(f"description: {quote(spec.description)}")
    lines.append("incident:")
    lines.extend(_block(spec.incident, 2))
    if spec.agent is not None:
        tail = f"  # {comment(spec.agent_comment)}" if spec.agent_comment else ""
        lines.append(f"agent: {quote(spec.agent)}{tail}")
    elif spec.agent_comment:
        lines.append(f"# {comment(spec.agent_comment)}")
    if not spec.agent_speaks_first:
        lines.append("agent_speaks_first: false")
    if spec.voice is not None:
        lines.append(f"voice: {_flow(spec.voice)}")
    if spec.timeouts:
        lines.append(f"timeouts: {_flow(spec.timeouts)}")
    if spec.expect or spec.expect_notes:
        lines.extend(f"# {comment(n)}" for n in spec.expect_notes)
    if spec.expect:
        lines.append("expect:")
        lines.extend(_block(spec.expect, 2))
    lines.append("turns:")
    for t in spec.turns:
        lines.extend(f"  # {comment(n)}" for n in t.notes)
        first = True

        def item(key: str, value: str) -> None:
            nonlocal first
            lines.append(f"  {'- ' if first else '  '}{key}: {value}")
            first = False

        if t.say is not None:
            item("say", quote(t.say))
        else:
            item("silence_ms", str(int(t.silence_ms or 0)))
        if t.pause_before_ms:
            item("pause_before_ms", str(int(t.pause_before_ms)))
        if t.barge_in_ms is not None:
            item("barge_in_ms", str(int(t.barge_in_ms)))
        if t.voice is not None:
            item("voice", _flow(t.voice))
        if t.conditions is not None:
            item("conditions", _flow(t.conditions))
        if t.expect:
            item("expect", _flow(t.expect))
        lines.extend(f"    # {comment(n)}" for n in t.trailing)
    lines.extend(f"# {w}".rstrip() for f in spec.footer for w in _wrapped(f))
    return "\n".join(lines) + "\n"


# --- checking ---------------------------------------------------------------------------------


def check_fixture(text: str, path: str | Path = "<incident>") -> Scenario:
    """Parse a fixture as a Scenario, voice specs and conditions included; raises
    :class:`~harness.core.errors.ScenarioError`."""
    from harness.audio import parse_conditions
    from harness.voices import parse_voice_spec

    scenario = parse_scenario(text, path)
    for i, turn in enumerate(scenario.turns):
        if turn.voice is not None:
            parse_voice_spec(turn.voice, field=f"turns[{i}].voice")
        if turn.conditions is not None:
            parse_conditions(turn.conditions, field=f"turns[{i}].conditions")
    return scenario
