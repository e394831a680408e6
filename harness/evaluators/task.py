"""Task completion against the scenario's expected end state, and turns to completion."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.evaluators._common import is_caller_turn, turn_start_ns
from harness.evaluators.base import UNIT_BOOL, UNIT_COUNT, BaseEvaluator, MetricInfo, Score
from harness.trace import conventions as c

if TYPE_CHECKING:
    from harness.trace.instance import Action, Instance, ToolCall

__all__ = ["ActionDone", "EndState", "TaskCompletion", "ToolCalled", "args_match"]


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        if isinstance(got, str):
            try:
                got = float(got.strip())
            except ValueError:
                return False
        if isinstance(got, (int, float)) and not isinstance(got, bool):
            return math.isclose(float(want), float(got), rel_tol=1e-9, abs_tol=1e-9)
        return False
    if isinstance(want, Mapping):
        return isinstance(got, Mapping) and args_match(want, got)
    return str(got).strip().casefold() == str(want).strip().casefold()


def args_match(want: Mapping[str, Any], got: Any) -> bool:
    """Whether ``got`` (a tool call's parsed arguments) holds every key of ``want`` with an
    equal value: numbers compare numerically (``"3"`` equals ``3``), mappings recursively,
    anything else as trimmed, case-folded text. Extra keys in ``got`` are allowed."""
    if not want:
        return True
    if not isinstance(got, Mapping):
        return False
    return all(k in got and _same(v, got[k]) for k, v in want.items())


@dataclass(frozen=True)
class ToolCalled:
    """The conversational agent called tool ``name`` with at least ``args``, without error."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, call: ToolCall) -> bool:
        return (
            call.name == self.name and not call.is_error and args_match(self.args, call.arguments)
        )

    def __str__(self) -> str:
        return f"tool {self.name}({', '.join(f'{k}={v!r}' for k, v in self.args.items())})"


@dataclass(frozen=True)
class ActionDone:
    """A span with ``action.name == name`` ended without error status (a background action
    was done). With ``approved=True`` its ``action.approval`` must also be ``approved``."""

    name: str
    approved: bool = False

    def matches(self, action: Action) -> bool:
        if action.name != self.name or action.status == c.STATUS_ERROR:
            return False
        return not self.approved or action.approval == c.APPROVAL_APPROVED

    def __str__(self) -> str:
        return f"action {self.name}" + (" (approved)" if self.approved else "")


@dataclass(frozen=True)
class EndState:
    """What must be true when the call is over: every tool call and every action listed."""

    tools: tuple[ToolCalled, ...] = ()
    actions: tuple[ActionDone, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.tools and not self.actions

    @classmethod
    def parse(cls, spec: Any) -> EndState:
        """An EndState from itself, a ToolCalled/ActionDone, anything with ``name`` and
        ``args`` (a scenario's ``ToolExpectation``), or a mapping::

            {"tool_called": {"name": "request_booking", "args": {"day": "monday"}},
             "action_done": ["write_booking"]}

        ``tool_called`` and ``action_done`` each take one item or a list; an item is a name
        or a mapping (``{"name": ..., "args": ...}``; ``{"name": ..., "approved": true}``).
        """
        if isinstance(spec, EndState):
            return spec
        if isinstance(spec, ToolCalled):
            return cls(tools=(spec,))
        if isinstance(spec, ActionDone):
            return cls(actions=(spec,))
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"tool_called", "action_done"}
            if unknown:
                raise ValueError(
                    f"expected end state: unknown key(s) {sorted(unknown)}; "
                    "use tool_called and/or action_done"
                )
            return cls(
                tools=tuple(_tool(x) for x in _listify(spec.get("tool_called"))),
                actions=tuple(_action(x) for x in _listify(spec.get("action_done"))),
            )
        if hasattr(spec, "name") and hasattr(spec, "args"):
            return cls(tools=(ToolCalled(str(spec.name), dict(spec.args or {})),))
        raise TypeError(f"cannot read an expected end state from {spec!r}")


def _listify(x: Any) -> list[Any]:
    if x is None:
        return []
    return list(x) if isinstance(x, Sequence) and not isinstance(x, str) else [x]


def _tool(x: Any) -> ToolCalled:
    if isinstance(x, ToolCalled):
        return x
    if isinstance(x, str):
        return ToolCalled(x)
    if isinstance(x, Mapping) and isinstance(x.get("name"), str):
        extra = set(x) - {"name", "args"}
        if extra:
            raise ValueError(f"tool_called: unknown key(s) {sorted(extra)}")
        return ToolCalled(x["name"], dict(x.get("args") or {}))
    if hasattr(x, "name") and hasattr(x, "args"):
        return ToolCalled(str(x.name), dict(x.args or {}))
    raise ValueError(f"tool_called: expected a name or {{name, args}}, got {x!r}")


def _action(x: Any) -> ActionDone:
    if isinstance(x, ActionDone):
        return x
    if isinstance(x, str):
        return ActionDone(x)
    if isinstance(x, Mapping) and isinstance(x.get("name"), str):
        extra = set(x) - {"name", "approved"}
        if extra:
            raise ValueError(f"action_done: unknown key(s) {sorted(extra)}")
        return ActionDone(x["name"], bool(x.get("approved", False)))
    raise ValueError(f"action_done: expected a name or {{name, approved}}, got {x!r}")


class TaskCompletion(BaseEvaluator):
    """Whether the call reached the expected end state, and in how many caller turns.

    ``expected`` is an :class:`EndState` (or anything :meth:`EndState.parse` reads). Without
    one, this evaluator returns no Score.

    - ``task_completed`` (bool, per call): 1 when every listed tool call (name, arguments
      that :func:`args_match`, not an error) and every listed action (an ``action.name``
      span not in error status) is in the instance; else 0, with the missing items in
      ``detail``. An empty call scores 0.
    - ``turns_to_completion`` (count, per call, only when completed): the number of caller
      turns (the greeting excluded) up to and including the turn in which the last
      required item was first satisfied. An item satisfied during the greeting counts 0.
      A tool call belongs to the turn whose agent_turn it ran under; an action (or a tool
      call outside every turn) to the last turn that began at or before the span's end.
    """

    name = "task_completion"
    metrics = (
        MetricInfo("task_completed", UNIT_BOOL, "the expected end state was reached"),
        MetricInfo("turns_to_completion", UNIT_COUNT, "caller turns until the end state"),
    )

    def __init__(self, expected: Any = None) -> None:
        self.expected = EndState.parse(expected) if expected is not None else None

    def evaluate(self, instance: Instance) -> list[Score]:
        if self.expected is None or self.expected.empty:
            return []
        turns = instance.turns
        tool_turn = {tc.span.key: t.index for t in turns for tc in t.tool_calls}
        position = {t.index: k for k, t in enumerate(turns)}
        starts = [(turn_start_ns(t), k) for k, t in enumerate(turns)]

        def by_time(end_ns: int) -> int | None:
            best = None
            for start, k in starts:
                if start is not None and start <= end_ns:
                    best = k
            return best

        missing: list[str] = []
        done_at: list[int | None] = []  # turn position where each item was first satisfied
        for want in self.expected.tools:
            hits = [tc for tc in instance.tool_calls if want.matches(tc)]
            if not hits:
                missing.append(str(want))
                continue
            first = min(hits, key=lambda tc: tc.span.end_ns)
            idx = tool_turn.get(first.span.key)
            done_at.append(position[idx] if idx is not None else by_time(first.span.end_ns))
        for want in self.expected.actions:
            hits = [a for a in instance.actions if want.matches(a)]
            if not hits:
                missing.append(str(want))
                continue
            first = min(hits, key=lambda a: a.span.end_ns)
            done_at.append(by_time(first.span.end_ns))

        if missing:
            return [
                Score(
                    "task_completed",
                    0.0,
                    UNIT_BOOL,
                    layer=c.LAYER_CONVERSATIONAL,
                    detail="missing: " + "; ".join(missing),
                )
            ]
        out = [
            Score(
                "task_completed",
                1.0,
                UNIT_BOOL,
                layer=c.LAYER_CONVERSATIONAL,
                detail="reached: "
                + "; ".join(str(x) for x in (*self.expected.tools, *self.expected.actions)),
            )
        ]
        if all(p is not None for p in done_at):
            last = max(p for p in done_at if p is not None)
            count = sum(1 for t in turns[: last + 1] if is_caller_turn(t))
            out.append(
                Score(
                    "turns_to_completion",
                    float(count),
                    UNIT_COUNT,
                    layer=c.LAYER_CONVERSATIONAL,
                    turn=turns[last].index,
                    detail=f"end state reached in turn {turns[last].index}",
                )
            )
        return out
