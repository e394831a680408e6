"""Background noise at a target SNR, the generated colours and the committed beds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import welch

from harness import audio
from harness.audio import background as noise_mod
from harness.audio import measure
from harness.audio.clip import Clip
from harness.core.errors import InfrastructureError


@pytest.fixture(scope="module")
def speech16() -> Clip:
    return audio.speech_like(2.0, 16000, seed=11)


@pytest.mark.parametrize("kind", audio.NOISE_KINDS)
@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 25.0])
def test_noise_hits_the_target_snr_within_half_a_db(speech16, kind, snr):
    out = audio.noise(snr_db=snr, kind=kind).apply(speech16, np.random.default_rng(int(snr) + 50))
    assert measure.snr_db(speech16, out) == pytest.approx(snr, abs=0.5)


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
@pytest.mark.parametrize("kind", ["pink", "street", "babble"])
def test_noise_snr_holds_at_other_rates(rate, kind):
    clip = audio.speech_like(1.0, rate, seed=12)
    out = audio.noise(snr_db=5, kind=kind).apply(clip, np.random.default_rng(0))
    assert measure.snr_db(clip, out) == pytest.approx(5, abs=0.5)


def test_snr_counts_only_the_active_part(speech16):
    # Noise in the pauses does not count: the same noise over a clip twice as long, half
    # of it silence, still measures the same SNR.
    pad = Clip(
        np.concatenate([speech16.samples, np.zeros(len(speech16.samples), np.float32)]), 16000
    )
    out = audio.noise(snr_db=12, kind="white").apply(pad, np.random.default_rng(1))
    assert measure.snr_db(pad, out) == pytest.approx(12, abs=0.5)
    # ...whereas over the whole clip the noise is the same power and the speech power halves.
    whole = 10 * math.log10(
        np.mean(pad.samples.astype(np.float64) ** 2)
        / np.mean((out.samples - pad.samples).astype(np.float64) ** 2)
    )
    assert whole < 12 - 3


def test_noise_on_silence_uses_the_nominal_speech_level():
    silence = Clip.silence(1.0, 16000)
    out = audio.noise(snr_db=20, kind="brown").apply(silence, np.random.default_rng(0))
    assert measure.rms_dbfs(out) == pytest.approx(-26 - 20, abs=0.1)


@pytest.mark.parametrize("kind", ["white", "babble"])
def test_noise_differs_between_seeds_and_repeats_for_one(speech16, kind):
    chain = audio.Chain((audio.noise(snr_db=10, kind=kind),))
    a, b, c = (chain.apply(speech16, s).samples for s in (1, 1, 2))
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def psd_slope_db_per_octave(x: np.ndarray, rate: int) -> float:
    f, p = welch(x, fs=rate, nperseg=4096)
    sel = (f >= 100) & (f <= 4000)
    slope, _ = np.polyfit(np.log2(f[sel]), 10 * np.log10(p[sel]), 1)
    return float(slope)


@pytest.mark.parametrize(("kind", "slope"), [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_generated_colours_have_their_spectral_slope(kind, slope):
    x = noise_mod.colored_noise(16000 * 8, kind, np.random.default_rng(3), 16000)
    assert np.mean(x**2) == pytest.approx(1.0)
    assert psd_slope_db_per_octave(x, 16000) == pytest.approx(slope, abs=0.4)


# ------------------------------------------------------------------------------ the beds


def test_beds_are_small_16_khz_mono_and_loop_seamlessly():
    total = 0
    for kind in noise_mod.BED_KINDS:
        path = noise_mod.noise_dir() / f"{kind}.wav"
        total += path.stat().st_size
        bed = audio.Clip.read_wav(path)
        assert bed.rate == 16000
        assert bed.duration >= 2.0
        x = bed.samples.astype(np.float64)
        steps = np.abs(np.diff(x))
        # The wrap-around step is no bigger than an ordinary step inside the bed.
        assert abs(x[0] - x[-1]) <= np.percentile(steps, 99.5)
        assert measure.rms_dbfs(bed) == pytest.approx(-26, abs=0.5)
    assert total < 400 * 1024


def band_share_db(clip: Clip, lo: float, hi: float) -> float:
    f, p = welch(clip.samples, fs=clip.rate, nperseg=2048)
    return 10 * math.log10(p[(f >= lo) & (f < hi)].sum() / p.sum())


def test_beds_have_their_character():
    beds = {k: noise_mod.noise_bed(k) for k in noise_mod.BED_KINDS}
    # Car and street noise sit low: most energy under 500 Hz.
    assert band_share_db(beds["car"], 0, 500) > -1.0
    assert band_share_db(beds["street"], 0, 500) > -3.0
    # Babble has speech's spectrum: a real share in the 300-3400 Hz band.
    assert band_share_db(beds["babble"], 300, 3400) > -6.0
    # Cafe clatter adds high-frequency energy that plain babble lacks.
    assert band_share_db(beds["cafe"], 3000, 8000) > band_share_db(beds["babble"], 3000, 8000)

    # Over 100 ms frames, babble is modulated like speech and street noise swells with
    # passing traffic, while car noise is steady.
    def level_spread(c: Clip) -> float:
        frames = c.samples[: len(c.samples) // 1600 * 1600].reshape(-1, 1600)
        lv = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1))
        return float(np.percentile(lv, 90) - np.percentile(lv, 10))

    assert level_spread(beds["babble"]) > level_spread(beds["car"]) + 1.5
    assert level_spread(beds["street"]) > level_spread(beds["car"]) + 2.0


def test_bed_offsets_are_random_per_seed():
    silence = Clip.silence(0.5, 16000)
    a = audio.noise(snr_db=0, kind="street").apply(silence, np.random.default_rng(1))
    b = audio.noise(snr_db=0, kind="street").apply(silence, np.random.default_rng(2))
    assert not np.array_equal(a.samples, b.samples)
    assert measure.rms_dbfs(a) == pytest.approx(measure.rms_dbfs(b), abs=0.01)


def test_missing_bed_is_an_infrastructure_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_NOISE_DIR", str(tmp_path))
    with pytest.raises(InfrastructureError, match=r"make_noise_beds\.py"):
        audio.noise(snr_db=10, kind="cafe").apply(audio.speech_like(0.2), np.random.default_rng(0))


# ------------------------------------------------------------------------------ the estimate


@pytest.mark.parametrize("snr", [10.0, 20.0, 30.0])
def test_blind_snr_estimate_is_close_for_stationary_noise(snr):
    clip = audio.speech_like(4.0, 16000, seed=13)
    out = audio.noise(snr_db=snr, kind="white").apply(clip, np.random.default_rng(0))
    assert measure.estimate_snr_db(out) == pytest.approx(snr, abs=2.0)
