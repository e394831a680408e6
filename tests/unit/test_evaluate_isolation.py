"""Per-call isolation in `harness evaluate` and `harness baseline save`: an artifact that
cannot be read costs its own call what it holds, is named with its file and counted, and
every other call is evaluated."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.evaluators.audio import RecordingError, check_recording
from harness.gates import default_gates, evaluate_gates, load_gates
from harness.gates.baseline import load_baseline
from harness.gates.scoring import evaluate_path
from harness.trace.instance import Instance
from harness.trace.otlp import save_instance, spans_to_json_lines
from tests.fixtures.instances.build import T0, clinic_10_turns

RATE = 8000


def write_recording(inst: Instance, path: Path) -> Path:
    """A short stereo WAV: caller tones on the left, agent tones on the right, at the
    side-file's times."""
    caller = inst.caller or {}
    length = int((float(caller["ended_at"]) - T0 + 1.0) * RATE)
    stereo = np.zeros((length, 2), dtype=np.int16)
    for turn in caller["turns"]:
        for ch, (a, b) in enumerate(
            (
                (turn.get("caller_start"), turn.get("caller_end")),
                (turn.get("agent_onset"), turn.get("agent_offset")),
            )
        ):
            if a is None or b is None:
                continue
            i, j = int((a - T0) * RATE), min(length, int((b - T0) * RATE))
            t = np.arange(j - i) / RATE
            stereo[i:j, ch] = (8000 * np.sin(2 * np.pi * (180 + 60 * ch) * t)).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(stereo.tobytes())
    return path


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A saved run of three calls, each with trace.jsonl, caller.json and recording.wav."""
    root = tmp_path / "run"
    for k in range(3):
        inst = clinic_10_turns(f"conv-{k}")
        inst = inst.with_caller(
            {**(inst.caller or {}), "recording": "recording.wav"}, "recording.wav"
        )
        save_instance(inst, root / f"call-{k}")
        write_recording(inst, root / f"call-{k}" / "recording.wav")
    return root


def truncate(path: Path, size: int = 2000) -> None:
    path.write_bytes(path.read_bytes()[:size])


def audio_calls(store) -> int:
    return store.select("dead_air_longest").count


# --- the recording -----------------------------------------------------------------------


def test_a_whole_run_scores_every_call(run: Path) -> None:
    result = evaluate_path(run)
    assert result.calls == 3 and result.artifact_count == 0 and result.lines() == []
    assert audio_calls(result.store) == 3


def test_evaluate_with_a_truncated_wav_in_one_of_three_calls(run: Path, capsys) -> None:
    wav = run / "call-1" / "recording.wav"
    truncate(wav)
    rc = main(["evaluate", str(run)])
    out = capsys.readouterr().out
    assert rc in (0, 1)  # the gates decide, not the WAV
    assert "3 calls from" in out
    (line,) = [ln for ln in out.splitlines() if str(wav) in ln]
    assert (
        "truncated" in line
        and "conv-1" in line
        and "scores read from its recording (dead_air_longest" in line
    )
    assert "fix: copy the recording again" in line
    assert "1 artifact could not be read (1 recording)" in out
    result = evaluate_path(run)
    assert result.calls == 3
    assert audio_calls(result.store) == 2  # only conv-1 lost its audio scores
    assert result.store.select("e2e_latency").count == 30  # everything else: every call


@pytest.mark.parametrize("size", [2001, 40_001])  # cut mid-sample: an odd byte count
def test_a_wav_cut_mid_sample_costs_only_its_own_call(run: Path, tmp_path: Path, capsys, size):
    """A cut at an odd byte count made the old reader raise for the whole run (evaluate and
    baseline save exited 1, naming no file)."""
    wav = run / "call-0" / "recording.wav"
    truncate(wav, size)
    assert main(["evaluate", str(run)]) in (0, 1)
    out = capsys.readouterr().out
    assert "3 calls from" in out and str(wav) in out
    assert main(["baseline", "save", str(run), "--out", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert str(wav) in out and "baseline of 3 calls written" in out
    assert audio_calls(load_baseline(tmp_path / "b.json")) == 2


def test_baseline_save_with_a_truncated_wav(run: Path, tmp_path: Path, capsys) -> None:
    wav = run / "call-2" / "recording.wav"
    truncate(wav, 30)  # not even a whole header
    out_file = tmp_path / "baseline.json"
    assert main(["baseline", "save", str(run), "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert f"{wav}: not a readable WAV file" in out
    assert "1 artifact could not be read" in out
    assert "baseline of 3 calls written" in out
    base = load_baseline(out_file)
    assert base.calls == 3 and audio_calls(base) == 2
    meta = json.loads(out_file.read_text())["meta"]
    assert meta["calls"] == 3 and meta["artifacts_unread"] == 1


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: truncate(p), "truncated: the header declares"),
        (lambda p: truncate(p, 30), "not a readable WAV file"),
        (lambda p: p.unlink(), "missing"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4), "not a readable WAV file"),
    ],
)
def test_check_recording_names_the_file_and_what_is_wrong(run: Path, damage, message) -> None:
    wav = run / "call-0" / "recording.wav"
    check_recording(wav)  # a whole recording passes
    damage(wav)
    with pytest.raises(RecordingError, match=message) as info:
        check_recording(wav)
    assert info.value.file == str(wav)


def test_a_mono_recording_is_named_not_silently_skipped(run: Path) -> None:
    wav = run / "call-0" / "recording.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"\x00\x00" * RATE)
    result = evaluate_path(run)
    (problem,) = result.problems
    assert problem.kind == "recording" and problem.call == "conv-0"
    assert "1 channel(s)" in problem.reason and "16-bit stereo" in problem.reason


def test_a_gate_that_lost_its_samples_is_insufficient_never_a_pass(run: Path, tmp_path) -> None:
    gates = tmp_path / "harness.yaml"
    gates.write_text(
        "gates:\n"
        "  - name: dead_air\n"
        "    metric: dead_air_longest\n"
        "    statistic: max\n"
        "    warn: 60000\n"
        "    fail: 70000\n"
        "    min_samples: 3\n"
    )
    config = load_gates(gates)
    (whole,) = evaluate_gates(config, evaluate_path(run).store)
    assert whole.status == "pass" and whole.n == 3
    truncate(run / "call-0" / "recording.wav")
    (one_lost,) = evaluate_gates(config, evaluate_path(run).store)
    assert one_lost.status == "insufficient" and one_lost.n == 2
    for k in (1, 2):
        truncate(run / f"call-{k}" / "recording.wav")
    (all_lost,) = evaluate_gates(config, evaluate_path(run).store)
    assert all_lost.status == "insufficient" and all_lost.n == 0


# --- the trace ---------------------------------------------------------------------------


def test_a_garbled_trace_line_leaves_that_call_without_a_trace(run: Path, capsys) -> None:
    trace = run / "call-0" / "trace.jsonl"
    lines = trace.read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]  # cut mid-write
    trace.write_text("\n".join(lines) + "\n")
    rc = main(["evaluate", str(run)])
    out = capsys.readouterr().out
    assert rc in (0, 1)
    (line,) = [ln for ln in out.splitlines() if f"{trace}:2:" in ln]
    assert "not valid JSON" in line and "conv-0" in line and "NO TRACE" in line
    assert "1 artifact could not be read (1 trace)" in out
    result = evaluate_path(run)
    assert result.calls == 3 and result.store.untraced_calls == 1
    assert result.store.select("e2e_latency").count == 20  # two traced calls of 10 turns
    # what the caller measured is still there for all three
    assert result.store.select("response_latency").count == 30
    # the span gates say why they have fewer samples
    verdicts = {v.name: v for v in evaluate_gates(default_gates(), result.store)}
    tool = verdicts["tool_success"]
    assert tool.status == "insufficient"
    assert "no trace from the agent in 1 of 3 calls" in tool.detail


def test_a_trace_that_cannot_be_opened_counts_as_a_call_without_a_trace(run: Path) -> None:
    trace = run / "call-2" / "trace.jsonl"
    trace.unlink()
    trace.mkdir()  # found by name, but not a file
    result = evaluate_path(run)
    assert result.calls == 3 and result.store.untraced_calls == 1
    (problem,) = result.problems
    assert problem.kind == "trace" and problem.call == "conv-2"
    assert "cannot read trace file" in problem.reason and str(trace) in problem.reason


def test_a_bad_caller_json_scores_the_call_from_its_trace_alone(run: Path) -> None:
    side = run / "call-1" / "caller.json"
    side.write_text('{"conversation_id": "conv-1", "format": "harness.inst')
    result = evaluate_path(run)
    assert result.calls == 3
    (problem,) = result.problems
    assert problem.kind == "side file" and problem.file == side and problem.call == "conv-1"
    assert "cannot read side file" in problem.reason and "fix:" in problem.describe()
    # conv-1 still gives its span scores; the caller's own measurements are absent
    assert result.store.select("e2e_latency").count == 30
    assert result.store.select("response_latency").count == 20
    assert audio_calls(result.store) == 2  # the recording was named in the lost side file


def test_two_bad_artifacts_are_each_named_and_counted(run: Path) -> None:
    truncate(run / "call-0" / "recording.wav")
    trace = run / "call-2" / "trace.jsonl"
    trace.write_text(trace.read_text().replace('"traceId":"', '"traceId":"zz', 1))
    result = evaluate_path(run)
    assert result.calls == 3 and result.artifacts == {"recording": 1, "trace": 1}
    lines = result.lines()
    assert "2 artifacts could not be read (1 recording, 1 trace)" in lines[2]
    assert "traceId" in lines[1] and "hex digits" in lines[1]


# --- an export file ----------------------------------------------------------------------


def export_of(tmp_path: Path, calls: list[Instance | list], extra: list[str] = ()) -> Path:
    """An export of the calls' spans (an Instance's, or a list of spans as they are)."""
    path = tmp_path / "export.jsonl"
    spans = [x.spans if isinstance(x, Instance) else x for x in calls]
    lines = [ln for group in spans for ln in spans_to_json_lines(group)]
    path.write_text("\n".join([*lines, *extra]) + "\n")
    return path


def test_a_bad_line_in_an_export_is_skipped_named_and_counted(tmp_path: Path, capsys) -> None:
    path = export_of(
        tmp_path,
        [clinic_10_turns(f"conv-{k}") for k in range(3)],
        extra=['{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5}]}]}]}'],
    )
    lines = path.read_text().splitlines()
    bad_at = len(lines)
    rc = main(["evaluate", str(path)])
    out = capsys.readouterr().out
    assert rc in (0, 1) and "3 calls from" in out
    assert f"{path}:{bad_at}: resourceSpans[0].scopeSpans[0].spans[0].traceId" in out
    assert "1 artifact could not be read (1 trace line)" in out


def test_spans_that_join_no_conversation_are_counted_and_named(tmp_path: Path) -> None:
    stray = (
        '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":'
        '{"stringValue":"cron"}}]},"scopeSpans":[{"spans":[{"traceId":'
        '"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"tick"}]}]}]}'
    )
    path = export_of(tmp_path, [clinic_10_turns("conv-0")], extra=[stray])
    result = evaluate_path(path)
    assert result.calls == 1
    (note,) = result.trace_notes
    assert note.startswith(f"{path}: 1 span joined no conversation (from cron: 1)")


def test_data_errors_are_printed_and_fail_their_gate(tmp_path: Path, capsys) -> None:
    from dataclasses import replace

    from harness.trace import conventions as c

    bad = clinic_10_turns("conv-bad")
    spans = list(bad.spans)
    k = next(i for i, s in enumerate(spans) if c.LK_E2E_LATENCY in s.attributes)
    spans[k] = replace(spans[k], attributes={**spans[k].attributes, c.LK_E2E_LATENCY: -1.5})
    path = export_of(tmp_path, [clinic_10_turns("conv-ok"), spans])
    rc = main(["evaluate", str(path)])
    out = capsys.readouterr().out
    assert "data errors: 1 values that cannot be true in 1 call" in out
    assert "conv-bad: span 'agent_turn'" in out
    assert rc == 1  # the e2e latency gates fail on it
    result = evaluate_path(path)
    assert set(result.data_errors) == {"conv-bad"}


def test_a_truncated_recording_gives_no_scores_from_part_of_the_audio(run: Path) -> None:
    from harness.evaluators.audio import read_stereo

    wav = run / "call-0" / "recording.wav"
    assert read_stereo(wav) is not None
    truncate(wav, 40_000)  # a header and 5 s of a 73 s call
    assert read_stereo(wav) is None  # every evaluator reading it gets no audio, not 5 s of it
