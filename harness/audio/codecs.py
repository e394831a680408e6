"""Telephone and VoIP codecs: G.711 (μ-law, A-law) in numpy, narrowband, and Opus via ffmpeg.

The G.711 functions are bit-exact with ITU-T G.711 (the classic reference ``g711.c``):
μ-law works on 14-bit linear samples, A-law on 13-bit, and both use 8-bit codes.
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy.signal import butter, resample_poly, sosfiltfilt

from harness.audio.effects import FunctionEffect, check_choice, check_range
from harness.core.errors import InfrastructureError

__all__ = [
    "alaw_decode",
    "alaw_encode",
    "g711_roundtrip",
    "narrowband",
    "opus",
    "ulaw_decode",
    "ulaw_encode",
]

_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_ULAW_BIAS = 0x84


def _to_int16(samples: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(samples, dtype=np.float64), -1.0, 32767 / 32768)
    return np.round(x * 32768.0).astype(np.int32)


def ulaw_encode(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to G.711 μ-law codes (uint8)."""
    pcm = _to_int16(samples) >> 2  # 14-bit
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_SEG_UEND, mag, side="left")
    code = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def ulaw_decode(codes: np.ndarray) -> np.ndarray:
    """G.711 μ-law codes to float samples."""
    u = ~np.asarray(codes, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    pcm = np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS)
    return (pcm / 32768.0).astype(np.float32)


def alaw_encode(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to G.711 A-law codes (uint8)."""
    pcm = _to_int16(samples) >> 3  # 13-bit
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_SEG_AEND, mag, side="left")
    segc = np.minimum(seg, 7)
    shift = np.where(segc < 2, 1, segc)
    code = (segc << 4) | ((mag >> shift) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def alaw_decode(codes: np.ndarray) -> np.ndarray:
    """G.711 A-law codes to float samples."""
    a = np.asarray(codes, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    pcm = np.where(a & 0x80, t, -t)
    return (pcm / 32768.0).astype(np.float32)


def g711_roundtrip(samples: np.ndarray, codec: str = "ulaw") -> np.ndarray:
    """Encode and decode with G.711 (``"ulaw"`` or ``"alaw"``), as float32."""
    if codec == "ulaw":
        return ulaw_decode(ulaw_encode(samples))
    if codec == "alaw":
        return alaw_decode(alaw_encode(samples))
    raise ValueError(f"codec={codec!r} is not allowed; use 'ulaw' or 'alaw'")


def _resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst:
        return x
    ratio = Fraction(dst, src)
    return resample_poly(x, ratio.numerator, ratio.denominator)


@lru_cache(maxsize=32)
def _filters(rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Send band-pass 300-3400 Hz and receive low-pass 3600 Hz (Butterworth, order 4 / 8)."""
    nyq = rate / 2
    band = butter(4, [300.0, min(3400.0, 0.9 * nyq)], btype="bandpass", fs=rate, output="sos")
    low = butter(8, min(3600.0, 0.95 * nyq), btype="lowpass", fs=rate, output="sos")
    return band, low


def _zero_phase(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    if len(x) < 2:
        return x
    return sosfiltfilt(sos, x, padlen=min(len(x) - 1, 6 * len(sos)))


def narrowband(codec: Literal["ulaw", "alaw"] | None = "ulaw") -> FunctionEffect:
    """A telephone line: 300-3400 Hz, 8 kHz sampling, G.711 companding.

    Steps: band-pass 300-3400 Hz, resample to 8 kHz, G.711 μ-law or A-law round trip
    (``codec=None`` skips it), resample back to the input rate, and low-pass at 3600 Hz as
    the receiving side's reconstruction filter, so nothing is left above 4 kHz. The filters
    are Butterworth run forwards and backwards (zero phase: the output stays time-aligned
    with the input, so it can be compared sample by sample).
    """
    codec = check_choice("narrowband", "codec", codec, ("ulaw", "alaw", None))

    def fn(x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        band, low = _filters(rate)
        y = _resample(_zero_phase(band, x.astype(np.float64)), rate, 8000)
        if codec is not None:
            y = g711_roundtrip(y, codec).astype(np.float64)
        y = _zero_phase(low, _resample(y, 8000, rate))
        if len(y) < len(x):
            y = np.concatenate([y, np.zeros(len(x) - len(y))])
        return y[: len(x)]

    return FunctionEffect("narrowband", {"codec": codec}, fn)


_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def _ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise InfrastructureError(
            "opus(): ffmpeg not found on PATH; install ffmpeg built with libopus "
            "(Debian/Ubuntu: apt-get install ffmpeg)"
        )
    return path


def _run(cmd: list[str], data: bytes) -> bytes:
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, check=False, timeout=120)
    except subprocess.TimeoutExpired as e:
        raise InfrastructureError(f"opus(): ffmpeg timed out: {' '.join(cmd)}") from e
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise InfrastructureError(
            f"opus(): ffmpeg failed (exit {proc.returncode}): {' / '.join(tail)}; "
            "is ffmpeg built with libopus (`ffmpeg -encoders | grep libopus`)?"
        )
    return proc.stdout


def opus(bitrate_kbps: float = 12.0) -> FunctionEffect:
    """Round trip through ffmpeg's libopus encoder and decoder (``6 <= bitrate_kbps <= 128``).

    Uses ``-application voip``, 20 ms frames, single thread; Ogg in between. Clips at a rate
    Opus does not take (e.g. 44.1 kHz) go through 48 kHz. The codec delay is removed by the
    Ogg pre-skip; the output is trimmed or zero-padded to the input length. Needs ``ffmpeg``
    on PATH; raises :class:`~harness.core.errors.InfrastructureError` if it is missing.
    """
    bitrate_kbps = check_range("opus", "bitrate_kbps", bitrate_kbps, 6.0, 128.0)

    def fn(x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        exe = _ffmpeg()
        codec_rate = rate if rate in _OPUS_RATES else 48000
        y = _resample(x.astype(np.float64), rate, codec_rate)
        pcm = _to_int16(y).astype("<i2").tobytes()
        common = ["-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1"]
        raw = ["-f", "s16le", "-ar", str(codec_rate), "-ac", "1"]
        encoded = _run(
            [exe, *common, *raw, "-i", "pipe:0", "-c:a", "libopus", "-application", "voip",
             "-b:a", f"{bitrate_kbps:g}k", "-frame_duration", "20", "-f", "ogg", "pipe:1"],
            pcm,
        )  # fmt: skip
        decoded = _run(
            [exe, *common, "-f", "ogg", "-i", "pipe:0", *raw, "pipe:1"],
            encoded,
        )
        out = np.frombuffer(decoded, dtype="<i2").astype(np.float64) / 32768.0
        out = _resample(out, codec_rate, rate)
        if len(out) < len(x):
            out = np.concatenate([out, np.zeros(len(x) - len(out))])
        return out[: len(x)]

    return FunctionEffect("opus", {"bitrate_kbps": bitrate_kbps}, fn)
