"""harness.plan.render: a scenario's caller audio on disk, exactly as the caller sends it."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from harness.audio import ConditionError
from harness.audio.clip import Clip
from harness.core.errors import ScenarioError
from harness.plan.callplan import render_plan
from harness.plan.render import PLAN_FILE, plan_summary, render_scenario_audio, turn_file_name
from harness.scenario.model import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "fixtures" / "render_example.yaml"
COMMITTED = ROOT / "audio_fixtures" / "rendered" / "render_example"


@pytest.fixture(autouse=True)
def _tts_cache(tmp_path_factory, monkeypatch):
    # One cache for the module's renders (engines run once per line), never the repository's.
    cache = tmp_path_factory.getbasetemp() / "render-tts"
    monkeypatch.setenv("HARNESS_TTS_CACHE", str(cache))


def _wav(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()


def test_writes_one_wav_per_spoken_turn_and_the_plan(tmp_path):
    out = tmp_path / "out"
    written = render_scenario_audio(EXAMPLE, out, progress=None)
    assert [p.name for p in written] == ["turn-01.wav", "turn-02.wav", PLAN_FILE]
    assert sorted(p.name for p in out.iterdir()) == ["plan.json", "turn-01.wav", "turn-02.wav"]

    plan = render_plan(load_scenario(EXAMPLE))
    doc = json.loads((out / PLAN_FILE).read_text())
    assert doc == plan_summary(plan, source=EXAMPLE)
    assert doc["scenario"] == "render_example" and doc["seed"] == 7 and doc["rate"] == 48000
    assert [t["index"] for t in doc["turns"]] == [1, 2, 3]
    assert [t["kind"] for t in doc["turns"]] == ["say", "say", "silence"]

    for entry, turn in zip(doc["turns"], plan.turns, strict=True):
        assert entry["text"] == turn.text
        assert entry["spoken_text"] == turn.spoken_text
        assert entry["voice"] == turn.voice
        assert entry["conditions"] == [dict(c) for c in turn.conditions]
        assert entry["barge_in_ms"] == turn.barge_in_ms
        assert entry["pause_before_ms"] == round(turn.pause_before_s * 1000)
        if turn.audio is None:
            assert entry["file"] is None and entry["duration_s"] is None
            assert entry["silence_ms"] == 1500
            continue
        rate, channels, width, frames = _wav(out / entry["file"])
        assert (rate, channels, width) == (48000, 1, 2)
        assert frames == len(turn.audio.samples)
        assert entry["duration_s"] == pytest.approx(frames / 48000, abs=1e-6)
        sent = Clip.read_wav(out / entry["file"])
        assert np.array_equal(sent.to_int16(), turn.audio.to_int16()), "exactly what is sent"

    second = doc["turns"][1]
    assert second["spoken_text"] == "Tuesday, um please."
    assert second["pause_before_ms"] == 400
    assert second["voice"].startswith("espeak:en-gb")
    assert [next(iter(c)) for c in second["conditions"]] == [
        "noise",
        "narrowband",
        "packet_loss",
    ]


def test_same_seed_gives_byte_identical_wavs(tmp_path):
    a = render_scenario_audio(EXAMPLE, tmp_path / "a", seed=11, progress=None)
    b = render_scenario_audio(EXAMPLE, tmp_path / "b", seed=11, progress=None)
    c = render_scenario_audio(EXAMPLE, tmp_path / "c", seed=12, progress=None)
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    assert a[0].read_bytes() != c[0].read_bytes(), "the seed drives the noise and the loss"
    assert json.loads(c[-1].read_text())["seed"] == 12


def test_conditions_override_every_turn(tmp_path):
    clean = render_scenario_audio(EXAMPLE, tmp_path, conditions="clean", progress=None)
    doc = json.loads(clean[-1].read_text())
    assert [t["conditions"] for t in doc["turns"]] == [[], [], []]
    text = EXAMPLE.read_text()
    assert "conditions: bad_cell\n" in text
    plain = render_plan(parse_scenario(text.replace("conditions: bad_cell\n", ""), EXAMPLE))
    for path, turn in zip(clean[:2], plain.turns, strict=False):
        assert np.array_equal(Clip.read_wav(path).to_int16(), turn.audio.to_int16())
    landline = render_scenario_audio(EXAMPLE, tmp_path, conditions="landline", progress=None)
    planned = render_plan(load_scenario(EXAMPLE), conditions="landline")
    for path, turn in zip(landline[:2], planned.turns, strict=False):
        assert np.array_equal(Clip.read_wav(path).to_int16(), turn.audio.to_int16())
    with pytest.raises(ConditionError, match="bad_cel"):
        render_scenario_audio(EXAMPLE, tmp_path / "x", conditions="bad_cel", progress=None)
    assert not (tmp_path / "x").exists(), "nothing is written for a bad argument"


def test_progress_goes_to_stderr(tmp_path, capsys):
    render_scenario_audio(EXAMPLE, tmp_path)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert "rendering 2 caller turn(s) of 3" in lines[0]
    assert any("turn-02.wav" in line and "Tuesday, um please." in line for line in lines)
    assert lines[-1].startswith(f"wrote 3 file(s) to {tmp_path}")


def test_a_rerender_removes_stale_turns(tmp_path):
    (tmp_path / "turn-09.wav").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("mine")
    render_scenario_audio(EXAMPLE, tmp_path, progress=None)
    assert (tmp_path / "turn-09.wav").exists(), "not a render directory yet: left alone"
    render_scenario_audio(EXAMPLE, tmp_path, progress=None)
    assert not (tmp_path / "turn-09.wav").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_accepts_a_loaded_scenario(tmp_path):
    written = render_scenario_audio(load_scenario(EXAMPLE), tmp_path, progress=None)
    assert [p.name for p in written] == ["turn-01.wav", "turn-02.wav", PLAN_FILE]


@pytest.mark.parametrize(
    "body, line, match",
    [
        ("id: bad\nconditions: bad_cel\nturns:\n  - say: hi\n", 2, "unknown preset 'bad_cel'"),
        (
            "id: bad\nturns:\n  - say: hi\n    voice: espeak:en-us@9\n",
            4,
            "greater than or equal to 80",
        ),
        ("id: bad\nturns:\n  - sey: hi\n", 3, "unknown key"),
    ],
)
def test_bad_scenarios_name_file_and_line(tmp_path, body, line, match):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ScenarioError, match=match) as info:
        render_scenario_audio(path, tmp_path / "out", progress=None)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert not (tmp_path / "out").exists()


def test_a_missing_file_is_a_scenario_error(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        render_scenario_audio(tmp_path / "nope.yaml", tmp_path / "out", progress=None)


def test_turn_file_names_sort_in_turn_order():
    assert turn_file_name(1) == "turn-01.wav"
    assert turn_file_name(12) == "turn-12.wav"
    assert sorted(turn_file_name(i) for i in (10, 2, 1)) == [
        "turn-01.wav",
        "turn-02.wav",
        "turn-10.wav",
    ]


def test_the_committed_render_matches_its_scenario():
    """audio_fixtures/rendered/render_example is this scenario's output, and small."""
    doc = json.loads((COMMITTED / PLAN_FILE).read_text())
    fresh = plan_summary(render_plan(load_scenario(EXAMPLE)))
    keys = ("index", "kind", "file", "text", "spoken_text", "voice", "conditions")
    assert [{k: t[k] for k in keys} for t in doc["turns"]] == [
        {k: t[k] for k in keys} for t in fresh["turns"]
    ]
    assert doc["source"] == "tests/fixtures/render_example.yaml"
    files = sorted(p.name for p in COMMITTED.iterdir())
    assert files == ["plan.json", "turn-01.wav", "turn-02.wav"]
    assert sum(p.stat().st_size for p in COMMITTED.iterdir()) < 400_000
    for entry in doc["turns"]:
        if entry["file"] is None:
            continue
        rate, channels, width, frames = _wav(COMMITTED / entry["file"])
        assert (rate, channels, width) == (48000, 1, 2)
        assert frames / rate == pytest.approx(entry["duration_s"], abs=1e-6)
