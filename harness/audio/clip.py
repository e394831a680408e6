"""The one in-memory audio type: mono float32 samples in [-1, 1] at a sample rate."""

from __future__ import annotations

import struct
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from harness.core.files import atomic_writer


@dataclass(frozen=True, eq=False)
class Clip:
    """Mono audio. ``samples`` is float32 in [-1, 1]; treat it as read-only."""

    samples: np.ndarray
    rate: int

    def __post_init__(self) -> None:
        arr = np.asarray(self.samples, dtype=np.float32)
        if arr.ndim != 1:
            raise ValueError(f"Clip samples must be mono (1-D), got shape {arr.shape}")
        if self.rate <= 0:
            raise ValueError(f"Clip rate must be positive, got rate={self.rate!r}")
        arr.setflags(write=False)
        object.__setattr__(self, "samples", arr)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    @classmethod
    def silence(cls, seconds: float, rate: int = 48000) -> Clip:
        return cls(np.zeros(round(seconds * rate), dtype=np.float32), rate)

    @classmethod
    def from_int16(cls, pcm: np.ndarray | bytes, rate: int) -> Clip:
        arr = np.frombuffer(pcm, dtype=np.int16) if isinstance(pcm, bytes) else pcm
        return cls(arr.astype(np.float32) / 32768.0, rate)

    def to_int16(self) -> np.ndarray:
        return (np.clip(self.samples, -1.0, 32767 / 32768) * 32768.0).round().astype(np.int16)

    def resample(self, rate: int) -> Clip:
        if rate == self.rate:
            return self
        ratio = Fraction(rate, self.rate)
        out = resample_poly(self.samples, ratio.numerator, ratio.denominator)
        return Clip(out.astype(np.float32), rate)

    def concat(self, *others: Clip) -> Clip:
        parts = [self.samples] + [o.resample(self.rate).samples for o in others]
        return Clip(np.concatenate(parts), self.rate)

    def write_wav(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_writer(path) as f, wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.rate)
            w.writeframes(self.to_int16().tobytes())
        return path

    @classmethod
    def read_wav(cls, path: str | Path, channel: int | None = None) -> Clip:
        """Read a 16-bit PCM WAV. Stereo files need ``channel`` (0 = left).

        Raises :class:`~harness.core.errors.ScenarioError` naming the file for anything that is
        not a whole 16-bit PCM WAV (truncated, garbled, another format)."""
        from harness.core.errors import ScenarioError

        try:
            with wave.open(str(path), "rb") as w:
                if w.getsampwidth() != 2:
                    raise ScenarioError("only 16-bit PCM WAV is supported", file=path)
                n, rate = w.getnchannels(), w.getframerate()
                if n < 1 or rate <= 0:
                    raise ScenarioError(f"bad WAV header ({n} channels, {rate} Hz)", file=path)
                raw = w.readframes(w.getnframes())
        except (wave.Error, EOFError, struct.error) as e:
            raise ScenarioError(
                f"not a readable WAV file ({e or 'truncated'})", file=path
            ) from None
        except OSError as e:
            raise ScenarioError(f"cannot read WAV: {e.strerror or e}", file=path) from None
        raw = raw[: len(raw) - len(raw) % (2 * n)]
        data = np.frombuffer(raw, dtype=np.int16)
        if n > 1:
            if channel is None or not 0 <= channel < n:
                raise ScenarioError(f"{n}-channel file; pass channel=0..{n - 1}", file=path)
            data = data.reshape(-1, n)[:, channel]
        return cls.from_int16(np.ascontiguousarray(data), rate)
