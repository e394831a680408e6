"""The ``AudioEffect`` extension point, the deterministic :class:`Chain`, and the simple effects.

An effect is anything with a ``name``, a ``params`` mapping (for reports) and
``apply(clip, rng) -> Clip``. Effects work on numpy arrays; randomness comes only from the
``rng`` they are handed, so a :class:`Chain` applied with the same seed gives byte-identical
output.

Every effect here keeps the clip's sample rate and length, except :func:`speed`, which
changes the length by the speaking-rate factor. Output samples are clipped to [-1, 1].

The codec, noise and packet-loss effects live in :mod:`harness.audio.codecs`,
:mod:`harness.audio.background` and :mod:`harness.audio.loss`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.signal import correlate, fftconvolve, lfilter

from harness.audio.clip import Clip
from harness.core.errors import ScenarioError

__all__ = [
    "AudioEffect",
    "BaseEffect",
    "Chain",
    "ConditionError",
    "FunctionEffect",
    "clipping",
    "echo",
    "gain",
    "jitter",
    "reverb",
    "speed",
    "time_warp",
]


class ConditionError(ScenarioError, ValueError):
    """An audio effect or condition spec is invalid.

    It is a :class:`~harness.core.errors.ScenarioError` (so scenario loading reports it with file,
    line and field) and a :class:`ValueError` (so plain Python callers can catch it as one).
    ``loc`` is the path of the offending value inside the spec, e.g. ``(1, "noise",
    "snr_db")``; ``param`` is the parameter name when one parameter is at fault.
    """

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        loc: tuple[str | int, ...] = (),
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.param = param
        self.loc = loc
        super().__init__(message, file=file, line=line, field=field)


@runtime_checkable
class AudioEffect(Protocol):
    """One caller-side audio condition.

    ``name`` and ``params`` describe the effect in reports (``params`` holds plain values that
    :func:`harness.audio.parse_conditions` accepts back). ``apply`` must take all of its
    randomness from ``rng`` and must not modify ``clip``.
    """

    @property
    def name(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    def apply(self, clip: Clip, rng: np.random.Generator) -> Clip: ...


class BaseEffect:
    """Optional helper base class: implement :meth:`process` on a float32 array.

    :meth:`apply` hands :meth:`process` the clip's read-only float32 samples (return a new
    array, any float dtype) and turns the result back into a :class:`Clip` at the same rate,
    clipped to [-1, 1]; non-finite output raises ``FloatingPointError``. Empty clips are
    passed through untouched.
    """

    name: str = "effect"

    @property
    def params(self) -> Mapping[str, Any]:
        return MappingProxyType({})

    def process(self, samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def apply(self, clip: Clip, rng: np.random.Generator) -> Clip:
        if len(clip.samples) == 0:
            return clip
        out = np.asarray(self.process(clip.samples, clip.rate, rng), dtype=np.float64)
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(f"{self!r} produced non-finite samples")
        return Clip(np.clip(out, -1.0, 1.0).astype(np.float32), clip.rate)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})"


class FunctionEffect(BaseEffect):
    """An effect made of a name, its parameters and a ``fn(samples, rate, rng) -> samples``."""

    def __init__(
        self,
        name: str,
        params: Mapping[str, Any],
        fn: Callable[[np.ndarray, int, np.random.Generator], np.ndarray],
    ) -> None:
        self.name = name
        self._params = MappingProxyType(dict(params))
        self._fn = fn

    @property
    def params(self) -> Mapping[str, Any]:
        return self._params

    def process(self, samples: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        return self._fn(samples, rate, rng)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FunctionEffect):
            return NotImplemented
        return self.name == other.name and dict(self.params) == dict(other.params)

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.params.items()))))


@dataclass(frozen=True)
class Chain:
    """Effects applied in order. ``Chain()`` is the clean condition (the clip unchanged).

    ``apply(clip, seed)`` is deterministic: effect ``i`` gets
    ``numpy.random.Generator(PCG64(SeedSequence(seed).spawn(n)[i]))``, so the same seed gives
    byte-identical output and each effect's randomness is independent of the others'.
    """

    effects: tuple[AudioEffect, ...] = ()
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        effects = tuple(self.effects)
        for i, effect in enumerate(effects):
            if not isinstance(effect, AudioEffect):
                raise ConditionError(
                    f"Chain effects[{i}]={effect!r} is not an AudioEffect "
                    "(needs name, params and apply(clip, rng))",
                    loc=(i,),
                )
        object.__setattr__(self, "effects", effects)

    def apply(self, clip: Clip, seed: int) -> Clip:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ConditionError(f"seed={seed!r} must be an integer >= 0", param="seed")
        if not self.effects:
            return clip
        children = np.random.SeedSequence(int(seed)).spawn(len(self.effects))
        out = clip
        for effect, child in zip(self.effects, children, strict=True):
            out = effect.apply(out, np.random.Generator(np.random.PCG64(child)))
            if not isinstance(out, Clip):
                raise TypeError(f"{effect!r}.apply returned {type(out).__name__}, not a Clip")
        return out

    def describe(self) -> list[dict[str, dict[str, Any]]]:
        """The chain as a condition spec (``[{name: params}, ...]``) for reports and round trips."""
        return [{e.name: dict(e.params)} for e in self.effects]

    def then(self, *effects: AudioEffect | Chain) -> Chain:
        more: list[AudioEffect] = []
        for e in effects:
            more.extend(e.effects if isinstance(e, Chain) else (e,))
        return Chain((*self.effects, *more))

    def __add__(self, other: Chain) -> Chain:
        if not isinstance(other, Chain):
            return NotImplemented
        return self.then(other)

    def __iter__(self) -> Iterator[AudioEffect]:
        return iter(self.effects)

    def __len__(self) -> int:
        return len(self.effects)

    def __repr__(self) -> str:
        inner = ", ".join(repr(e) for e in self.effects)
        label = f"{self.name}: " if self.name else ""
        return f"Chain({label}[{inner}])"


# --------------------------------------------------------------------------- argument checks


def _number(effect: str, param: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConditionError(f"{effect}(): {param}={value!r} must be a number", param=param)
    value = float(value)
    if not math.isfinite(value):
        raise ConditionError(f"{effect}(): {param}={value!r} must be finite", param=param)
    return value


def check_range(
    effect: str,
    param: str,
    value: Any,
    lo: float,
    hi: float,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Validate a numeric parameter; the error echoes ``param=value`` and the allowed range."""
    v = _number(effect, param, value)
    below = v <= lo if lo_open else v < lo
    above = v >= hi if hi_open else v > hi
    if below or above:
        lo_op = "<" if lo_open else "<="
        hi_op = "<" if hi_open else "<="
        raise ConditionError(
            f"{effect}(): {param}={value!r} is out of range; use {lo:g} {lo_op} {param} "
            f"{hi_op} {hi:g}",
            param=param,
        )
    return v


def check_choice(effect: str, param: str, value: Any, choices: Iterable[Any]) -> Any:
    """Validate a parameter against a fixed set; the error echoes ``param=value``."""
    choices = tuple(choices)
    if not any(value == c and type(value) is type(c) for c in choices):
        allowed = ", ".join(repr(c) for c in choices)
        raise ConditionError(
            f"{effect}(): {param}={value!r} is not allowed; use one of {allowed}",
            param=param,
        )
    return value


# --------------------------------------------------------------------------- simple effects


def gain(db: float) -> FunctionEffect:
    """Multiply by ``10 ** (db / 20)`` (then clip to [-1, 1]); ``-60 <= db <= 40``."""
    db = check_range("gain", "db", db, -60.0, 40.0)
    factor = 10.0 ** (db / 20.0)

    def fn(x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        return x.astype(np.float64) * factor

    return FunctionEffect("gain", {"db": db}, fn)


def clipping(threshold: float) -> FunctionEffect:
    """Hard-clip at ``±threshold`` (linear full scale, ``0.01 <= threshold <= 1``)."""
    threshold = check_range("clipping", "threshold", threshold, 0.01, 1.0)

    def fn(x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        return np.clip(x, -threshold, threshold)

    return FunctionEffect("clipping", {"threshold": threshold}, fn)


def echo(delay_ms: float, decay: float = 0.4) -> FunctionEffect:
    """Repeated echoes: ``y[n] = x[n] + decay * y[n - D]`` with ``D = delay_ms``.

    The k-th echo arrives ``k * delay_ms`` late with amplitude ``decay ** k`` (a feedback comb
    filter); ``1 <= delay_ms <= 2000``, ``0 <= decay <= 0.95``. For white input the output
    power is ``1 / (1 - decay**2)`` times the input's.
    """
    delay_ms = check_range("echo", "delay_ms", delay_ms, 1.0, 2000.0)
    decay = check_range("echo", "decay", decay, 0.0, 0.95)

    def fn(x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        d = max(1, round(delay_ms * rate / 1000.0))
        if decay == 0.0 or d >= len(x):
            return x
        a = np.zeros(d + 1)
        a[0] = 1.0
        a[d] = -decay
        return lfilter([1.0], a, x.astype(np.float64))

    return FunctionEffect("echo", {"delay_ms": delay_ms, "decay": decay}, fn)


def reverb(rt60_s: float, drr_db: float = 0.0) -> FunctionEffect:
    """Convolve with a synthetic room impulse response.

    The impulse is a direct-path unit impulse followed, after a 2 ms gap, by Gaussian noise
    from ``rng`` under an exponential envelope that falls 60 dB in ``rt60_s`` seconds
    (``0.05 <= rt60_s <= 3``). ``drr_db`` is the direct-to-reverberant energy ratio
    (``-20 <= drr_db <= 30``). The impulse has unit energy, so the level stays about the
    same; the tail past the clip's end is cut so the length is unchanged.
    """
    rt60_s = check_range("reverb", "rt60_s", rt60_s, 0.05, 3.0)
    drr_db = check_range("reverb", "drr_db", drr_db, -20.0, 30.0)

    def fn(x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        h = room_impulse(rt60_s, rate, rng, drr_db=drr_db)
        return fftconvolve(x.astype(np.float64), h)[: len(x)]

    return FunctionEffect("reverb", {"rt60_s": rt60_s, "drr_db": drr_db}, fn)


def room_impulse(
    rt60_s: float, rate: int, rng: np.random.Generator, *, drr_db: float = 0.0
) -> np.ndarray:
    """The synthetic impulse response :func:`reverb` uses (unit energy)."""
    gap = max(1, round(0.002 * rate))
    n_tail = max(1, round(rt60_s * rate))
    t = np.arange(n_tail) / rate
    # 60 dB of energy decay in rt60_s: amplitude envelope exp(-3 ln(10) t / rt60).
    tail = rng.standard_normal(n_tail) * np.exp(-3.0 * math.log(10.0) * t / rt60_s)
    tail *= math.sqrt(10.0 ** (-drr_db / 10.0) / float(np.sum(tail**2)))
    h = np.zeros(gap + n_tail)
    h[0] = 1.0
    h[gap:] = tail
    return h / math.sqrt(float(np.sum(h**2)))


def time_warp(max_ms: float = 20.0) -> FunctionEffect:
    """Smooth random timing drift of at most ``max_ms`` (``0 <= max_ms <= 200``).

    Models a playout clock that drifts and a jitter buffer that stretches and squeezes to
    follow it. Output sample ``t`` is read from input time ``t + d(t)``, where ``d`` is a
    monotone cubic (PCHIP) through random control points in ``[-max_ms, max_ms]``, spaced
    ``max(250 ms, 25 * max_ms)`` apart, pinned to 0 at both ends. PCHIP never overshoots its
    control points, so ``|d| <= max_ms``; the spacing keeps the local speed change small
    (under 8 % on average between control points), which also shifts pitch by that much.
    Samples are read by linear interpolation. The length is unchanged.
    """
    max_ms = check_range("time_warp", "max_ms", max_ms, 0.0, 200.0)

    def fn(x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
        n = len(x)
        max_d = max_ms * rate / 1000.0
        if max_d == 0.0 or n < 2:
            return x
        # At least one free control point; on short clips the bound shrinks so the slope
        # limit (|d'| small, hence a monotone time map) still holds.
        k = max(2, math.ceil((n - 1) / max(0.25 * rate, 25.0 * max_d)))
        bound = min(max_d, (n - 1) / k / 25.0)
        if bound < 1e-3:  # under a thousandth of a sample: nothing to do
            return x
        knots = np.linspace(0.0, n - 1, k + 1)
        values = rng.uniform(-bound, bound, size=k + 1)
        values[0] = values[-1] = 0.0
        t = np.arange(n, dtype=np.float64)
        pos = np.clip(t + PchipInterpolator(knots, values)(t), 0.0, n - 1)
        return np.interp(pos, t, x.astype(np.float64))

    return FunctionEffect("time_warp", {"max_ms": max_ms}, fn)


jitter = time_warp
"""Alias of :func:`time_warp` (reported as ``time_warp``)."""


def speed(rate: float) -> FunctionEffect:
    """Change the speaking rate by ``rate`` without changing pitch (``0.5 <= rate <= 2``).

    ``rate=1.25`` speaks 25 % faster, so the output is ``len / 1.25`` samples long. Uses WSOLA
    (waveform-similarity overlap-add): 30 ms Hann frames at 50 % overlap are taken from the
    input at ``rate`` times the output hop, each shifted by up to ±10 ms to best continue the
    previous frame (cross-correlation), and overlap-added. Deterministic; ``rng`` is unused.
    """
    rate = check_range("speed", "rate", rate, 0.5, 2.0)

    def fn(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        return wsola(x.astype(np.float64), sr, rate)

    return FunctionEffect("speed", {"rate": rate}, fn)


def wsola(x: np.ndarray, sr: int, rate: float) -> np.ndarray:
    """Time-scale ``x`` by ``1 / rate`` (pitch kept) with WSOLA; see :func:`speed`."""
    n_out = max(1, round(len(x) / rate))
    if rate == 1.0:
        return x.copy()
    frame = max(4, 2 * round(0.015 * sr))
    hop = frame // 2
    tol = max(1, round(0.010 * sr))
    if len(x) < frame + 2 * tol:
        # Too short for frames: plain linear resampling of the time axis.
        return np.interp(np.linspace(0, len(x) - 1, n_out), np.arange(len(x)), x)
    window = np.hanning(frame + 1)[:frame]  # periodic Hann: sums to 1 at 50 % overlap
    pad = np.concatenate([np.zeros(tol), x, np.zeros(frame + 2 * tol + hop)])
    n_frames = math.ceil(n_out / hop) + 1
    out = np.zeros(n_frames * hop + frame)
    norm = np.zeros_like(out)
    prev = 0  # position (in x) of the previous frame's start
    for k in range(n_frames):
        nominal = round(k * hop * rate)
        if k == 0:
            start = nominal
        else:
            # The natural continuation of the previous frame, and the candidates around the
            # nominal position (pad index ``nominal`` is input position ``nominal - tol``).
            target = pad[tol + prev + hop : tol + prev + hop + frame]
            region = pad[nominal : nominal + frame + 2 * tol]
            if len(target) < frame or len(region) < frame + 2 * tol or not np.any(target):
                start = nominal
            else:
                score = correlate(region, target, mode="valid", method="fft")
                start = nominal - tol + int(np.argmax(score))
        start = min(max(start, -tol), len(x) + hop)
        seg = pad[tol + start : tol + start + frame]
        if len(seg) < frame:
            seg = np.concatenate([seg, np.zeros(frame - len(seg))])
        out[k * hop : k * hop + frame] += seg * window
        norm[k * hop : k * hop + frame] += window
        prev = start
    # Steady state: the windows sum to 1. The first half-frame has only one window; dividing
    # by the window sum restores it there.
    norm[norm < 1e-3] = 1.0
    return (out / norm)[:n_out]
