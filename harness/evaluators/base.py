"""The evaluator interface: an Instance in, a list of Scores out.

An evaluator reads only the :class:`~harness.trace.instance.Instance`, so the same code
scores a synthetic call in CI, a synthetic call in monitoring and a production call.

Every evaluator copes with an empty call, an agent that never spoke and missing spans:
it returns the scores it can define and leaves out the rest, never raising for the
agent's behaviour. A value it cannot measure is absent, never a made-up zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.trace.instance import Instance

__all__ = [
    "BaseEvaluator",
    "Evaluator",
    "EvaluatorError",
    "FunctionEvaluator",
    "MetricInfo",
    "Score",
]

# Units a Score may carry. Latencies and durations are milliseconds everywhere.
UNIT_MS = "ms"
UNIT_RATIO = "ratio"  # a fraction: 0.05 is 5 % (WER may exceed 1)
UNIT_BOOL = "bool"  # 1.0 true, 0.0 false; the gate statistic `rate` is the share of true
UNIT_COUNT = "count"


class EvaluatorError(HarnessError):
    """An evaluator could not run: a plugin failed to load or raised, or a judge's reply
    could not be parsed. Never raised for what the agent did."""

    def __init__(self, message: str, *, evaluator: str | None = None) -> None:
        self.evaluator = evaluator
        super().__init__(f"evaluator {evaluator!r}: {message}" if evaluator else message)


@dataclass(frozen=True)
class Score:
    """One measurement of one call.

    ``name`` is what gates refer to as their ``metric``. ``span`` is the span type the
    value was read from (``llm_node``, ``agent_turn``, …) and ``layer`` the agent layer
    (``conversational``, ``background``, ``workflow``); either may be None. ``turn`` is the
    turn index (0 is the greeting) for per-turn scores, None for per-call ones.
    """

    name: str
    value: float
    unit: str
    span: str | None = None
    layer: str | None = None
    turn: int | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Score.name is empty")
        v = self.value
        if isinstance(v, bool):
            v = 1.0 if v else 0.0
        if not isinstance(v, (int, float)):
            raise TypeError(f"Score {self.name!r}: value must be a number, got {v!r}")
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"Score {self.name!r}: value must be finite, got {v!r}")
        object.__setattr__(self, "value", v)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "span": self.span,
            "layer": self.layer,
            "turn": self.turn,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Score:
        return cls(
            name=str(data["name"]),
            value=data["value"],
            unit=str(data["unit"]),
            span=data.get("span"),
            layer=data.get("layer"),
            turn=data.get("turn"),
            detail=str(data.get("detail") or ""),
        )


@dataclass(frozen=True)
class MetricInfo:
    """What one Score name means: its unit and a one-line definition."""

    name: str
    unit: str
    description: str
    span: str | None = None
    layer: str | None = None


@runtime_checkable
class Evaluator(Protocol):
    """Anything with ``evaluate(instance) -> list[Score]``.

    Optional attributes: ``name`` (str) and ``metrics`` (a tuple of :class:`MetricInfo`
    naming the Scores it produces, used for units in Prometheus export and docs).
    """

    def evaluate(self, instance: Instance) -> list[Score]: ...


class BaseEvaluator:
    """Optional helper base: a ``name``, a ``metrics`` table and a ``repr``."""

    name: str = ""
    metrics: tuple[MetricInfo, ...] = ()

    def evaluate(self, instance: Instance) -> list[Score]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@dataclass(frozen=True)
class FunctionEvaluator:
    """A plain function ``instance -> Iterable[Score]`` as an :class:`Evaluator`."""

    name: str
    func: Callable[[Instance], Iterable[Score] | None]
    metrics: tuple[MetricInfo, ...] = field(default=())

    def evaluate(self, instance: Instance) -> list[Score]:
        out = self.func(instance)
        if out is None:
            return []
        scores = list(out)
        for s in scores:
            if not isinstance(s, Score):
                raise EvaluatorError(
                    f"returned {type(s).__name__}, expected Score", evaluator=self.name
                )
        return scores

    def __call__(self, instance: Instance) -> list[Score]:
        return self.evaluate(instance)
