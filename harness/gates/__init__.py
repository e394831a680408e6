"""Gates: percentile (and other) thresholds over the Scores of many calls.

The same gates file decides a pytest session in CI, alerts over a rolling window in
monitoring, and is exported as Prometheus alerting rules. Percentiles come from mergeable
sketches (:mod:`harness.gates.sketch`), so xdist workers and monitoring windows combine exactly,
and each :class:`Verdict` says how many samples it rests on and how sure it is.

Typical use::

    from harness.gates import ScoreStore, discover_gates, evaluate_gates, render_table

    store = ScoreStore()
    for instance in instances:
        store.add(evaluate(instance))
    verdicts = evaluate_gates(discover_gates(), store)
    print(render_table(verdicts))
"""

from harness.gates.model import (
    DEFAULT_GATES_PATH,
    QUANTILES,
    BaselineRule,
    Gate,
    GatesConfig,
    GatesFileError,
    default_gates,
    discover_gates,
    duration_seconds,
    load_gates,
    parse_gates,
)
from harness.gates.prometheus import (
    PromSeries,
    prometheus_rules,
    prometheus_series,
    write_prometheus_rules,
)
from harness.gates.statistics import statistic_ci, statistic_value
from harness.gates.store import ScoreStore, SeriesKey
from harness.gates.table import render_table
from harness.gates.verdict import Status, Verdict, evaluate_gate, evaluate_gates, format_value

__all__ = [
    "DEFAULT_GATES_PATH",
    "QUANTILES",
    "BaselineRule",
    "Gate",
    "GatesConfig",
    "GatesFileError",
    "PromSeries",
    "ScoreStore",
    "SeriesKey",
    "Status",
    "Verdict",
    "default_gates",
    "discover_gates",
    "duration_seconds",
    "evaluate_gate",
    "evaluate_gates",
    "format_value",
    "load_gates",
    "parse_gates",
    "prometheus_rules",
    "prometheus_series",
    "render_table",
    "statistic_ci",
    "statistic_value",
    "write_prometheus_rules",
]
