"""Additive background noise at a target SNR: generated colours and committed noise beds.

``white``, ``pink`` and ``brown`` are generated from the effect's ``rng``. ``babble``,
``cafe``, ``street`` and ``car`` come from 16 kHz mono beds in ``audio_fixtures/noise/``
(made by ``scripts/make_noise_beds.py``), looped from a random offset and resampled to the
clip's rate (so they carry nothing above 8 kHz). Set ``HARNESS_NOISE_DIR`` to use beds kept
elsewhere.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from harness.audio.clip import Clip
from harness.audio.effects import FunctionEffect, check_choice, check_range
from harness.audio.measure import active_mask
from harness.core.errors import InfrastructureError

__all__ = ["BED_KINDS", "NOISE_KINDS", "colored_noise", "noise", "noise_bed", "noise_dir"]

NoiseKind = Literal["white", "pink", "brown", "babble", "cafe", "street", "car"]
GENERATED_KINDS = ("white", "pink", "brown")
BED_KINDS = ("babble", "cafe", "street", "car")
NOISE_KINDS: tuple[str, ...] = GENERATED_KINDS + BED_KINDS

NOMINAL_SPEECH_DBFS = -26.0
"""Speech level assumed for a clip with no active frames (ITU-T P.56's nominal level)."""

_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def colored_noise(n: int, kind: str, rng: np.random.Generator, rate: int = 16000) -> np.ndarray:
    """``n`` samples of white, pink (power ∝ 1/f) or brown (∝ 1/f²) noise, unit power.

    Shaped in the frequency domain from Gaussian white noise; below 20 Hz the shaping is
    held flat so the level does not run away towards DC.
    """
    if n == 0:
        return np.zeros(0)
    white = rng.standard_normal(n)
    alpha = _EXPONENT[kind]
    if alpha:
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n, 1.0 / rate)
        spec *= np.maximum(f, 20.0) ** (-alpha / 2.0)
        spec[0] = 0.0
        white = np.fft.irfft(spec, n)
    power = float(np.mean(white**2))
    return white / math.sqrt(power) if power > 0 else white


def noise_dir() -> Path:
    """Where the noise beds live: ``$HARNESS_NOISE_DIR`` or the repository's fixtures."""
    env = os.environ.get("HARNESS_NOISE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "audio_fixtures" / "noise"


@lru_cache(maxsize=16)
def _bed(kind: str, rate: int, where: str) -> np.ndarray:
    path = Path(where) / f"{kind}.wav"
    if not path.is_file():
        raise InfrastructureError(
            f"noise(kind={kind!r}): noise bed {path} not found; regenerate the beds with "
            "`python scripts/make_noise_beds.py` or set HARNESS_NOISE_DIR"
        )
    bed = Clip.read_wav(path).resample(rate).samples.astype(np.float64)
    bed.setflags(write=False)
    return bed


def noise_bed(kind: str, rate: int = 16000) -> Clip:
    """The committed bed for ``kind`` (one of :data:`BED_KINDS`) at ``rate``."""
    check_choice("noise_bed", "kind", kind, BED_KINDS)
    return Clip(_bed(kind, rate, str(noise_dir())).astype(np.float32), rate)


def noise(snr_db: float, kind: NoiseKind = "white") -> FunctionEffect:
    """Add ``kind`` noise at ``snr_db`` (``-20 <= snr_db <= 80``).

    The SNR is speech power over noise power, both averaged over the clip's active frames
    (20 ms frames within 30 dB of the loud end; see :mod:`harness.audio.measure`), which is
    what :func:`harness.audio.measure.snr_db` reports. A clip with no active frames gets noise
    at ``-26 dBFS - snr_db`` (the nominal speech level). The sum is clipped to [-1, 1], which
    only matters at low SNR on loud clips.
    """
    snr_db = check_range("noise", "snr_db", snr_db, -20.0, 80.0)
    kind = check_choice("noise", "kind", kind, NOISE_KINDS)

    def fn(x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        n = len(x)
        if kind in GENERATED_KINDS:
            nz = colored_noise(n, kind, rng, rate)
        else:
            bed = _bed(kind, rate, str(noise_dir()))
            start = int(rng.integers(len(bed)))
            nz = bed[(start + np.arange(n)) % len(bed)]
        mask = active_mask(Clip(x, rate))
        xs = x.astype(np.float64)
        if np.any(mask):
            ps = float(np.mean(xs[mask] ** 2))
        else:
            mask = np.ones(n, dtype=bool)
            ps = 10.0 ** (NOMINAL_SPEECH_DBFS / 10.0)
        pn = float(np.mean(nz[mask] ** 2))
        if pn == 0.0:
            return xs
        scale = math.sqrt(ps / (pn * 10.0 ** (snr_db / 10.0)))
        return xs + scale * nz

    return FunctionEffect("noise", {"snr_db": snr_db, "kind": kind}, fn)
