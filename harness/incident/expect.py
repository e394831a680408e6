"""What the replay asserts: the failed checks' expectations become the fixture's ``expect:``.

Two tables, each saying one thing:

- ``classify_rules.yaml`` says, per check, **what** the replay asserts (its ``expect``): a
  mapping merged into ``expect:`` (``{no_loop: true}``; of two latency bounds the
  strictest wins), or the name of a source;
- :data:`SOURCES` says **how** each named source is read from the trace: which field of
  ``expect:`` it fills and with which entries (one per action, step or tool, first
  kept). :data:`EXPECTED_END_STATE` is the end state the caller of the import passed
  (``expected=``), which the trace cannot hold.

A check with no ``expect`` is reported as not asserted by any scenario field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.incident.errors import IncidentError
from harness.incident.redact import Redactor
from harness.incident.turns import CallerTurn
from harness.trace import conventions as c
from harness.trace.instance import Instance

if TYPE_CHECKING:
    from harness.evaluators.task import EndState
    from harness.incident.classify import Finding

__all__ = [
    "EXPECTED_END_STATE",
    "EXPECT_NAMES",
    "SOURCES",
    "Expectations",
    "Source",
    "call_timeouts",
    "derive_expectations",
    "parse_expected",
]

Entries = Iterable[tuple[str, Any]]


@dataclass(frozen=True)
class Source:
    """An ``expect`` name of ``classify_rules.yaml`` whose entries are read from the trace."""

    name: str
    field: tuple[str, ...]
    """Where the entries go in ``expect:`` (``("end_state", "tool_called")``)."""
    entries: Callable[[Instance], Entries]
    """``(key, entry)`` pairs; of several with one key, the first is kept."""
    when_empty: str | None = None
    """A warning when the trace has no entry to assert."""


def _unapproved_mutations(instance: Instance) -> Entries:
    for a in instance.actions:
        if a.mutating is True and a.approval in (None, c.APPROVAL_SKIPPED):
            yield a.name, {"action": a.name, "approval": "approved"}


def _failed_steps(instance: Instance) -> Entries:
    steps = [w for w in instance.workflow if w.status == c.STATUS_ERROR] or instance.workflow
    for w in steps:
        yield w.name, {"step": w.name}


def _failed_tools(instance: Instance) -> Entries:
    for tc in instance.tool_calls:
        if tc.is_error:
            yield tc.name, tc.name


def _failed_actions(instance: Instance) -> Entries:
    for a in instance.actions:
        if a.status == c.STATUS_ERROR:
            yield a.name, a.name


SOURCES: tuple[Source, ...] = (
    Source("background", ("background",), _unapproved_mutations),
    Source(
        "after_call",
        ("after_call",),
        _failed_steps,
        when_empty="the after-call workflow failed without any step to assert",
    ),
    Source("end_state.tool_called", ("end_state", "tool_called"), _failed_tools),
    Source("end_state.action_done", ("end_state", "action_done"), _failed_actions),
)
"""Each mutating action that ran unapproved must be approved; each failed after-call step
(every step if none is marked failed) must run; each failed tool must be called; each
failed background action must be done."""

EXPECTED_END_STATE = "end_state"
"""The ``expect`` name of the end state passed to the import (``expected=``): its tools
and actions go to ``expect.end_state``, over the trace's own entries of the same name."""

EXPECT_NAMES = frozenset({s.name for s in SOURCES} | {EXPECTED_END_STATE})
"""The ``expect`` names a check of ``classify_rules.yaml`` may use besides a mapping."""

_BY_NAME = {s.name: s for s in SOURCES}
_END_STATE_FIELDS = (("end_state", "tool_called"), ("end_state", "action_done"))
_STRICTEST: Mapping[str, Callable[[Any, Any], Any]] = {"max_response_latency_ms": min}
"""How a literal set by two checks merges (others: the later check's value)."""


@dataclass(frozen=True)
class Expectations:
    """The fixture's call-level ``expect:``, a comment per source, and unasserted checks."""

    expect: Mapping[str, Any]
    notes: tuple[str, ...]
    unasserted: tuple[str, ...]


def parse_expected(expected: Any) -> EndState | None:
    """The expected end state passed to the import, or None; raises IncidentError."""
    from harness.evaluators.task import EndState

    if expected is None:
        return None
    try:
        return EndState.parse(expected)
    except (TypeError, ValueError) as e:
        raise IncidentError(f"expected={expected!r}: {e}", field="expected") from None


def _expected_entries(end_state: EndState, redactor: Redactor) -> dict[tuple[str, ...], Entries]:
    tools = []
    for t in end_state.tools:
        args = {
            k: redactor.redact(v, style="synthetic", count=False).text if isinstance(v, str) else v
            for k, v in t.args.items()
        }
        tools.append((t.name, {"name": t.name, "args": args} if args else t.name))
    actions = [
        (a.name, {"name": a.name, "approved": True} if a.approved else a.name)
        for a in end_state.actions
    ]
    return dict(zip(_END_STATE_FIELDS, (tools, actions), strict=True))


def derive_expectations(
    findings: Sequence[Finding],
    instance: Instance,
    end_state: EndState | None,
    redactor: Redactor,
    warnings: list[str],
) -> Expectations:
    """The call-level ``expect:`` the failed checks ask for (see the module)."""
    fields: dict[tuple[str, ...], dict[str, Any]] = {s.field: {} for s in SOURCES}
    literal: dict[str, Any] = {}
    notes: list[str] = []
    unasserted: list[str] = []
    wants_expected = False
    for f in findings:
        want = f.check.expect
        if want is None:
            unasserted.append(f.name)
            continue
        if isinstance(want, Mapping):
            for k, v in want.items():
                merge = _STRICTEST.get(k)
                literal[k] = merge(literal[k], v) if merge and k in literal else v
            notes.append(f"{', '.join(want)}: from {f.evaluator} ({f.check})")
            continue
        if want == EXPECTED_END_STATE:
            wants_expected = True
            if end_state is None:
                warnings.append(
                    f"{f.evaluator} failed but the expected end state is unknown; "
                    "pass expected= to assert it"
                )
            notes.append(f"end_state: from {f.evaluator} ({f.check})")
            continue
        source = _BY_NAME[want]
        found = fields[source.field]
        for key, entry in source.entries(instance):
            found.setdefault(key, entry)
        if not found and source.when_empty:
            warnings.append(source.when_empty)
        notes.append(f"{source.field[0]}: from {f.evaluator} ({f.check})")
    if end_state is not None and wants_expected:
        for path, entries in _expected_entries(end_state, redactor).items():
            fields[path].update(entries)
    return Expectations(_layout(fields, literal), _once(notes), _once(unasserted))


def _layout(
    fields: Mapping[tuple[str, ...], dict[str, Any]], literal: Mapping[str, Any]
) -> dict[str, Any]:
    """``expect:`` in the fixture's order: trace lists, the literals, then nested fields."""
    expect: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, entries in fields.items():
        if not entries:
            continue
        if len(path) == 1:
            expect[path[0]] = list(entries.values())
        else:
            nested.setdefault(path[0], {})[path[1]] = list(entries.values())
    expect.update(literal)
    expect.update(nested)
    return expect


def _once(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# --- the call's time limit ------------------------------------------------------------------

DEFAULT_CALL_S = 180
"""A scenario's default call timeout: a shorter incident needs no ``timeouts:``."""
MAX_CALL_S = 3600.0


def call_timeouts(turns: Sequence[CallerTurn]) -> dict[str, Any] | None:
    """``timeouts: {call_s}`` for a call longer than the default allows: its length times
    1.5 plus a minute, at most an hour; None when the default is enough."""
    times = [x for t in turns for x in (t.start, t.end, t.agent_offset) if x is not None]
    if len(times) < 2:
        return None
    duration = max(times) - min(times)
    call_s = math.ceil(min(MAX_CALL_S, duration * 1.5 + 60))  # huge times must not overflow
    return {"call_s": call_s} if call_s > DEFAULT_CALL_S else None
