"""Synthetic speech-like signals for calibrating and testing audio conditions."""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from harness.audio.clip import Clip

__all__ = ["speech_like"]

_FORMANTS = ((500.0, 80.0), (1500.0, 120.0), (2500.0, 160.0))


def _resonator(x: np.ndarray, f: float, bw: float, rate: int) -> np.ndarray:
    if f >= rate / 2:
        return np.zeros_like(x)
    r = math.exp(-math.pi * bw / rate)
    a = [1.0, -2.0 * r * math.cos(2.0 * math.pi * f / rate), r * r]
    return lfilter([1.0 - r], a, x)


def speech_like(
    seconds: float = 2.0,
    rate: int = 16000,
    *,
    seed: int = 0,
    level_dbfs: float = -20.0,
    pauses: bool = True,
) -> Clip:
    """A deterministic signal with speech's broad traits, at ``level_dbfs`` active level.

    Voiced "syllables" (150-300 ms) are a sawtooth glottal source on a gliding 90-220 Hz
    pitch contour through three formant resonators (500, 1500, 2500 Hz); about one in four
    is followed by a fricative (high-passed noise, energy up to Nyquist). Syllables have
    raised-cosine envelopes (a ~4 Hz syllabic rhythm); with ``pauses`` there are 80-400 ms
    gaps of digital silence between words. The level is set on the active frames
    (:func:`harness.audio.measure.active_level_dbfs`).
    """
    from harness.audio.measure import active_level_dbfs

    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * rate))
    env = np.zeros(n)
    voiced = np.zeros(n)
    fric = np.zeros(n)
    t = 0
    while t < n:
        length = int(rng.uniform(0.15, 0.3) * rate)
        w = np.sin(np.linspace(0.0, math.pi, length)) ** 2 * rng.uniform(0.5, 1.0)
        m = min(length, n - t)
        env[t : t + m] = w[:m]
        t += length
        if rng.random() < 0.25 and t < n:
            flen = min(int(rng.uniform(0.05, 0.12) * rate), n - t)
            fric[t : t + flen] = np.sin(np.linspace(0.0, math.pi, flen)) * rng.uniform(0.2, 0.4)
            t += flen
        if pauses and rng.random() < 0.4:
            t += int(rng.uniform(0.08, 0.4) * rate)
    k = np.arange(n) / rate
    f0 = 155.0 + 65.0 * np.sin(2 * math.pi * 0.7 * k + rng.uniform(0, 6.3))
    phase = np.cumsum(f0 / rate)
    source = 2.0 * (phase % 1.0) - 1.0
    for f, bw in _FORMANTS:
        voiced += _resonator(source, f, bw, rate)
    hp = butter(4, min(3000.0, 0.4 * rate), btype="highpass", fs=rate, output="sos")
    hiss = sosfilt(hp, rng.standard_normal(n))
    x = voiced / (np.std(voiced) + 1e-12) * env + hiss / (np.std(hiss) + 1e-12) * fric
    clip = Clip(x.astype(np.float32), rate)
    level = active_level_dbfs(clip)
    if math.isfinite(level):
        x = x * 10.0 ** ((level_dbfs - level) / 20.0)
    return Clip(np.clip(x, -1.0, 1.0).astype(np.float32), rate)
