"""The value of a gate statistic over a distribution, and its confidence interval."""

from __future__ import annotations

from harness.gates.model import QUANTILES
from harness.gates.sketch import DEFAULT_CONFIDENCE, Distribution

__all__ = ["statistic_ci", "statistic_value"]


def statistic_value(dist: Distribution, statistic: str) -> float | None:
    """p50/p90/p95/p99 (the inverse empirical CDF, see :mod:`harness.gates.sketch`), mean, rate
    (the share of non-zero values), min or max of ``dist``; None when it is empty."""
    if not dist.count:
        return None
    q = QUANTILES.get(statistic)
    if q is not None:
        return dist.quantile(q)
    if statistic == "mean":
        return dist.mean
    if statistic == "rate":
        return dist.rate
    if statistic == "min":
        return dist.min
    if statistic == "max":
        return dist.max
    raise ValueError(f"unknown statistic {statistic!r}")


def statistic_ci(
    dist: Distribution, statistic: str, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float] | None:
    """The 95 % interval of the statistic: distribution-free order statistics for
    percentiles, Wilson for a rate, Student t (from exact values) for a mean; None for min
    and max, and when it cannot be computed."""
    q = QUANTILES.get(statistic)
    if q is not None:
        return dist.quantile_ci(q, confidence)
    if statistic == "rate":
        return dist.rate_ci(confidence)
    if statistic == "mean":
        return dist.mean_ci(confidence)
    return None
