"""Offline voices: every catalogued voice speaks, distinctly, deterministically."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from harness.audio.clip import Clip
from harness.voices import (
    OFFLINE_VOICE_SPECS,
    EspeakVoice,
    FestivalVoice,
    FliteVoice,
    RecordMode,
    Voice,
    VoiceError,
    VoiceUnavailable,
    default_voice,
    offline_voices,
    voice_from_spec,
)
from harness.voices import offline as offline_mod

LINE = "Hello, I would like to book a cleaning for next Tuesday morning."
WORDS = len(LINE.split())

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite missing")
needs_festival = pytest.mark.skipif(shutil.which("text2wave") is None, reason="festival missing")


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_TTS_CACHE", str(tmp_path / "tts"))
    monkeypatch.delenv("HARNESS_TTS_RECORD_MODE", raising=False)


def _digest(clip: Clip) -> str:
    return hashlib.sha256(clip.to_int16().tobytes()).hexdigest()


def _assert_speech(clip: Clip, words: int) -> None:
    assert isinstance(clip, Clip)
    assert clip.rate in (8000, 16000, 22050, 24000, 44100, 48000)
    peak = float(np.max(np.abs(clip.samples)))
    rms = float(np.sqrt(np.mean(clip.samples.astype(np.float64) ** 2)))
    assert peak > 0.1, f"peak {peak} too quiet"
    assert rms > 0.01, f"rms {rms} is near silence"
    # Conversational speech runs roughly 100-260 words per minute, plus edge silence.
    assert words / 4.5 <= clip.duration <= words / 1.5 + 1.0, clip.duration


def test_catalogue_has_six_distinct_voices_over_two_engines():
    voices = offline_voices()
    keys = {v.key for v in voices}
    assert len(keys) == len(voices) == len(OFFLINE_VOICE_SPECS)
    assert len(keys) >= 6
    assert len({k.provider for k in keys}) >= 2
    assert all(isinstance(v, Voice) for v in voices)


@pytest.mark.parametrize("spec", OFFLINE_VOICE_SPECS)
def test_each_offline_voice_speaks(spec):
    voice = voice_from_spec(spec)
    binary = {"espeak": "espeak-ng", "flite": "flite"}[voice.key.provider]
    if shutil.which(binary) is None:
        pytest.skip(f"{binary} missing")
    _assert_speech(voice.synthesize(LINE), WORDS)


@needs_espeak
@needs_flite
def test_offline_voices_sound_different():
    digests = {_digest(v.synthesize(LINE)) for v in offline_voices()}
    assert len(digests) == len(OFFLINE_VOICE_SPECS)


@needs_espeak
def test_default_voice_is_espeak_en_us_at_160():
    voice = default_voice()
    assert voice.key.provider == "espeak"
    assert voice.key.voice == "en-us"
    assert voice.key.settings_dict == {"rate": 160}
    _assert_speech(voice.synthesize(LINE), WORDS)


@needs_espeak
def test_espeak_variant_after_en_gb_changes_the_audio():
    # espeak-ng 1.51 ignores "+f4" after "en-gb" unless given the voice file.
    plain = EspeakVoice("en-gb", record_mode="all").synthesize(LINE)
    female = EspeakVoice("en-gb+f4", record_mode="all").synthesize(LINE)
    assert _digest(plain) != _digest(female)


@needs_espeak
def test_espeak_rate_changes_duration():
    slow = EspeakVoice("en-us", rate=110).synthesize(LINE)
    fast = EspeakVoice("en-us", rate=260).synthesize(LINE)
    assert slow.duration > fast.duration * 1.6


@needs_flite
def test_flite_stretch_slows_speech():
    base = FliteVoice("slt").synthesize(LINE)
    slow = FliteVoice("slt", stretch=1.5).synthesize(LINE)
    assert slow.duration > base.duration * 1.3


@needs_espeak
@needs_flite
@pytest.mark.parametrize("voice", [EspeakVoice("en-gb-scotland"), FliteVoice("rms")], ids=str)
def test_offline_render_is_byte_identical_across_runs(voice):
    first = voice.render(LINE)
    second = voice.render(LINE)
    assert _digest(first) == _digest(second)


@needs_festival
def test_festival_voice_speaks():
    _assert_speech(FestivalVoice("kal_diphone").synthesize(LINE), WORDS)


@needs_espeak
def test_unknown_espeak_voice_is_refused_not_silently_replaced():
    with pytest.raises(VoiceUnavailable, match=r"no voice 'en-zz'.*en-gb-scotland"):
        EspeakVoice("en-zz").synthesize(LINE)
    with pytest.raises(VoiceUnavailable, match="no variant 'zz9'"):
        EspeakVoice("en-us", "zz9").synthesize(LINE)


@needs_flite
def test_unknown_flite_voice_is_refused():
    with pytest.raises(VoiceUnavailable, match=r"flite has no voice 'nope'.*slt"):
        FliteVoice("nope").synthesize(LINE)


def test_missing_binary_names_the_apt_package(monkeypatch):
    monkeypatch.setattr(offline_mod.shutil, "which", lambda name: None)
    with pytest.raises(VoiceUnavailable, match=r"apt-get install espeak-ng"):
        EspeakVoice("en-us", record_mode=RecordMode.ALL).synthesize(LINE)
    with pytest.raises(VoiceUnavailable, match=r"apt-get install flite"):
        FliteVoice("slt", record_mode=RecordMode.ALL).synthesize(LINE)


def test_subprocess_timeout_is_a_clear_error(monkeypatch):
    import subprocess

    def slow(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout"))

    monkeypatch.setattr(offline_mod.subprocess, "run", slow)
    with pytest.raises(VoiceUnavailable, match=r"did not finish within 0.5s"):
        offline_mod._run(["espeak-ng", "x"], timeout=0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 20}, "rate=20"),
        ({"pitch": 120}, "pitch=120"),
        ({"language": "en us"}, "language='en us'"),
        ({"language": "en-us+f3", "variant": "m3"}, "already names a variant"),
    ],
)
def test_espeak_arguments_are_checked_when_built(kwargs, message):
    with pytest.raises(VoiceError, match=message):
        EspeakVoice(**kwargs)


def test_empty_line_is_refused():
    with pytest.raises(VoiceError, match="empty line"):
        default_voice().synthesize("   ")
