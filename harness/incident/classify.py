"""Which layer failed on a production call, and how bad it is.

Two tables, both data (``classify_rules.yaml``, documented in ``docs/incidents.md``):

- **checks** turn Scores into failures: ``loop_detected >= 1`` is the failed check ``loop``
  of the evaluator ``loops``; each check also says what the replay should assert (read by
  :mod:`harness.incident.expect`);
- **rules**, ordered from SEV-1 to SEV-3, map the set of failed checks to a failing layer,
  a severity and a one-line rationale. The first rule that holds wins.

Besides the built-in evaluators, :class:`IncidentSignals` scores what only matters for
classification: PII the agent spoke, failed intents and background actions, a session that
ended in error, the lowest transcript confidence.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import yaml

from harness.evaluators.base import UNIT_COUNT, UNIT_RATIO, BaseEvaluator, MetricInfo, Score
from harness.incident.errors import IncidentError
from harness.incident.expect import EXPECT_NAMES
from harness.incident.redact import Redactor, is_national_id
from harness.scenario.model import FailingLayer
from harness.trace import conventions as c

if TYPE_CHECKING:
    from harness.trace.instance import Instance

__all__ = [
    "LAYERS",
    "RULES_FILE",
    "SEVERITIES",
    "Check",
    "Classification",
    "Finding",
    "IncidentSignals",
    "Rule",
    "RuleTable",
    "classify",
    "find_failures",
    "load_rules",
]

RULES_FILE = Path(__file__).with_name("classify_rules.yaml")

LAYERS: tuple[str, ...] = get_args(FailingLayer)
"""The failing layers an incident can be given (the scenario schema's own list)."""

SEVERITIES: tuple[str, ...] = ("SEV-1", "SEV-2", "SEV-3")

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
}
# which end of the values is the worst, by comparison
_WORST: dict[str, Callable[[Iterable[float]], float]] = {
    ">": max,
    ">=": max,
    "<": min,
    "<=": min,
    "==": max,
}
INTENT_FAILED_OUTCOMES = frozenset(
    {"error", "failed", "failure", "fail", "abandoned", "timeout", "timed_out", "unresolved"}
)
"""``intent.outcome`` values (case-insensitive) that count as a failed intent."""


@dataclass(frozen=True)
class Check:
    """A failure: a Score named ``metric`` ``op`` ``threshold`` (e.g. ``loop_detected >= 1``)."""

    name: str
    metric: str
    op: str
    threshold: float
    evaluator: str
    expect: str | Mapping[str, Any] | None = None

    def fails(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {_fmt(self.threshold)}"


@dataclass(frozen=True)
class Finding:
    """One failed check on the call: the worst value, where, and how many Scores failed."""

    check: Check
    value: float
    unit: str
    turn: int | None
    layer: str | None
    detail: str
    count: int = 1

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def evaluator(self) -> str:
        return self.check.evaluator

    def describe(self) -> str:
        where = f" (turn {self.turn})" if self.turn is not None else ""
        more = f", {self.count} values" if self.count > 1 else ""
        unit = f" {self.unit}" if self.unit in ("ms",) else ""
        return (
            f"{self.evaluator}: {self.check.metric} = {_fmt(self.value)}{unit}{where}"
            f" ({self.check.op} {_fmt(self.check.threshold)}{more})"
        )


@dataclass(frozen=True)
class Rule:
    """``any``: one of these checks failed; ``all``: every group has a failed check."""

    name: str
    layer: str
    severity: str
    rationale: str
    any_of: tuple[str, ...] = ()
    all_of: tuple[tuple[str, ...], ...] = ()
    always: bool = False

    def matches(self, failed: set[str]) -> bool:
        if self.always:
            return True
        if self.any_of and not failed.intersection(self.any_of):
            return False
        return all(failed.intersection(group) for group in self.all_of)


@dataclass(frozen=True)
class RuleTable:
    checks: tuple[Check, ...]
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Classification:
    """The incident's failing layer and severity, the rule that decided them, and why."""

    failing_layer: str
    severity: str
    rule: str
    rationale: str
    findings: tuple[Finding, ...] = field(default=())

    @property
    def failed_evaluators(self) -> tuple[str, ...]:
        """Evaluators with a failed check, in table order, each once."""
        return tuple(dict.fromkeys(f.evaluator for f in self.findings))


def _fmt(value: float) -> str:
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return f"{value:.3g}"


# --- loading ----------------------------------------------------------------------------------


def _names(value: Any, where: str, path: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise IncidentError(
        f"expected a check name or a list of them, got {value!r}", file=path, field=where
    )


def parse_rules(data: Any, path: Path = RULES_FILE) -> RuleTable:
    """A :class:`RuleTable` from the YAML structure of ``classify_rules.yaml``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("checks"), list):
        raise IncidentError("expected a mapping with `checks:` and `rules:`", file=path)
    checks = []
    for i, raw in enumerate(data["checks"]):
        where = f"checks[{i}]"
        if not isinstance(raw, Mapping):
            raise IncidentError("a check is a mapping", file=path, field=where)
        unknown = set(raw) - {"name", "metric", "op", "threshold", "evaluator", "expect"}
        if unknown:
            raise IncidentError(f"unknown key(s) {sorted(unknown)}", file=path, field=where)
        try:
            check = Check(
                name=str(raw["name"]),
                metric=str(raw["metric"]),
                op=str(raw["op"]),
                threshold=float(raw["threshold"]),
                evaluator=str(raw["evaluator"]),
                expect=raw.get("expect"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise IncidentError(f"bad check: {e}", file=path, field=where) from None
        if check.op not in _OPS:
            raise IncidentError(
                f"op {check.op!r}: one of {', '.join(_OPS)}", file=path, field=where
            )
        if not (
            check.expect is None
            or isinstance(check.expect, Mapping)
            or check.expect in EXPECT_NAMES
        ):
            raise IncidentError(
                f"expect {check.expect!r}: a mapping or one of {sorted(EXPECT_NAMES)}",
                file=path,
                field=where,
            )
        checks.append(check)
    known = {ch.name for ch in checks}
    rules = []
    last = 0
    if not isinstance(data.get("rules"), list) or not data["rules"]:
        raise IncidentError("`rules:` must be a non-empty list", file=path)
    for i, raw in enumerate(data["rules"]):
        where = f"rules[{i}]"
        if not isinstance(raw, Mapping):
            raise IncidentError("a rule is a mapping", file=path, field=where)
        unknown = set(raw) - {"name", "any", "all", "always", "layer", "severity", "rationale"}
        if unknown:
            raise IncidentError(f"unknown key(s) {sorted(unknown)}", file=path, field=where)
        any_of = _names(raw["any"], f"{where}.any", path) if "any" in raw else ()
        all_of = tuple(_names(g, f"{where}.all", path) for g in raw.get("all") or ())
        always = raw.get("always") is True
        if not (any_of or all_of or always):
            raise IncidentError("needs `any:`, `all:` or `always: true`", file=path, field=where)
        for name in (*any_of, *(n for g in all_of for n in g)):
            if name not in known:
                raise IncidentError(f"no check named {name!r}", file=path, field=where)
        layer, severity = raw.get("layer"), raw.get("severity")
        if layer not in LAYERS:
            raise IncidentError(
                f"layer {layer!r}: one of {', '.join(LAYERS)}", file=path, field=f"{where}.layer"
            )
        if severity not in SEVERITIES:
            raise IncidentError(
                f"severity {severity!r}: one of {', '.join(SEVERITIES)}",
                file=path,
                field=f"{where}.severity",
            )
        rank = SEVERITIES.index(severity)
        if rank < last:
            raise IncidentError(
                f"rules must be ordered from SEV-1 to SEV-3; {severity} comes after "
                f"{SEVERITIES[last]}",
                file=path,
                field=where,
            )
        last = rank
        rules.append(
            Rule(
                name=str(raw.get("name") or f"rule{i}"),
                layer=layer,
                severity=severity,
                rationale=str(raw.get("rationale") or ""),
                any_of=any_of,
                all_of=all_of,
                always=always,
            )
        )
    if not rules[-1].always:
        raise IncidentError("the last rule must be `always: true`", file=path, field="rules")
    return RuleTable(tuple(checks), tuple(rules))


@cache
def _default_rules() -> RuleTable:
    return parse_rules(yaml.safe_load(RULES_FILE.read_text(encoding="utf-8")), RULES_FILE)


def load_rules(path: str | Path | None = None) -> RuleTable:
    """The rule table from ``path`` (default: the built-in ``classify_rules.yaml``)."""
    if path is None:
        return _default_rules()
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise IncidentError(f"cannot read the rules: {e}", file=p) from None
    return parse_rules(data, p)


# --- findings and classification ----------------------------------------------------------


def find_failures(scores: Iterable[Score], table: RuleTable | None = None) -> list[Finding]:
    """Each check that one or more Scores fail, in table order (one Finding per check row)."""
    table = table or load_rules()
    by_metric: dict[str, list[Score]] = {}
    for s in scores:
        by_metric.setdefault(s.name, []).append(s)
    out = []
    for check in table.checks:
        failing = [s for s in by_metric.get(check.metric, ()) if check.fails(s.value)]
        if not failing:
            continue
        worst_value = _WORST[check.op](s.value for s in failing)
        worst = next(s for s in failing if s.value == worst_value)
        out.append(
            Finding(
                check=check,
                value=worst.value,
                unit=worst.unit,
                turn=worst.turn,
                layer=worst.layer,
                detail=worst.detail,
                count=len(failing),
            )
        )
    return out


def classify(findings: Sequence[Finding], table: RuleTable | None = None) -> Classification:
    """The first rule of the table that the failed checks satisfy."""
    table = table or load_rules()
    failed = {f.name for f in findings}
    rule = next(r for r in table.rules if r.matches(failed))
    return Classification(
        failing_layer=rule.layer,
        severity=rule.severity,
        rule=rule.name,
        rationale=rule.rationale,
        findings=tuple(findings),
    )


# --- the incident's own signals -------------------------------------------------------------


class IncidentSignals(BaseEvaluator):
    """Scores the built-in evaluators leave out, used by the classification table.

    - ``pii_exposed`` (count): agent utterances that contain a card number (Luhn) or a
      national-id number (SSN pattern);
    - ``intents_failed`` (count): intent spans whose ``intent.outcome`` is one of
      :data:`INTENT_FAILED_OUTCOMES` or whose status is error;
    - ``actions_failed`` (count): background actions in error status;
    - ``session_errors`` (count): ``agent_session`` / ``job_entrypoint`` spans in error;
    - ``transcript_confidence_min`` (ratio): the lowest ``lk.transcript_confidence``.

    Counts are scored only when there is something to count (an intent span, an action, a
    session span), so an instance without them fails nothing.
    """

    name = "incident_signals"
    metrics = (
        MetricInfo("pii_exposed", UNIT_COUNT, "agent utterances with a card or national id"),
        MetricInfo("intents_failed", UNIT_COUNT, "intents that ended in failure"),
        MetricInfo("actions_failed", UNIT_COUNT, "background actions in error status"),
        MetricInfo("session_errors", UNIT_COUNT, "agent sessions that ended in error"),
        MetricInfo("transcript_confidence_min", UNIT_RATIO, "lowest transcript confidence"),
    )

    def evaluate(self, instance: Instance) -> list[Score]:
        out: list[Score] = []
        detector = Redactor()
        exposed: list[int] = []
        for t in instance.turns:
            texts = [
                a.attributes.get(c.LK_PII_RESPONSE_TEXT)
                for a in t.agent_turns
                if isinstance(a.attributes.get(c.LK_PII_RESPONSE_TEXT), str)
            ] or ([t.agent_said] if t.agent_said else [])
            for text in texts:
                if any(
                    m.kind == "CARD" or (m.kind == "ID" and is_national_id(text[m.start : m.end]))
                    for m in detector.find(text)
                ):
                    exposed.append(t.index)
        if instance.turns:
            out.append(
                Score(
                    "pii_exposed",
                    float(len(exposed)),
                    UNIT_COUNT,
                    layer=c.LAYER_CONVERSATIONAL,
                    turn=exposed[0] if exposed else None,
                    detail=f"in turns {exposed}" if exposed else "",
                )
            )
        intents = [s for s in instance.spans if c.INTENT_NAME in s.attributes]
        if intents:
            bad = [
                s
                for s in intents
                if s.is_error
                or str(s.attributes.get(c.INTENT_OUTCOME, "")).lower() in INTENT_FAILED_OUTCOMES
            ]
            out.append(
                Score(
                    "intents_failed",
                    float(len(bad)),
                    UNIT_COUNT,
                    layer=bad[0].layer if bad else None,
                    detail=", ".join(
                        f"{s.attributes.get(c.INTENT_NAME)}: "
                        f"{s.attributes.get(c.INTENT_OUTCOME) or s.status}"
                        for s in bad
                    ),
                )
            )
        if instance.actions:
            bad_actions = [a for a in instance.actions if a.status == c.STATUS_ERROR]
            out.append(
                Score(
                    "actions_failed",
                    float(len(bad_actions)),
                    UNIT_COUNT,
                    layer=c.LAYER_BACKGROUND,
                    detail=", ".join(
                        f"{a.name}: {a.status_message}".rstrip(": ") for a in bad_actions
                    ),
                )
            )
        sessions = [
            s for s in instance.spans if s.name in (c.SPAN_AGENT_SESSION, c.SPAN_JOB_ENTRYPOINT)
        ]
        if sessions:
            bad_sessions = [s for s in sessions if s.is_error]
            out.append(
                Score(
                    "session_errors",
                    float(len(bad_sessions)),
                    UNIT_COUNT,
                    layer=c.LAYER_CONVERSATIONAL,
                    detail="; ".join(
                        f"{s.name}: {s.status_message}".rstrip(": ") for s in bad_sessions
                    ),
                )
            )
        confidences = [
            (float(v), i)
            for i, t in enumerate(instance.turns)
            if t.user_turn is not None
            and isinstance(v := t.user_turn.attributes.get(c.LK_TRANSCRIPT_CONFIDENCE), int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
        ]
        if confidences:
            low, pos = min(confidences)
            out.append(
                Score(
                    "transcript_confidence_min",
                    low,
                    UNIT_RATIO,
                    span=c.SPAN_USER_TURN,
                    layer=c.LAYER_CONVERSATIONAL,
                    turn=instance.turns[pos].index,
                )
            )
        return out
