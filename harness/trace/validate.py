"""Data validation at the boundary of an Instance: spans that cannot be true are quarantined.

Every Instance passes its spans through :func:`quarantine` when it is built, so an
evaluator never sees a value that cannot have been measured. What cannot be true:

===================  =================================================================
``not_a_number``     a measured attribute (below) that is a bool, a string or a list
``non_finite``       a measured attribute that is NaN or infinite
``negative``         a duration, delay or token count below zero
``out_of_range``     a probability or confidence outside [0, 1]
``end_before_start`` a span that ends before it starts
``duplicate_span``   two different spans with one (trace id, span id); identical resends
                     are not an error
``parent_cycle``     spans whose parent links form a loop
``bad_json``         tool arguments nested too deeply to read
===================  =================================================================

The caller side-file's per-turn measurements are checked the same way
(:func:`quarantine_caller`): a time or a duration that is not a finite number, or a
duration below zero, is removed. A negative ``response_latency_ms`` is kept: an agent that
talks over the caller answers before the caller has finished.

Quarantine keeps the span (the tree and the turns need it) and removes only what is false:
the bad attribute is dropped, a span ending before its start gets a zero duration, a
parent cycle is cut at its earliest span, and of two conflicting spans the richer one is
kept (:func:`harness.trace.span.prefer`). Each :class:`DataError` says which metrics it
touches (``"*"`` when it may touch any); a gate on those metrics never passes on the run
(:mod:`harness.gates.verdict`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from harness.trace import conventions as c
from harness.trace.span import Span, prefer

__all__ = [
    "ANY_METRIC",
    "CALLER_MEASURED",
    "MEASURED",
    "DataError",
    "DataErrorKind",
    "data_error_lines",
    "quarantine",
    "quarantine_caller",
]

DataErrorKind = Literal[
    "not_a_number",
    "non_finite",
    "negative",
    "out_of_range",
    "end_before_start",
    "duplicate_span",
    "parent_cycle",
    "bad_json",
]

_KINDS = frozenset(DataErrorKind.__args__)  # type: ignore[attr-defined]

ANY_METRIC = "*"
"""The metric scope of a data error that may touch any metric."""


@dataclass(frozen=True)
class _Measured:
    metrics: tuple[str, ...]
    low: float = 0.0
    high: float = math.inf


_DAY_S = 86_400.0
"""No latency or delay of a call is longer than a day (seconds, as livekit-agents writes
them): a larger value is a unit error or garbage, and would overflow milliseconds."""
_DAY_MS = _DAY_S * 1000.0
_TOKENS = 1e9
_EPOCH_MAX = 1e11
"""Epoch seconds: a caller time past the year 5000 is not a time."""

_DAY_S = 86_400.0
"""No latency or delay of a call is longer than a day (seconds, as livekit-agents writes
them): a larger value is a unit error or garbage, and would overflow milliseconds."""
_DAY_MS = _DAY_S * 1000.0
_TOKENS = 1e9
_EPOCH_MAX = 1e11
"""Epoch seconds: a caller time past the year 5000 is not a time."""

MEASURED: Mapping[str, _Measured] = {
    c.LK_E2E_LATENCY: _Measured(("e2e_latency",), 0.0, _DAY_S),
    c.LK_RESPONSE_TTFT: _Measured(("llm_ttft",), 0.0, _DAY_S),
    c.LK_RESPONSE_TTFB: _Measured(("tts_ttfb",), 0.0, _DAY_S),
    c.LK_END_OF_TURN_DELAY: _Measured(("end_of_turn_delay",), 0.0, _DAY_S),
    c.LK_TRANSCRIPTION_DELAY: _Measured(("transcription_delay",), 0.0, _DAY_S),
    c.LK_EOU_DELAY: _Measured(("end_of_turn_delay",), 0.0, _DAY_S),
    c.LK_TRANSCRIPT_CONFIDENCE: _Measured(("transcript_confidence",), 0.0, 1.0),
    c.LK_EOU_PROBABILITY: _Measured(("eou_probability",), 0.0, 1.0),
    "gen_ai.usage.input_tokens": _Measured(("llm_cost", "cost_per_call"), 0.0, _TOKENS),
    "gen_ai.usage.output_tokens": _Measured(("llm_cost", "cost_per_call"), 0.0, _TOKENS),
}
"""The span attributes evaluators read as numbers, what they feed, and their valid range."""

CALLER_MEASURED: Mapping[str, _Measured] = {
    "response_latency_ms": _Measured(("response_latency",), -_DAY_MS, _DAY_MS),
    "agent_speech_ms": _Measured((ANY_METRIC,), 0.0, _DAY_MS),
    "caller_underrun_ms": _Measured((ANY_METRIC,), 0.0, _DAY_MS),
    "barge_in_ms": _Measured((ANY_METRIC,), 0.0, _DAY_MS),
    "caller_start": _Measured((ANY_METRIC,), 0.0, _EPOCH_MAX),
    "caller_end": _Measured((ANY_METRIC,), 0.0, _EPOCH_MAX),
    "agent_onset": _Measured((ANY_METRIC,), 0.0, _EPOCH_MAX),
    "agent_offset": _Measured((ANY_METRIC,), 0.0, _EPOCH_MAX),
}
"""The caller side-file's per-turn numbers (``None`` means unmeasured), and their range."""

CALLER_SPAN = "caller"
"""The :attr:`DataError.span` of an error in the caller side-file."""


@dataclass(frozen=True)
class DataError:
    """One thing in a trace that cannot be true, and what was done about it."""

    kind: DataErrorKind
    span: str
    """The span's name."""
    span_id: str
    field: str
    """The attribute, or ``end_time``, ``span_id``, ``parent_span_id``."""
    detail: str
    metrics: tuple[str, ...] = (ANY_METRIC,)

    def describe(self) -> str:
        return f"span {self.span!r} ({self.span_id}) {self.field}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "span": self.span,
            "span_id": self.span_id,
            "field": self.field,
            "detail": self.detail,
            "metrics": list(self.metrics),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataError:
        """Read :meth:`to_dict` back; ValueError or KeyError when it is not one."""
        kind = data["kind"]
        if kind not in _KINDS:
            raise ValueError(f"kind: {kind!r} is not a data error kind")
        return cls(
            kind,
            str(data["span"]),
            str(data["span_id"]),
            str(data["field"]),
            str(data["detail"]),
            tuple(str(m) for m in data.get("metrics") or (ANY_METRIC,)),
        )


def _check_value(key: str, value: Any, rule: _Measured) -> tuple[DataErrorKind, str] | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "not_a_number", f"{value!r} is not a number"
    try:
        v = float(value)
    except OverflowError:  # an integer past the float range
        return "out_of_range", f"{value!r} is above {rule.high:g}"
    if not math.isfinite(v):
        return "non_finite", f"{value!r} is not a finite number"
    if v < rule.low:
        kind: DataErrorKind = "negative" if rule.low == 0 else "out_of_range"
        return kind, f"{value!r} is below {rule.low:g}"
    if v > rule.high:
        return "out_of_range", f"{value!r} is above {rule.high:g}"
    return None


def _check_span(s: Span) -> tuple[Span, list[DataError]]:
    errors: list[DataError] = []
    bad: list[str] = []
    for key, rule in MEASURED.items():
        if key not in s.attributes:
            continue
        found = _check_value(key, s.attributes[key], rule)
        if found is not None:
            errors.append(DataError(found[0], s.name, s.span_id, key, found[1], rule.metrics))
            bad.append(key)
    raw = s.attributes.get(c.LK_PII_FUNCTION_TOOL_ARGUMENTS)
    if isinstance(raw, str) and raw.lstrip()[:1] in ("{", "["):
        try:
            json.loads(raw)
        except RecursionError:
            errors.append(
                DataError(
                    "bad_json",
                    s.name,
                    s.span_id,
                    c.LK_PII_FUNCTION_TOOL_ARGUMENTS,
                    "JSON nested too deeply to read",
                )
            )
            bad.append(c.LK_PII_FUNCTION_TOOL_ARGUMENTS)
        except ValueError:
            pass  # not JSON: the tool call keeps the text as it is
    end = s.end_ns
    if s.end_ns < s.start_ns:
        errors.append(
            DataError(
                "end_before_start",
                s.name,
                s.span_id,
                "end_time",
                f"ends {(s.start_ns - s.end_ns) / 1e6:.3f} ms before it starts",
            )
        )
        end = s.start_ns
    if bad or end != s.end_ns:
        attrs = {k: v for k, v in s.attributes.items() if k not in bad}
        s = replace(s, attributes=attrs, end_ns=end)
    return s, errors


def _cut_cycles(spans: dict[tuple[str, str], Span]) -> list[DataError]:
    """Cut each parent loop at its earliest span (in place); one error per loop."""
    errors: list[DataError] = []
    state: dict[tuple[str, str], int] = {}  # 1 on the current path, 2 done
    for start in sorted(spans, key=lambda k: (spans[k].start_ns, k)):
        path: list[tuple[str, str]] = []
        key: tuple[str, str] | None = start
        while key is not None and key in spans and state.get(key) is None:
            state[key] = 1
            path.append(key)
            p = spans[key].parent_span_id
            key = (key[0], p) if p is not None else None
        if key is not None and state.get(key) == 1:
            loop = path[path.index(key) :]
            first = min(loop, key=lambda k: (spans[k].start_ns, k))
            s = spans[first]
            names = " → ".join(spans[k].name for k in loop)
            errors.append(
                DataError(
                    "parent_cycle",
                    s.name,
                    s.span_id,
                    "parent_span_id",
                    f"parent links loop ({names}); cut at this span, drawn as a root",
                )
            )
            spans[first] = replace(s, parent_span_id=None)
        for k in path:
            state[k] = 2
    return errors


def quarantine(spans: Iterable[Span]) -> tuple[tuple[Span, ...], tuple[DataError, ...]]:
    """The spans with what cannot be true removed (deduplicated, unsorted), and the errors."""
    errors: list[DataError] = []
    by_key: dict[tuple[str, str], Span] = {}
    conflicts: dict[tuple[str, str], int] = {}
    for raw in spans:
        s, errs = _check_span(raw)
        old = by_key.get(s.key)
        if old is None:
            by_key[s.key] = s
            errors.extend(errs)
        elif old != s:
            conflicts[s.key] = conflicts.get(s.key, 1) + 1
            by_key[s.key] = prefer(old, s)
            errors.extend(e for e in errs if e not in errors)
    for key, n in conflicts.items():
        s = by_key[key]
        errors.append(
            DataError(
                "duplicate_span",
                s.name,
                s.span_id,
                "span_id",
                f"{n} different spans share trace {key[0]} span {key[1]}; kept the richest",
            )
        )
    errors.extend(_cut_cycles(by_key))
    return tuple(by_key.values()), tuple(errors)


def quarantine_caller(
    caller: Mapping[str, Any] | None,
) -> tuple[dict[str, Any] | None, tuple[DataError, ...]]:
    """The caller side-file with impossible per-turn measurements removed, and the errors.

    Returns ``caller`` itself (not a copy) when nothing is wrong."""
    if not caller or not isinstance(caller.get("turns"), list):
        return (dict(caller) if caller is not None else None), ()
    errors: list[DataError] = []
    turns: list[Any] = []
    for pos, turn in enumerate(caller["turns"]):
        if not isinstance(turn, Mapping):
            turns.append(turn)
            continue
        bad = []
        for key, rule in CALLER_MEASURED.items():
            value = turn.get(key)
            if value is None:
                continue
            found = _check_value(key, value, rule)
            if found is not None:
                index = turn.get("index", pos)
                errors.append(
                    DataError(found[0], CALLER_SPAN, f"turn {index}", key, found[1], rule.metrics)
                )
                bad.append(key)
        turns.append({k: v for k, v in turn.items() if k not in bad} if bad else turn)
    if not errors:
        return dict(caller), ()
    return {**caller, "turns": turns}, tuple(errors)


def data_error_lines(by_call: Mapping[str, Iterable[DataError]], *, limit: int = 5) -> list[str]:
    """What a run quarantined, for its terminal summary: one count line, then up to
    ``limit`` examples, each naming its call and span."""
    found = [(cid, e) for cid, errs in by_call.items() for e in errs]
    if not found:
        return []
    calls = len({cid for cid, _ in found})
    kinds: dict[str, int] = {}
    for _, e in found:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    summary = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items()))
    lines = [
        f"data errors: {len(found)} values that cannot be true in {calls} call"
        f"{'s' if calls != 1 else ''} ({summary}), quarantined; gates on what they touch fail"
    ]
    lines.extend(f"  {cid}: {e.describe()}" for cid, e in found[:limit])
    if len(found) > limit:
        lines.append(f"  ... and {len(found) - limit} more (`harness show CALL_DIR` lists each)")
    return lines
