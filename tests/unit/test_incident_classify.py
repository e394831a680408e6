"""The classification table: checks turn Scores into failures, rules give layer and severity."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from harness.evaluators.base import Score
from harness.incident.classify import (
    LAYERS,
    RULES_FILE,
    SEVERITIES,
    IncidentSignals,
    classify,
    find_failures,
    load_rules,
    parse_rules,
)
from harness.incident.errors import IncidentError
from harness.trace import conventions as c
from tests.fixtures.incidents.build import clinic_loop
from tests.fixtures.instances.build import T0, Builder

ROOT = Path(__file__).resolve().parents[2]


def s(name: str, value: float, unit: str = "count", turn: int | None = None) -> Score:
    return Score(name, value, unit, turn=turn)


def verdict(*scores: Score) -> tuple[str, str, str]:
    cl = classify(find_failures(scores))
    return cl.severity, cl.failing_layer, cl.rule


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        # SEV-1
        ([s("unapproved_mutations", 1)], ("SEV-1", "tool_action", "unapproved_mutation")),
        ([s("pii_exposed", 2)], ("SEV-1", "llm_dialog", "pii_exposure")),
        (
            [s("unapproved_mutations", 1), s("loop_detected", 1, "bool")],
            ("SEV-1", "tool_action", "unapproved_mutation"),
        ),
        # SEV-2
        ([s("actions_failed", 1)], ("SEV-2", "tool_action", "action_failed")),
        (
            [s("tool_success", 0, "bool"), s("task_completed", 0, "bool")],
            ("SEV-2", "tool_action", "tool_failed_task"),
        ),
        ([s("session_errors", 1)], ("SEV-2", "telephony_transport", "dropped_call")),
        (
            [s("wer", 0.3, "ratio"), s("task_completed", 0, "bool")],
            ("SEV-2", "speech_recognition", "asr_task"),
        ),
        (
            [s("loop_detected", 1, "bool"), s("intents_failed", 1)],
            ("SEV-2", "llm_dialog", "loop_task"),
        ),
        ([s("task_completed", 0, "bool")], ("SEV-2", "llm_dialog", "task_failed")),
        (
            [s("workflow_completed", 0, "bool")],
            ("SEV-2", "after_call_workflow", "workflow_failed"),
        ),
        ([s("e2e_latency", 12000, "ms")], ("SEV-2", "llm_dialog", "latency_critical")),
        # SEV-3
        ([s("loop_detected", 1, "bool")], ("SEV-3", "llm_dialog", "loop")),
        ([s("tool_success", 0, "bool")], ("SEV-3", "tool_action", "tool_failed")),
        ([s("transcript_confidence_min", 0.3, "ratio")], ("SEV-3", "speech_recognition", "asr")),
        ([s("tts_ttfb", 1500, "ms")], ("SEV-3", "tts", "tts")),
        ([s("truncated_speech", 1, "bool")], ("SEV-3", "tts", "tts")),
        ([s("e2e_latency", 6000, "ms")], ("SEV-3", "llm_dialog", "latency")),
        ([s("llm_ttft", 1500, "ms")], ("SEV-3", "llm_dialog", "latency")),
        ([s("interruption_rate", 0.4, "ratio")], ("SEV-3", "speech_recognition", "interruptions")),
        ([s("dead_air_longest", 8000, "ms")], ("SEV-3", "telephony_transport", "dead_air")),
        ([], ("SEV-3", "llm_dialog", "unclassified")),
    ],
)
def test_table(scores, expected):
    assert verdict(*scores) == expected


def test_passing_scores_fail_nothing():
    passing = [
        s("unapproved_mutations", 0),
        s("tool_success", 1, "bool"),
        s("task_completed", 1, "bool"),
        s("loop_detected", 0, "bool"),
        s("e2e_latency", 4999, "ms"),
        s("llm_ttft", 1200, "ms"),
        s("wer", 0.08, "ratio"),
        s("workflow_completed", 1, "bool"),
    ]
    assert find_failures(passing) == []


def test_finding_keeps_the_worst_value_its_turn_and_the_count():
    (f,) = find_failures(
        [s("e2e_latency", 6000, "ms", 2), s("e2e_latency", 7500, "ms", 5), s("e2e_latency", 900)]
    )
    assert (f.name, f.value, f.turn, f.count) == ("latency", 7500, 5, 2)
    assert f.describe() == "latency: e2e_latency = 7500 ms (turn 5) (> 5000, 2 values)"
    low = find_failures([s("transcript_confidence_min", 0.4, "ratio", 3)])[0]
    assert (low.value, low.turn) == (0.4, 3)


def test_failed_evaluators_in_table_order_once():
    cl = classify(
        find_failures(
            [s("e2e_latency", 20000, "ms"), s("loop_detected", 1, "bool"), s("llm_ttft", 2000)]
        )
    )
    assert cl.failed_evaluators == ("loops", "latency")


def test_rules_are_ordered_by_severity_and_end_with_a_catch_all():
    table = load_rules()
    ranks = [SEVERITIES.index(r.severity) for r in table.rules]
    assert ranks == sorted(ranks)
    assert table.rules[-1].always
    assert {r.layer for r in table.rules} == set(LAYERS)


def test_a_misordered_table_is_refused():
    data = yaml.safe_load(RULES_FILE.read_text())
    data["rules"].insert(0, data["rules"].pop(-2))  # a SEV-3 rule first
    with pytest.raises(IncidentError, match="ordered from SEV-1 to SEV-3"):
        parse_rules(data)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (lambda d: d["rules"][0].update(any=["nope"]), "no check named 'nope'"),
        (lambda d: d["rules"][0].update(layer="database"), "layer 'database'"),
        (lambda d: d["rules"][0].update(severity="SEV-0"), "severity 'SEV-0'"),
        (lambda d: d["checks"][0].update(op="~"), "op '~'"),
        (lambda d: d["checks"][0].update(expect="everything"), "expect 'everything'"),
        (lambda d: d["rules"].pop(), "must be `always: true`"),
        (lambda d: d["rules"][0].update(colour="red"), "unknown key"),
    ],
)
def test_bad_tables_name_the_field(patch, message):
    data = yaml.safe_load(RULES_FILE.read_text())
    patch(data)
    with pytest.raises(IncidentError, match=re.escape(message)):
        parse_rules(data)


def test_table_is_documented_once(tmp_path):
    """Every rule of the table appears in docs/incidents.md, with its layer and severity."""
    doc = (ROOT / "docs" / "incidents.md").read_text()
    for rule in load_rules().rules:
        row = next((line for line in doc.splitlines() if f"`{rule.name}`" in line), None)
        assert row is not None, rule.name
        assert rule.severity in row and rule.layer in row, row


def test_custom_table_from_a_file(tmp_path):
    data = yaml.safe_load(RULES_FILE.read_text())
    data["rules"][-1]["layer"] = "tts"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data))
    assert classify([], load_rules(path)).failing_layer == "tts"
    with pytest.raises(IncidentError) as info:
        load_rules(tmp_path / "missing.yaml")
    assert info.value.file == str(tmp_path / "missing.yaml")


# --- the incident's own signals -----------------------------------------------------------------


def test_signals_on_the_loop_incident():
    instance, _ = clinic_loop()
    scores = {sc.name: sc for sc in IncidentSignals().evaluate(instance)}
    assert scores["intents_failed"].value == 1
    assert "book_appointment: abandoned" in scores["intents_failed"].detail
    assert scores["pii_exposed"].value == 0
    assert scores["session_errors"].value == 0
    assert scores["transcript_confidence_min"].value == pytest.approx(0.91)


def test_signals_pii_exposure_failed_action_and_dropped_session():
    b = Builder("conv-x")
    session = b.span(
        c.SPAN_AGENT_SESSION, T0, T0 + 9, status=c.STATUS_ERROR, status_message="sip bye"
    )
    b.span(c.SPAN_USER_TURN, T0 + 1, T0 + 2, parent=session, lk__pii__user_transcript="hi")
    b.span(
        c.SPAN_AGENT_TURN,
        T0 + 2.5,
        T0 + 4,
        parent=session,
        lk__pii__response__text="The card on file is 4242 4242 4242 4242.",
    )
    b.span(
        "action charge",
        T0 + 3,
        T0 + 3.5,
        layer=c.LAYER_BACKGROUND,
        status=c.STATUS_ERROR,
        status_message="declined",
        action__name="charge",
        action__mutating=True,
        action__approval="approved",
    )
    scores = {sc.name: sc for sc in IncidentSignals().evaluate(b.instance())}
    # no greeting, so the first caller turn is turn 0
    assert scores["pii_exposed"].value == 1 and scores["pii_exposed"].turn == 0
    assert scores["actions_failed"].value == 1 and "declined" in scores["actions_failed"].detail
    assert scores["session_errors"].value == 1
    assert verdict(*scores.values()) == ("SEV-1", "llm_dialog", "pii_exposure")
