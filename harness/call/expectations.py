"""Per-call expectations from the scenario, checked against what the caller measured
and what the trace says the agent did."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.call.caller import CallResult, TurnRecord
from harness.plan.callplan import CallPlan
from harness.scenario.model import Expect, ToolExpectation


@dataclass(frozen=True)
class ToolCall:
    """A tool call seen in the trace, with the wall-clock time it started."""

    name: str
    arguments: dict[str, Any]
    started_at: float
    is_error: bool = False


def tool_calls_of(instance: Any | None) -> list[ToolCall] | None:
    """The Instance's tool calls in the form expectations check; None without a trace."""
    if instance is None:
        return None
    return [
        ToolCall(
            c.name,
            c.arguments if isinstance(c.arguments, dict) else {},
            c.span.start_ns / 1e9,
            c.is_error,
        )
        for c in instance.tool_calls
    ]


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


def check_score_expectations(
    plan: CallPlan, result: CallResult, scores: Sequence[Any]
) -> list[str]:
    """Call-level expectations read from the evaluators' scores and the caller's timings."""
    expect = plan.expect
    if expect is None:
        return []
    out: list[str] = []
    if expect.no_loop:
        for s in scores:
            if s.name == "loop_detected" and s.value >= 1:
                out.append(f"the agent repeated itself: {s.detail or 'a loop was detected'}")
    if expect.max_response_latency_ms is not None:
        limit = expect.max_response_latency_ms
        for t in result.turns:
            if t.response_latency_ms is not None and t.response_latency_ms > limit:
                out.append(
                    f"turn {t.index}: response latency {t.response_latency_ms:.0f} ms "
                    f"exceeds {limit} ms"
                )
    if expect.end_state is not None:
        done = [s for s in scores if s.name == "task_completed" and s.turn is None]
        if not done:
            out.append("end state: the task-completion evaluator gave no score")
        elif done[0].value < 1:
            out.append(f"end state not reached: {done[0].detail or 'task not completed'}")
    return out


def check_call_expectations(plan: CallPlan, instance: Any | None, ended_at: float) -> list[str]:
    """Cross-layer expectations (background actions, after-call steps) on the Instance."""
    expect = plan.expect
    if expect is None or not (expect.background or expect.after_call):
        return []
    if instance is None:
        return ["cannot check background/after-call expectations: no trace was collected"]
    out: list[str] = []
    for want in expect.background:
        found = [a for a in instance.actions if a.name == want.action]
        if not found:
            seen = ", ".join(sorted({a.name for a in instance.actions})) or "none"
            out.append(f"background: action {want.action!r} was not performed (actions: {seen})")
            continue
        for a in found:
            if want.approval is not None and a.approval != want.approval:
                kind = "mutating action" if a.mutating else "action"
                out.append(
                    f"background: {kind} {a.name!r} ran with approval {a.approval or 'none'!r}, "
                    f"expected {want.approval!r}"
                    + (
                        " (an unapproved mutating action)"
                        if a.mutating and a.approval != "approved"
                        else ""
                    )
                )
            if want.mutating is not None and a.mutating != want.mutating:
                out.append(
                    f"background: action {a.name!r} mutating={a.mutating}, expected {want.mutating}"
                )
    if expect.after_call and not instance.complete:
        # one line per layer that did not finish, e.g. "after-call workflow did not complete
        # within 15s"
        reasons = (instance.incomplete_reason or "after-call workflow did not complete").split("; ")
        out.extend(reasons)
        return out
    for want in expect.after_call:
        steps = [s for s in instance.workflow if s.name == want.step]
        if not steps:
            seen = ", ".join(s.name for s in instance.workflow) or "none"
            out.append(f"after-call: step {want.step!r} did not run (steps: {seen})")
            continue
        step = steps[-1]
        if step.status != want.status and not (want.status == "ok" and step.status == "unset"):
            detail = f": {step.status_message}" if step.status_message else ""
            out.append(f"after-call: step {want.step!r} ended {step.status}{detail}")
        late = step.end_ns / 1e9 - ended_at
        if late > want.within:
            out.append(
                f"after-call: step {want.step!r} finished {late:.1f}s after hang-up "
                f"(allowed {want.within:.0f}s)"
            )
    return out
