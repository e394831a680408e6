"""Evaluators: an Instance in, Scores out; a registry of the built-ins and of plugins.

A team's own scoring plugs in three ways:

- an entry point in the group ``harness.evaluators`` (``[project.entry-points.
  "harness.evaluators"] my_metric = "my_pkg.scoring:my_metric"``), pointing at an
  Evaluator instance, a class or factory (called with the evaluator's parameters), or a
  plain function ``instance -> Iterable[Score]``;
- :func:`register` at import time;
- the :func:`evaluator` decorator on a plain function::

      @evaluator("greets_by_name")
      def greets_by_name(instance):
          said = instance.turns[0].agent_said if instance.turns else None
          if said is not None:
              yield Score("greets_by_name", float("Dr" in said), "bool")

Built-ins (evaluator name: Score names, units):

=================  ===========================================================================
latency            response_latency, e2e_latency, llm_ttft, tts_ttfb, end_of_turn_delay,
                   transcription_delay (ms)
wer                turn_wer, wer (ratio)
task_completion    task_completed (bool), turns_to_completion (count); needs ``expected=``
tool_success       tool_success (bool), tool_success_rate (ratio)
interruptions      interrupted (bool), interruption_rate (ratio)
loops              repeated_utterances (count), loop_detected (bool), stuck_repeats (count),
                   dialog_stuck (bool)
clarifications     clarifying_questions (count)
workflow           workflow_completed (bool), workflow_duration (ms)
risk               mutating_actions, unapproved_mutations (count, per layer)
cost               llm_input_tokens, llm_output_tokens, tts_characters (count), cost (currency)
audio              dead_air_longest (ms), dead_air_count (count), clipping_ratio (ratio),
                   truncated_speech (bool), truncated_turns (count)
speech             speech_cut (bool), speech_gap_longest (ms), speech_glitches (count),
                   glitchy_speech (bool)
turn_taking        talked_over (bool), talkover_ms (ms)
tool_args          tool_args_grounded (bool)
claims             unbacked_claims (count)
fallbacks          fallback_reply (bool), fallback_rate (ratio)
duplicates         duplicate_actions (count, per layer), workflow_runs, duplicate_workflow_steps
                   (count)
llm_judge          <name> (points or ratio); needs ``complete=`` and ``rubric=``
=================  ===========================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from harness.evaluators.audio import AudioHealth
from harness.evaluators.base import (
    BaseEvaluator,
    Evaluator,
    EvaluatorError,
    FunctionEvaluator,
    MetricInfo,
    Score,
)
from harness.evaluators.conversation import (
    ClarifyingQuestions,
    Interruptions,
    LoopDetection,
    ToolSuccess,
)
from harness.evaluators.cost import Cost, PriceTable
from harness.evaluators.dialog import ClaimsBacked, FallbackReplies, ToolArgsGrounding
from harness.evaluators.duplicates import Duplicates
from harness.evaluators.judge import LLMJudge
from harness.evaluators.latency import Latency
from harness.evaluators.layers import Risk, Workflow
from harness.evaluators.speech import SpeechIntegrity
from harness.evaluators.task import ActionDone, EndState, TaskCompletion, ToolCalled
from harness.evaluators.turntaking import TurnTaking
from harness.evaluators.wer import WordErrorRate

if TYPE_CHECKING:
    from harness.trace.instance import Instance

__all__ = [
    "ENTRY_POINT_GROUP",
    "ActionDone",
    "AudioHealth",
    "BaseEvaluator",
    "ClaimsBacked",
    "ClarifyingQuestions",
    "Cost",
    "Duplicates",
    "EndState",
    "Evaluator",
    "EvaluatorError",
    "FallbackReplies",
    "FunctionEvaluator",
    "Interruptions",
    "LLMJudge",
    "Latency",
    "LoopDetection",
    "MetricInfo",
    "PriceTable",
    "Risk",
    "Score",
    "SpeechIntegrity",
    "TaskCompletion",
    "ToolArgsGrounding",
    "ToolCalled",
    "ToolSuccess",
    "TurnTaking",
    "WordErrorRate",
    "Workflow",
    "available",
    "default_evaluators",
    "evaluate",
    "evaluator",
    "get_evaluator",
    "metric_info",
    "register",
    "unregister",
]

log = logging.getLogger("harness.evaluators")

ENTRY_POINT_GROUP = "harness.evaluators"

Factory = Callable[..., Evaluator]

BUILTINS: dict[str, Factory] = {
    "latency": Latency,
    "wer": WordErrorRate,
    "task_completion": TaskCompletion,
    "tool_success": ToolSuccess,
    "interruptions": Interruptions,
    "loops": LoopDetection,
    "clarifications": ClarifyingQuestions,
    "workflow": Workflow,
    "risk": Risk,
    "cost": Cost,
    "audio": AudioHealth,
    "speech": SpeechIntegrity,
    "turn_taking": TurnTaking,
    "tool_args": ToolArgsGrounding,
    "claims": ClaimsBacked,
    "fallbacks": FallbackReplies,
    "duplicates": Duplicates,
    "llm_judge": LLMJudge,
}
"""Built-in evaluator factories by name."""

_NEEDS_PARAMETERS = frozenset({"llm_judge"})
_registered: dict[str, Factory] = {}
_entry_points: dict[str, Factory] | None = None


def _as_factory(obj: Any, name: str) -> Factory:
    """An entry point's or a registration's object as a factory of Evaluators."""
    if isinstance(obj, type):
        return obj
    if hasattr(obj, "evaluate") and callable(obj.evaluate):

        def fixed(**params: Any) -> Evaluator:
            if params:
                raise EvaluatorError(
                    f"is a ready-made evaluator and takes no parameters (got {sorted(params)})",
                    evaluator=name,
                )
            return obj

        return fixed
    if callable(obj):

        def wrapped(**params: Any) -> Evaluator:
            if params:
                raise EvaluatorError(
                    f"is a plain function and takes no parameters (got {sorted(params)})",
                    evaluator=name,
                )
            return FunctionEvaluator(name, obj)

        return wrapped
    raise EvaluatorError(
        f"{obj!r} is not an evaluator, an evaluator class or a function", evaluator=name
    )


def register(name: str, obj: Any, *, replace: bool = False) -> None:
    """Register an Evaluator instance, a class/factory, or a function under ``name``.

    Built-in names cannot be taken, and a registered name only with ``replace=True``.
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"name={name!r}: an evaluator needs a non-empty name")
    if name in BUILTINS:
        raise ValueError(f"{name!r} is a built-in evaluator; choose another name")
    if name in _registered and not replace:
        raise ValueError(f"evaluator {name!r} is already registered; pass replace=True")
    _registered[name] = _as_factory(obj, name)


def unregister(name: str) -> None:
    """Remove a name added by :func:`register` (for tests and plugin reloads)."""
    _registered.pop(name, None)


def evaluator(
    name: str, *, metrics: Iterable[MetricInfo] = (), replace: bool = False
) -> Callable[[Callable[[Instance], Iterable[Score] | None]], FunctionEvaluator]:
    """Decorator: a function ``instance -> Iterable[Score]`` becomes a registered
    :class:`FunctionEvaluator` named ``name`` (the decorated name is that evaluator)."""

    def wrap(func: Callable[[Instance], Iterable[Score] | None]) -> FunctionEvaluator:
        ev = FunctionEvaluator(name, func, tuple(metrics))
        register(name, ev, replace=replace)
        return ev

    return wrap


def _load_entry_points() -> dict[str, Factory]:
    global _entry_points
    if _entry_points is None:
        found: dict[str, Factory] = {}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in BUILTINS:
                log.warning("entry point %s shadows a built-in evaluator and is ignored", ep.value)
                continue
            try:
                obj = ep.load()
            except Exception as e:
                dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
                raise EvaluatorError(
                    f"entry point {ep.value!r} (from {dist}) failed to load: {e}", evaluator=ep.name
                ) from e
            found[ep.name] = _as_factory(obj, ep.name)
        _entry_points = found
    return _entry_points


def reload_entry_points() -> None:
    """Forget the loaded entry points; the next lookup reads them again."""
    global _entry_points
    _entry_points = None


def available() -> list[str]:
    """Every evaluator name: built-ins, registered ones and entry points."""
    return sorted({*BUILTINS, *_registered, *_load_entry_points()})


def get_evaluator(name: str, **params: Any) -> Evaluator:
    """The evaluator ``name``, built with ``params`` (e.g.
    ``get_evaluator("task_completion", expected={"tool_called": "request_booking"})``)."""
    factory = BUILTINS.get(name) or _registered.get(name) or _load_entry_points().get(name)
    if factory is None:
        raise EvaluatorError(
            f"unknown evaluator; available: {', '.join(available())}", evaluator=name
        )
    try:
        return factory(**params)
    except EvaluatorError:
        raise
    except (TypeError, ValueError) as e:
        raise EvaluatorError(f"bad parameters {sorted(params)}: {e}", evaluator=name) from e


def default_evaluators(params: Mapping[str, Mapping[str, Any]] | None = None) -> list[Evaluator]:
    """Every available evaluator, each built with ``params.get(name, {})``.

    ``llm_judge`` is included only when ``params`` configures it (it needs a completion
    function and a rubric); ``task_completion`` without ``expected`` scores nothing.
    """
    params = dict(params or {})
    unknown = set(params) - set(available())
    if unknown:
        raise EvaluatorError(f"parameters for unknown evaluator(s) {sorted(unknown)}")
    out = []
    for name in available():
        if name in _NEEDS_PARAMETERS and name not in params:
            continue
        out.append(get_evaluator(name, **dict(params.get(name, {}))))
    return out


def _name_of(ev: Evaluator) -> str:
    return str(getattr(ev, "name", "") or type(ev).__name__)


def evaluate(instance: Instance, evaluators: Iterable[Evaluator] | None = None) -> list[Score]:
    """Run ``evaluators`` (default: :func:`default_evaluators`) on ``instance``.

    An evaluator that raises, or returns something other than Scores, becomes an
    :class:`EvaluatorError` naming it: a broken evaluator is never mistaken for a bad agent.
    """
    evs = default_evaluators() if evaluators is None else list(evaluators)
    out: list[Score] = []
    for ev in evs:
        name = _name_of(ev)
        try:
            scores = ev.evaluate(instance)
        except EvaluatorError:
            raise
        except Exception as e:
            raise EvaluatorError(f"raised {type(e).__name__}: {e}", evaluator=name) from e
        if scores is None:
            continue
        for s in scores:
            if not isinstance(s, Score):
                raise EvaluatorError(f"returned {type(s).__name__}, expected Score", evaluator=name)
            out.append(s)
    return out


def known_metrics() -> list[str]:
    """Every Score name the built-in and registered evaluators declare."""
    names: set[str] = set()
    for factory in BUILTINS.values():
        names.update(m.name for m in getattr(factory, "metrics", ()))
    for factory in _registered.values():
        try:
            ev = factory()
        except Exception:
            continue
        names.update(m.name for m in getattr(ev, "metrics", ()))
    return sorted(names)


def metric_info(name: str) -> MetricInfo | None:
    """What a Score name means, from the built-ins' and the registered evaluators' tables."""
    for factory in BUILTINS.values():
        for m in getattr(factory, "metrics", ()):
            if m.name == name:
                return m
    for factory in _registered.values():
        try:
            ev = factory()
        except Exception:
            continue
        for m in getattr(ev, "metrics", ()):
            if m.name == name:
                return m
    return None
