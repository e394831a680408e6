"""G.711, narrowband and Opus, checked by measurement."""

from __future__ import annotations

import math
import shutil
import warnings

import numpy as np
import pytest

from harness import audio
from harness.audio import codecs, measure
from harness.audio.clip import Clip
from harness.core.errors import InfrastructureError

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
ALL_INT16 = np.arange(-32768, 32768).astype("<i2")


def tone(hz: float, seconds: float, rate: int, amp: float = 0.3) -> Clip:
    t = np.arange(round(seconds * rate)) / rate
    return Clip((amp * np.sin(2 * np.pi * hz * t)).astype(np.float32), rate)


# ------------------------------------------------------------------------------ G.711


def test_g711_matches_the_reference_tables_for_every_16_bit_value():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # the stdlib's C G.711 (Python < 3.13)
    x = ALL_INT16 / 32768.0
    pcm = ALL_INT16.tobytes()
    assert np.array_equal(codecs.ulaw_encode(x), np.frombuffer(audioop.lin2ulaw(pcm, 2), np.uint8))
    assert np.array_equal(codecs.alaw_encode(x), np.frombuffer(audioop.lin2alaw(pcm, 2), np.uint8))
    every_code = np.arange(256, dtype=np.uint8)
    ref_u = np.frombuffer(audioop.ulaw2lin(every_code.tobytes(), 2), "<i2") / 32768.0
    ref_a = np.frombuffer(audioop.alaw2lin(every_code.tobytes(), 2), "<i2") / 32768.0
    assert np.array_equal(codecs.ulaw_decode(every_code), ref_u.astype(np.float32))
    assert np.array_equal(codecs.alaw_decode(every_code), ref_a.astype(np.float32))


def test_g711_known_codes():
    assert codecs.ulaw_encode(np.array([0.0]))[0] == 0xFF
    assert codecs.alaw_encode(np.array([0.0]))[0] == 0xD5
    assert codecs.ulaw_decode(np.array([0x80]))[0] == pytest.approx(32124 / 32768)
    assert codecs.alaw_decode(np.array([0xAA]))[0] == pytest.approx(32256 / 32768)


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_g711_codes_round_trip_and_are_monotone(codec):
    enc = codecs.ulaw_encode if codec == "ulaw" else codecs.alaw_encode
    dec = codecs.ulaw_decode if codec == "ulaw" else codecs.alaw_decode
    codes = np.arange(256)
    values = dec(codes)
    back = enc(values)
    # μ-law has two zeros (0x7F is "negative zero"); every other code survives.
    same = back == codes
    assert same.sum() == (255 if codec == "ulaw" else 256)
    assert np.all(np.diff(np.sort(np.unique(values))) > 0)
    x = np.linspace(-1, 1, 20001)
    assert np.all(np.diff(dec(enc(x))) >= 0)  # quantising keeps the order


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
@pytest.mark.parametrize("level", [-10.0, -20.0, -30.0])
def test_g711_round_trip_snr_is_about_35_to_40_db_on_speech(codec, level):
    clip = audio.speech_like(2.0, 8000, seed=2, level_dbfs=level)
    y = codecs.g711_roundtrip(clip.samples, codec)
    x = clip.samples.astype(np.float64)
    snr = 10 * math.log10(np.sum(x**2) / np.sum((x - y) ** 2))
    assert 35.0 <= snr <= 40.0


def test_g711_roundtrip_rejects_unknown_codecs():
    with pytest.raises(ValueError, match="codec='g729'"):
        codecs.g711_roundtrip(np.zeros(4), "g729")


# ------------------------------------------------------------------------------ narrowband


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
@pytest.mark.parametrize("codec", ["ulaw", "alaw", None])
def test_narrowband_leaves_nothing_above_4_khz(rate, codec):
    rng = np.random.default_rng(0)
    speech = audio.speech_like(1.5, rate, seed=3).samples
    hiss = 0.05 * rng.standard_normal(len(speech))
    clip = Clip((speech + hiss).astype(np.float32), rate)
    assert measure.energy_above_hz(clip, 4000) > -15  # plenty up there before
    out = audio.narrowband(codec=codec).apply(clip, rng)
    assert len(out.samples) == len(clip.samples) and out.rate == rate
    assert measure.energy_above_hz(out, 4000) <= -40


def test_narrowband_passes_the_telephone_band_and_cuts_outside_it():
    rate = 16000
    rng = np.random.default_rng(0)
    cases = [(1000, -1.0, 1.0), (2500, -1.0, 1.0), (100, -200, -20), (5000, -200, -40)]
    for hz, lo_db, hi_db in cases:
        clip = tone(hz, 1.0, rate)
        out = audio.narrowband(codec=None).apply(clip, rng)
        mid = slice(rate // 4, -rate // 4)  # skip the filters' start-up
        change = measure.rms_dbfs(Clip(out.samples[mid], rate)) - measure.rms_dbfs(clip)
        assert lo_db <= change <= hi_db, (hz, change)


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_narrowband_codec_adds_only_g711_noise_to_the_band(rate, codec):
    # The companded line differs from the plain band-limited line by G.711's quantisation
    # noise alone: about 35-40 dB down, and the filters keep it time-aligned.
    clip = audio.speech_like(1.5, rate, seed=4)
    rng = np.random.default_rng(0)
    plain = audio.narrowband(codec=None).apply(clip, rng)
    coded = audio.narrowband(codec=codec).apply(clip, rng)
    assert len(coded.samples) == len(clip.samples)
    assert 33.0 <= measure.snr_db(plain, coded) <= 42.0


# ------------------------------------------------------------------------------ opus


@needs_ffmpeg
@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_opus_round_trip_keeps_length_level_and_alignment(rate):
    clip = audio.speech_like(1.5, rate, seed=5)
    out = audio.opus(bitrate_kbps=24).apply(clip, np.random.default_rng(0))
    assert out.rate == rate and len(out.samples) == len(clip.samples)
    assert measure.rms_dbfs(out) == pytest.approx(measure.rms_dbfs(clip), abs=1.5)
    x = clip.samples.astype(np.float64)
    y = out.samples.astype(np.float64)
    corr = np.correlate(y, x[2000:-2000], mode="valid")
    lag = int(np.argmax(corr)) - 2000
    assert abs(lag) <= rate // 8000 * 8  # codec delay removed: within 1 ms


@needs_ffmpeg
def test_opus_low_bitrate_limits_the_bandwidth():
    rate = 48000
    rng = np.random.default_rng(1)
    speech = audio.speech_like(1.5, rate, seed=6).samples
    clip = Clip((speech + 0.03 * rng.standard_normal(len(speech))).astype(np.float32), rate)
    assert measure.energy_above_hz(clip, 7000) > -25
    low = audio.opus(bitrate_kbps=6).apply(clip, np.random.default_rng(0))
    high = audio.opus(bitrate_kbps=64).apply(clip, np.random.default_rng(0))
    assert measure.energy_above_hz(low, 7000) < -50  # 6 kb/s is narrowband Opus
    assert measure.energy_above_hz(high, 7000) > -30


@needs_ffmpeg
def test_opus_is_deterministic():
    clip = audio.speech_like(0.6, 16000, seed=7)
    chain = audio.Chain((audio.opus(bitrate_kbps=10),))
    assert chain.apply(clip, 1).samples.tobytes() == chain.apply(clip, 2).samples.tobytes()


def test_opus_without_ffmpeg_is_an_infrastructure_error(monkeypatch):
    monkeypatch.setattr(codecs.shutil, "which", lambda name: None)
    effect = audio.opus(bitrate_kbps=12)  # building needs no ffmpeg
    with pytest.raises(InfrastructureError, match=r"ffmpeg not found.*libopus"):
        effect.apply(audio.speech_like(0.1, 16000), np.random.default_rng(0))
