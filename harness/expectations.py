"""Per-call expectations from the scenario, checked against what the caller measured
and what the trace says the agent did."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.caller import CallResult, TurnRecord
from harness.plan import CallPlan
from harness.scenario import Expect, ToolExpectation


@dataclass(frozen=True)
class ToolCall:
    """A tool call seen in the trace, with the wall-clock time it started."""

    name: str
    arguments: dict[str, Any]
    started_at: float
    is_error: bool = False


def _args_match(want: dict[str, Any], got: dict[str, Any]) -> bool:
    return all(
        str(got.get(k, "")).strip().lower() == str(v).strip().lower() for k, v in want.items()
    )


def _window(turns: Sequence[TurnRecord], pos: int, end: float) -> tuple[float, float]:
    rec = turns[pos]
    start = rec.caller_start if rec.caller_start is not None else 0.0
    nxt = next((t.caller_start for t in turns[pos + 1 :] if t.caller_start is not None), None)
    return start, nxt if nxt is not None else end


def _check(
    expect: Expect,
    turn: TurnRecord,
    window: tuple[float, float],
    tool_calls: Sequence[ToolCall] | None,
) -> list[str]:
    where = "greeting" if turn.index == 0 else f"turn {turn.index}"
    said = turn.agent_said
    out = []
    for needle in expect.reply_contains:
        if needle.lower() not in said.lower():
            out.append(f"{where}: agent reply {said!r} does not contain {needle!r}")
    if expect.reply_matches is not None and not re.search(expect.reply_matches, said):
        out.append(f"{where}: agent reply {said!r} does not match /{expect.reply_matches}/")
    if expect.tool_called is not None:
        out.extend(_check_tool(where, expect.tool_called, window, tool_calls))
    return out


def _check_tool(
    where: str,
    want: ToolExpectation,
    window: tuple[float, float],
    tool_calls: Sequence[ToolCall] | None,
) -> list[str]:
    if tool_calls is None:
        return [f"{where}: cannot check tool {want.name!r}: no trace was collected for this call"]
    start, end = window
    in_turn = [c for c in tool_calls if start <= c.started_at < end]
    named = [c for c in in_turn if c.name == want.name]
    if not named:
        seen = ", ".join(c.name for c in in_turn) or "none"
        return [f"{where}: tool {want.name!r} was not called (tools called in this turn: {seen})"]
    if want.args and not any(_args_match(want.args, c.arguments) for c in named):
        got = "; ".join(str(c.arguments) for c in named)
        return [f"{where}: tool {want.name!r} was called with {got}, expected {want.args}"]
    return []


def check_expectations(
    plan: CallPlan, result: CallResult, tool_calls: Sequence[ToolCall] | None
) -> list[str]:
    """Every broken expectation, as one readable line each (empty when all hold)."""
    turns = result.turns
    failures: list[str] = []
    by_index = {t.index: pos for pos, t in enumerate(turns)}
    expects: list[tuple[int, Expect]] = []
    if plan.greeting is not None:
        expects.append((0, plan.greeting))
    expects.extend((t.index, t.expect) for t in plan.turns if t.expect is not None)
    for index, expect in expects:
        pos = by_index.get(index)
        if pos is None:
            failures.append(f"turn {index}: not reached")
            continue
        failures.extend(
            _check(expect, turns[pos], _window(turns, pos, result.ended_at), tool_calls)
        )
    return failures
