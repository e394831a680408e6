"""One call, one connected story: the Instance spans three processes and three layers, the
recording holds each side on its own channel, and the harness tells a crashed workflow and
an unapproved action apart from a good call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.report.tree import render_tree
from harness.scenario.model import load_scenario
from harness.trace import conventions as c
from harness.trace.otlp import load_instance
from tests.support.recording import assert_caller_left_agent_right
from tests.support.turns import TurnReached

pytestmark = pytest.mark.e2e
SUITES = Path(__file__).parent / "suites"


def test_booking_instance_spans_three_processes_and_layers(clinic_session, smoke_scenarios):
    with clinic_session() as session:
        outcome = session.run(smoke_scenarios["booking"])
    assert outcome.verdict == "pass", outcome.describe()
    instance = load_instance(outcome.artifacts)
    assert instance.complete
    print("\n" + render_tree(instance))
    services = {s.service_name: s.layer for s in instance.spans}
    assert services == {
        "clinic-agent": c.LAYER_CONVERSATIONAL,
        "clinic-backend": c.LAYER_BACKGROUND,
        "clinic-workflow": c.LAYER_WORKFLOW,
    }
    pids = {s.resource.get("process.pid") for s in instance.spans}
    assert len(pids) >= 3, pids  # three processes (the agent's job runs in its own)
    assert {s.attributes.get(c.CONVERSATION_ID) for s in instance.spans} == {
        outcome.conversation_id
    }
    (booking,) = [a for a in instance.actions if a.name == "create_booking"]
    assert booking.mutating and booking.approval == "approved"
    assert [s.name for s in instance.workflow] == ["summarize", "send_confirmation"]
    assert_caller_left_agent_right(outcome)


def test_workflow_crash_is_reported_and_the_instance_saved_incomplete(
    clinic_session, smoke_scenarios
):
    with clinic_session(env={"CLINIC_WORKFLOW_CRASH": "1"}) as session:
        outcome = session.run(smoke_scenarios["booking"])
    assert outcome.verdict == "fail"
    assert "after-call workflow did not complete within 15s" in outcome.failures
    side = json.loads((outcome.artifacts / "caller.json").read_text())
    assert side["complete"] is False
    assert load_instance(outcome.artifacts).complete is False


def test_skipped_approval_names_the_unapproved_mutating_action(clinic_session, smoke_scenarios):
    with clinic_session(env={"CLINIC_SKIP_APPROVAL": "1"}) as session:
        outcome = session.run(smoke_scenarios["booking"])
    assert outcome.verdict == "fail"
    assert any(
        "mutating action 'create_booking' ran with approval 'skipped'" in f
        and "unapproved mutating action" in f
        for f in outcome.failures
    ), outcome.failures


def test_collector_outage_mid_call_does_not_break_the_call(clinic_session):
    scenario = load_scenario(SUITES / "quick_hours.yaml")
    turn_2 = TurnReached(2)
    with clinic_session(on_turn=turn_2) as session:
        future = session.submit(scenario)
        turn_2.wait(timeout=90)  # greeting and turn 1 are traced; now the collector goes away
        session.stop_collector()
        outcome = future.result(timeout=scenario.timeouts.call_s + 60)
    assert outcome.verdict == "pass", outcome.describe()
    said = [t.agent_said for t in outcome.result.turns]
    assert "goodbye" in said[-1].lower(), said
