"""ElevenLabs voices through the real SDK, against a stand-in API on 127.0.0.1."""

from __future__ import annotations

import shutil

import elevenlabs  # noqa: F401  (a dev dependency: a missing SDK is an error, not a skip)
import numpy as np
import pytest

from harness.voices import (
    RecordMode,
    TTSCache,
    TTSCacheMiss,
    VoiceError,
    VoiceUnavailable,
    voice_from_spec,
)
from harness.voices.elevenlabs import ElevenLabsVoice
from tests.support.elevenlabs_standin import ElevenLabsStandIn, expected_duration

DUMMY_KEY = "test-key-not-a-secret"
LINE = "I need to move my cleaning to Friday afternoon."


@pytest.fixture
def api():
    with ElevenLabsStandIn() as standin:
        yield standin


@pytest.fixture
def env(monkeypatch, api, tmp_path):
    monkeypatch.setenv("ELEVENLABS_API_KEY", DUMMY_KEY)
    monkeypatch.setenv("ELEVENLABS_BASE_URL", api.url)
    monkeypatch.setenv("HARNESS_TTS_CACHE", str(tmp_path / "tts"))
    monkeypatch.delenv("HARNESS_TTS_RECORD_MODE", raising=False)
    monkeypatch.delenv("CI", raising=False)
    return monkeypatch


@pytest.fixture
def cache(tmp_path):
    return TTSCache(tmp_path / "tts")


def test_sdk_request_carries_voice_model_settings_text_and_key(env, api, cache):
    voice = ElevenLabsVoice(
        "Xb7hH8MSUJpSbSDYk0k2",
        model="eleven_turbo_v2_5",
        stability=0.3,
        similarity_boost=0.8,
        style=0.1,
        speed=1.1,
        seed=42,
        cache=cache,
    )
    clip = voice.synthesize(LINE)
    assert len(api.requests) == 1
    req = api.requests[0]
    assert req.method == "POST"
    assert req.path == "/v1/text-to-speech/Xb7hH8MSUJpSbSDYk0k2"
    assert req.query == {"output_format": "pcm_16000"}
    assert req.headers["xi-api-key"] == DUMMY_KEY
    assert req.headers["user-agent"].startswith("elevenlabs/")
    assert req.json == {
        "text": LINE,
        "model_id": "eleven_turbo_v2_5",
        "voice_settings": {
            "stability": 0.3,
            "similarity_boost": 0.8,
            "style": 0.1,
            "speed": 1.1,
        },
        "seed": 42,
    }
    assert clip.rate == 16000
    assert clip.duration == pytest.approx(expected_duration(LINE, 1.1), abs=1e-3)
    assert float(np.max(np.abs(clip.samples))) > 0.3


def test_unset_settings_are_not_sent(env, api, cache):
    ElevenLabsVoice("v1", cache=cache).synthesize("Hello")
    body = api.requests[0].json
    assert body == {"text": "Hello", "model_id": "eleven_turbo_v2_5"}


def test_second_call_is_served_from_the_cache(env, api, cache):
    voice = ElevenLabsVoice("v1", stability=0.5, cache=cache)
    first = voice.synthesize(LINE)
    second = ElevenLabsVoice("v1", stability=0.5, cache=cache).synthesize(LINE)
    assert len(api.requests) == 1
    assert np.array_equal(first.samples, second.samples)
    ElevenLabsVoice("v1", stability=0.6, cache=cache).synthesize(LINE)
    assert len(api.requests) == 2


def test_the_api_key_is_never_written_to_the_cache(env, api, cache):
    ElevenLabsVoice("v1", stability=0.5, cache=cache).synthesize(LINE)
    files = [p for p in cache.root.rglob("*") if p.is_file()]
    assert len(files) == 2
    for path in files:
        assert DUMMY_KEY.encode() not in path.read_bytes()
        assert api.url.encode() not in path.read_bytes()


def test_record_mode_all_calls_the_api_again(env, api, cache):
    ElevenLabsVoice("v1", cache=cache).synthesize(LINE)
    ElevenLabsVoice("v1", cache=cache, record_mode=RecordMode.ALL).synthesize(LINE)
    assert len(api.requests) == 2


def test_ci_miss_without_key_names_line_voice_fix_and_closest(env, api, cache):
    voice = ElevenLabsVoice("v1", model="eleven_turbo_v2_5", stability=0.5, cache=cache)
    voice.synthesize("I need to move my cleaning to Friday.")
    env.delenv("ELEVENLABS_API_KEY")
    env.setenv("CI", "true")
    with pytest.raises(TTSCacheMiss) as info:
        voice.synthesize("I need to move my cleaning to Monday.")
    msg = str(info.value)
    assert "'I need to move my cleaning to Monday.'" in msg
    assert "elevenlabs:v1 model=eleven_turbo_v2_5" in msg
    assert "ELEVENLABS_API_KEY is not set in this CI run (CI=true)" in msg
    assert "harness audio render" in msg
    assert "never in a file" in msg
    assert "Closest cached entry:" in msg
    assert "'I need to move my cleaning to Friday.'" in msg
    assert "differs in: text" in msg
    assert len(api.requests) == 1
    # A cached line still replays without the key.
    assert voice.synthesize("I need to move my cleaning to Friday.").rate == 16000


def test_miss_without_key_outside_ci_is_also_a_clear_miss(env, api, cache):
    env.delenv("ELEVENLABS_API_KEY")
    with pytest.raises(TTSCacheMiss, match=r"ELEVENLABS_API_KEY is not set, so ElevenLabs"):
        ElevenLabsVoice("v1", cache=cache).synthesize(LINE)
    assert api.requests == []


def test_rejected_key_is_an_infrastructure_error_without_the_key(env, cache):
    with ElevenLabsStandIn(api_key="some-other-key") as strict:
        voice = ElevenLabsVoice("v1", base_url=strict.url, cache=cache)
        with pytest.raises(VoiceUnavailable, match=r"rejected the API key \(HTTP 401\)") as info:
            voice.synthesize(LINE)
        assert DUMMY_KEY not in str(info.value)
        assert strict.requests[0].headers["xi-api-key"] == DUMMY_KEY
    assert list(cache.root.rglob("*.wav")) == []


def test_unknown_voice_is_reported(env, cache):
    with ElevenLabsStandIn(voices={"known"}) as strict:
        voice = ElevenLabsVoice("unknown", base_url=strict.url, cache=cache)
        with pytest.raises(VoiceUnavailable, match=r"has no voice 'unknown'.*HTTP 404"):
            voice.synthesize(LINE)


def test_quota_error_is_reported(env, api, cache):
    api.fail_next(429, "quota_exceeded", "You have exceeded your quota")
    with pytest.raises(VoiceUnavailable, match=r"rate-limiting or out of quota \(HTTP 429\)"):
        ElevenLabsVoice("v1", cache=cache).synthesize(LINE)


def test_unreachable_endpoint_is_reported(env, cache):
    with ElevenLabsStandIn() as gone:
        url = gone.url
    voice = ElevenLabsVoice("v1", base_url=url, timeout=2, cache=cache)
    with pytest.raises(VoiceUnavailable, match=r"could not reach ElevenLabs for voice 'v1'"):
        voice.synthesize(LINE)


def test_constructor_base_url_beats_environment(env, cache):
    with ElevenLabsStandIn() as other:
        ElevenLabsVoice("v1", base_url=other.url, cache=cache).synthesize(LINE)
        assert len(other.requests) == 1


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg missing")
def test_mp3_output_is_decoded(env, api, cache):
    clip = ElevenLabsVoice("v1", output_format="mp3_44100_128", cache=cache).synthesize(LINE)
    assert api.requests[0].query == {"output_format": "mp3_44100_128"}
    assert clip.rate == 44100
    assert clip.duration == pytest.approx(expected_duration(LINE), abs=0.1)


def test_spec_builds_an_elevenlabs_voice_that_renders(env, api, cache):
    voice = voice_from_spec(
        {
            "engine": "elevenlabs",
            "voice_id": "abc123",
            "model": "eleven_multilingual_v2",
            "settings": {"stability": 0.25, "speed": 0.9},
        },
        cache=cache,
    )
    voice.synthesize("Yes, that's right.")
    body = api.requests[0].json
    assert api.requests[0].voice_id == "abc123"
    assert body["model_id"] == "eleven_multilingual_v2"
    assert body["voice_settings"] == {"stability": 0.25, "speed": 0.9}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stability": 1.5}, "stability=1.5 must be between 0.0 and 1.0"),
        ({"speed": 2}, "speed=2 must be between 0.7 and 1.2"),
        ({"output_format": "ogg"}, "output_format='ogg' must be one of"),
        ({"use_speaker_boost": "yes"}, "use_speaker_boost='yes'"),
    ],
)
def test_arguments_are_checked_when_built(kwargs, message):
    with pytest.raises(VoiceError, match=message):
        ElevenLabsVoice("v1", **kwargs)


def test_settings_are_normalised_in_the_key():
    assert ElevenLabsVoice("v1", stability=1).key == ElevenLabsVoice("v1", stability=1.0).key
