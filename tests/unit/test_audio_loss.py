"""Bursty packet loss (Gilbert model), checked against the Markov chain's own statistics.

Tolerance. The loss indicator of a stationary two-state chain with ``p = P(G->B)``,
``r = P(B->G)`` and ``pi = p / (p + r)`` has lag-k autocorrelation ``lam**k`` with
``lam = 1 - p - r``, so the share of lost frames over ``N`` frames has standard deviation

    sigma = sqrt(pi * (1 - pi) / N * (1 + lam) / (1 - lam))

(the Markov-chain CLT; ``lam = 0`` gives the binomial bound). Tests accept 4 sigma. Bursts
are geometric with mean ``1 / r`` and variance ``(1 - r) / r**2``; their mean over ``B``
bursts is checked to 4 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import audio
from harness.audio import loss, measure
from harness.audio.clip import Clip


def sigma(rate: float, mean_burst: float, n: int) -> float:
    p, r = loss.gilbert_elliott_probs(rate, mean_burst)
    lam = 1 - p - r
    return math.sqrt(rate * (1 - rate) / n * (1 + lam) / (1 - lam))


def runs(mask: np.ndarray) -> np.ndarray:
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


@pytest.mark.parametrize(
    ("rate", "mean_burst"), [(0.03, 3.0), (0.03, 1.0), (0.1, 2.0), (0.2, 8.0), (0.5, 1.0)]
)
def test_mask_has_the_stationary_rate_and_mean_burst(rate, mean_burst):
    n = 200_000
    mask = loss.gilbert_elliott_mask(n, rate, mean_burst, np.random.default_rng(17))
    assert abs(mask.mean() - rate) <= 4 * sigma(rate, mean_burst, n)
    bursts = runs(mask)
    r = 1 / mean_burst
    se = math.sqrt((1 - r) / r**2 / len(bursts))
    assert abs(bursts.mean() - mean_burst) <= 4 * se + 1e-9


def test_transition_probabilities():
    p, r = loss.gilbert_elliott_probs(0.03, 3.0)
    assert r == pytest.approx(1 / 3)
    assert p / (p + r) == pytest.approx(0.03)


@pytest.mark.parametrize("conceal", ["zero", "repeat"])
@pytest.mark.parametrize(("rate", "mean_burst"), [(0.03, 3.0), (0.15, 1.5)])
def test_measured_loss_ratio_matches_the_model(conceal, rate, mean_burst):
    # 1 kHz keeps the arrays small: 40 000 frames of 20 samples.
    sr, frames = 1000, 40_000
    noise = np.random.default_rng(5).uniform(-0.5, 0.5, frames * 20).astype(np.float32)
    clip = Clip(noise, sr)
    effect = audio.packet_loss(rate=rate, mean_burst=mean_burst, conceal=conceal)
    out = effect.apply(clip, np.random.default_rng(23))
    measured = measure.loss_ratio(clip, out)
    # The measurement agrees exactly with the mask the effect drew...
    mask = loss.gilbert_elliott_mask(frames, rate, mean_burst, np.random.default_rng(23))
    assert measured == pytest.approx(mask.mean(), abs=1e-12)
    # ...and with the model within the Markov-chain bound.
    assert abs(measured - rate) <= 4 * sigma(rate, mean_burst, frames)


def test_zero_concealment_leaves_silence_and_keeps_the_rest():
    clip = audio.speech_like(3.0, 16000, seed=2, pauses=False)
    out = audio.packet_loss(rate=0.2, mean_burst=2, conceal="zero").apply(
        clip, np.random.default_rng(1)
    )
    frames_in = clip.samples.reshape(-1, 320)
    frames_out = out.samples.reshape(-1, 320)
    kept = np.all(frames_in == frames_out, axis=1)
    zeroed = ~np.any(frames_out, axis=1)
    assert np.all(kept | zeroed)
    assert 0 < zeroed.sum() < len(zeroed)


def test_repeat_concealment_replays_the_last_received_frame():
    clip = audio.speech_like(3.0, 16000, seed=3, pauses=False)
    out = audio.packet_loss(rate=0.2, mean_burst=3, conceal="repeat", frame_ms=10).apply(
        clip, np.random.default_rng(2)
    )
    fi = clip.samples.reshape(-1, 160)
    fo = out.samples.reshape(-1, 160)
    last_good = None
    n_repeats = 0
    for a, b in zip(fi, fo, strict=True):
        if np.array_equal(a, b):
            last_good = b
        else:
            assert last_good is not None and np.array_equal(b, last_good)
            n_repeats += 1
    assert n_repeats > 10


def test_zero_rate_changes_nothing_and_partial_frames_work():
    clip = audio.speech_like(1.013, 16000, seed=4)  # not a whole number of frames
    same = audio.packet_loss(rate=0.0).apply(clip, np.random.default_rng(0))
    assert same.samples.tobytes() == clip.samples.tobytes()
    lossy = audio.packet_loss(rate=0.5, mean_burst=1).apply(clip, np.random.default_rng(0))
    assert len(lossy.samples) == len(clip.samples)
    assert 0.3 < measure.loss_ratio(clip, lossy) < 0.7
