"""Bursty packet loss: the Gilbert two-state model on fixed-length frames."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from harness.audio.effects import ConditionError, FunctionEffect, check_choice, check_range

__all__ = ["gilbert_elliott_mask", "gilbert_elliott_probs", "packet_loss"]


def gilbert_elliott_probs(rate: float, mean_burst: float) -> tuple[float, float]:
    """Transition probabilities ``(p, r)`` for a loss ``rate`` and mean burst length.

    Two states, Good (every frame arrives) and Bad (every frame is lost): the Gilbert model,
    i.e. Gilbert-Elliott with loss probability 0 in Good and 1 in Bad. ``p = P(Good -> Bad)``,
    ``r = P(Bad -> Good)``. A burst lasts ``1 / r`` frames on average and the stationary share
    of Bad frames is ``p / (p + r)``; solving for the two gives ``r = 1 / mean_burst`` and
    ``p = rate * r / (1 - rate)``.
    """
    r = 1.0 / mean_burst
    p = rate * r / (1.0 - rate)
    return p, r


def gilbert_elliott_mask(
    n_frames: int, rate: float, mean_burst: float, rng: np.random.Generator
) -> np.ndarray:
    """Booleans, True for a lost frame. The first state is drawn from the stationary law."""
    lost = np.zeros(n_frames, dtype=bool)
    if n_frames == 0 or rate == 0.0:
        return lost
    p, r = gilbert_elliott_probs(rate, mean_burst)
    u = rng.random(n_frames)
    bad = bool(u[0] < rate)
    lost[0] = bad
    for i in range(1, n_frames):
        bad = (u[i] >= r) if bad else (u[i] < p)
        lost[i] = bad
    return lost


def packet_loss(
    rate: float,
    mean_burst: float = 2.0,
    conceal: Literal["zero", "repeat"] = "zero",
    frame_ms: float = 20.0,
) -> FunctionEffect:
    """Drop ``frame_ms`` frames in bursts (Gilbert model) and conceal them.

    The stationary loss rate is ``rate`` (``0 <= rate <= 0.5``) and a burst lasts
    ``mean_burst`` frames on average (``1 <= mean_burst <= 50``); see
    :func:`gilbert_elliott_probs`. ``conceal="zero"`` leaves silence; ``conceal="repeat"``
    replays the last received frame (silence if none came yet). ``5 <= frame_ms <= 100``.
    """
    rate = check_range("packet_loss", "rate", rate, 0.0, 0.5)
    mean_burst = check_range("packet_loss", "mean_burst", mean_burst, 1.0, 50.0)
    conceal = check_choice("packet_loss", "conceal", conceal, ("zero", "repeat"))
    frame_ms = check_range("packet_loss", "frame_ms", frame_ms, 5.0, 100.0)
    p, _ = gilbert_elliott_probs(rate, mean_burst)
    if p > 1.0:  # pragma: no cover - unreachable within the ranges above
        raise ConditionError(
            f"packet_loss(): rate={rate!r} with mean_burst={mean_burst!r} is impossible",
            param="rate",
        )

    def fn(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        frame = max(1, round(sr * frame_ms / 1000.0))
        n_frames = math.ceil(len(x) / frame)
        lost = gilbert_elliott_mask(n_frames, rate, mean_burst, rng)
        out = np.array(x, dtype=np.float32)
        last: np.ndarray | None = None
        for i in range(n_frames):
            s = slice(i * frame, (i + 1) * frame)
            if not lost[i]:
                last = out[s].copy()
            elif conceal == "repeat" and last is not None:
                m = len(out[s])
                out[s] = last[:m]
            else:
                out[s] = 0.0
        return out

    return FunctionEffect(
        "packet_loss",
        {"rate": rate, "mean_burst": mean_burst, "conceal": conceal, "frame_ms": frame_ms},
        fn,
    )
