from pathlib import Path

from harness.evaluators import Score
from harness.gates import ScoreStore, default_gates
from harness.gates.scoring import (
    SessionScores,
    expected_end_state,
    gates_failed,
    score_path,
)
from harness.plan.callplan import CallPlan, PlannedTurn
from harness.scenario.model import CallExpect, Expect, Timeouts, ToolExpectation
from harness.session.gaterun import GateRun
from harness.session.summary import CallRow, call_table

FIXTURE = Path(__file__).parents[1] / "fixtures/instances/clinic_10_turns"


def plan(expects, call_expect=None):
    turns = tuple(PlannedTurn(i + 1, "say", "x", e) for i, e in enumerate(expects))
    return CallPlan("s", "clinic", turns, Timeouts(), expect=call_expect)


def test_expected_end_state_collects_tools_and_actions() -> None:
    p = plan(
        [
            Expect(tool_called=ToolExpectation(name="request_booking", args={"day": "tuesday"})),
            Expect(reply_contains=["bye"]),
        ],
        CallExpect(background=[{"action": "create_booking"}]),
    )
    assert expected_end_state(p) == {
        "tool_called": [{"name": "request_booking", "args": {"day": "tuesday"}}],
        "action_done": ["create_booking"],
    }
    assert expected_end_state(plan([Expect(reply_contains=["x"])])) is None


def latency_scores(values):
    return [Score("e2e_latency", v, "ms", span="agent_turn", turn=i) for i, v in enumerate(values)]


def test_worker_outputs_merge_into_the_same_verdicts_as_one_process(tmp_path) -> None:
    values = [900.0 + 37 * i for i in range(40)] + [3900.0] * 10
    whole = ScoreStore()
    whole.add(latency_scores(values))
    run = GateRun()
    rows = [CallRow("a", 1, 3, 900.0, 1000.0, 20.0, "pass")]
    for part in (values[:17], values[17:]):
        store = ScoreStore()
        store.add(latency_scores(part))
        run.add_worker_output(GateRun.worker_output(store, rows))
    gates = default_gates()
    merged = {v.gate.name: (v.status, v.value) for v in run.verdicts(None, None, tmp_path)}
    from harness.gates import evaluate_gates

    single = {v.gate.name: (v.status, v.value) for v in evaluate_gates(gates, whole)}
    assert merged == single
    assert merged["e2e_latency_p90"][0] == "fail"
    assert gates_failed(run.verdicts(None, None, tmp_path))
    assert len(run.rows) == 2 and "2 calls: 2 passed" in call_table(run.rows)


def test_session_scores_write_one_line_per_score(tmp_path) -> None:
    scores = SessionScores(tmp_path)
    scores.record(latency_scores([1.0, 2.0]), conversation_id="c-1", scenario="s", repeat=1)
    lines = (tmp_path / "scores.jsonl").read_text().splitlines()
    assert len(lines) == 2 and '"conversation_id": "c-1"' in lines[0]
    assert sorted(scores.store.select("e2e_latency", span="agent_turn").samples()) == [1.0, 2.0]


def test_score_path_reads_saved_instances() -> None:
    store, n = score_path(FIXTURE)
    assert n == 1
    assert "e2e_latency" in store.metrics


def test_score_call_leaves_out_only_the_audio_scores_of_an_unusable_recording(
    tmp_path, caplog
) -> None:
    from harness.gates.scoring import score_call, score_instance
    from harness.trace.otlp import load_instance

    inst = load_instance(FIXTURE)
    whole, problems = score_call(inst)
    assert problems == []
    (tmp_path / "rec.wav").write_bytes(b"RIFF")
    bad = inst.with_caller(inst.caller, str(tmp_path / "rec.wav"))
    scores, (problem,) = score_call(bad)
    assert problem.kind == "recording" and problem.call == "conv-clinic-10"
    assert problem.file == tmp_path / "rec.wav" and "not a readable WAV" in problem.reason
    assert sorted(s.name for s in scores) == sorted(s.name for s in whole)  # no audio either way
    with caplog.at_level("WARNING", logger="harness.gates.scoring"):
        assert score_instance(bad) == scores
    assert "rec.wav: not a readable WAV file" in caplog.text
