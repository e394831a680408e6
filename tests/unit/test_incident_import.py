"""Importing incidents: a failed production call in, a replayable scenario fixture out."""

from __future__ import annotations

import json
import os
import re
import shutil
import wave
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.signal import correlate

from harness.audio import narrowband
from harness.audio.clip import Clip
from harness.audio.testsignals import speech_like
from harness.incident import (
    OFFLINE_VOICE,
    IncidentError,
    RedactionConfig,
    check_fixture,
    find_fixture,
    from_run,
    import_incident,
)
from harness.trace import conventions as c
from harness.trace.instance import Span
from harness.trace.otlp import load_instance, save_instance, spans_to_json_lines
from tests.fixtures.incidents.build import (
    CLINIC_LOOP_DIR,
    LOOP_DIALOG,
    PHONE_TURN,
    RATE,
    T0,
    clinic_loop,
    import_expected,
    stereo_recording,
)
from tests.fixtures.instances.build import CLINIC_DIR, Builder, clinic_10_turns
from tests.unit.test_incident_redact import (
    addresses,
    cards,
    emails,
    names,
    not_synthetic,
    phones,
    ssns,
)

TRACE = CLINIC_LOOP_DIR / "trace.jsonl"
NOW = datetime(2025, 11, 21, 12, 0, tzinfo=UTC)


def dirs(root: Path) -> dict[str, Path]:
    return {
        "out_dir": root / "scenarios" / "incidents",
        "audio_dir": root / "audio_fixtures" / "incidents",
    }


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def similarity(wav: np.ndarray, source: np.ndarray) -> float:
    """Peak normalised cross-correlation of a cut turn against its source speech."""
    cc = correlate(wav.astype(np.float64), source.astype(np.float64), mode="full", method="fft")
    return float(cc.max() / (np.linalg.norm(wav) * np.linalg.norm(source)))


@pytest.fixture(scope="module")
def loop_call(tmp_path_factory):
    """The loop incident and a stereo recording that started 1.3 s before the job."""
    root = tmp_path_factory.mktemp("loop")
    instance, speech = clinic_loop()
    rec = stereo_recording(root / "call.wav", speech, instance, start=T0 - 1.3)
    return instance, speech, rec


def test_committed_trace_is_the_builders():
    instance, _ = clinic_loop()
    assert TRACE.read_text().splitlines() == spans_to_json_lines(instance.spans)


# --- the full import ----------------------------------------------------------------------------


def test_full_import_of_the_loop_incident(loop_call, tmp_path):
    _, speech, _ = loop_call
    result = import_expected(tmp_path)  # expects request_booking; the recording starts 1.3 s early

    # classification and metadata
    assert (result.severity, result.failing_layer) == ("SEV-2", "llm_dialog")
    assert result.classification.rule == "loop_task"
    assert set(result.failed_evaluators) == {"loops", "task_completion", "intent"}
    assert result.source_trace_id == f"{0x10C:032x}"
    assert (
        result.scenario_path == tmp_path / "scenarios" / "incidents" / f"{result.incident_id}.yaml"
    )
    assert re.fullmatch(r"INC-20251113-[0-9a-f]{6}", result.incident_id)

    # the YAML: written as returned, a valid scenario, round-trips through safe_load
    text = result.scenario_path.read_text()
    assert text == result.text
    assert text == (CLINIC_LOOP_DIR / "expected.yaml").read_text()  # the reviewed layout
    scenario = check_fixture(text, result.scenario_path)
    assert scenario.id == result.incident_id and scenario.agent == "clinic"
    assert scenario.turns[0].say == "hi i'd like to book a cleaning"
    assert len(scenario.turns) == len(LOOP_DIALOG)
    data = yaml.safe_load(text)
    assert data["incident"] == {
        "id": result.incident_id,
        "source_trace_id": result.source_trace_id,
        "conversation_id": "conv-clinic-loop",
        "imported_at": "2025-11-21T12:00:00Z",
        "occurred_at": "2025-11-13T02:13:20Z",
        "severity": "SEV-2",
        "failing_layer": "llm_dialog",
        "failed_evaluators": ["task_completion", "intent", "loops"],
    }
    assert data["expect"] == {"no_loop": True, "end_state": {"tool_called": ["request_booking"]}}

    # readable: comments name the trace and the failed evaluators; turns in call order
    header = text[: text.index("\nid: ")]
    assert result.source_trace_id in header
    assert "loops: loop_detected = 1" in header and "missing: tool request_booking()" in header
    assert "Not asserted by any scenario field: intent_failed." in header
    assert "aligned by" in header
    order = [text.index(f"turn-{n}.wav") for n in (1, 2, 4, 5, 6, 7)]
    assert order == sorted(order)
    assert '# agent: "Of course. Which day would suit you?"' in text

    # voices: recorded turns, except the one whose name cannot be located in the audio
    voices = [t.voice for t in scenario.turns]
    assert voices[2] == OFFLINE_VOICE
    for n in (1, 2, 4, 5, 6, 7):
        rel = voices[n - 1]["turns"][0]
        assert rel == f"../../audio_fixtures/incidents/{result.incident_id}/turn-{n}.wav"
        assert (result.scenario_path.parent / rel).resolve().is_file()
    assert [p.name for p in result.audio_paths] == [f"turn-{n}.wav" for n in (1, 2, 4, 5, 6, 7)]

    # timing as in production: 0.88 s after the agent, less the 150 ms lead kept in the WAV
    assert [t.pause_before_ms for t in scenario.turns] == [830, 730, 880, 730, 730, 0, 730]
    assert scenario.turns[5].barge_in_ms == 1430
    assert all(t.barge_in_ms is None for i, t in enumerate(scenario.turns) if i != 5)

    # the turn WAVs are the caller's speech
    for path in result.audio_paths:
        n = int(path.stem.split("-")[1])
        with wave.open(str(path)) as w:
            assert (w.getnchannels(), w.getframerate()) == (1, RATE)
        wav = Clip.read_wav(path).samples
        score = similarity(wav, speech[n - 1].samples)
        if n == PHONE_TURN:
            assert 0.5 < score < 0.95  # the phone number's words are silenced
        else:
            assert score > 0.9, (n, score)

    # redaction: kinds and counts, never values
    assert dict(result.redactions) == {"NAME": 2, "PHONE": 1}
    lowered = text.lower()
    for secret in ("maria", "lopez", "123 4567", "4567"):
        assert secret not in lowered
    assert "nine o'clock please my name is Alex Doe" in text
    assert "yes and my number is 555-0100" in text
    assert "PHONE x1" in result.describe() and "4567" not in result.describe()
    assert result.warnings == ()


def test_redacted_words_are_silenced_where_the_word_timings_say(loop_call, tmp_path):
    instance, speech, rec = loop_call
    result = import_incident(TRACE, recording=rec, recording_start=T0 - 1.3, **dirs(tmp_path))
    wav = Clip.read_wav(result.audio_paths[3]).samples  # turn-5.wav
    assert result.audio_paths[3].name == f"turn-{PHONE_TURN}.wav"
    ut = [s for s in instance.find(c.SPAN_USER_TURN)][PHONE_TURN - 1]
    words = [(e.attributes["word.pii.text"], e.time_ns / 1e9) for e in ut.events]
    assert [w for w, _ in words][-3:] == ["555", "123", "4567"]
    cut_start = ut.start_ns / 1e9 - 0.15
    i = round((words[-3][1] - cut_start) * RATE) + 2000
    j = round(
        (ut.start_ns / 1e9 - 0.08 + speech[PHONE_TURN - 1].samples.size / RATE - cut_start) * RATE
    )
    assert not np.any(wav[i : j - 2000])  # the number is gone
    assert np.any(wav[: round((words[2][1] - cut_start) * RATE)])  # the words before it are not
    tone = import_incident(
        TRACE,
        recording=rec,
        recording_start=T0 - 1.3,
        redaction_config=RedactionConfig(audio_fill="tone"),
        **dirs(tmp_path / "tone"),
    )
    beeped = Clip.read_wav(tone.audio_paths[3]).samples
    assert np.max(np.abs(beeped[i : j - 2000])) == pytest.approx(0.1, abs=0.01)


def test_explicit_recording_start_needs_no_alignment(loop_call, tmp_path):
    _, speech, rec = loop_call
    result = import_incident(TRACE, recording=rec, recording_start=T0 - 1.3, **dirs(tmp_path))
    assert "aligned by" not in result.text
    wav = Clip.read_wav(result.audio_paths[0]).samples
    assert similarity(wav, speech[0].samples) > 0.99


def test_without_a_recording_every_turn_uses_the_offline_voice(tmp_path):
    result = import_incident(TRACE, **dirs(tmp_path))
    scenario = check_fixture(result.text)
    assert scenario.voice == OFFLINE_VOICE and all(t.voice is None for t in scenario.turns)
    assert result.audio_paths == ()
    assert not (tmp_path / "audio_fixtures").exists()
    assert "No recording: caller turns use the offline voice espeak:en-us." in result.text
    # no expected end state given: the task is judged by the failed intent only
    assert result.classification.rule == "loop_task"
    assert "end_state" not in yaml.safe_load(result.text)["expect"]


def test_narrowband_noisy_caller_gives_conditions_to_tts_turns(tmp_path):
    instance, speech = clinic_loop()
    rec = stereo_recording(tmp_path / "call.wav", speech, instance, start=T0, noise_dbfs=-36)
    with wave.open(str(rec)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2).copy()
    left = Clip.from_int16(np.ascontiguousarray(pcm[:, 0]), RATE)
    pcm[:, 0] = narrowband("ulaw").apply(left, np.random.default_rng(0)).to_int16()
    with wave.open(str(rec), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    result = import_incident(TRACE, recording=rec, recording_start=T0, **dirs(tmp_path))
    scenario = check_fixture(result.text)
    conditions = scenario.turns[2].conditions
    assert [next(iter(x)) for x in conditions] == ["noise", "narrowband"]
    assert 12 <= conditions[0]["noise"]["snr_db"] <= 30
    assert all(t.conditions is None for i, t in enumerate(scenario.turns) if i != 2)
    assert "Estimated caller conditions: narrowband" in result.text


def test_mono_recording_and_caller_channel(loop_call, tmp_path):
    _, speech, rec = loop_call
    with wave.open(str(rec)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    right = tmp_path / "swapped.wav"
    with wave.open(str(right), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes(np.ascontiguousarray(pcm[:, ::-1]).tobytes())
    result = import_incident(
        TRACE, recording=right, caller_channel=1, recording_start=T0 - 1.3, **dirs(tmp_path / "a")
    )
    assert similarity(Clip.read_wav(result.audio_paths[0]).samples, speech[0].samples) > 0.99
    mono = tmp_path / "mono.wav"
    with wave.open(str(mono), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes(np.ascontiguousarray(pcm[:, 0]).tobytes())
    result = import_incident(
        TRACE, recording=mono, recording_start=T0 - 1.3, **dirs(tmp_path / "b")
    )
    assert any("mono recording" in w for w in result.warnings)
    with pytest.raises(IncidentError, match=r"caller_channel=2, but the recording has 1") as info:
        import_incident(TRACE, recording=mono, caller_channel=2, **dirs(tmp_path / "c"))
    assert info.value.file == str(mono)
    assert files_under(tmp_path / "c") == []


# --- a synthetic run ----------------------------------------------------------------------------


def test_from_run_uses_the_caller_side_file(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(CLINIC_DIR, run)
    instance = clinic_10_turns()
    caller = instance.caller
    assert caller is not None
    started = caller["started_at"]
    n = int((caller["ended_at"] - started + 1) * RATE)
    left = np.zeros(n, dtype=np.float32)
    sources = {}
    for t in caller["turns"]:
        if t["kind"] != "say":
            continue
        x = speech_like(t["caller_end"] - t["caller_start"], RATE, seed=t["index"]).samples
        i = round((t["caller_start"] - started) * RATE)
        left[i : i + len(x)] = x
        sources[t["index"]] = x
    right = np.zeros_like(left)
    for t in caller["turns"]:  # the agent's replies, as tones
        if t["agent_onset"] is not None:
            i, j = (round((t[k] - started) * RATE) for k in ("agent_onset", "agent_offset"))
            right[i:j] = 0.2 * np.sin(2 * np.pi * 220 * np.arange(j - i) / RATE)
    stereo = np.stack([left, right], axis=1)
    with wave.open(str(run / "recording.wav"), "wb") as w:
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes((stereo * 32767).astype("<i2").tobytes())

    result = from_run(run, now=NOW, **dirs(tmp_path / "out"))
    scenario = check_fixture(result.text)
    assert [t.say for t in scenario.turns][:2] == [
        "Hi, I'd like to book a cleaning.",
        "Do you have anything on Monday?",
    ]
    # the caller waited 0.7 s after the agent; 150 ms of that is in the recorded turn
    assert [t.pause_before_ms for t in scenario.turns][1:4] == [550, 550, 550]
    # "It's Maria Lopez." is redacted through the request_booking arguments
    assert scenario.turns[4].say == "It's Alex Doe." and scenario.turns[4].voice == OFFLINE_VOICE
    assert "Maria" not in result.text
    for path in result.audio_paths:
        n = int(path.stem.split("-")[1])
        assert similarity(Clip.read_wav(path).samples, sources[n]) > 0.9
    assert "aligned by" not in result.text  # started_at places the recording exactly
    assert (result.severity, result.classification.rule) == ("SEV-3", "unclassified")


def test_from_run_without_a_trace_says_so(tmp_path):
    (tmp_path / "caller.json").write_text("{}")
    with pytest.raises(IncidentError, match=r"no trace\.jsonl: this call was not traced"):
        from_run(tmp_path, **dirs(tmp_path / "out"))
    with pytest.raises(IncidentError, match="not a run directory"):
        from_run(tmp_path / "nope")


def test_failed_tool_workflow_and_unapproved_action_become_expectations(tmp_path):
    instance = clinic_10_turns("conv-bad")
    spans = []
    for s in instance.spans:
        attrs = dict(s.attributes)
        status, message = s.status, s.status_message
        if attrs.get(c.LK_FUNCTION_TOOL_NAME) == "check_availability":
            attrs[c.LK_FUNCTION_TOOL_IS_ERROR] = True
        if attrs.get(c.ACTION_NAME) == "write_booking":
            attrs[c.ACTION_APPROVAL] = "skipped"
        if s.name == "write_outbox":
            status, message = c.STATUS_ERROR, "smtp down"
        spans.append(replace(s, attributes=attrs, status=status, status_message=message))
    path = save_instance(
        type(instance)(instance.conversation_id, tuple(spans), caller=instance.caller),
        tmp_path / "inst",
    )
    result = import_incident(path.parent, **dirs(tmp_path))
    assert (result.severity, result.failing_layer) == ("SEV-1", "tool_action")
    expect = yaml.safe_load(result.text)["expect"]
    assert expect == {
        "background": [{"action": "write_booking", "approval": "approved"}],
        "after_call": [{"step": "write_outbox"}],
        "end_state": {"tool_called": ["check_availability"]},
    }
    assert "risk" in result.failed_evaluators and "workflow" in result.failed_evaluators
    check_fixture(result.text)


def test_latency_becomes_a_response_latency_bound(tmp_path):
    b = Builder("conv-slow")
    session = b.span(c.SPAN_AGENT_SESSION, T0, T0 + 30)
    b.span(c.SPAN_USER_TURN, T0 + 1, T0 + 2, parent=session, lk__pii__user_transcript="hello")
    b.span(
        c.SPAN_AGENT_TURN, T0 + 9, T0 + 11, parent=session, lk__e2e_latency=7.2,
        lk__pii__response__text="Sorry for the wait.",
    )  # fmt: skip
    b.span(c.SPAN_USER_TURN, T0 + 14, T0 + 15, parent=session, lk__pii__user_transcript="bye")
    trace = tmp_path / "slow.jsonl"
    trace.write_text("\n".join(spans_to_json_lines(b.spans)) + "\n")
    result = import_incident(trace, **dirs(tmp_path))
    data = yaml.safe_load(result.text)
    assert data["expect"] == {"max_response_latency_ms": 5000}
    assert data["agent_speaks_first"] is False
    assert data["turns"][1]["pause_before_ms"] == 3000
    assert "production: latency: e2e_latency = 7200 ms (turn 0)" in result.text
    assert (result.severity, result.classification.rule) == ("SEV-3", "latency")


# --- writing ------------------------------------------------------------------------------------


def test_an_existing_fixture_is_kept_unless_overwrite(loop_call, tmp_path):
    _, _, rec = loop_call
    first = import_incident(TRACE, recording=rec, incident_id="INC-1", **dirs(tmp_path))
    before = {p: p.read_bytes() for p in files_under(tmp_path)}
    with pytest.raises(IncidentError, match="already exists") as info:
        import_incident(TRACE, incident_id="INC-1", **dirs(tmp_path))
    # the flag the command line has, not the library's keyword
    assert "--force" in str(info.value) and "overwrite=True" not in str(info.value)
    assert info.value.file == str(first.scenario_path)
    assert {p: p.read_bytes() for p in files_under(tmp_path)} == before
    again = import_incident(TRACE, incident_id="INC-1", overwrite=True, **dirs(tmp_path))
    assert again.audio_paths == ()
    assert not (tmp_path / "audio_fixtures" / "incidents" / "INC-1").exists()
    assert files_under(tmp_path) == [first.scenario_path]


def test_a_failed_write_leaves_nothing(loop_call, tmp_path, monkeypatch):
    _, _, rec = loop_call
    real = os.replace

    def failing(src, dst):
        if str(dst).endswith(".yaml"):
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(IncidentError, match="No space left"):
        import_incident(TRACE, recording=rec, **dirs(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_a_failed_overwrite_keeps_the_old_fixture_and_its_audio(loop_call, tmp_path, monkeypatch):
    _, _, rec = loop_call
    first = import_incident(TRACE, recording=rec, incident_id="INC-1", **dirs(tmp_path))
    before = {p: p.read_bytes() for p in files_under(tmp_path)}
    real = os.replace

    def failing(src, dst):
        if str(dst).endswith(".yaml"):  # the audio is swapped in by now; the YAML fails
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(IncidentError, match="No space left"):
        import_incident(TRACE, incident_id="INC-1", overwrite=True, **dirs(tmp_path))
    assert {p: p.read_bytes() for p in files_under(tmp_path)} == before
    assert list(tmp_path.rglob(".*")) == []  # no stage, no old copy, no temporary YAML
    assert first.audio_paths[0].parent.is_dir()


def test_find_fixture_and_to_dict(tmp_path):
    result = import_incident(TRACE, incident_id="INC-42", **dirs(tmp_path))
    out = dirs(tmp_path)["out_dir"]
    assert find_fixture("INC-42", out) == result.scenario_path
    assert find_fixture(result.scenario_path) == result.scenario_path
    with pytest.raises(IncidentError, match="did you mean INC-42"):
        find_fixture("INC-43", out)
    summary = result.to_dict()
    assert json.loads(json.dumps(summary))["failed_evaluators"] == ["intent", "loops"]
    assert summary["redactions"] == {"NAME": 2, "PHONE": 1}


def test_bad_incident_id_is_refused_before_reading(tmp_path):
    with pytest.raises(IncidentError, match="--id"):
        import_incident(TRACE, incident_id="../evil", **dirs(tmp_path))


def test_redaction_off_warns(tmp_path):
    result = import_incident(TRACE, redact=False, **dirs(tmp_path))
    assert any("PII redaction is OFF" in w for w in result.warnings)
    assert "PII REDACTION WAS OFF" in result.text
    assert "maria lopez" in result.text and result.redactions == {}


# --- errors -------------------------------------------------------------------------------------


def raises_and_writes_nothing(tmp_path: Path, trace: Path, match: str, **kw) -> IncidentError:
    with pytest.raises(IncidentError, match=match) as info:
        import_incident(trace, **dirs(tmp_path / "out"), **kw)
    assert files_under(tmp_path / "out") == []
    return info.value


def test_truncated_line_names_file_and_line(tmp_path):
    lines = (CLINIC_DIR / "trace.jsonl").read_text().splitlines()  # one line per service
    assert len(lines) == 3
    lines[1] = lines[1][: len(lines[1]) // 2]
    bad = tmp_path / "cut.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    err = raises_and_writes_nothing(tmp_path, bad, "truncated")
    assert (err.file, err.line) == (str(bad), 2)
    assert str(err).startswith(f"{bad}:2: not valid JSON")


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert raises_and_writes_nothing(tmp_path, empty, "no spans in the file").file == str(empty)
    raises_and_writes_nothing(tmp_path, tmp_path / "gone.jsonl", "trace file not found")


def test_no_conversation_id(tmp_path):
    b = Builder("x")
    b.span(c.SPAN_USER_TURN, T0, T0 + 1, lk__pii__user_transcript="hi")
    span = b.spans[0]
    attrs = {k: v for k, v in span.attributes.items() if k != c.CONVERSATION_ID}
    trace = tmp_path / "anon.jsonl"
    trace.write_text(spans_to_json_lines([replace(span, attributes=attrs)])[0])
    raises_and_writes_nothing(tmp_path, trace, "none of its 1 spans carries conversation.id")


def test_no_user_turns(tmp_path):
    b = Builder("conv-greet-only")
    session = b.span(c.SPAN_AGENT_SESSION, T0, T0 + 5)
    b.span(c.SPAN_AGENT_TURN, T0, T0 + 3, parent=session, lk__pii__response__text="Hello?")
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(spans_to_json_lines(b.spans)))
    raises_and_writes_nothing(tmp_path, trace, "no user turns: conversation 'conv-greet-only'")


def test_no_transcripts_and_no_recording(tmp_path):
    b = Builder("conv-mute")
    b.span(c.SPAN_USER_TURN, T0, T0 + 1)
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(spans_to_json_lines(b.spans)))
    raises_and_writes_nothing(tmp_path, trace, "no user transcripts")


def _export(tmp_path: Path, *ids: str) -> Path:
    """One export file holding a call per conversation id."""
    spans = []
    for k, cid in enumerate(ids):
        spans += clinic_loop(cid, t0=T0 + 500 * k)[0].spans
    trace = tmp_path / "export.jsonl"
    trace.write_text("\n".join(spans_to_json_lines(spans)) + "\n")
    return trace


def test_several_conversations_need_a_pick(tmp_path):
    trace = _export(tmp_path, "conv-a", "conv-b")
    # the command's option and the ids found, not the library's keyword
    err = raises_and_writes_nothing(tmp_path, trace, "2 conversations in the file")
    assert err.field == "--conversation-id" and "conversation_id=" not in str(err)
    assert "(conv-a, conv-b); pick one with --conversation-id ID" in str(err)
    err = raises_and_writes_nothing(tmp_path, trace, "no conversation 'conv-c'",
                                    conversation_id="conv-c")  # fmt: skip
    assert str(err).endswith("--conversation-id: no conversation 'conv-c' in the file; it holds "
                             "2: conv-a, conv-b")  # fmt: skip
    result = import_incident(trace, conversation_id="conv-b", **dirs(tmp_path / "ok"))
    assert yaml.safe_load(result.text)["incident"]["conversation_id"] == "conv-b"
    # only that call: its trace, not the other one's
    assert result.source_trace_id == load_instance(trace, "conv-b").spans[0].trace_id


def test_conversation_ids_holding_a_phone_number_are_listed_redacted(tmp_path):
    trace = _export(tmp_path, "sip_+15558675309_x7", "sip_+15551234567_q2")
    err = raises_and_writes_nothing(tmp_path, trace, "2 conversations")
    assert "sip_<PHONE>_q2, sip_<PHONE>_x7" in str(err)
    assert "8675309" not in str(err) and "1234567" not in str(err)
    # the listed form picks the call back
    result = import_incident(trace, conversation_id="sip_<PHONE>_x7", **dirs(tmp_path / "ok"))
    assert result.conversation_id == "sip_<PHONE>_x7"
    assert "8675309" not in result.text


def test_the_command_has_conversation_id(tmp_path, capsys):
    from harness.cli import main

    trace = _export(tmp_path, "conv-a", "conv-b")
    out = tmp_path / "cli"
    options = ["--out", str(out / "s"), "--audio-dir", str(out / "a"), "--id", "INC-7"]
    assert main(["incident", "import", str(trace), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert "--conversation-id" in err and "conv-a, conv-b" in err
    assert files_under(out) == []
    code = main(["incident", "import", str(trace), "--conversation-id", "conv-a", *options])
    assert code == 0
    assert (
        yaml.safe_load((out / "s" / "INC-7.yaml").read_text())["incident"]["conversation_id"]
        == "conv-a"
    )


def test_unreadable_recording(tmp_path):
    bad = tmp_path / "call.ogg"
    bad.write_bytes(b"OggS not a wav")
    err = raises_and_writes_nothing(tmp_path, TRACE, "pcm_s16le", recording=bad)
    assert err.file == str(bad)
    raises_and_writes_nothing(tmp_path, TRACE, "recording not found", recording=tmp_path / "no.wav")


def test_parent_cycles_are_refused(tmp_path):
    b = Builder("conv-cycle")
    b.span(c.SPAN_USER_TURN, T0, T0 + 1, lk__pii__user_transcript="hi")
    b.span(c.SPAN_AGENT_TURN, T0 + 2, T0 + 3, lk__pii__response__text="hello")
    a, u = b.spans[1], b.spans[0]
    looped = [replace(u, parent_span_id=a.span_id), replace(a, parent_span_id=u.span_id)]
    trace = tmp_path / "cycle.jsonl"
    trace.write_text("\n".join(spans_to_json_lines(looped)))
    raises_and_writes_nothing(tmp_path, trace, "the parent links form a cycle")


def test_a_foreign_but_valid_json_file(tmp_path):
    foreign = tmp_path / "logs.jsonl"
    foreign.write_text('{"level": "info", "msg": "call started"}\n[1, 2, 3]\n')
    err = raises_and_writes_nothing(tmp_path, foreign, "expected")
    assert err.file == str(foreign) and err.line == 2


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(
            ["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "name", "attributes",
             "key", "value", "stringValue", "startTimeUnixNano", "resource", "x"]
        ),
        inner,
        max_size=4,
    ),
    max_leaves=20,
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.one_of(
        st.binary(max_size=300),
        st.lists(json_values, max_size=4).map(lambda v: "\n".join(map(json.dumps, v)).encode()),
    )
)
def test_garbage_is_an_incident_error_and_writes_nothing(tmp_path, content):
    trace = tmp_path / "garbage.jsonl"
    trace.write_bytes(content)
    with pytest.raises(IncidentError) as info:
        import_incident(trace, **dirs(tmp_path / "out"))
    assert info.value.file is not None
    assert files_under(tmp_path / "out") == []


SPAN_NAMES = [c.SPAN_USER_TURN, c.SPAN_AGENT_TURN, c.SPAN_AGENT_SESSION, c.SPAN_LLM_NODE,
              c.SPAN_TTS_NODE, c.SPAN_FUNCTION_TOOL, "after_call", "action x"]  # fmt: skip
ATTR_KEYS = [c.LK_PII_USER_TRANSCRIPT, c.LK_PII_RESPONSE_TEXT, c.LK_E2E_LATENCY,
             c.LK_INTERRUPTED, c.LK_FUNCTION_TOOL_NAME, c.LK_PII_FUNCTION_TOOL_ARGUMENTS,
             c.LK_FUNCTION_TOOL_IS_ERROR, c.ACTION_NAME, c.ACTION_MUTATING, c.ACTION_APPROVAL,
             c.INTENT_NAME, c.INTENT_OUTCOME, c.AGENT_LAYER, c.LK_TRANSCRIPT_CONFIDENCE,
             c.LK_RESPONSE_TTFB, c.LK_END_OF_TURN_DELAY, c.LK_AGENT_NAME]  # fmt: skip
attr_values = st.one_of(
    st.text(max_size=30), st.booleans(), st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True), st.sampled_from(["conversational", "background", "workflow"]),
    st.sampled_from(['{"name": "Ann Lee"}', "approved", "skipped", "abandoned"]),
)  # fmt: skip


@st.composite
def span_soups(draw) -> list[Span]:
    n = draw(st.integers(1, 12))
    spans = []
    for i in range(n):
        start = T0 + draw(st.floats(0, 60))
        attrs = draw(st.dictionaries(st.sampled_from(ATTR_KEYS), attr_values, max_size=5))
        attrs[c.CONVERSATION_ID] = "conv-soup"
        name = draw(st.sampled_from(SPAN_NAMES))
        if name == c.SPAN_USER_TURN and draw(st.booleans()):
            attrs[c.LK_PII_USER_TRANSCRIPT] = draw(st.text(min_size=1, max_size=40))
        parent = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        spans.append(
            Span(
                trace_id=f"{1:032x}",
                span_id=f"{i + 1:016x}",
                parent_span_id=f"{parent + 1:016x}" if parent is not None else None,
                name=name,
                start_ns=round(start * 1e9),
                end_ns=round((start + draw(st.floats(-1, 20))) * 1e9),
                attributes=attrs,
                status=draw(st.sampled_from(["unset", "ok", "error"])),
            )
        )
    return spans


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spans=span_soups())
def test_any_span_soup_imports_or_fails_cleanly(tmp_path, spans):
    out = tmp_path / "soup"
    shutil.rmtree(out, ignore_errors=True)
    trace = tmp_path / "soup.jsonl"
    trace.write_text("\n".join(spans_to_json_lines(spans)) + "\n")
    try:
        result = import_incident(trace, **dirs(out))
    except IncidentError:
        assert files_under(out) == []
        return
    assert check_fixture(result.scenario_path.read_text()).id == result.incident_id
    taught = any(
        s.name == c.SPAN_FUNCTION_TOOL
        and "Ann Lee" in str(s.attributes.get(c.LK_PII_FUNCTION_TOOL_ARGUMENTS))
        for s in spans
    )
    if taught:  # a tool's `name` argument is redacted wherever it occurs
        assert "ann lee" not in result.text.lower()


# --- PII never reaches the fixture --------------------------------------------------------------

PII_LINES = [
    "yes my number is {phone}",
    "the card is {card} thanks",
    "my social is {ssn}",
    "email me at {email}",
    "i live at {address} ok",
    "it's {name} calling",
]


def _pii_call(values: dict[str, str]):
    dialog = [
        ("hi i'd like to book a cleaning", "Of course. Which day would suit you?", None, None),
        *[(line.format(**values), "Thank you. Anything else?", None, None) for line in PII_LINES],
        (
            "no that's all",
            f"I have {values['email']} and {values['phone']} on file, {values['name']}.",
            None,
            None,
        ),
    ]
    instance, _ = clinic_loop(conversation_id=f"call-{values['phone']}", dialog=dialog)
    return instance


_BASELINE = None


def _baseline(tmp: Path) -> str:
    """The fixture of the same call with harmless values: what is there without any PII."""
    global _BASELINE
    if _BASELINE is None:
        harmless = {"phone": "x", "card": "x", "ssn": "x", "email": "x", "address": "x",
                    "name": "x"}  # fmt: skip
        trace = tmp / "baseline.jsonl"
        trace.write_text("\n".join(spans_to_json_lines(_pii_call(harmless).spans)) + "\n")
        _BASELINE = import_incident(trace, now=NOW, **dirs(tmp / "baseline")).text.lower()
    return _BASELINE


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(phone=phones(), card=cards(), ssn=ssns(), email=emails, address=addresses(), name=names)
def test_generated_pii_never_reaches_the_fixture(tmp_path, phone, card, ssn, email, address, name):
    values = {"phone": phone, "card": card, "ssn": ssn, "email": email, "address": address,
              "name": name}  # fmt: skip
    baseline = _baseline(tmp_path)
    for v in values.values():
        assume(not_synthetic(v) and v.lower() not in baseline)
    out = tmp_path / "pii"
    shutil.rmtree(out, ignore_errors=True)
    trace = tmp_path / "pii.jsonl"
    trace.write_text("\n".join(spans_to_json_lines(_pii_call(values).spans)) + "\n")
    result = import_incident(
        trace, redaction_config=RedactionConfig(names=(name,)), now=NOW, **dirs(out)
    )
    written = "\n".join(p.read_text() for p in files_under(out)).lower()
    paths = " ".join(str(p.relative_to(out)) for p in files_under(out)).lower()
    for v in values.values():
        assert v.lower() not in written and v.lower() not in paths
    for v in (phone, card, ssn):
        assert re.sub(r"\D", "", v) not in re.sub(r"\D", "", written)
    assert result.redactions["PHONE"] >= 2 and result.redactions["CARD"] == 1
    assert result.redactions["ID"] == 1 and result.redactions["EMAIL"] >= 2
    assert result.redactions["ADDRESS"] == 1 and result.redactions["NAME"] >= 2
    assert check_fixture(result.text).id == result.incident_id


def test_pii_in_the_recording_name_and_conversation_id(loop_call, tmp_path):
    _, _, rec = loop_call
    named = tmp_path / "call-555-867-5309.wav"
    shutil.copy(rec, named)
    instance = load_instance(TRACE)
    spans = [
        replace(s, attributes={**s.attributes, c.CONVERSATION_ID: "sip_5558675309"})
        for s in instance.spans
    ]
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(spans_to_json_lines(spans)) + "\n")
    result = import_incident(
        trace, recording=named, recording_start=T0 - 1.3, **dirs(tmp_path / "o")
    )
    assert "8675309" not in result.text.replace("-", "")
    assert result.conversation_id == "sip_<PHONE>"
    assert "call-<PHONE>.wav" in result.text


def test_an_overlong_id_is_an_error_naming_the_flag(tmp_path):
    # 300 characters gave an OSError traceback (file name too long) before
    with pytest.raises(IncidentError, match=r"--id: 300 characters; use at most 100"):
        import_incident(TRACE, incident_id="I" * 300, **dirs(tmp_path))
    assert files_under(tmp_path) == []


# --- names and new kinds, learned from the whole call ------------------------------------------


def _call(dialog, tmp_path: Path, *, cid: str = "conv-pii", word_turns=frozenset(), edit=None):
    """A loop-shaped call with ``dialog``; ``edit(span)`` may rewrite spans before saving."""
    instance, speech = clinic_loop(cid, dialog=dialog, word_turns=frozenset(word_turns))
    spans = [edit(s) if edit else s for s in instance.spans]
    trace = tmp_path / f"{cid}.jsonl"
    trace.write_text("\n".join(spans_to_json_lines(spans)) + "\n")
    return trace, instance, speech


def test_names_only_the_agent_says_never_reach_the_fixture(tmp_path):
    dialog = [
        ("hi i'd like to book a cleaning", "Hello Mr. Patel, which day suits you?", None, None),
        ("next tuesday please", "Thanks, Maria, you're booked for Tuesday at nine.", None, None),
        ("great and can maria come too", "You're all set, Maria. Goodbye!", None, None),
    ]  # fmt: skip
    trace, _, _ = _call(dialog, tmp_path)
    result = import_incident(trace, now=NOW, **dirs(tmp_path / "o"))
    lowered = result.text.lower()
    assert "maria" not in lowered and "patel" not in lowered
    assert '# agent: "Thanks, <NAME>, you\'re booked for Tuesday at nine."' in result.text
    assert '# agent (greeting): "Hello, thank you for calling Bright Smile Dental.' in result.text
    assert "can Alex come too" in result.text  # the caller's mention, learned from the agent


def test_personal_data_never_names_a_written_file(tmp_path):
    dialog = [("hi my name is Maria Lopez", "Thank you. Which day?", None, None)]
    trace, _, _ = _call(dialog, tmp_path)
    for wanted, written in (
        ("INC-maria-lopez", "INC-NAME"),
        ("sip_5558675309", "sip_PHONE"),
        ("INC-Lopez_04-07-1985", "INC-NAME_DOB"),
        ("INC-20251113-7", "INC-20251113-7"),  # an incident's date stays
    ):
        result = import_incident(
            trace, incident_id=wanted, overwrite=True, now=NOW, **dirs(tmp_path / "o")
        )
        assert result.incident_id == written
        assert result.scenario_path.name == f"{written}.yaml"
        if wanted != written:
            assert any("the incident id held personal data" in w for w in result.warnings)
    names = " ".join(str(p) for p in files_under(tmp_path / "o")).lower()
    assert "maria" not in names and "lopez" not in names and "5558675309" not in names


def test_learned_names_and_birth_dates_are_silenced_in_the_audio(tmp_path):
    said = "yes søren kierkegaard born the fourth of july nineteen eighty five"
    dialog = [
        ("hi i'd like to book a cleaning", "Of course. Which day?", "check_availability", None),
        (said, "Thank you. Anything else?", None, None),
        ("no that's all", "Goodbye.", None, None),
    ]

    def edit(span):  # the name is only in the tool's result
        if span.name == c.SPAN_FUNCTION_TOOL:
            attrs = {
                **span.attributes,
                c.LK_PII_FUNCTION_TOOL_ARGUMENTS: '{"day": "tuesday"}',
                c.LK_PII_FUNCTION_TOOL_OUTPUT: '{"patient": "Søren Kierkegaard"}',
            }
            return replace(span, attributes=attrs)
        return span

    trace, instance, speech = _call(dialog, tmp_path, word_turns={2}, edit=edit)
    rec = stereo_recording(tmp_path / "call.wav", speech, instance, start=T0 - 1.3)
    result = import_incident(
        trace, recording=rec, recording_start=T0 - 1.3, now=NOW, **dirs(tmp_path / "o")
    )
    scenario = check_fixture(result.text)
    assert scenario.turns[1].say == "yes Alex Doe born January 1, 1970"
    assert result.redactions["NAME"] >= 1 and result.redactions["DOB"] == 1
    wav = Clip.read_wav(result.audio_paths[1]).samples  # turn-2.wav, silenced word by word
    ut = instance.find(c.SPAN_USER_TURN)[1]
    words = [(e.attributes["word.pii.text"], e.time_ns / 1e9) for e in ut.events]
    cut_start = ut.start_ns / 1e9 - 0.15
    step = words[1][1] - words[0][1]

    def at(k: int) -> slice:  # the middle of word k
        t = words[k][1] - cut_start
        return slice(round((t + 0.2 * step) * RATE), round((t + 0.7 * step) * RATE))

    assert [w for w, _ in words][1:3] == ["søren", "kierkegaard"]
    for k in range(1, len(words)):
        if words[k][0] != "born":
            assert not np.any(wav[at(k)]), words[k][0]  # the name and the date are gone
    assert np.any(wav[at(0)]) and np.any(wav[at(3)])  # "yes" and "born" are kept


def test_status_messages_teach_names_and_their_details_are_redacted(tmp_path):
    dialog = [
        ("hi i'd like to book a cleaning", "Of course. Which day?", None, None),
        ("is hannah there", "Goodbye Hannah.", None, None),
    ]

    def edit(span):
        if span.name == c.SPAN_AGENT_SESSION:
            return replace(
                span, status=c.STATUS_ERROR,
                status_message="booking failed for patient Hannah Schmidt, dob 11/23/1975",
            )  # fmt: skip
        return span

    trace, _, _ = _call(dialog, tmp_path, edit=edit)
    result = import_incident(trace, now=NOW, **dirs(tmp_path / "o"))
    header = " ".join(line.lstrip("# ") for line in result.text.splitlines())  # unwrapped
    assert "agent_session: booking failed for patient <NAME>, dob <DOB>" in header
    lowered = result.text.lower()
    assert "hannah" not in lowered and "schmidt" not in lowered and "1975" not in lowered
