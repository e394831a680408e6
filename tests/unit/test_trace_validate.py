"""Data that cannot be true is quarantined at the Instance boundary, counted, printed, and
no gate passes on it (tests/unit: no server)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.cli import main as harness
from harness.gates import Gate, ScoreStore, evaluate_gates, render_table
from harness.gates.model import GatesFileError, load_gates
from harness.gates.scoring import score_instance
from harness.report.tree import render_tree
from harness.session.summary import CallRow, call_table
from harness.trace import conventions as c
from harness.trace.instance import Instance
from harness.trace.otlp import spans_to_json_lines
from harness.trace.validate import (
    ANY_METRIC,
    DataError,
    data_error_lines,
    quarantine_caller,
)
from tests.fixtures.instances.build import T0, Builder, clinic_10_turns

P90 = Gate(name="e2e_p90", metric="e2e_latency", statistic="p90", fail=3500, min_samples=1)


def healthy_turns(b: Builder, n: int = 5, latency_s: float = 0.8) -> None:
    for i in range(n):
        b.span(c.SPAN_AGENT_TURN, T0 + 10 * i, T0 + 10 * i + 2, lk__e2e_latency=latency_s)


def store_of(*instances: Instance) -> ScoreStore:
    store = ScoreStore()
    for inst in instances:
        store.add(score_instance(inst), data_errors=inst.data_errors)
    return store


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (-0.5, "negative"),
        (float("nan"), "non_finite"),
        (float("inf"), "non_finite"),
        (True, "not_a_number"),
        ("1.2", "not_a_number"),
    ],
)
def test_an_impossible_latency_is_quarantined_and_the_gate_fails(value, kind):
    b = Builder("conv-bad")
    healthy_turns(b)
    b.span(c.SPAN_AGENT_TURN, T0 + 100, T0 + 101, lk__e2e_latency=value)
    inst = b.instance()

    assert [e.kind for e in inst.data_errors] == [kind]
    err = inst.data_errors[0]
    assert err.field == c.LK_E2E_LATENCY and err.metrics == ("e2e_latency",)
    # the evaluators never see it: five healthy samples, not six
    e2e = [s.value for s in score_instance(inst) if s.name == "e2e_latency"]
    assert e2e == [800.0] * 5

    (verdict,) = evaluate_gates([P90], store_of(inst))
    # without the quarantine this p90 (800 ms) passes; a gate never passes on it
    assert verdict.status == "fail" and verdict.data_errors == 1
    assert "cannot be true" in verdict.detail
    table = render_table([verdict])
    assert "DATA ERROR" in table
    assert "1 failed (1 on data that cannot be true)" in table


def test_a_data_error_on_another_metric_leaves_the_gate_alone():
    b = Builder("conv-ttft")
    healthy_turns(b)
    b.span(c.SPAN_LLM_NODE, T0 + 1, T0 + 2, lk__response__ttft=-1.0)
    inst = b.instance()
    assert [e.metrics for e in inst.data_errors] == [("llm_ttft",)]
    ttft = Gate(name="ttft", metric="llm_ttft", statistic="p99", fail=1200, min_samples=1)
    p90, ttft_v = evaluate_gates([P90, ttft], store_of(inst))
    assert p90.status == "pass" and p90.data_errors == 0
    # no sample left at all: still a failure, not "insufficient"
    assert ttft_v.status == "fail" and ttft_v.data_errors == 1 and ttft_v.n == 0


def test_a_healthy_instance_has_no_data_errors():
    inst = clinic_10_turns()
    assert inst.data_errors == ()
    assert all(v.status != "fail" for v in evaluate_gates([P90], store_of(inst)))


def test_end_before_start_is_an_error_not_a_zero_duration():
    b = Builder("conv-time")
    healthy_turns(b)
    b.span("function_tool", T0 + 5, T0 + 4)
    inst = b.instance()
    (err,) = inst.data_errors
    assert err.kind == "end_before_start" and err.metrics == (ANY_METRIC,)
    assert "1000.000 ms before it starts" in err.detail
    (verdict,) = evaluate_gates([P90], store_of(inst))
    assert verdict.status == "fail"


def test_conflicting_duplicate_ids_are_an_error_and_identical_resends_are_not():
    b = Builder("conv-dup")
    a = b.span(c.SPAN_AGENT_TURN, T0, T0 + 1, lk__e2e_latency=0.5)
    resent = Instance("conv-dup", (a, a))
    assert resent.data_errors == () and len(resent.spans) == 1
    other = replace(a, name="tts_node", end_ns=a.end_ns + 5)
    clash = Instance("conv-dup", (a, other))
    (err,) = clash.data_errors
    assert err.kind == "duplicate_span" and "2 different spans" in err.detail
    assert len(clash.spans) == 1


def test_a_parent_cycle_is_cut_reported_and_drawn():
    b = Builder("conv-cycle")
    u = b.span(c.SPAN_USER_TURN, T0, T0 + 1, lk__pii__user_transcript="hi")
    a = b.span(c.SPAN_AGENT_TURN, T0 + 2, T0 + 3, lk__pii__response__text="hello")
    looped = [replace(u, parent_span_id=a.span_id), replace(a, parent_span_id=u.span_id)]
    inst = Instance("conv-cycle", tuple(looped))
    (err,) = inst.data_errors
    assert err.kind == "parent_cycle" and "user_turn → agent_turn" in err.detail
    assert len(inst.roots) == 1  # cut at the earliest span, which becomes a root
    tree = render_tree(inst)
    # before: an empty tree without a word; now both spans and the reason
    assert "user_turn" in tree and "agent_turn" in tree
    assert "DATA ERRORS: 1 value" in tree and "parent_cycle" in tree


def test_impossible_caller_measurements_are_quarantined():
    caller = {
        "turns": [
            {"index": 1, "kind": "say", "response_latency_ms": -120.0, "agent_speech_ms": 900.0},
            {"index": 2, "kind": "say", "response_latency_ms": float("nan")},
            {"index": 3, "kind": "say", "agent_speech_ms": -5.0},
        ]
    }
    cleaned, errors = quarantine_caller(caller)
    # a negative response latency is true: the agent talked over the caller
    assert cleaned["turns"][0]["response_latency_ms"] == -120.0
    assert "response_latency_ms" not in cleaned["turns"][1]
    assert "agent_speech_ms" not in cleaned["turns"][2]
    assert [(e.kind, e.span_id, e.metrics) for e in errors] == [
        ("non_finite", "turn 2", ("response_latency",)),
        ("negative", "turn 3", (ANY_METRIC,)),
    ]
    inst = Builder("conv-caller").instance(caller=caller)
    assert len(inst.data_errors) == 2 and inst.caller == cleaned


def test_data_errors_survive_replace_and_are_not_counted_twice():
    b = Builder("conv-keep")
    b.span(c.SPAN_AGENT_TURN, T0, T0 + 1, lk__e2e_latency=-1.0)
    inst = b.instance()
    again = inst.with_caller({"turns": []}).marked_incomplete("gave up")
    assert again.data_errors == inst.data_errors


def test_the_store_counts_merges_and_round_trips_data_errors():
    err = DataError(
        "negative", "agent_turn", "01", c.LK_E2E_LATENCY, "-1 is below 0", ("e2e_latency",)
    )
    any_err = DataError("parent_cycle", "x", "02", "parent_span_id", "loop")
    a, b = ScoreStore(), ScoreStore()
    a.add([], data_errors=[err])
    b.add([], data_errors=[any_err, err])
    b.add([])
    a.merge(ScoreStore.from_json(b.to_json()))
    assert a.calls == 3 and a.data_error_calls == 2
    assert a.data_errors_for("e2e_latency") == 3 and a.data_errors_for("wer") == 1
    bad = json.loads(a.to_json())
    bad["data_error_calls"] = 99
    with pytest.raises(ValueError, match="data_error_calls"):
        ScoreStore.from_json(json.dumps(bad))


def test_the_call_table_and_the_run_summary_say_so():
    b = Builder("conv-row")
    b.span(c.SPAN_AGENT_TURN, T0, T0 + 1, lk__e2e_latency=-1.0)
    inst = b.instance()
    row = CallRow(
        "booking",
        0,
        3,
        900.0,
        1000.0,
        30.0,
        "pass",
        data_errors=1,
        data_error=inst.data_errors[0].describe(),
    )
    table = call_table([row, CallRow("booking", 1, 3, 900.0, 1000.0, 30.0, "pass")])
    assert "data errors in 1 of 2 calls" in table and "lk.e2e_latency" in table
    lines = data_error_lines({"conv-row": inst.data_errors})
    assert lines[0].startswith("data errors: 1 values that cannot be true in 1 call")
    assert "conv-row" in lines[1]
    assert data_error_lines({"ok": ()}) == []


def test_harness_evaluate_fails_on_an_export_with_a_negative_latency(tmp_path: Path, capsys):
    b = Builder("conv-export")
    healthy_turns(b, n=12)
    b.span(c.SPAN_AGENT_TURN, T0 + 300, T0 + 301, lk__e2e_latency=-2.0)
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(spans_to_json_lines(b.spans)) + "\n")
    gates = tmp_path / "harness.yaml"
    gates.write_text(
        "gates:\n  - {name: e2e_p90, metric: e2e_latency, statistic: p90, fail: 3500, "
        "min_samples: 1}\n"
    )
    code = harness(["evaluate", str(export), "--gates", str(gates)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "DATA ERROR" in out


def test_a_boolean_threshold_is_a_configuration_error(tmp_path: Path):
    path = tmp_path / "harness.yaml"
    path.write_text("gates:\n  - {name: g, metric: e2e_latency, statistic: p90, fail: true}\n")
    # before: `fail: true` was read as a threshold of 1 ms
    with pytest.raises(
        GatesFileError, match=r"harness.yaml:2: gates\[0\].fail: True is not a number"
    ):
        load_gates(path)


@settings(max_examples=60, deadline=2000)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(min_value=-10, max_value=10),
            st.integers(min_value=10**300, max_value=10**400),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_no_gate_passes_with_an_impossible_sample(values):
    """Whatever mix of values reaches lk.e2e_latency, the gate passes only when every one
    of them could be true."""
    b = Builder("conv-prop")
    for i, v in enumerate(values):
        b.span(c.SPAN_AGENT_TURN, T0 + i, T0 + i + 0.5, lk__e2e_latency=v)
    inst = b.instance()
    (verdict,) = evaluate_gates([P90], store_of(inst))

    def possible(v: object) -> bool:
        if isinstance(v, bool):
            return False
        try:
            return 0 <= float(v) <= 86_400  # seconds: no call's latency is longer than a day
        except OverflowError:
            return False

    impossible = [v for v in values if not possible(v)]
    assert len(inst.data_errors) == len(impossible)
    if impossible:
        assert verdict.status == "fail"
