"""The call's recording: reading it, finding where it starts on the trace's clock, cutting
the caller's turns out of it, and estimating the caller's audio conditions.

Estimated conditions (from the caller's cut turns, pads included):

- **band**: energy above 4 kHz relative to the energy below it
  (:func:`harness.audio.measure.energy_above_hz`); below ``-40`` dB the line is narrowband
  (telephone), as is any recording sampled at 8 kHz;
- **SNR**: :func:`harness.audio.measure.estimate_snr_db` (noise floor from the quietest 10 %
  of 20 ms frames). At or above 30 dB the caller is taken as clean.
"""

from __future__ import annotations

import math
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.audio.clip import Clip
from harness.audio.measure import energy_above_hz, estimate_snr_db
from harness.incident.errors import IncidentError

__all__ = [
    "NARROWBAND_DB",
    "ConditionsEstimate",
    "Recording",
    "align_offset",
    "estimate_conditions",
    "read_recording",
]

NARROWBAND_DB = -40.0
"""Energy above 4 kHz (dB relative to below) under which a caller is narrowband."""
CLEAN_SNR_DB = 30.0
FRAME_S = 0.01


@dataclass(frozen=True, eq=False)
class Recording:
    """A 16-bit PCM recording, ``samples`` shaped ``(frames, channels)``, and which channel
    holds the caller. ``start`` is the epoch time of its first sample once known."""

    path: Path
    rate: int
    samples: np.ndarray
    caller_channel: int
    start: float = 0.0

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    @property
    def caller(self) -> np.ndarray:
        """The caller's channel (int16, a view)."""
        return self.samples[:, self.caller_channel]

    def with_start(self, start: float) -> Recording:
        return Recording(self.path, self.rate, self.samples, self.caller_channel, start)

    def index(self, t: float) -> int:
        """The sample at epoch time ``t``, clamped to the recording."""
        return min(len(self.samples), max(0, round((t - self.start) * self.rate)))

    def cut(self, t0: float, t1: float) -> np.ndarray:
        """The caller's samples between two epoch times (int16 copy; may be empty)."""
        i, j = self.index(t0), self.index(t1)
        return np.array(self.caller[i:j], dtype=np.int16)


def read_recording(path: str | Path, caller_channel: int | None = None) -> Recording:
    """Read a 16-bit PCM WAV; ``caller_channel`` defaults to 0 (the left channel)."""
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            n, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            data = w.readframes(w.getnframes())
    except FileNotFoundError:
        raise IncidentError("recording not found", file=p) from None
    except (OSError, EOFError, wave.Error) as e:
        raise IncidentError(
            f"cannot read the recording as WAV ({e}); convert it with "
            "`ffmpeg -i <file> -c:a pcm_s16le call-16bit.wav`",
            file=p,
        ) from None
    if width != 2:
        raise IncidentError(
            f"{8 * width}-bit samples; only 16-bit PCM WAV is read (convert with "
            "`ffmpeg -i <file> -c:a pcm_s16le call-16bit.wav`)",
            file=p,
        )
    if rate <= 0 or n <= 0:
        raise IncidentError(f"bad WAV header: {n} channels at {rate} Hz", file=p)
    channel = 0 if caller_channel is None else caller_channel
    if not 0 <= channel < n:
        raise IncidentError(
            f"caller_channel={caller_channel!r}, but the recording has {n} channel(s) (0..{n - 1})",
            file=p,
        )
    pcm = np.frombuffer(data, dtype="<i2")
    pcm = pcm[: len(pcm) - len(pcm) % n].reshape(-1, n)
    if len(pcm) == 0:
        raise IncidentError("the recording is empty", file=p)
    return Recording(p, rate, pcm, channel)


def _frame_levels(x: np.ndarray, rate: int) -> np.ndarray:
    """dBFS of each 10 ms frame of int16 samples."""
    frame = max(1, round(rate * FRAME_S))
    n = len(x) // frame
    if n == 0:
        return np.zeros(0)
    f = x[: n * frame].astype(np.float32).reshape(n, frame) / 32768.0
    power = np.einsum("ij,ij->i", f, f) / frame
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.maximum(power, 1e-12))


def activity(rec: Recording) -> np.ndarray:
    """Caller activity per 10 ms frame: 12 dB over the channel's floor, and above -55 dBFS."""
    levels = _frame_levels(rec.caller, rec.rate)
    if len(levels) == 0:
        return np.zeros(0, dtype=bool)
    floor = float(np.percentile(levels, 10))
    return levels > max(floor + 12.0, -55.0)


def align_offset(
    rec: Recording, intervals: list[tuple[float, float]], max_shift_s: float = 60.0
) -> float:
    """The shift (seconds, added to ``rec.start``) that best lines the caller's activity up
    with the given speech intervals (epoch seconds); 0 when nothing lines up better."""
    act = activity(rec).astype(np.float64)
    if not intervals or len(act) == 0 or not act.any():
        return 0.0
    n = len(act)
    target = np.zeros(n)
    for t0, t1 in intervals:
        i = int((t0 - rec.start) / FRAME_S)
        j = int((t1 - rec.start) / FRAME_S)
        i, j = max(0, i), min(n, j)
        if j > i:
            target[i:j] = 1.0
    if not target.any():
        return 0.0
    a = act - act.mean()
    b = target - target.mean()
    size = 1 << (2 * n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    max_lag = min(n - 1, int(max_shift_s / FRAME_S))
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([corr[: max_lag + 1], corr[size - max_lag :]])
    best = int(np.argmax(values))
    zero = float(corr[0])
    if values[best] <= 0 or values[best] < zero * 1.05 + 1e-9:
        return 0.0
    # a positive lag: activity happens later in the recording than the spans say, so the
    # recording started earlier than assumed
    return -float(lags[best]) * FRAME_S


@dataclass(frozen=True)
class ConditionsEstimate:
    """What the caller's line sounded like, as measured on the recording."""

    rate: int
    energy_above_4k_db: float | None
    snr_db: float | None

    @property
    def narrowband(self) -> bool:
        if self.rate <= 8000:
            return True
        return self.energy_above_4k_db is not None and self.energy_above_4k_db < NARROWBAND_DB

    @property
    def noisy(self) -> bool:
        return self.snr_db is not None and math.isfinite(self.snr_db) and self.snr_db < CLEAN_SNR_DB

    def conditions(self) -> list[dict[str, Any]] | None:
        """A scenario ``conditions:`` list reproducing the estimate; None when clean."""
        out: list[dict[str, Any]] = []
        if self.noisy:
            assert self.snr_db is not None
            snr = round(min(80.0, max(-20.0, self.snr_db)))
            out.append({"noise": {"kind": "pink", "snr_db": snr}})
        if self.narrowband:
            out.append({"narrowband": {"codec": "ulaw"}})
        return out or None

    def describe(self) -> str:
        if self.rate <= 8000:
            band = f"narrowband ({self.rate} Hz recording)"
        elif self.energy_above_4k_db is None:
            band = "band unknown"
        else:
            kind = "narrowband" if self.narrowband else "wideband"
            e = self.energy_above_4k_db
            shown = f"{e:.0f} dB" if math.isfinite(e) else ("-inf dB" if e < 0 else "+inf dB")
            band = f"{kind} (energy above 4 kHz {shown})"
        if self.snr_db is None:
            snr = "SNR unknown"
        elif math.isinf(self.snr_db):
            snr = "no noise floor (digital silence between words)"
        else:
            snr = f"SNR about {self.snr_db:.0f} dB"
            if not self.noisy:
                snr += " (clean)"
        return f"{band}, {snr}"


def estimate_conditions(segments: list[np.ndarray], rate: int) -> ConditionsEstimate:
    """Estimate band and SNR from the caller's int16 segments (padding included)."""
    parts = [s for s in segments if len(s)]
    if not parts:
        return ConditionsEstimate(rate, None, None)
    x = Clip.from_int16(np.concatenate(parts), rate)
    energy: float | None = None
    if rate > 8000 and len(x.samples) >= 2048:
        try:
            energy = energy_above_hz(x, 4000.0)
        except ValueError:
            energy = None
    snr: float | None = estimate_snr_db(x) if len(x.samples) >= rate // 10 else None
    if snr is not None and snr == -math.inf:
        snr = None
    return ConditionsEstimate(rate, energy, snr)


def fill(segment: np.ndarray, ranges: list[tuple[int, int]], rate: int, kind: str) -> np.ndarray:
    """``segment`` with each sample range replaced by silence or a 1 kHz tone at -20 dBFS."""
    out = segment.copy()
    for i, j in ranges:
        i, j = max(0, i), min(len(out), j)
        if j <= i:
            continue
        if kind == "tone":
            t = np.arange(j - i) / rate
            out[i:j] = np.round(0.1 * 32767 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.int16)
        else:
            out[i:j] = 0
    return out


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """A mono 16-bit WAV, written to ``path`` directly (the caller stages it)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
