"""The measurements themselves, on signals whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import audio
from harness.audio import measure
from harness.audio.clip import Clip

RATE = 16000


def sine(hz: float, amp: float, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * hz * t)


def clip(x: np.ndarray, rate: int = RATE) -> Clip:
    return Clip(np.asarray(x, dtype=np.float32), rate)


def test_rms_dbfs_reference_points():
    assert measure.rms_dbfs(clip(sine(1000, 1.0))) == pytest.approx(-3.0103, abs=0.01)
    assert measure.rms_dbfs(clip(np.full(100, 0.1))) == pytest.approx(-20.0, abs=1e-4)
    assert measure.rms_dbfs(Clip.silence(0.1, RATE)) == -math.inf
    assert measure.rms_dbfs(clip(np.zeros(0))) == -math.inf


def test_snr_db_of_a_known_mixture():
    s = sine(440, 0.3, 2.0)
    n = np.random.default_rng(0).standard_normal(len(s))
    n *= math.sqrt(np.mean(s**2) / np.mean(n**2) / 10 ** (15 / 10))
    assert measure.snr_db(clip(s), clip(s + n)) == pytest.approx(15, abs=0.05)
    assert measure.snr_db(clip(s), clip(s)) == math.inf
    assert measure.snr_db(Clip.silence(1.0, RATE), clip(s[:RATE])) == -math.inf
    with pytest.raises(ValueError, match="clips differ"):
        measure.snr_db(clip(s), clip(s[:-1]))


def test_active_mask_drops_pauses_and_keeps_quiet_parts():
    loud = sine(300, 0.5, 0.5)
    quiet = sine(300, 0.5 * 10 ** (-25 / 20), 0.5)  # 25 dB down: still speech
    faint = sine(300, 0.5 * 10 ** (-40 / 20), 0.5)  # 40 dB down: not
    x = np.concatenate([loud, np.zeros(RATE // 2), quiet, faint, loud])
    mask = measure.active_mask(clip(x))
    half = RATE // 2
    assert mask[:half].all()
    assert not mask[half : 2 * half].any()
    assert mask[2 * half : 3 * half].all()
    assert not mask[3 * half : 4 * half].any()
    assert measure.active_level_dbfs(clip(x)) < measure.rms_dbfs(clip(loud))


def test_energy_above_hz_of_two_tones():
    x = sine(1000, 0.5) + sine(6000, 0.05)
    assert measure.energy_above_hz(clip(x), 4000) == pytest.approx(-20, abs=0.3)
    assert measure.energy_above_hz(clip(sine(1000, 0.5)), 4000) < -90
    with pytest.raises(ValueError, match="hz=9000"):
        measure.energy_above_hz(clip(x), 9000)


def test_loss_ratio_counts_zeroed_and_repeated_frames():
    x = np.random.default_rng(1).uniform(-0.5, 0.5, 320 * 50 + 100)  # 51 frames, last short
    y = x.copy()
    y[320 * 3 : 320 * 5] = 0.0  # frames 3, 4 zeroed
    y[320 * 10 : 320 * 11] = y[320 * 9 : 320 * 10]  # frame 10 repeats 9
    y[320 * 11 : 320 * 12] = y[320 * 9 : 320 * 10]  # frame 11 repeats again
    y[320 * 20 : 320 * 21] *= 0.5  # changed, but neither zeroed nor repeated
    y[320 * 50 :] = y[320 * 49 : 320 * 49 + 100]  # the short last frame repeats
    assert measure.loss_ratio(clip(x), clip(y)) == pytest.approx(5 / 51)
    assert measure.loss_ratio(clip(x), clip(x)) == 0.0


def test_clipping_ratio_finds_flat_tops():
    x = sine(200, 1.0)
    clipped = np.clip(x, -0.6, 0.6)
    expected = float(np.mean(np.abs(x) >= 0.6))
    assert measure.clipping_ratio(clip(clipped)) == pytest.approx(expected, rel=0.02)
    assert measure.clipping_ratio(clip(clipped), threshold=0.6) == pytest.approx(expected, rel=0.02)
    assert measure.clipping_ratio(clip(x)) == 0.0
    assert measure.clipping_ratio(clip(np.zeros(10))) == 0.0


def test_rt60_of_an_exponential_decay():
    rate = 8000
    t = np.arange(rate * 2) / rate
    h = np.random.default_rng(2).standard_normal(len(t)) * np.exp(-3 * math.log(10) * t / 0.7)
    assert measure.rt60_s(clip(h / np.abs(h).max(), rate)) == pytest.approx(0.7, rel=0.05)
    assert math.isnan(measure.rt60_s(clip(np.ones(100), rate)))


def test_blind_estimate_is_infinite_for_a_silent_floor():
    x = audio.speech_like(2.0, RATE, seed=1)
    assert measure.estimate_snr_db(x) == math.inf
