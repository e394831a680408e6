"""Mergeable percentile sketches and distribution-free confidence intervals.

:class:`DDSketch` is the sketch of Masson, Rim and Lee (VLDB 2019) with an unbounded sparse
store: no bucket is ever collapsed, so the guarantee below always holds.

**Guarantee.** With relative accuracy ``α`` (default 1 %), :meth:`DDSketch.quantile` returns a
value within ``α·|x|`` of ``x``, the exact ``q``-quantile of everything added, for every
non-zero finite value (values smaller in magnitude than ``2.2e-308`` count as zero).

**Which quantile.** The ``q``-quantile of ``n`` values is the inverse of their empirical
distribution function: the smallest value with at least ``q·n`` of the values at or below it,
the order statistic of 1-based rank ``⌈q·n⌉`` (the minimum for ``q = 0``; numpy's
``method="inverted_cdf"``; see :func:`quantile_rank`). It is always one of the values, never
an interpolation between two, so the guarantee can be stated against it; and for a tail it
is the conservative choice (the p99 of 20 values is their maximum).

**Merging is exact.** Two sketches with the same ``α`` merge by adding bucket counts, so the
merge of the sketches of the parts *is* the sketch of the whole: pytest-xdist workers and
monitoring windows combine without any further error.

:class:`Distribution` keeps a sketch plus the exact values while there are at most
``exact_limit`` of them (2 000 by default). Its percentiles, mean, min, max and rate are exact
while the values are kept and come from the sketch afterwards; both serialise to JSON.

**Confidence intervals.** :func:`order_statistic_ci` gives the distribution-free interval for
a quantile: the ranks ``(l, u)`` of two order statistics with ``P(X₍ₗ₎ ≤ ξ_q ≤ X₍ᵤ₎) ≥ 95 %``,
from the binomial distribution of the number of values below ``ξ_q`` (equal tails, each at most
2.5 %). With exact values the interval is those two values; from the sketch it is the sketch's
values at those ranks, each widened outwards by ``α`` so the interval still covers. When ``n``
is too small for a bound (the p99 of 50 values has no finite upper bound at 95 %), that end is
``-inf`` or ``inf``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from scipy import stats

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_EXACT_LIMIT",
    "DEFAULT_RELATIVE_ACCURACY",
    "DDSketch",
    "Distribution",
    "exact_quantile",
    "order_statistic_ci",
    "quantile_rank",
    "wilson_ci",
]

DEFAULT_RELATIVE_ACCURACY = 0.01
DEFAULT_EXACT_LIMIT = 2000
DEFAULT_CONFIDENCE = 0.95
_SKETCH_FORMAT = "harness.ddsketch/1"
_DIST_FORMAT = "harness.distribution/1"

# Bounds on sizes read from a file: a sketch or distribution beyond them is refused rather
# than allocated (a real run stays far below every one of them).
MAX_BUCKETS = 100_000  # buckets per store (positive or negative)
MAX_COUNT = 10_000_000  # values in one sketch
MAX_EXACT = 100_000  # exact values kept in one distribution


def _finite(value: Any, what: str = "value") -> float:
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return x


def _check_q(q: float) -> float:
    q = float(q)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q={q!r}: a quantile is between 0 and 1 (p95 is q=0.95)")
    return q


def quantile_rank(n: int, q: float) -> int:
    """The 0-based rank of the ``q``-quantile among ``n`` sorted values: ``⌈q·n⌉ − 1``
    (at least 0). ``q·n`` within 1e-9 of an integer counts as that integer, so decimal
    fractions such as ``0.07 · 100`` land on rank 6, not 7."""
    q = _check_q(q)
    if n <= 0:
        raise ValueError(f"n={n!r}: no rank among no values")
    x = q * n
    nearest = round(x)
    k = nearest if abs(x - nearest) < 1e-9 else math.ceil(x)
    return min(max(k - 1, 0), n - 1)


def exact_quantile(values: Iterable[float], q: float) -> float | None:
    """The exact ``q``-quantile as this module defines it (:func:`quantile_rank` of the
    sorted values); None when there are no values."""
    q = _check_q(q)
    ordered = sorted(values)
    if not ordered:
        return None
    return float(ordered[quantile_rank(len(ordered), q)])


class DDSketch:
    """A DDSketch with relative accuracy ``relative_accuracy`` (α) and no bucket limit.

    Bucket ``k`` holds the values in ``(γ^(k−1), γ^k]`` with ``γ = (1+α)/(1−α)`` and answers
    with ``2γ^k/(γ+1)``, which is within ``α`` of every value in the bucket. Negative values
    use a mirrored store; zeros have their own counter. ``count``, ``sum``, ``min`` and
    ``max`` are exact.
    """

    __slots__ = (
        "_gamma",
        "_log_gamma",
        "_max_indexable",
        "_min_indexable",
        "_neg",
        "_pos",
        "count",
        "max",
        "min",
        "relative_accuracy",
        "sum",
        "zero_count",
    )

    def __init__(self, relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> None:
        a = float(relative_accuracy)
        if not 0.0 < a < 1.0:
            raise ValueError(
                f"relative_accuracy={relative_accuracy!r}: must be between 0 and 1 (0.01 for 1 %)"
            )
        self.relative_accuracy = a
        self._gamma = (1.0 + a) / (1.0 - a)
        self._log_gamma = math.log(self._gamma)
        self._min_indexable = sys.float_info.min * self._gamma
        self._max_indexable = sys.float_info.max / self._gamma
        self._pos: dict[int, int] = {}
        self._neg: dict[int, int] = {}
        self.zero_count = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    # --- adding ---

    def _key(self, x: float) -> int:
        return math.ceil(math.log(x) / self._log_gamma)

    def _value(self, key: int) -> float:
        return 2.0 * math.exp(key * self._log_gamma) / (self._gamma + 1.0)

    def add(self, value: float, count: int = 1) -> None:
        """Add ``value`` ``count`` times. Raises ValueError for NaN, infinities and values
        beyond ``±1.7e308/γ``."""
        x = _finite(value)
        if count < 0 or int(count) != count:
            raise ValueError(f"count={count!r}: must be a non-negative integer")
        count = int(count)
        if count == 0:
            return
        magnitude = abs(x)
        if magnitude > self._max_indexable:
            raise ValueError(f"value={value!r} is too large for the sketch")
        if magnitude < self._min_indexable:
            self.zero_count += count
        elif x > 0:
            k = self._key(x)
            self._pos[k] = self._pos.get(k, 0) + count
        else:
            k = self._key(-x)
            self._neg[k] = self._neg.get(k, 0) + count
        self.count += count
        self.sum += x * count
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x

    def extend(self, values: Iterable[float]) -> None:
        for v in values:
            self.add(v)

    def merge(self, other: DDSketch) -> None:
        """Add every value of ``other`` to this sketch (in place). Both must share α."""
        if not isinstance(other, DDSketch):
            raise TypeError(f"cannot merge a DDSketch with {type(other).__name__}")
        if not math.isclose(self.relative_accuracy, other.relative_accuracy, rel_tol=1e-12):
            raise ValueError(
                f"cannot merge sketches of relative accuracy {self.relative_accuracy} and "
                f"{other.relative_accuracy}: build both with the same α"
            )
        for k, c in other._pos.items():
            self._pos[k] = self._pos.get(k, 0) + c
        for k, c in other._neg.items():
            self._neg[k] = self._neg.get(k, 0) + c
        self.zero_count += other.zero_count
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def copy(self) -> DDSketch:
        out = DDSketch(self.relative_accuracy)
        out.merge(self)
        return out

    # --- reading ---

    @property
    def nonzero_count(self) -> int:
        return self.count - self.zero_count

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def value_at_rank(self, rank: int) -> float | None:
        """The sketch's estimate of the order statistic at 0-based ``rank`` (within α of it;
        exact for the first and the last). None when the sketch is empty."""
        if self.count == 0:
            return None
        r = int(rank)
        if not 0 <= r < self.count:
            raise ValueError(f"rank={rank!r} outside 0..{self.count - 1}")
        if r == 0:
            return self.min
        if r == self.count - 1:
            return self.max
        neg_total = sum(self._neg.values())
        if r < neg_total:
            # negative values: the most negative (largest key) first
            seen = 0
            for k in sorted(self._neg, reverse=True):
                seen += self._neg[k]
                if seen > r:
                    return self._clamp(-self._value(k))
        r -= neg_total
        if r < self.zero_count:
            return self._clamp(0.0)
        r -= self.zero_count
        seen = 0
        for k in sorted(self._pos):
            seen += self._pos[k]
            if seen > r:
                return self._clamp(self._value(k))
        return self.max  # unreachable while counts are consistent

    def _clamp(self, v: float) -> float:
        # the true order statistic lies in [min, max]; clamping only moves the estimate closer
        return min(max(v, self.min), self.max)

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (:func:`quantile_rank`) within relative accuracy α; None if
        empty."""
        q = _check_q(q)
        if self.count == 0:
            return None
        return self.value_at_rank(quantile_rank(self.count, q))

    # --- comparison and JSON ---

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DDSketch):
            return NotImplemented
        return (
            math.isclose(self.relative_accuracy, other.relative_accuracy, rel_tol=1e-12)
            and self._pos == other._pos
            and self._neg == other._neg
            and self.zero_count == other.zero_count
            and self.count == other.count
            and self.min == other.min
            and self.max == other.max
            and math.isclose(self.sum, other.sum, rel_tol=1e-9, abs_tol=1e-9)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"DDSketch(relative_accuracy={self.relative_accuracy}, count={self.count}, "
            f"buckets={len(self._pos) + len(self._neg)})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_dict` reads it back exactly."""
        return {
            "format": _SKETCH_FORMAT,
            "relative_accuracy": self.relative_accuracy,
            "count": self.count,
            "zero_count": self.zero_count,
            "sum": self.sum,
            "min": self.min if self.count else None,
            "max": self.max if self.count else None,
            "positive": [[k, self._pos[k]] for k in sorted(self._pos)],
            "negative": [[k, self._neg[k]] for k in sorted(self._neg)],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DDSketch:
        """Rebuild a sketch from :meth:`to_dict`; ValueError names the field that is wrong
        (``positive[3]: ...``). Sizes are bounded (:data:`MAX_BUCKETS`, :data:`MAX_COUNT`,
        keys within the range a float can reach) before anything is allocated."""
        if not isinstance(data, Mapping):
            raise ValueError("a sketch is a JSON object")
        if data.get("format") != _SKETCH_FORMAT:
            raise ValueError(f"format: expected {_SKETCH_FORMAT!r}, got {data.get('format')!r}")
        out = cls(_finite(data.get("relative_accuracy"), "relative_accuracy"))
        # no finite float maps beyond this key; a key past it cannot come from to_dict
        key_limit = math.ceil(math.log(sys.float_info.max) / out._log_gamma) + 1
        count = data.get("count")
        zero = data.get("zero_count")
        for name, v in (("count", count), ("zero_count", zero)):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_COUNT:
                raise ValueError(
                    f"{name}: expected an integer between 0 and {MAX_COUNT}, got {v!r}; "
                    "regenerate the baseline with `harness baseline save`"
                )
        assert isinstance(count, int) and isinstance(zero, int)
        total = zero
        for name, store in (("positive", out._pos), ("negative", out._neg)):
            pairs = data.get(name)
            if not isinstance(pairs, list):
                raise ValueError(f"{name}: expected a list of [key, count] pairs")
            if len(pairs) > MAX_BUCKETS:
                raise ValueError(
                    f"{name}: {len(pairs)} buckets, more than the limit of {MAX_BUCKETS}; "
                    "the file is damaged: regenerate the baseline"
                )
            for i, pair in enumerate(pairs):
                if (
                    not isinstance(pair, list)
                    or len(pair) != 2
                    or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
                ):
                    raise ValueError(f"{name}[{i}]: bad bucket {pair!r}: expected [key, count]")
                key, c = pair
                if not -key_limit <= key <= key_limit:
                    raise ValueError(
                        f"{name}[{i}]: key {key} outside ±{key_limit}, the range a float "
                        "can reach at this relative accuracy; regenerate the baseline"
                    )
                if not 0 <= c <= count:
                    raise ValueError(
                        f"{name}[{i}]: bucket count {c} outside 0..count ({count}); "
                        "regenerate the baseline"
                    )
                total += c
                if total > count:
                    raise ValueError(
                        f"{name}[{i}]: the bucket counts exceed count ({count}); "
                        "regenerate the baseline"
                    )
                store[key] = store.get(key, 0) + c
        out.zero_count = zero
        out.count = count
        if count != total:
            raise ValueError(
                f"count: {count} does not equal the sum of the bucket counts ({total})"
            )
        out.sum = _finite(data.get("sum"), "sum")
        if count:
            out.min = _finite(data.get("min"), "min")
            out.max = _finite(data.get("max"), "max")
        return out


def order_statistic_ci(
    n: int, q: float, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[int | None, int | None]:
    """0-based ranks ``(lo, hi)`` of the order statistics that bracket the ``q``-quantile with
    probability at least ``confidence``, whatever the distribution; None for an unbounded end.

    With ``B ~ Binomial(n, q)`` the number of values below the quantile and ``F`` its CDF,
    the pair of 0-based ranks ``(lo, hi)`` covers the quantile with probability
    ``F(hi) − F(lo)``. ``lo`` is the largest rank with ``F(lo) ≤ (1−c)/2`` and ``hi`` the
    smallest with ``F(hi) ≥ 1 − (1−c)/2``, so the coverage is at least ``c`` with each tail at
    most ``(1−c)/2``. For ``n = 20`` and the median at 95 % this gives ranks 5 and 14 (the 6th
    and 15th values, coverage 95.9 %).
    """
    q = _check_q(q)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r}: must be between 0 and 1 (0.95 for 95 %)")
    if n <= 0:
        return None, None
    tail = (1.0 - confidence) / 2.0
    dist = stats.binom(n, q)

    # lower: the largest k in 0..n-1 with F(k) <= tail (none: unbounded below)
    k = min(int(dist.ppf(tail)), n - 1)  # ppf: the smallest j with F(j) >= tail
    while k >= 0 and dist.cdf(k) > tail:
        k -= 1
    while k + 1 <= n - 1 and dist.cdf(k + 1) <= tail:
        k += 1
    lo = k if k >= 0 else None
    # upper: the smallest m in 0..n-1 with F(m) >= 1 - tail (none: unbounded above)
    m = max(int(dist.ppf(1.0 - tail)), 0)
    while m > 0 and dist.cdf(m - 1) >= 1.0 - tail:
        m -= 1
    while m <= n - 1 and dist.cdf(m) < 1.0 - tail:
        m += 1
    hi = m if m <= n - 1 else None
    return lo, hi


def wilson_ci(
    successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """The Wilson score interval for a proportion ``successes / n``; (0, 1) when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(1.0 - (1.0 - confidence) / 2.0))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class Distribution:
    """A :class:`DDSketch` plus the exact values while there are at most ``exact_limit``.

    Everything here is mergeable; exact values survive a merge while the merged count is
    still within the limit. ``exact`` is the sorted tuple of values, or None once dropped.
    """

    __slots__ = ("_exact", "_sorted", "exact_limit", "sketch")

    def __init__(
        self,
        relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
        exact_limit: int = DEFAULT_EXACT_LIMIT,
    ) -> None:
        if exact_limit < 0:
            raise ValueError(f"exact_limit={exact_limit!r}: must be >= 0")
        self.sketch = DDSketch(relative_accuracy)
        self.exact_limit = int(exact_limit)
        self._exact: list[float] | None = []
        self._sorted = True

    @classmethod
    def of(
        cls,
        values: Iterable[float],
        relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
        exact_limit: int = DEFAULT_EXACT_LIMIT,
    ) -> Distribution:
        out = cls(relative_accuracy, exact_limit)
        out.extend(values)
        return out

    # --- adding ---

    def add(self, value: float) -> None:
        x = _finite(value)
        self.sketch.add(x)
        if self._exact is not None:
            if len(self._exact) < self.exact_limit:
                self._exact.append(x)
                self._sorted = False
            else:
                self._exact = None

    def extend(self, values: Iterable[float]) -> None:
        for v in values:
            self.add(v)

    def merge(self, other: Distribution) -> None:
        """Add every value of ``other`` (in place)."""
        if not isinstance(other, Distribution):
            raise TypeError(f"cannot merge a Distribution with {type(other).__name__}")
        self.sketch.merge(other.sketch)
        if (
            self._exact is not None
            and other._exact is not None
            and len(self._exact) + len(other._exact) <= self.exact_limit
        ):
            self._exact.extend(other._exact)
            self._sorted = False
        else:
            self._exact = None

    def copy(self) -> Distribution:
        out = Distribution(self.sketch.relative_accuracy, self.exact_limit)
        out.merge(self)
        return out

    # --- reading ---

    @property
    def relative_accuracy(self) -> float:
        return self.sketch.relative_accuracy

    @property
    def count(self) -> int:
        return self.sketch.count

    def __len__(self) -> int:
        return self.sketch.count

    @property
    def exact(self) -> tuple[float, ...] | None:
        if self._exact is None:
            return None
        if not self._sorted:
            self._exact.sort()
            self._sorted = True
        return tuple(self._exact)

    @property
    def is_exact(self) -> bool:
        return self._exact is not None

    @property
    def min(self) -> float | None:
        return self.sketch.min if self.count else None

    @property
    def max(self) -> float | None:
        return self.sketch.max if self.count else None

    @property
    def mean(self) -> float | None:
        if not self.count:
            return None
        if self._exact is not None:
            return math.fsum(self._exact) / len(self._exact)
        return self.sketch.mean

    @property
    def nonzero(self) -> int:
        if self._exact is not None:
            return sum(1 for x in self._exact if x != 0.0)
        return self.sketch.nonzero_count

    @property
    def rate(self) -> float | None:
        """The share of values that are not zero: for 0/1 scores, the share of true."""
        return self.nonzero / self.count if self.count else None

    def _at_rank(self, rank: int) -> float | None:
        exact = self.exact
        if exact is not None:
            return exact[rank] if exact else None
        return self.sketch.value_at_rank(rank)

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (:func:`quantile_rank`): exact while the values are kept, else
        within α. None when empty."""
        q = _check_q(q)
        if not self.count:
            return None
        return self._at_rank(quantile_rank(self.count, q))

    def quantile_ci(
        self, q: float, confidence: float = DEFAULT_CONFIDENCE
    ) -> tuple[float, float] | None:
        """The distribution-free interval for the ``q``-quantile (see the module docstring);
        ``-inf``/``inf`` for an end the data cannot bound; None when empty."""
        if not self.count:
            return None
        lo_rank, hi_rank = order_statistic_ci(self.count, q, confidence)
        lo = -math.inf if lo_rank is None else self._at_rank(lo_rank)
        hi = math.inf if hi_rank is None else self._at_rank(hi_rank)
        assert lo is not None and hi is not None
        if self._exact is None:
            a = self.relative_accuracy
            lo = lo - a * abs(lo) if math.isfinite(lo) else lo
            hi = hi + a * abs(hi) if math.isfinite(hi) else hi
        return lo, hi

    def rate_ci(self, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float] | None:
        """The Wilson interval of :attr:`rate`; None when empty."""
        if not self.count:
            return None
        return wilson_ci(self.nonzero, self.count, confidence)

    def mean_ci(self, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float] | None:
        """Student-t interval of the mean from the exact values (normal theory, not
        distribution-free); None without exact values or with fewer than two."""
        exact = self.exact
        if exact is None or len(exact) < 2:
            return None
        n = len(exact)
        mean = math.fsum(exact) / n
        var = math.fsum((x - mean) ** 2 for x in exact) / (n - 1)
        half = float(stats.t.ppf(1 - (1 - confidence) / 2, n - 1)) * math.sqrt(var / n)
        return mean - half, mean + half

    def samples(self) -> list[float]:
        """The exact values, or once dropped, each bucket's representative repeated by its
        count (for rank tests; within α of the values)."""
        exact = self.exact
        if exact is not None:
            return list(exact)
        sk = self.sketch
        out: list[float] = []
        for k in sorted(sk._neg, reverse=True):
            out.extend([sk._clamp(-sk._value(k))] * sk._neg[k])
        out.extend([0.0] * sk.zero_count)
        for k in sorted(sk._pos):
            out.extend([sk._clamp(sk._value(k))] * sk._pos[k])
        return out

    # --- comparison and JSON ---

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Distribution):
            return NotImplemented
        return self.sketch == other.sketch and self.exact == other.exact

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kept = "exact" if self.is_exact else "sketch only"
        return f"Distribution(count={self.count}, {kept}, α={self.relative_accuracy})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _DIST_FORMAT,
            "exact_limit": self.exact_limit,
            "exact": list(self.exact) if self.exact is not None else None,
            "sketch": self.sketch.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Distribution:
        if not isinstance(data, Mapping):
            raise ValueError("a distribution is a JSON object")
        if data.get("format") != _DIST_FORMAT:
            raise ValueError(f"format: expected {_DIST_FORMAT!r}, got {data.get('format')!r}")
        try:
            sketch = DDSketch.from_dict(data.get("sketch") or {})
        except ValueError as e:
            raise ValueError(f"sketch.{e}") from None
        limit = data.get("exact_limit")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_EXACT:
            raise ValueError(f"exact_limit: expected an integer between 0 and {MAX_EXACT}")
        out = cls(sketch.relative_accuracy, limit)
        out.sketch = sketch
        exact = data.get("exact")
        if exact is None:
            out._exact = None
        else:
            if not isinstance(exact, list):
                raise ValueError("exact: expected a list of numbers or null")
            if len(exact) != sketch.count or len(exact) > limit:
                raise ValueError(
                    f"exact: holds {len(exact)} values but the sketch counts {sketch.count} "
                    f"and exact_limit is {limit}; regenerate the baseline"
                )
            values = [_finite(x, "exact value") for x in exact]
            if len(values) != sketch.count:
                raise ValueError(
                    f"exact holds {len(values)} values but the sketch counts {sketch.count}"
                )
            out._exact = values
            out._sorted = False
        return out
