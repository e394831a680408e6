"""Never silent: a call without a trace says so, with the cause and the fix, everywhere."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.evaluators.base import Score
from harness.gates import ScoreStore, evaluate_gates, load_gates, render_table
from harness.report.tree import render_tree
from harness.session.engine import otel_env
from harness.session.summary import CallRow, call_table
from harness.trace import conventions as c
from harness.trace.health import (
    ExportSetup,
    SessionTraceReport,
    TraceHealth,
    no_root_reason,
    no_trace_reason,
)
from harness.trace.instance import NO_TRACE, Instance, Span
from harness.trace.join import UnmatchedReport

NOTHING = UnmatchedReport(0, 0, ())
EP = "http://127.0.0.1:4318"


def span(name: str, n: int, parent: int | None = None) -> Span:
    return Span(
        trace_id="a" * 32,
        span_id=f"{n:016x}",
        parent_span_id=f"{parent:016x}" if parent is not None else None,
        name=name,
        start_ns=n,
        end_ns=n + 10,
        scope_name=c.LIVEKIT_SCOPE,
    )


def test_an_instance_without_spans_is_never_complete():
    inst = Instance("c-1")
    assert not inst.complete and inst.incomplete_reason == NO_TRACE
    assert inst.trace_state == "none"
    assert "INCOMPLETE: no trace from the agent" in render_tree(inst)


def test_an_instance_without_the_job_root_is_partial_and_says_how_to_flush():
    inst = Instance("c-1", (span("agent_session", 2, parent=1), span("agent_turn", 3, parent=2)))
    assert inst.complete and inst.trace_state == "partial"
    health = TraceHealth.of(inst)
    assert health.label == "partial" and "job_entrypoint" in health.reason
    assert "multiprocessing.util.Finalize" in health.reason
    assert render_tree(inst).startswith("conversation c-1  (PARTIAL: the agent's root span")
    assert no_root_reason(Instance("c", (span("job_entrypoint", 5, parent=4),))).startswith(
        "the conversational agent's root span"
    )


def test_a_whole_livekit_trace_is_complete():
    inst = Instance("c-1", (span("job_entrypoint", 1), span("agent_session", 2, parent=1)))
    assert inst.trace_state == "complete" and TraceHealth.of(inst).label == "ok"


def test_nothing_exported_by_an_agent_the_harness_started_names_the_launcher():
    setup = ExportSetup(EP, "{python} my_agent.py start", {})
    why = no_trace_reason(setup, requests=0, unmatched=NOTHING, traced_calls=0)
    assert why.startswith(NO_TRACE)
    assert "`harness agent -- python my_agent.py start`" in why
    assert "import harness_instrument.autoconfigure" in why
    assert "set_tracer_provider" in why


def test_nothing_exported_by_an_agent_started_elsewhere_names_the_endpoint_and_collector():
    why = no_trace_reason(ExportSetup(EP), requests=0, unmatched=NOTHING, traced_calls=0)
    assert f"OTEL_EXPORTER_OTLP_ENDPOINT={EP}" in why and "--collector" in why


def test_a_disabled_sdk_is_named():
    setup = ExportSetup(EP, "agent", {"OTEL_SDK_DISABLED": "true"})
    why = no_trace_reason(setup, requests=0, unmatched=NOTHING, traced_calls=0)
    assert "OTEL_SDK_DISABLED=true" in why
    setup = ExportSetup(EP, "agent", {"OTEL_TRACES_EXPORTER": "console"})
    assert "OTEL_TRACES_EXPORTER=console" in no_trace_reason(
        setup, requests=0, unmatched=NOTHING, traced_calls=0
    )


def test_spans_that_matched_nothing_are_named_with_their_services():
    unmatched = UnmatchedReport(3, 0, (("pizza", 3),))
    why = no_trace_reason(
        ExportSetup(EP, "a"),
        requests=2,
        unmatched=unmatched,
        traced_calls=0,
        room="harness-c-1",
        room_sid="RM_1",
    )
    assert "3 spans received that matched no call (from pizza: 3)" in why
    assert "harness-c-1, RM_1" in why


def test_a_call_missing_while_others_were_traced_points_at_the_exporter():
    why = no_trace_reason(ExportSetup(EP, "a"), requests=9, unmatched=NOTHING, traced_calls=4)
    assert "4 other calls got spans" in why and "OTEL_BSP_SCHEDULE_DELAY" in why


def test_the_call_table_has_a_trace_column_and_one_note_per_reason():
    rows = [
        CallRow("a", 1, 2, 100.0, 200.0, 10.0, "pass", "", "ok", ""),
        CallRow("b", 1, 2, 100.0, 200.0, 10.0, "pass", "", "none", "no trace from the agent: x"),
        CallRow("b", 2, 2, 100.0, 200.0, 10.0, "pass", "", "none", "no trace from the agent: x"),
    ]
    table = call_table(rows)
    header = table.splitlines()[0].split()
    assert header[-2:] == ["trace", "verdict"]
    assert "trace none in 2 of 3 calls: no trace from the agent: x" in table
    assert table.count("no trace from the agent") == 1


def test_trace_derived_gates_say_no_trace_not_insufficient():
    gates = load_gates_text(
        """
gates:
  - {name: ttft, metric: llm_ttft, span: llm_node, statistic: p99, fail: 1200, min_samples: 1}
  - {name: wer, metric: wer, statistic: mean, fail: 8%, min_samples: 5}
"""
    )
    store = ScoreStore()
    store.add([Score("wer", 0.0, "ratio")], traced=False)
    store.add([Score("wer", 0.0, "ratio")], traced=False)
    ttft, wer = evaluate_gates(gates, store)
    assert ttft.no_trace and ttft.status == "insufficient"
    assert "no trace from the agent in 2 of 2 calls" in ttft.detail
    assert not wer.no_trace and "insufficient samples" in wer.detail
    table = render_table([ttft, wer])
    assert "NO TRACE" in table and "(1 for want of a trace)" in table


def test_untraced_calls_merge_and_round_trip():
    a, b = ScoreStore(), ScoreStore()
    a.add([], traced=False)
    b.add([])
    b.add([], traced=False)
    a.merge(b)
    assert (a.calls, a.untraced_calls) == (3, 2)
    back = ScoreStore.from_json(a.to_json())
    assert (back.calls, back.untraced_calls) == (3, 2)


@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.integers(0, 9)),
        max_size=5,
    )
)
def test_session_trace_reports_merge_exactly(parts):
    reports = [
        SessionTraceReport(UnmatchedReport(p, d, (("s", p + d),) if p + d else ()), late)
        for p, d, _, late in parts
    ]
    merged = SessionTraceReport.merged(SessionTraceReport.from_dict(r.to_dict()) for r in reports)
    assert merged.unmatched.total == sum(p + d for p, d, _, _ in parts)
    assert merged.late_spans == sum(late for *_, late in parts)
    assert bool(merged.lines()) == bool(merged.unmatched.total or merged.late_spans)


def test_otel_env_points_an_agent_at_the_receiver_and_keeps_its_own_names():
    env = otel_env(EP, EP + "/v1/traces", {}, "{python} -m examples.clinic.deploy start")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == EP
    assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == EP + "/v1/traces"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_SERVICE_NAME"] == "examples.clinic.deploy"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == (
        "agent.layer=conversational,deployment.environment.name=test"
    )
    mine = otel_env(
        EP,
        EP + "/v1/traces",
        {
            "OTEL_SERVICE_NAME": "pizza",
            "OTEL_RESOURCE_ATTRIBUTES": "agent.layer=background, team=voice",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://prod.example/v1/traces",
        },
        "harness agent -- python agent.py start",
    )
    assert "OTEL_SERVICE_NAME" not in mine
    assert mine["OTEL_RESOURCE_ATTRIBUTES"] == (
        "agent.layer=background, team=voice,deployment.environment.name=test"
    )
    assert mine["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == EP + "/v1/traces"
    launched = otel_env(EP, EP, {}, "harness agent -- {python} examples/minimal_agent/agent.py")
    assert launched["OTEL_SERVICE_NAME"] == "agent"


def load_gates_text(text: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "harness.yaml"
        p.write_text(text)
        return load_gates(p)
