"""Recorded caller turns for incident replays."""

from __future__ import annotations

import shutil
import wave

import numpy as np
import pytest

from harness.audio.clip import Clip
from harness.core.errors import ScenarioError
from harness.voices import Voice, VoiceError, voice_from_spec
from harness.voices.recorded import RecordedVoice


def _tone(seconds: float, freq: float, rate: int = 16000) -> Clip:
    t = np.arange(round(seconds * rate)) / rate
    return Clip((0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


@pytest.fixture
def turns(tmp_path):
    _tone(0.5, 300).write_wav(tmp_path / "t1.wav")
    _tone(0.8, 500).write_wav(tmp_path / "t2.wav")
    return tmp_path


def test_ordered_turns_play_in_order_whatever_the_text(turns):
    voice = RecordedVoice(["t1.wav", "t2.wav"], base_dir=turns)
    assert isinstance(voice, Voice)
    assert voice.synthesize("anything").duration == pytest.approx(0.5)
    assert voice.synthesize("else").duration == pytest.approx(0.8)
    with pytest.raises(VoiceError, match=r"has 2 turns; asked for turn 3 \('more'\)"):
        voice.synthesize("more")
    voice.reset()
    assert voice.synthesize("again").duration == pytest.approx(0.5)
    assert voice.turn(1).duration == pytest.approx(0.8)


def test_turns_keyed_by_text(turns):
    voice = RecordedVoice({"Hi, it's Sam.": "t1.wav", "Friday works.": "t2.wav"}, base_dir=turns)
    assert voice.synthesize("Friday works.").duration == pytest.approx(0.8)
    assert voice.synthesize("  Hi, it's Sam. ").duration == pytest.approx(0.5)
    with pytest.raises(
        VoiceError, match=r"no recorded turn .*closest recorded line: 'Friday works.'"
    ):
        voice.synthesize("Friday works?")


def test_samples_are_the_files_samples(turns):
    clip = RecordedVoice(["t2.wav"], base_dir=turns).synthesize("x")
    assert np.array_equal(clip.samples, Clip.read_wav(turns / "t2.wav").samples)


def test_missing_file_is_a_scenario_error_naming_the_file(tmp_path):
    voice = RecordedVoice(["gone.wav"], base_dir=tmp_path)
    with pytest.raises(ScenarioError, match="recorded turn not found") as info:
        voice.synthesize("x")
    assert info.value.file == str(tmp_path / "gone.wav")


def test_stereo_needs_a_channel(tmp_path):
    left, right = _tone(0.3, 200).to_int16(), _tone(0.3, 900).to_int16()
    path = tmp_path / "call.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.stack([left, right], axis=1).tobytes())
    with pytest.raises(ScenarioError, match=r"2-channel file; pass channel=0\.\.1"):
        RecordedVoice(["call.wav"], base_dir=tmp_path).synthesize("x")
    clip = RecordedVoice(["call.wav"], base_dir=tmp_path, channel=1).synthesize("x")
    assert np.array_equal(clip.to_int16(), right)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg missing")
def test_other_formats_are_decoded_with_ffmpeg(tmp_path):
    from pydub import AudioSegment

    _tone(1.0, 440).write_wav(tmp_path / "src.wav")
    AudioSegment.from_wav(tmp_path / "src.wav").export(tmp_path / "turn.mp3", format="mp3")
    clip = RecordedVoice(["turn.mp3"], base_dir=tmp_path).synthesize("x")
    assert clip.duration == pytest.approx(1.0, abs=0.06)
    assert float(np.max(np.abs(clip.samples))) > 0.2


def test_spec_resolves_paths_against_the_scenario_dir(turns):
    voice = voice_from_spec(
        {"engine": "recorded", "turns": {"hello": "t1.wav"}, "name": "INC-42"}, base_dir=turns
    )
    assert voice.key.as_dict() == {
        "provider": "recorded",
        "voice": "INC-42",
        "model": None,
        "settings": {},
    }
    assert voice.synthesize("hello").duration == pytest.approx(0.5)


def test_key_without_name_depends_on_the_files(turns):
    a = RecordedVoice(["t1.wav", "t2.wav"], base_dir=turns).key
    b = RecordedVoice(["t2.wav", "t1.wav"], base_dir=turns).key
    assert a != b
    assert a == RecordedVoice(["t1.wav", "t2.wav"], base_dir=turns).key


def test_empty_turns_are_refused():
    with pytest.raises(VoiceError, match="at least one turn"):
        RecordedVoice([])
    with pytest.raises(VoiceError, match="must be a list of paths"):
        RecordedVoice("t1.wav")  # type: ignore[arg-type]
