"""Baselines: a saved run's score distributions, and comparing a new run against it.

A gate with a ``baseline:`` rule (``max_regression: 20%``) says "the statistic must not get
worse by more than 20 % of its baseline value". A change is flagged only when, in addition,
a one-sided Mann–Whitney U test (``scipy.stats.mannwhitneyu``) on the two runs' samples is
significant at the rule's ``alpha`` (0.05): a rank test looks at every sample, so one noisy
call that moves a tail percentile cannot flag a regression on its own.

The samples are the exact values, kept while a series has at most 2 000 of them; beyond
that, the sketch's bucket values (within the sketch's relative accuracy).

The file is JSON: ``{"format": "harness.gates.baseline/1", "created_at": ..., "meta": {...},
"scores": <ScoreStore.to_dict()>}``, written atomically.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scipy import stats

from harness.call.rundir import NAMES
from harness.core.errors import ScenarioError
from harness.core.files import atomic_write
from harness.gates.model import Gate
from harness.gates.statistics import statistic_value
from harness.gates.store import ScoreStore

if TYPE_CHECKING:
    from harness.gates.scoring import PathScores

__all__ = [
    "BaselineComparison",
    "BaselineError",
    "compare",
    "load_baseline",
    "save_baseline",
    "save_run_baseline",
]

_FORMAT = "harness.gates.baseline/1"


class BaselineError(ScenarioError):
    """A baseline file that cannot be read."""


@dataclass(frozen=True)
class BaselineComparison:
    """How a run's statistic compares with the baseline's, for one gate.

    ``change`` is the relative worsening ``(current − baseline) / |baseline|`` for a gate
    whose bad direction is ``above`` (the sign flipped for ``below``): 0.25 means 25 % worse,
    negative means better; ``inf`` when the baseline value is 0 and the run is worse.
    ``regressed`` is ``change > limit`` **and** ``p_value < alpha``.
    """

    gate: str
    statistic: str
    current: float | None
    baseline: float | None
    change: float | None
    limit: float
    p_value: float | None
    alpha: float
    n_current: int
    n_baseline: int
    regressed: bool
    detail: str


def save_baseline(
    store: ScoreStore, path: str | os.PathLike[str], *, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``store`` as a baseline file (atomically); returns the path."""
    p = Path(path)
    doc = {
        "format": _FORMAT,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "meta": dict(meta or {}),
        "scores": store.to_dict(),
    }
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    atomic_write(p, text)
    return p


def save_run_baseline(
    run: str | os.PathLike[str], path: str | os.PathLike[str]
) -> tuple[Path, PathScores]:
    """Score every call of a saved run (:func:`harness.gates.scoring.evaluate_path`: a call's
    unreadable artifact costs that call what it holds, not the run) and save the Scores as a
    baseline. Returns the file and what was scored (its :meth:`~PathScores.lines` say what
    could not be read). :class:`BaselineError` when the run holds no saved call."""
    from harness.gates.scoring import evaluate_path

    result = evaluate_path(run)
    if result.calls == 0:
        raise BaselineError(f"no saved instances ({NAMES.trace}) found", file=run)
    meta = {
        "source": str(run),
        "calls": result.calls,
        "artifacts_unread": result.artifact_count,
        "data_error_calls": len(result.data_errors),
    }
    return save_baseline(result.store, path, meta=meta), result


def load_baseline(path: str | os.PathLike[str]) -> ScoreStore:
    """The ScoreStore of a baseline file; :class:`BaselineError` names the problem."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise BaselineError(f"cannot read baseline: {e.strerror or e}", file=p) from None
    except ValueError as e:
        raise BaselineError(f"not JSON: {e}", file=p) from None
    except RecursionError:
        raise BaselineError("not a baseline: JSON nested too deeply", file=p) from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise BaselineError(f"not a baseline file (expected format {_FORMAT!r})", file=p)
    try:
        return ScoreStore.from_dict(doc.get("scores") or {})
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        field, reason = _split_field(str(e))
        raise BaselineError(reason, file=p, field=field) from None


def _split_field(message: str) -> tuple[str, str]:
    """``series[3].distribution: sketch.positive[2]: why`` → the field path under ``scores``
    (``scores.series[3].distribution.sketch.positive[2]``) and the reason."""
    parts = message.split(": ")
    path = ["scores"]
    while len(parts) > 1 and parts[0] and " " not in parts[0]:
        path.append(parts.pop(0))
    return ".".join(path), ": ".join(parts)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def compare(gate: Gate, current: ScoreStore, baseline: ScoreStore) -> BaselineComparison | None:
    """Compare ``current`` with ``baseline`` under ``gate.baseline``; None when the gate has
    no baseline rule."""
    rule = gate.baseline
    if rule is None:
        return None
    statistic = rule.statistic or gate.statistic
    cur = current.select(gate.metric, gate.span, gate.layer)
    base = baseline.select(gate.metric, gate.span, gate.layer)
    cur_v = statistic_value(cur, statistic)
    base_v = statistic_value(base, statistic)

    def result(
        change: float | None, p: float | None, regressed: bool, detail: str
    ) -> BaselineComparison:
        return BaselineComparison(
            gate=gate.name,
            statistic=statistic,
            current=cur_v,
            baseline=base_v,
            change=change,
            limit=rule.max_regression,
            p_value=p,
            alpha=rule.alpha,
            n_current=cur.count,
            n_baseline=base.count,
            regressed=regressed,
            detail=detail,
        )

    if cur_v is None or base_v is None:
        which = "baseline" if base_v is None else "this run"
        return result(None, None, False, f"no samples of {gate.metric} in {which}; not compared")

    worse = cur_v - base_v if gate.direction == "above" else base_v - cur_v
    if base_v != 0:
        change = worse / abs(base_v)
    else:
        change = 0.0 if worse == 0 else math.copysign(math.inf, worse)
    alternative = "greater" if gate.direction == "above" else "less"
    x, y = cur.samples(), base.samples()
    if len(set(x) | set(y)) <= 1:
        p = 1.0  # every sample the same: nothing to rank
    else:
        p = float(stats.mannwhitneyu(x, y, alternative=alternative, method="auto").pvalue)
        if math.isnan(p):
            p = 1.0
    beyond = change > rule.max_regression
    significant = p < rule.alpha
    regressed = beyond and significant
    summary = (
        f"{statistic} {_fmt(cur_v)} vs baseline {_fmt(base_v)} "
        f"({change:+.1%} {'worse' if change > 0 else 'change'}, limit {rule.max_regression:.0%}); "
        f"Mann-Whitney U one-sided p={p:.3g} (alpha {rule.alpha:g}, n={cur.count} vs {base.count})"
    )
    if regressed:
        verdict = "regressed"
    elif beyond:
        verdict = "beyond the limit but not significant: not flagged"
    else:
        verdict = "within the limit"
    return result(change, p, regressed, f"{summary}: {verdict}")
