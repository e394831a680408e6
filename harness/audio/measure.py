"""Measurements on clips, used to check that audio conditions do what they say.

Definitions (all levels in dB, powers as mean squares of float samples in [-1, 1]):

* **dBFS**: ``10 log10(mean square)``, so a full-scale square wave is 0 dBFS and a
  full-scale sine is -3.01 dBFS.
* **Active frames**: the clip is cut into ``frame_ms`` frames (the last one may be short);
  a frame is active when its power is above -100 dBFS and within 30 dB of the 95th
  percentile of the frame powers. This is a simple stand-in for ITU-T P.56's active speech
  level: it drops pauses and silence, and keeps quiet consonants.
* **SNR** (:func:`snr_db`): speech power over noise power, both averaged over the *active
  frames of the clean clip*; the noise is ``noisy - clean``. :func:`harness.audio.noise`
  mixes to exactly this definition.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import welch

from harness.audio.clip import Clip

__all__ = [
    "active_level_dbfs",
    "active_mask",
    "clipping_ratio",
    "energy_above_hz",
    "estimate_snr_db",
    "loss_ratio",
    "rms_dbfs",
    "rt60_s",
    "snr_db",
]

ACTIVE_RANGE_DB = 30.0
SILENCE_DBFS = -100.0


def _db(power: float) -> float:
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def _frame_powers(x: np.ndarray, frame: int) -> np.ndarray:
    n = len(x)
    n_frames = max(1, math.ceil(n / frame))
    padded = np.zeros(n_frames * frame)
    padded[:n] = np.asarray(x, dtype=np.float64) ** 2
    sums = padded.reshape(n_frames, frame).sum(axis=1)
    counts = np.full(n_frames, frame, dtype=np.float64)
    counts[-1] = n - (n_frames - 1) * frame if n else 1
    return sums / counts


def _frame_len(rate: int, frame_ms: float) -> int:
    if not frame_ms > 0:
        raise ValueError(f"frame_ms={frame_ms!r} must be > 0")
    return max(1, round(rate * frame_ms / 1000.0))


def active_mask(clip: Clip, frame_ms: float = 20.0) -> np.ndarray:
    """Per-sample booleans: True in active frames (see the module docstring)."""
    frame = _frame_len(clip.rate, frame_ms)
    n = len(clip.samples)
    if n == 0:
        return np.zeros(0, dtype=bool)
    p = _frame_powers(clip.samples, frame)
    with np.errstate(divide="ignore"):
        level = 10.0 * np.log10(p)
    loud = level > SILENCE_DBFS
    if not np.any(loud):
        return np.zeros(n, dtype=bool)
    ref = float(np.percentile(level[loud], 95))
    frames = loud & (level >= ref - ACTIVE_RANGE_DB)
    return np.repeat(frames, frame)[:n]


def active_level_dbfs(clip: Clip, frame_ms: float = 20.0) -> float:
    """The clip's power over its active frames, in dBFS (``-inf`` when nothing is active)."""
    mask = active_mask(clip, frame_ms)
    if not np.any(mask):
        return -math.inf
    return _db(float(np.mean(clip.samples[mask].astype(np.float64) ** 2)))


def rms_dbfs(clip: Clip) -> float:
    """RMS level in dBFS over the whole clip (``-inf`` for silence or an empty clip)."""
    if len(clip.samples) == 0:
        return -math.inf
    return _db(float(np.mean(clip.samples.astype(np.float64) ** 2)))


def _same_shape(a: Clip, b: Clip, what: str) -> None:
    if a.rate != b.rate or len(a.samples) != len(b.samples):
        raise ValueError(
            f"{what}: clips differ: {len(a.samples)} samples @ {a.rate} Hz vs "
            f"{len(b.samples)} samples @ {b.rate} Hz"
        )


def snr_db(clean: Clip, noisy: Clip, frame_ms: float = 20.0) -> float:
    """SNR of ``noisy`` against its ``clean`` reference, over the clean clip's active frames.

    ``+inf`` when the two are identical there; ``-inf`` when the clean clip has no active frames.
    """
    _same_shape(clean, noisy, "snr_db")
    mask = active_mask(clean, frame_ms)
    if not np.any(mask):
        return -math.inf
    s = clean.samples[mask].astype(np.float64)
    d = noisy.samples[mask].astype(np.float64) - s
    ps, pn = float(np.mean(s**2)), float(np.mean(d**2))
    return math.inf if pn == 0 else _db(ps / pn)


def estimate_snr_db(noisy: Clip, frame_ms: float = 20.0, noise_percentile: float = 10.0) -> float:
    """SNR estimated without a clean reference, from frame-energy percentiles.

    The noise power is the mean power of the quietest ``noise_percentile`` % of frames (the
    clip must contain pauses that make up at least that share). Frames more than 3 dB above
    that floor count as speech; the speech power is their mean power minus the noise power.
    For speech with pauses in stationary noise it is good to about 2 dB from 10 dB SNR up;
    below that, and for non-stationary noise (babble, street), it reads high by several dB,
    because only the speech frames that clear the floor are counted. ``-inf`` when no frame
    rises above the floor, ``+inf`` for a floor of digital silence.
    """
    frame = _frame_len(noisy.rate, frame_ms)
    p = _frame_powers(noisy.samples, frame)
    if len(noisy.samples) == 0:
        return -math.inf
    cut = np.percentile(p, noise_percentile)
    pn = float(np.mean(p[p <= cut]))
    if pn == 0.0:
        return math.inf if np.any(p > 0) else -math.inf
    speech = p[p > pn * 10**0.3]
    if len(speech) == 0:
        return -math.inf
    ps = float(np.mean(speech)) - pn
    return _db(ps / pn) if ps > 0 else -math.inf


def energy_above_hz(clip: Clip, hz: float = 4000.0) -> float:
    """Energy above ``hz`` relative to the energy below it, in dB (Welch PSD, Hann window).

    ``-inf`` when there is nothing above ``hz``; ``+inf`` when there is nothing below it.
    """
    if not 0 < hz < clip.rate / 2:
        raise ValueError(f"hz={hz!r} must be between 0 and the Nyquist frequency {clip.rate / 2}")
    x = clip.samples.astype(np.float64)
    if len(x) < 8:
        raise ValueError(f"energy_above_hz: clip too short ({len(x)} samples)")
    f, pxx = welch(x, fs=clip.rate, window="hann", nperseg=min(len(x), 2048), detrend=False)
    above, below = float(pxx[f >= hz].sum()), float(pxx[f < hz].sum())
    if above == 0:
        return -math.inf
    if below == 0:
        return math.inf
    return _db(above / below)


def loss_ratio(original: Clip, processed: Clip, frame_ms: float = 20.0) -> float:
    """Fraction of frames that packet loss zeroed or repeated.

    A frame counts as lost when it differs from the original frame and is either all zeros
    or an exact copy of the preceding processed frame (the two concealments of
    :func:`harness.audio.packet_loss`). Frames that are all zeros in the original cannot be
    told apart and count as received.
    """
    _same_shape(original, processed, "loss_ratio")
    frame = _frame_len(original.rate, frame_ms)
    x, y = original.samples, processed.samples
    n = len(x)
    if n == 0:
        return 0.0
    full = n // frame
    xs = x[: full * frame].reshape(full, frame)
    ys = y[: full * frame].reshape(full, frame)
    changed = np.any(xs != ys, axis=1)
    zeroed = ~np.any(ys, axis=1)
    repeated = np.zeros(full, dtype=bool)
    repeated[1:] = np.all(ys[1:] == ys[:-1], axis=1)
    lost = int(np.count_nonzero(changed & (zeroed | repeated)))
    n_frames = full
    if n > full * frame:  # the short last frame
        xo, yo = x[full * frame :], y[full * frame :]
        prev = ys[-1, : len(yo)] if full else None
        if not np.array_equal(xo, yo) and (
            not np.any(yo) or (prev is not None and np.array_equal(yo, prev))
        ):
            lost += 1
        n_frames += 1
    return lost / n_frames


def clipping_ratio(clip: Clip, threshold: float | None = None) -> float:
    """Fraction of samples that are clipped.

    With ``threshold``: the share of samples with ``|x| >= threshold``. Without: the share
    of samples that sit on the clip's peak magnitude (within a relative 1e-6) in runs of at
    least three consecutive samples, the flat tops a clipper leaves; an unclipped clip gives
    0 (a very low tone, under ~20 Hz at 48 kHz, can show false flat tops).
    """
    x = np.abs(clip.samples.astype(np.float64))
    n = len(x)
    if n == 0:
        return 0.0
    if threshold is not None:
        return float(np.count_nonzero(x >= threshold)) / n
    peak = float(x.max())
    if peak == 0.0:
        return 0.0
    top = x >= peak * (1.0 - 1e-6)
    run3 = top[2:] & top[1:-1] & top[:-2]  # run3[i]: samples i, i+1, i+2 are all on top
    in_run = np.zeros(n, dtype=bool)
    for k in range(3):
        in_run[k : n - 2 + k] |= run3
    return float(np.count_nonzero(in_run)) / n


def rt60_s(impulse_response: Clip, fit_db: tuple[float, float] = (-5.0, -25.0)) -> float:
    """Reverberation time from an impulse response (Schroeder backward integration).

    Fits a line to the energy decay curve between ``fit_db`` (T20 by default) and
    extrapolates to 60 dB. ``nan`` when the curve never reaches the lower fit level.
    """
    h = impulse_response.samples.astype(np.float64)
    edc = np.cumsum((h**2)[::-1])[::-1]
    if len(h) == 0 or edc[0] == 0:
        return math.nan
    with np.errstate(divide="ignore"):
        edc_db = 10.0 * np.log10(edc / edc[0])
    hi, lo = fit_db
    idx = np.flatnonzero((edc_db <= hi) & (edc_db >= lo))
    if len(idx) < 2 or edc_db[-1] > lo:
        return math.nan
    t = idx / impulse_response.rate
    slope, _ = np.polyfit(t, edc_db[idx], 1)
    return -60.0 / slope if slope < 0 else math.nan
