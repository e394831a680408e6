"""What the replay asserts: the failed checks' expectations, read from one table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.incident.classify import Finding, load_rules
from harness.incident.errors import IncidentError
from harness.incident.expect import (
    EXPECT_NAMES,
    EXPECTED_END_STATE,
    SOURCES,
    call_timeouts,
    derive_expectations,
    parse_expected,
)
from harness.incident.redact import RedactionConfig, Redactor
from harness.incident.turns import CallerTurn
from harness.trace import conventions as c
from tests.fixtures.incidents.build import T0
from tests.fixtures.instances.build import Builder

TABLE = load_rules()


def failed(*names: str) -> list[Finding]:
    """One finding per named check of the built-in table (its first row)."""
    out = []
    for name in names:
        check = next(ch for ch in TABLE.checks if ch.name == name)
        out.append(Finding(check, check.threshold + 1, "count", None, None, ""))
    return out


def bad_call():
    """A tool that failed, a background action in error, a mutation nobody approved, and an
    after-call workflow with one failed step."""
    b = Builder("conv-bad")
    session = b.span(c.SPAN_AGENT_SESSION, T0, T0 + 30)
    b.span(
        c.SPAN_FUNCTION_TOOL,
        T0 + 1,
        T0 + 2,
        parent=session,
        lk__function_tool__name="check_availability",
        lk__function_tool__is_error=True,
    )
    b.span(
        c.SPAN_FUNCTION_TOOL,
        T0 + 3,
        T0 + 4,
        parent=session,
        lk__function_tool__name="request_booking",
        lk__function_tool__is_error=False,
    )
    b.span(
        "action write",
        T0 + 5,
        T0 + 6,
        layer=c.LAYER_BACKGROUND,
        action__name="write_booking",
        action__mutating=True,
        action__approval="skipped",
    )
    b.span(
        "action audit",
        T0 + 5,
        T0 + 6,
        layer=c.LAYER_BACKGROUND,
        action__name="audit",
        action__mutating=True,
        action__approval="approved",
        status=c.STATUS_ERROR,
    )
    root = b.span("after_call", T0 + 40, T0 + 45, layer=c.LAYER_WORKFLOW, trace_id="f" * 32)
    b.span("summarize", T0 + 40, T0 + 41, parent=root, layer=c.LAYER_WORKFLOW, status="ok")
    b.span(
        "write_outbox", T0 + 41, T0 + 42, parent=root, layer=c.LAYER_WORKFLOW, status=c.STATUS_ERROR
    )
    return b.instance()  # fmt: skip


def derive(findings, instance=None, expected=None, warnings=None):
    return derive_expectations(
        findings,
        instance if instance is not None else bad_call(),
        parse_expected(expected),
        Redactor(RedactionConfig(names=("Maria Lopez",))),  # as if learned from the call
        [] if warnings is None else warnings,
    )


def test_the_rules_table_names_only_sources_this_module_reads():
    """One table says which expectation a check asks for (classify_rules.yaml), the other how
    it is read from the trace (SOURCES): every name the first uses, the second defines."""
    named = {ch.expect for ch in TABLE.checks if isinstance(ch.expect, str)}
    assert named <= EXPECT_NAMES
    assert named == {s.name for s in SOURCES} | {EXPECTED_END_STATE}  # none unused
    assert len({s.field for s in SOURCES}) == len(SOURCES)


def test_each_failed_check_asserts_what_the_trace_shows():
    result = derive(
        failed("unapproved_mutation", "action_failed", "tool_failed", "workflow_failed")
    )
    assert result.expect == {
        "background": [{"action": "write_booking", "approval": "approved"}],
        "after_call": [{"step": "write_outbox"}],
        "end_state": {"tool_called": ["check_availability"], "action_done": ["audit"]},
    }
    assert result.notes == (
        "background: from risk (unapproved_mutations > 0)",
        "end_state: from background_actions (actions_failed > 0)",
        "end_state: from tool_success (tool_success < 1)",
        "after_call: from workflow (workflow_completed < 1)",
    )
    assert result.unasserted == ()


def test_a_check_without_an_expectation_asserts_nothing():
    result = derive(failed("pii_exposure", "intent_failed", "asr_errors", "intent_failed"))
    assert result.expect == {} and result.notes == ()
    assert result.unasserted == ("pii_exposure", "intent_failed", "asr_errors")


def test_an_approved_mutation_and_a_passing_tool_are_never_asserted():
    b = Builder("conv-ok")
    b.span(
        "action write",
        T0,
        T0 + 1,
        action__name="write_booking",
        action__mutating=True,
        action__approval="approved",
    )
    b.span(c.SPAN_FUNCTION_TOOL, T0, T0 + 1, lk__function_tool__name="book")  # fmt: skip
    warnings: list[str] = []
    result = derive(
        failed("unapproved_mutation", "tool_failed", "workflow_failed"), b.instance(), None,
        warnings,
    )  # fmt: skip
    assert result.expect == {}
    assert warnings == ["the after-call workflow failed without any step to assert"]


@given(st.permutations(["loop", "latency", "llm_slow", "tts_slow"]))
def test_of_two_latency_bounds_the_strictest_wins_in_any_order(order):
    result = derive(failed(*order))
    assert result.expect == {"no_loop": True, "max_response_latency_ms": 3500}


def test_the_expected_end_state_comes_from_the_caller_of_the_import():
    expected = {
        "tool_called": [
            {"name": "request_booking", "args": {"name": "Maria Lopez", "slot": 9}},
            "check_availability",
        ],
        "action_done": {"name": "write_booking", "approved": True},
    }
    result = derive(failed("tool_failed", "task_failed"), expected=expected)
    state = result.expect["end_state"]
    # the trace's failed tool keeps its place; the expected form of it replaces it
    assert state["tool_called"] == [
        "check_availability",
        {"name": "request_booking", "args": {"name": "Alex Doe", "slot": 9}},
    ]
    assert state["action_done"] == [{"name": "write_booking", "approved": True}]
    warnings: list[str] = []
    result = derive(failed("task_failed"), warnings=warnings)
    assert "end_state" not in result.expect
    assert warnings == [
        "task_completion failed but the expected end state is unknown; pass expected= to assert it"
    ]
    # expected= alone asserts nothing unless a check asks for it
    assert derive(failed("loop"), expected=expected).expect == {"no_loop": True}


def test_a_bad_expected_end_state_names_the_field():
    with pytest.raises(IncidentError, match="expected=") as info:
        parse_expected({"tool": "x"})
    assert info.value.field == "expected"
    assert parse_expected(None) is None


def caller_turn(start: float, end: float, offset: float | None = None) -> CallerTurn:
    return CallerTurn(1, "say", "x", start, end, (), None, None, None, offset)


def test_a_long_call_gets_a_longer_timeout_and_a_short_one_none():
    assert call_timeouts([caller_turn(0, 60)]) is None  # 150 s is within the default
    assert call_timeouts([caller_turn(0, 100, offset=200)]) == {"call_s": 360}
    assert call_timeouts([caller_turn(0, 1e300)]) == {"call_s": 3600}  # never overflows
    assert call_timeouts([]) is None
