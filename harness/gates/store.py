"""Every Score of a run, as mergeable distributions keyed by (metric, span, layer)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from harness.evaluators.base import Score
from harness.gates.sketch import DEFAULT_EXACT_LIMIT, DEFAULT_RELATIVE_ACCURACY, Distribution
from harness.trace.validate import ANY_METRIC, DataError

__all__ = ["ScoreStore", "SeriesKey"]

_FORMAT = "harness.scores/1"


@dataclass(frozen=True, order=True)
class SeriesKey:
    metric: str
    span: str | None
    layer: str | None

    def matches(self, metric: str, span: str | None, layer: str | None) -> bool:
        return (
            self.metric == metric
            and (span is None or self.span == span)
            and (layer is None or self.layer == layer)
        )


class ScoreStore:
    """Scores of many calls, one :class:`~harness.gates.sketch.Distribution` per series.

    pytest-xdist workers each fill one, ship it as JSON (:meth:`to_json`) and the controller
    :meth:`merge`\\ s them; a monitoring window merges the stores of its calls; a baseline is
    a saved store. Merging is exact (see :mod:`harness.gates.sketch`).
    """

    def __init__(
        self,
        relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY,
        exact_limit: int = DEFAULT_EXACT_LIMIT,
    ) -> None:
        self.relative_accuracy = relative_accuracy
        self.exact_limit = exact_limit
        self.calls = 0
        self.untraced_calls = 0
        """Calls whose Instance had not a single span: their trace-derived series are
        empty for that reason, which the gates say."""
        self.data_errors: dict[str, int] = {}
        """Data errors (values quarantined as impossible) by the metric they touch
        (:data:`~harness.trace.validate.ANY_METRIC` for any): no gate on such a metric
        passes."""
        self.data_error_calls = 0
        """Calls with at least one data error."""
        self._series: dict[SeriesKey, Distribution] = {}
        self._units: dict[str, str] = {}

    # --- adding ---

    def add_score(self, score: Score) -> None:
        unit = self._units.setdefault(score.name, score.unit)
        if unit != score.unit:
            raise ValueError(
                f"score {score.name!r} has unit {score.unit!r} but earlier ones had {unit!r}: "
                "one metric, one unit"
            )
        key = SeriesKey(score.name, score.span, score.layer)
        dist = self._series.get(key)
        if dist is None:
            dist = self._series[key] = Distribution(self.relative_accuracy, self.exact_limit)
        dist.add(score.value)

    def add(
        self,
        scores: Iterable[Score],
        *,
        traced: bool = True,
        data_errors: Iterable[DataError] = (),
    ) -> None:
        """Add the Scores of one call (counts one call; ``traced=False`` for a call from
        which no span arrived; ``data_errors``: what its Instance quarantined)."""
        for s in scores:
            self.add_score(s)
        self.calls += 1
        if not traced:
            self.untraced_calls += 1
        errors = list(data_errors)
        for e in errors:
            for metric in e.metrics:
                self.data_errors[metric] = self.data_errors.get(metric, 0) + 1
        if errors:
            self.data_error_calls += 1

    def data_errors_for(self, metric: str) -> int:
        """How many data errors touch ``metric`` (its own and those that touch any)."""
        return self.data_errors.get(metric, 0) + self.data_errors.get(ANY_METRIC, 0)

    def merge(self, other: ScoreStore) -> None:
        """Add everything of ``other`` (in place)."""
        for metric, unit in other._units.items():
            mine = self._units.setdefault(metric, unit)
            if mine != unit:
                raise ValueError(
                    f"cannot merge: metric {metric!r} is {mine!r} here, {unit!r} there"
                )
        for key, dist in other._series.items():
            if key in self._series:
                self._series[key].merge(dist)
            else:
                self._series[key] = dist.copy()
        self.calls += other.calls
        self.untraced_calls += other.untraced_calls
        for metric, n in other.data_errors.items():
            self.data_errors[metric] = self.data_errors.get(metric, 0) + n
        self.data_error_calls += other.data_error_calls

    @classmethod
    def merged(cls, stores: Iterable[ScoreStore]) -> ScoreStore:
        out: ScoreStore | None = None
        for s in stores:
            if out is None:
                out = cls(s.relative_accuracy, s.exact_limit)
            out.merge(s)
        return out if out is not None else cls()

    # --- reading ---

    def __iter__(self) -> Iterator[tuple[SeriesKey, Distribution]]:
        return iter(sorted(self._series.items(), key=lambda kv: _sort_key(kv[0])))

    def __len__(self) -> int:
        return len(self._series)

    @property
    def metrics(self) -> list[str]:
        return sorted(self._units)

    def unit(self, metric: str) -> str | None:
        return self._units.get(metric)

    def select(
        self, metric: str, span: str | None = None, layer: str | None = None
    ) -> Distribution:
        """One distribution of every value of ``metric`` (only from ``span``/``layer`` when
        given); empty when there is none. A fresh copy: changing it changes nothing here."""
        out = Distribution(self.relative_accuracy, self.exact_limit)
        for key, dist in self._series.items():
            if key.matches(metric, span, layer):
                out.merge(dist)
        return out

    # --- JSON ---

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "relative_accuracy": self.relative_accuracy,
            "exact_limit": self.exact_limit,
            "calls": self.calls,
            "untraced_calls": self.untraced_calls,
            "data_errors": dict(sorted(self.data_errors.items())),
            "data_error_calls": self.data_error_calls,
            "units": dict(sorted(self._units.items())),
            "series": [
                {"metric": k.metric, "span": k.span, "layer": k.layer, "distribution": d.to_dict()}
                for k, d in self
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreStore:
        """Read :meth:`to_dict` back; ValueError says what is wrong."""
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise ValueError(f"format: expected {_FORMAT!r}")
        out = cls(float(data["relative_accuracy"]), int(data["exact_limit"]))
        calls = data.get("calls", 0)
        if not isinstance(calls, int) or calls < 0:
            raise ValueError("calls: expected a non-negative integer")
        out.calls = calls
        untraced = data.get("untraced_calls", 0)
        if not isinstance(untraced, int) or not 0 <= untraced <= calls:
            raise ValueError("untraced_calls: expected an integer between 0 and calls")
        out.untraced_calls = untraced
        errors = data.get("data_errors", {})
        if not isinstance(errors, Mapping) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in errors.values()
        ):
            raise ValueError("data_errors: expected an object of non-negative integers")
        out.data_errors = {str(k): n for k, n in errors.items()}
        error_calls = data.get("data_error_calls", 0)
        if not isinstance(error_calls, int) or not 0 <= error_calls <= calls:
            raise ValueError("data_error_calls: expected an integer between 0 and calls")
        out.data_error_calls = error_calls
        units = data.get("units")
        if not isinstance(units, Mapping):
            raise ValueError("units: expected an object")
        out._units = {str(k): str(v) for k, v in units.items()}
        series = data.get("series")
        if not isinstance(series, list):
            raise ValueError("series: expected a list")
        for i, item in enumerate(series):
            if not isinstance(item, Mapping) or not isinstance(item.get("metric"), str):
                raise ValueError(f"series[{i}]: expected an object with a metric")
            if item["metric"] not in out._units:
                raise ValueError(f"series[{i}]: metric {item['metric']!r} has no unit")
            key = SeriesKey(item["metric"], item.get("span"), item.get("layer"))
            try:
                dist = Distribution.from_dict(item.get("distribution") or {})
            except ValueError as e:
                raise ValueError(f"series[{i}].distribution: {e}") from None
            if key in out._series:
                out._series[key].merge(dist)
            else:
                out._series[key] = dist
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ScoreStore:
        return cls.from_dict(json.loads(text))


def _sort_key(k: SeriesKey) -> tuple[str, str, str]:
    return (k.metric, k.span or "", k.layer or "")
