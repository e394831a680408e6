"""Verdicts: each gate applied to a run's (or a window's) scores."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from harness.gates.model import QUANTILES, Gate, GatesConfig
from harness.gates.statistics import statistic_ci, statistic_value
from harness.gates.store import ScoreStore

if TYPE_CHECKING:
    from harness.gates.baseline import BaselineComparison

__all__ = ["Status", "Verdict", "evaluate_gate", "evaluate_gates", "format_value"]

Status = Literal["pass", "warn", "fail", "insufficient"]
_RANK = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class Verdict:
    """One gate's outcome.

    ``value`` is the gate's statistic over the ``n`` samples that match it (None without
    samples); ``ci`` its 95 % confidence interval (see :mod:`harness.gates.sketch`; ``-inf``/``inf``
    for an end the data cannot bound; None when undefined); ``threshold`` the threshold
    crossed (fail, else warn), or for a pass the first threshold it would cross; for a
    baseline regression, the baseline value worsened by the rule's ``max_regression``.
    ``insufficient`` means fewer than ``min_samples`` samples: a warning, never a pass.
    ``quantiles`` holds p50, p90, p95 and p99 of the same samples, for the table.
    """

    gate: Gate
    status: Status
    value: float | None
    n: int
    ci: tuple[float, float] | None
    threshold: float | None
    detail: str
    unit: str | None = None
    quantiles: tuple[tuple[str, float | None], ...] = ()
    baseline: BaselineComparison | None = None
    no_trace: bool = False
    """Insufficient because calls sent no trace (the gate reads spans), not for want of
    calls: the table says "NO TRACE"."""
    data_errors: int = 0
    """Values that cannot be true (quarantined when their Instance was built) that touch
    this gate's metric: such a gate fails, whatever the rest says ("DATA ERROR")."""

    @property
    def name(self) -> str:
        return self.gate.name

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    @property
    def warning(self) -> bool:
        """Warn or insufficient samples: report it, do not fail on it."""
        return self.status in ("warn", "insufficient")


def format_value(value: float | None, unit: str | None) -> str:
    """A value in its unit, for people: ``812 ms``, ``4.1 %``, ``3``."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if unit == "ms":
        return f"{value:.0f} ms" if abs(value) < 100_000 else f"{value / 1000:.0f} s"
    if unit in ("ratio", "bool"):
        return f"{value * 100:.1f} %"
    if unit == "count":
        return f"{value:g}"
    if unit:
        return f"{value:.4g} {unit}"
    return f"{value:.4g}"


def _ci_text(ci: tuple[float, float] | None, unit: str | None) -> str:
    if ci is None:
        return ""
    return f"95 % CI [{format_value(ci[0], unit)}, {format_value(ci[1], unit)}]"


def evaluate_gate(gate: Gate, store: ScoreStore, baseline: ScoreStore | None = None) -> Verdict:
    """Apply ``gate`` to the scores in ``store`` (and its baseline rule to ``baseline``).

    A gate whose metric is touched by data errors (see :mod:`harness.trace.validate`)
    fails: a gate never passes on data that cannot be true."""
    v = _evaluate(gate, store, baseline)
    errors = store.data_errors_for(gate.metric)
    if not errors:
        return v
    calls = store.data_error_calls
    detail = (
        f"{errors} value{'s' if errors != 1 else ''} that cannot be true in "
        f"{calls} call{'s' if calls != 1 else ''} touch {gate.metric} (quarantined: "
        "`harness show CALL_DIR` names each); a gate never passes on them. Without them: "
        + v.detail
    )
    return replace(v, status="fail", detail=detail, data_errors=errors)


def _evaluate(gate: Gate, store: ScoreStore, baseline: ScoreStore | None) -> Verdict:
    dist = store.select(gate.metric, gate.span, gate.layer)
    unit = gate.unit or store.unit(gate.metric)
    n = dist.count
    value = statistic_value(dist, gate.statistic)
    ci = statistic_ci(dist, gate.statistic) if n else None
    quantiles = tuple((k, dist.quantile(q) if n else None) for k, q in QUANTILES.items())
    first = gate.warn if gate.warn is not None else gate.fail
    where = "" if gate.where == "all" else f" ({gate.where})"

    def verdict(
        status: Status,
        threshold: float | None,
        detail: str,
        cmp: BaselineComparison | None = None,
        no_trace: bool = False,
    ) -> Verdict:
        return Verdict(
            gate, status, value, n, ci, threshold, detail, unit, quantiles, cmp, no_trace
        )

    # a gate on a span type or a layer reads traces: calls without one cannot feed it
    untraced = store.untraced_calls if (gate.span or gate.layer) else 0
    no_trace_text = (
        f"no trace from the agent in {untraced} of {store.calls} calls (the call table "
        "says why and how to fix it)"
    )
    if n == 0:
        if untraced:
            return verdict(
                "insufficient",
                first,
                f"no samples of {gate.metric}{where}: {no_trace_text}",
                no_trace=True,
            )
        return verdict(
            "insufficient",
            first,
            f"no samples of {gate.metric}{where}; need {gate.min_samples}",
        )
    shown = f"{gate.statistic} = {format_value(value, unit)}"
    if n < gate.min_samples:
        would = ""
        assert value is not None
        if gate.crossed(value, gate.fail):
            would = f"; {shown} would fail"
        elif gate.crossed(value, gate.warn):
            would = f"; {shown} would warn"
        short = f"; {no_trace_text}" if untraced else ""
        return verdict(
            "insufficient",
            first,
            f"insufficient samples: n={n} < min_samples={gate.min_samples}{would}{short}",
        )

    assert value is not None
    sign = ">" if gate.direction == "above" else "<"
    if gate.crossed(value, gate.fail):
        status: Status = "fail"
        threshold = gate.fail
        detail = f"{shown} {sign} fail {format_value(gate.fail, unit)}"
    elif gate.crossed(value, gate.warn):
        status, threshold = "warn", gate.warn
        detail = f"{shown} {sign} warn {format_value(gate.warn, unit)}"
    else:
        status, threshold = "pass", first
        detail = shown
        if (
            ci is not None
            and first is not None
            and gate.crossed(ci[1] if gate.direction == "above" else ci[0], first)
        ):
            detail += (
                f"; its {_ci_text(ci, unit)} reaches {format_value(first, unit)}: "
                "more calls would settle it"
            )
    if ci is not None and status != "pass":
        detail += f" ({_ci_text(ci, unit)}, n={n})"

    cmp = None
    if gate.baseline is not None and baseline is not None:
        from harness.gates.baseline import compare

        cmp = compare(gate, store, baseline)
        if cmp is not None:
            detail += f"; baseline: {cmp.detail}"
            if cmp.regressed and _RANK[gate.baseline.severity] > _RANK[status]:
                status = gate.baseline.severity
                # the limit the run crossed: the baseline value worsened by max_regression
                assert cmp.baseline is not None
                step = abs(cmp.baseline) * cmp.limit
                threshold = cmp.baseline + (step if gate.direction == "above" else -step)
    return verdict(status, threshold, detail, cmp)


def evaluate_gates(
    gates: GatesConfig | Iterable[Gate], store: ScoreStore, baseline: ScoreStore | None = None
) -> list[Verdict]:
    """One :class:`Verdict` per gate, in the gates' order. A gate that only compares with
    a baseline (:attr:`Gate.baseline_only`) is left out when no ``baseline`` is given: it
    has nothing to say, and a "pass" would be a lie."""
    return [
        evaluate_gate(g, store, baseline)
        for g in gates
        if baseline is not None or not g.baseline_only
    ]
