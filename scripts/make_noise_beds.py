#!/usr/bin/env python3
"""Regenerate the committed noise beds in audio_fixtures/noise/ (16 kHz mono 16-bit WAV).

    python scripts/make_noise_beds.py [--out audio_fixtures/noise]

Beds (each loops seamlessly, normalised to -26 dBFS RMS; harness.audio.noise rescales
them to the requested SNR anyway):

* ``babble.wav`` (3 s): eight talkers from offline TTS engines (espeak-ng with several
  voice variants, flite, festival's text2wave) reading unrelated sentences, each at a
  random offset and a gain within ±3 dB, summed.
* ``cafe.wav`` (3 s): a further-away babble (six talkers through a 0.6 s synthetic room),
  cutlery and crockery clatter (damped 2-7 kHz partials and short clicks, about two a
  second), over a pink room tone.
* ``street.wav`` (3 s): low-frequency traffic rumble (brown noise under 150 Hz), broadband
  road noise, and passing-vehicle swells (band-limited noise under slow Gaussian envelopes).
* ``car.wav`` (2 s): cabin noise: engine harmonics on a 30 Hz firing frequency, tyre and
  road rumble under 400 Hz, and a little broadband wind noise.

Needs espeak-ng, flite and festival (text2wave) on PATH. The output depends only on the
seed below and those engines' versions.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.audio.clip import Clip  # noqa: E402
from harness.audio.effects import room_impulse  # noqa: E402

RATE = 16000
SEED = 20240611
LEVEL_DBFS = -26.0

SENTENCES = [
    "I told her we could meet after lunch, but the train was late again.",
    "Do you want the soup or the salad with that, or maybe both?",
    "The meeting moved to Thursday, so I have to call them back this afternoon.",
    "We went down to the coast last weekend and it rained the whole time.",
    "Honestly, the new place around the corner makes a much better coffee.",
    "He said the report would be ready by Friday, but I doubt it.",
    "Can you believe how expensive everything has become this year?",
    "My sister is moving to a smaller flat closer to the station.",
    "I think the kids would like the park more than the museum.",
    "Let me check my calendar and I will send you a message tonight.",
    "The football was on all evening and nobody wanted to change the channel.",
    "She ordered the pasta again, she always orders the pasta.",
]

# (engine, voice/variant, speed or None)
TALKERS = [
    ("espeak-ng", "en-us+m3", 165),
    ("espeak-ng", "en-gb+f2", 150),
    ("espeak-ng", "en-us+f4", 175),
    ("espeak-ng", "en-gb-x-rp+m1", 155),
    ("espeak-ng", "en-us+m7", 160),
    ("espeak-ng", "en-029+f3", 170),
    ("flite", "slt", None),
    ("flite", "rms", None),
    ("flite", "awb", None),
    ("festival", "kal_diphone", None),
]


def _need(exe: str) -> str:
    path = shutil.which(exe)
    if path is None:
        sys.exit(
            f"make_noise_beds: {exe} not found on PATH (apt-get install espeak-ng flite festival)"
        )
    return path


def tts(engine: str, voice: str, speed: int | None, text: str, tmp: Path) -> np.ndarray:
    """Render ``text`` with one offline engine; 16 kHz float64, silence trimmed."""
    wav = tmp / "line.wav"
    if engine == "espeak-ng":
        cmd = [_need("espeak-ng"), "-v", voice, "-s", str(speed), "-w", str(wav), text]
        subprocess.run(cmd, check=True, capture_output=True)
    elif engine == "flite":
        cmd = [_need("flite"), "-voice", voice, "-t", text, "-o", str(wav)]
        subprocess.run(cmd, check=True, capture_output=True)
    elif engine == "festival":
        txt = tmp / "line.txt"
        txt.write_text(text + "\n")
        subprocess.run(
            [_need("text2wave"), "-o", str(wav), str(txt)], check=True, capture_output=True
        )
    else:
        raise ValueError(engine)
    x = Clip.read_wav(wav).resample(RATE).samples.astype(np.float64)
    loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    return x[loud[0] : loud[-1] + 1] if len(loud) else x


def talker_stream(talker: tuple, rng: np.random.Generator, seconds: float, tmp: Path) -> np.ndarray:
    """One talker reading random sentences with short pauses, at unit active power."""
    parts: list[np.ndarray] = []
    total = 0
    order = rng.permutation(len(SENTENCES))
    i = 0
    while total < (seconds + 2.0) * RATE:
        line = tts(*talker, SENTENCES[order[i % len(order)]], tmp)
        pause = np.zeros(int(rng.uniform(0.15, 0.5) * RATE))
        parts += [line, pause]
        total += len(line) + len(pause)
        i += 1
    x = np.concatenate(parts)
    start = int(rng.integers(0, len(x) - int(seconds * RATE)))
    x = x[start : start + int(seconds * RATE)]
    active = x[np.abs(x) > 0.02 * np.abs(x).max()]
    return x / math.sqrt(float(np.mean(active**2)))


def seamless(z: np.ndarray, n: int) -> np.ndarray:
    """Length ``n`` from ``len(z) > n`` samples, crossfading the tail into the head."""
    x = len(z) - n
    y = z[:n].copy()
    w = np.sin(np.linspace(0.0, math.pi / 2, x)) ** 2
    y[:x] = z[:x] * np.sqrt(w) + z[n:] * np.sqrt(1.0 - w)
    return y


def shaped(n: int, gain_db_of_f, rng: np.random.Generator) -> np.ndarray:
    """Periodic (loopable) noise of length ``n`` with magnitude response ``gain_db_of_f``."""
    f = np.fft.rfftfreq(n, 1.0 / RATE)
    mag = 10.0 ** (gain_db_of_f(np.maximum(f, 1.0)) / 20.0)
    mag[0] = 0.0
    phase = rng.uniform(0, 2 * math.pi, len(f))
    x = np.fft.irfft(mag * np.exp(1j * phase), n)
    return x / math.sqrt(float(np.mean(x**2)))


def circular_events(n: int, rate_hz: float, make, rng: np.random.Generator) -> np.ndarray:
    """Sum of events at Poisson times, wrapped around so the result loops."""
    out = np.zeros(n)
    for _ in range(rng.poisson(rate_hz * n / RATE)):
        ev = make(rng)
        at = int(rng.integers(n))
        idx = (at + np.arange(len(ev))) % n
        np.add.at(out, idx, ev)
    return out


def babble(rng: np.random.Generator, seconds: float, n_talkers: int, tmp: Path) -> np.ndarray:
    n = int(seconds * RATE)
    pad = int(0.25 * RATE)
    picks = rng.choice(len(TALKERS), size=n_talkers, replace=False)
    mix = np.zeros(n + pad)
    for k in picks:
        s = talker_stream(TALKERS[k], rng, (n + pad) / RATE, tmp)
        mix[: len(s)] += s * 10 ** (rng.uniform(-3, 3) / 20)
    return seamless(mix, n)


def clatter(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.3:  # a short broadband click
        m = int(0.006 * RATE)
        return rng.standard_normal(m) * np.exp(-np.arange(m) / (0.0015 * RATE)) * 0.6
    m = int(0.25 * RATE)
    t = np.arange(m) / RATE
    ev = np.zeros(m)
    for _ in range(rng.integers(2, 6)):
        f = rng.uniform(2000, 7000)
        tau = rng.uniform(0.01, 0.06)
        ev += (
            rng.uniform(0.3, 1.0)
            * np.sin(2 * math.pi * f * t + rng.uniform(0, 6.3))
            * np.exp(-t / tau)
        )
    return ev * rng.uniform(0.5, 2.0)


def cafe(rng: np.random.Generator, tmp: Path) -> np.ndarray:
    n = 3 * RATE
    talk = babble(rng, n / RATE, 6, tmp)
    h = room_impulse(0.6, RATE, rng, drr_db=-6.0)
    talk = fftconvolve(np.concatenate([talk, talk]), h)[len(talk) : len(talk) + n]  # circular
    talk /= math.sqrt(float(np.mean(talk**2)))
    clinks = circular_events(n, 2.0, clatter, rng)
    tone = shaped(n, lambda f: -10 * np.log10(f / 100.0), rng)
    return talk + 0.9 * clinks + 0.25 * tone


def street(rng: np.random.Generator) -> np.ndarray:
    n = 3 * RATE
    rumble = shaped(
        n, lambda f: np.where(f < 150, -20 * np.log10(np.maximum(f, 20) / 20), -80), rng
    )
    road = shaped(n, lambda f: -10 * np.log10(np.maximum(f, 200) / 200.0) - 0.002 * f, rng)
    t = np.arange(n) / RATE
    env = np.zeros(n)
    for _ in range(3):  # passing vehicles, wrapped so the bed loops
        c, w = rng.uniform(0, n / RATE), rng.uniform(0.4, 0.9)
        d = np.minimum(np.abs(t - c), n / RATE - np.abs(t - c))
        env += rng.uniform(1.5, 3.0) * np.exp(-0.5 * (d / w) ** 2)
    swell = shaped(
        n,
        lambda f: (
            np.where(f > 80, -6 * np.log2(f / 80), -60) - 18 * np.log2(np.maximum(f, 2500) / 2500)
        ),
        rng,
    )
    return 0.8 * rumble + 0.3 * road + swell * env


def car(rng: np.random.Generator) -> np.ndarray:
    n = 2 * RATE
    t = np.arange(n) / RATE
    # Harmonics on whole multiples of 1/2 s so the 2 s bed loops exactly.
    engine = sum(
        (0.8 / k) * np.sin(2 * math.pi * 30.0 * k * t + rng.uniform(0, 6.3)) for k in range(1, 9)
    )
    road = shaped(
        n,
        lambda f: np.where(
            f < 400, -6 * np.log2(np.maximum(f, 30) / 30), -30 - 12 * np.log2(f / 400)
        ),
        rng,
    )
    wind = shaped(n, lambda f: -10 * np.log10(np.maximum(f, 300) / 300.0), rng)
    engine = engine / math.sqrt(float(np.mean(engine**2)))
    return 0.5 * engine + 1.0 * road + 0.15 * wind


def write(x: np.ndarray, path: Path) -> None:
    x = sosfilt(butter(2, 20, btype="highpass", fs=RATE, output="sos"), np.concatenate([x, x]))[
        len(x) :
    ]
    x = x * 10 ** (LEVEL_DBFS / 20) / math.sqrt(float(np.mean(x**2)))
    peak = float(np.abs(x).max())
    if peak > 0.98:
        x *= 0.98 / peak
    Clip(x.astype(np.float32), RATE).write_wav(path)
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
          f"{len(x) / RATE:.1f} s, {path.stat().st_size // 1024} KB")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "audio_fixtures" / "noise")
    args = ap.parse_args(argv)
    seeds = np.random.SeedSequence(SEED).spawn(4)
    rngs = [np.random.default_rng(s) for s in seeds]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        write(babble(rngs[0], 3.0, 8, tmp), args.out / "babble.wav")
        write(cafe(rngs[1], tmp), args.out / "cafe.wav")
    write(street(rngs[2]), args.out / "street.wav")
    write(car(rngs[3]), args.out / "car.wav")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
