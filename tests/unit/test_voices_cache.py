"""The content-addressed TTS cache: keys, layout, record modes, atomic writes, misses."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading

import numpy as np
import pytest

from harness.audio.clip import Clip
from harness.core.errors import InfrastructureError
from harness.voices import (
    FORMAT_VERSION,
    CachedVoice,
    EspeakVoice,
    RecordMode,
    TTSCache,
    TTSCacheMiss,
    VoiceError,
    VoiceKey,
    VoiceUnavailable,
    cache_digest,
    default_cache_dir,
    default_voice,
    prerender,
)
from harness.voices import cache as cache_mod


class FakeVoice(CachedVoice):
    """A deterministic voice that counts its renders; optionally 'remote' without a key."""

    def __init__(self, name="fake", *, pitch=220.0, reason=None, **kw):
        super().__init__(**kw)
        self.name = name
        self.pitch = pitch
        self.reason = reason
        self.renders: list[str] = []

    @property
    def key(self) -> VoiceKey:
        return VoiceKey.make("fake", self.name, "m1", {"pitch": self.pitch})

    def unavailable_reason(self):
        return self.reason

    def engine_version(self):
        return "fake 1.0"

    def render(self, text: str) -> Clip:
        self.renders.append(text)
        t = np.arange(int(0.01 * len(text) * 16000)) / 16000
        return Clip(
            (0.3 * np.sin(2 * np.pi * self.pitch * t) + 0.01234567).astype(np.float32), 16000
        )


@pytest.fixture
def cache(tmp_path):
    return TTSCache(tmp_path / "tts")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("HARNESS_TTS_RECORD_MODE", raising=False)
    monkeypatch.setenv("HARNESS_TTS_CACHE", str(tmp_path / "default-tts"))


# -- keys ------------------------------------------------------------------------------


def test_digest_is_sha256_of_the_documented_canonical_json():
    key = VoiceKey.make("espeak", "en-us", None, {"rate": 160, "pitch": None})
    canonical = json.dumps(
        {
            "format": FORMAT_VERSION,
            "model": None,
            "provider": "espeak",
            "settings": {"rate": 160},
            "text": "Hello there",
            "voice": "en-us",
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert cache_digest(key, "Hello there") == hashlib.sha256(canonical.encode()).hexdigest()


def test_default_voice_digest_is_pinned():
    # Changing this digest orphans every committed render: bump FORMAT_VERSION on purpose.
    assert cache_digest(default_voice().key, "Hello there") == (
        "2308adc9072633c84db3457d73447680aa1e14c898046f684096caff21d91042"
    )


def test_digest_follows_every_key_field_and_text():
    base = VoiceKey.make("p", "v", "m", {"a": 1})
    variants = [
        VoiceKey.make("q", "v", "m", {"a": 1}),
        VoiceKey.make("p", "w", "m", {"a": 1}),
        VoiceKey.make("p", "v", "n", {"a": 1}),
        VoiceKey.make("p", "v", "m", {"a": 2}),
        VoiceKey.make("p", "v", "m", {"a": 1, "b": 0}),
    ]
    digests = {cache_digest(k, "hi") for k in [base, *variants]}
    assert len(digests) == 1 + len(variants)
    assert cache_digest(base, "hi") != cache_digest(base, "hi!")


def test_digest_ignores_unset_settings_setting_order_and_outer_whitespace():
    a = VoiceKey.make("p", "v", None, {"x": 1, "y": 2, "z": None})
    b = VoiceKey.make("p", "v", None, {"y": 2, "x": 1})
    assert a == b
    assert cache_digest(a, "  hello\n") == cache_digest(b, "hello")


def test_voice_key_round_trips_through_as_dict():
    key = VoiceKey.make("elevenlabs", "v1", "m", {"stability": 0.5, "nested": {"b": 1, "a": 2}})
    back = VoiceKey.make(**key.as_dict())
    assert back == key
    assert hash(back) == hash(key)
    assert key.as_dict()["settings"] == {"nested": {"a": 2, "b": 1}, "stability": 0.5}


# -- layout ----------------------------------------------------------------------------


def test_layout_is_sharded_wav_plus_sidecar(cache):
    voice = FakeVoice(cache=cache)
    clip = voice.synthesize("Book me in, please.")
    digest = cache_digest(voice.key, "Book me in, please.")
    wav = cache.root / digest[:2] / f"{digest}.wav"
    sidecar = wav.with_suffix(".json")
    assert sorted(p.relative_to(cache.root).as_posix() for p in cache.root.rglob("*")) == [
        digest[:2],
        f"{digest[:2]}/{digest}.json",
        f"{digest[:2]}/{digest}.wav",
    ]
    assert wav.read_bytes()[:4] == b"RIFF"
    stored = Clip.read_wav(wav)
    assert stored.rate == 16000
    assert np.array_equal(stored.samples, clip.samples)
    doc = json.loads(sidecar.read_text())
    assert doc["provider"] == "fake"
    assert doc["voice"] == "fake"
    assert doc["model"] == "m1"
    assert doc["settings"] == {"pitch": 220.0}
    assert doc["text"] == "Book me in, please."
    assert doc["digest"] == digest
    assert doc["format"] == FORMAT_VERSION
    assert doc["rate"] == 16000
    assert doc["engine_version"] == "fake 1.0"


def test_sidecars_list_as_entries(cache):
    voice = FakeVoice(cache=cache)
    voice.synthesize("one")
    voice.synthesize("two")
    entries = list(cache.entries())
    assert sorted(e.text for e in entries) == ["one", "two"]
    assert all(e.key == voice.key for e in entries)
    assert all(e.wav_path.is_file() for e in entries)


# -- record modes ----------------------------------------------------------------------


def test_once_renders_on_miss_then_replays(cache):
    voice = FakeVoice(cache=cache)
    first = voice.synthesize("Hello")
    second = voice.synthesize("Hello")
    assert voice.renders == ["Hello"]
    # The first (fresh) result is the stored 16-bit audio, identical to a later hit.
    assert np.array_equal(first.samples, second.samples)
    assert first.samples[0] == np.float32(round(0.01234567 * 32768) / 32768)


def test_none_refuses_to_render(cache):
    voice = FakeVoice(cache=cache, record_mode="none")
    with pytest.raises(TTSCacheMiss, match="record mode is 'none'") as info:
        voice.synthesize("Hello")
    assert voice.renders == []
    assert "harness audio render" in str(info.value)
    FakeVoice(cache=cache).synthesize("Hello")
    assert voice.synthesize("Hello").rate == 16000
    assert voice.renders == []


def test_all_renders_again_and_overwrites(cache):
    FakeVoice(cache=cache, pitch=300.0).synthesize("Hello")
    voice = FakeVoice(cache=cache, pitch=300.0, record_mode=RecordMode.ALL)
    voice.synthesize("Hello")
    voice.synthesize("Hello")
    assert voice.renders == ["Hello", "Hello"]
    assert len(list(cache.entries())) == 1


def test_record_mode_from_environment(cache, monkeypatch):
    monkeypatch.setenv("HARNESS_TTS_RECORD_MODE", "none")
    voice = FakeVoice(cache=cache)
    assert voice.record_mode is RecordMode.NONE
    with pytest.raises(TTSCacheMiss):
        voice.synthesize("Hello")
    # An explicit mode beats the environment.
    assert FakeVoice(cache=cache, record_mode="once").record_mode is RecordMode.ONCE


def test_bad_record_mode_names_the_choices():
    with pytest.raises(VoiceError, match=r"record_mode='sometimes' is not one of: once, none, all"):
        RecordMode.resolve("sometimes")


# -- atomicity -------------------------------------------------------------------------


def test_failed_write_leaves_no_entry_and_no_temp_files(cache, monkeypatch):
    real_replace = os.replace

    def flaky_replace(src, dst):
        if str(dst).endswith(".wav"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(cache_mod.os, "replace", flaky_replace)
    voice = FakeVoice(cache=cache)
    with pytest.raises(OSError, match="disk full"):
        voice.synthesize("Hello")
    assert list(cache.root.rglob("*.wav")) == []
    assert list(cache.root.rglob("*.tmp")) == []
    assert cache.get(voice.key, "Hello") is None


def test_failed_render_writes_nothing(cache):
    class Broken(FakeVoice):
        def render(self, text):
            raise VoiceUnavailable("engine crashed")

    with pytest.raises(VoiceUnavailable, match="engine crashed"):
        Broken(cache=cache).synthesize("Hello")
    assert not cache.root.exists() or list(cache.root.rglob("*")) == []


def test_concurrent_writers_leave_one_valid_entry(cache):
    voices = [FakeVoice(cache=cache, record_mode="all") for _ in range(8)]
    errors: list[BaseException] = []

    def work(v):
        try:
            for _ in range(5):
                v.synthesize("same line")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(v,)) for v in voices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(cache.root.rglob("*.wav"))) == 1
    assert list(cache.root.rglob("*.tmp")) == []
    assert cache.get(voices[0].key, "same line").duration == pytest.approx(0.09)


def test_temp_files_are_hidden_siblings(cache, monkeypatch):
    seen: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(cache_mod.os, "replace", spy)
    FakeVoice(cache=cache).synthesize("Hello")
    assert len(seen) == 2
    for src, dst in seen:
        assert os.path.dirname(src) == os.path.dirname(dst)
        assert os.path.basename(src).startswith(".")
        assert src.endswith(".part")
    assert seen[0][1].endswith(".json") and seen[1][1].endswith(".wav")


# -- misses ----------------------------------------------------------------------------


def test_unrenderable_miss_names_text_voice_fix_and_closest_entry(cache):
    FakeVoice(cache=cache).synthesize("I'd like to move my appointment to Friday.")
    FakeVoice("other", cache=cache).synthesize("I'd like to move my appointment to Monday.")
    FakeVoice(cache=cache).synthesize("Goodbye.")
    voice = FakeVoice(cache=cache, reason="FAKE_KEY is not set")
    voice.render_hint = "set FAKE_KEY and run `harness audio render`"
    with pytest.raises(TTSCacheMiss) as info:
        voice.synthesize("I'd like to move my appointment to Monday.")
    msg = str(info.value)
    assert "I'd like to move my appointment to Monday." in msg
    assert "fake:fake" in msg
    assert "FAKE_KEY is not set" in msg
    assert "harness audio render" in msg
    # Same voice beats same text from another voice.
    assert "Closest cached entry:" in msg
    assert "to Friday." in msg.split("Closest cached entry:")[1]
    assert "differs in: text" in msg
    assert info.value.closest.text == "I'd like to move my appointment to Friday."
    assert voice.renders == []
    assert isinstance(info.value, InfrastructureError)
    assert str(info.value.for_turn(3)).startswith("turn 3: no cached audio")


def test_miss_on_empty_cache_says_so(cache):
    with pytest.raises(TTSCacheMiss, match=r"Closest cached entry: none \(the cache is empty\)"):
        FakeVoice(cache=cache, record_mode="none").synthesize("hi")


def test_closest_reports_settings_differences(cache):
    FakeVoice(cache=cache, pitch=100.0).synthesize("hello")
    entry = cache.closest(FakeVoice(pitch=200.0).key, "hello")
    assert entry is not None
    assert entry.differences(FakeVoice(pitch=200.0).key, "hello") == ["settings.pitch"]


def test_git_lfs_pointer_is_a_clear_error(cache):
    voice = FakeVoice(cache=cache)
    digest = cache_digest(voice.key, "hello")
    path = cache.wav_path(digest)
    path.parent.mkdir(parents=True)
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 10\n")
    with pytest.raises(VoiceUnavailable, match="git lfs pull"):
        voice.synthesize("hello")


# -- locating the cache ----------------------------------------------------------------


def test_cache_dir_from_environment_is_read_at_each_call(tmp_path, monkeypatch):
    voice = FakeVoice()
    monkeypatch.setenv("HARNESS_TTS_CACHE", str(tmp_path / "a"))
    voice.synthesize("hello")
    monkeypatch.setenv("HARNESS_TTS_CACHE", str(tmp_path / "b"))
    voice.synthesize("hello")
    assert len(list((tmp_path / "a").rglob("*.wav"))) == 1
    assert len(list((tmp_path / "b").rglob("*.wav"))) == 1
    assert voice.renders == ["hello", "hello"]


def test_default_dir_is_nearest_audio_fixtures(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_TTS_CACHE")
    (tmp_path / "audio_fixtures").mkdir()
    deep = tmp_path / "scenarios" / "smoke"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert default_cache_dir() == tmp_path / "audio_fixtures" / "tts"


def test_constructor_path_beats_environment(tmp_path):
    voice = FakeVoice(cache=tmp_path / "explicit")
    voice.synthesize("hello")
    assert len(list((tmp_path / "explicit").rglob("*.wav"))) == 1
    assert not (tmp_path / "default-tts").exists()


# -- offline voices and CI -------------------------------------------------------------


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")
def test_offline_voice_renders_on_a_miss_in_ci_without_keys(cache, monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    voice = EspeakVoice("en-gb-scotland", cache=cache)
    clip = voice.synthesize("Can I come in on Thursday?")
    assert clip.duration > 0.5
    assert cache.get(voice.key, "Can I come in on Thursday?") is not None


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")
def test_espeak_render_is_byte_identical_to_the_cached_file(cache):
    voice = EspeakVoice("en-029", cache=cache)
    voice.synthesize("Twelve thirty works for me.")
    cached = cache.wav_path(cache_digest(voice.key, "Twelve thirty works for me.")).read_bytes()
    again = EspeakVoice("en-029", cache=cache, record_mode="all")
    again.synthesize("Twelve thirty works for me.")
    rerendered = cache.wav_path(cache_digest(voice.key, "Twelve thirty works for me.")).read_bytes()
    assert hashlib.sha256(cached).digest() == hashlib.sha256(rerendered).digest()


def test_prerender_fills_the_cache(cache):
    voice = FakeVoice(cache=cache)
    results = prerender([(voice, "one"), (voice, "two"), (voice, "one")])
    assert [r.text for r in results] == ["one", "two", "one"]
    assert voice.renders == ["one", "two"]
    assert {r.digest for r in results} == {e.digest for e in cache.entries()}
