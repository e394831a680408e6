"""Fault knobs: ways to make the clinic agent worse on purpose, so tests can prove that the
harness notices.

Knobs come from the worker's environment and can be overridden per call by the dispatch
metadata, e.g. ``{"faults": {"extra_llm_latency_ms": 1500}}``. Metadata keys are the field
names below; the environment variable names (``CLINIC_EXTRA_LLM_LATENCY_MS``) are accepted
too. Every bad value is rejected with a message naming where it came from.

=================================  ========================================  =========
environment                        meaning                                   default
=================================  ========================================  =========
``CLINIC_EXTRA_LLM_LATENCY_MS``    ms added to the LLM's first token, once   0
                                   per reply to the caller
``CLINIC_EXTRA_LLM_LATENCY_SHARE`` share (0..1) of replies that get it       1.0
``CLINIC_SEED``                    seed of the per-call random choices       0
``CLINIC_BUG``                     a realistic dialog bug to switch on:      none
                                   ``date_loop``: once the caller corrects
                                   the day, the agent keeps asking to
                                   confirm it and never books
=================================  ========================================  =========
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

ENV_PREFIX = "CLINIC_"
BUGS = ("date_loop",)


class FaultConfigError(ValueError):
    """A fault knob has a value the agent cannot use."""


@dataclass(frozen=True)
class Faults:
    extra_llm_latency_ms: int = 0
    extra_llm_latency_share: float = 1.0
    seed: int = 0
    bug: str | None = None

    def __post_init__(self) -> None:
        _check_int(self.extra_llm_latency_ms, "extra_llm_latency_ms", minimum=0)
        _check_share(self.extra_llm_latency_share, "extra_llm_latency_share")
        _check_int(self.seed, "seed")
        if self.bug is not None and self.bug not in BUGS:
            raise FaultConfigError(f"bug={self.bug!r}: known bugs are {', '.join(BUGS)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Faults:
        """Knobs from ``CLINIC_*`` environment variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = ENV_PREFIX + f.name.upper()
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = _convert(raw.strip(), f.name, where=var)
        return cls(**values)

    @classmethod
    def from_metadata(cls, metadata: str | Mapping[str, Any] | None, base: Faults) -> Faults:
        """``base`` overridden by the ``"faults"`` object of job metadata, if there is one."""
        if metadata is None or metadata == "":
            return base
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except json.JSONDecodeError as e:
                raise FaultConfigError(f"dispatch metadata is not valid JSON: {e}") from None
        if not isinstance(metadata, Mapping):
            return base
        overrides = metadata.get("faults")
        if overrides is None:
            return base
        if not isinstance(overrides, Mapping):
            raise FaultConfigError(
                f"dispatch metadata faults must be a JSON object, got {overrides!r}"
            )
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in overrides.items():
            name = str(key).lower()
            if name.startswith(ENV_PREFIX.lower()):
                name = name[len(ENV_PREFIX) :]
            if name not in known:
                raise FaultConfigError(
                    f"dispatch metadata faults.{key}: unknown fault knob; "
                    f"known knobs are {', '.join(sorted(known))}"
                )
            values[name] = _convert(raw, name, where=f"dispatch metadata faults.{key}")
        return replace(base, **values)

    def llm_delays(self, call_key: str = "") -> LatencyPlan:
        """A fresh per-call plan of which replies get the extra latency. ``call_key`` (the
        conversation id) makes calls draw differently while each stays reproducible."""
        return LatencyPlan(self, call_key)


class LatencyPlan:
    """Draws, one LLM request at a time, the extra delay before its first token.

    The draws come from ``random.Random(f"{seed}:{call_key}")``: the same call (seed and
    conversation id) always gets the same delays, and different calls draw independently,
    so a share of 0.2 delays about 20 % of the replies of a session, not the same replies
    of every call.
    """

    def __init__(self, faults: Faults, call_key: str = "") -> None:
        self._faults = faults
        self._rng = random.Random(f"{faults.seed}:{call_key}")

    def next_delay(self) -> float:
        """Seconds to wait before the next request's first token."""
        hit = self._rng.random() < self._faults.extra_llm_latency_share
        return self._faults.extra_llm_latency_ms / 1000.0 if hit else 0.0


def _convert(raw: Any, name: str, *, where: str) -> Any:
    if name in ("extra_llm_latency_ms", "seed"):
        minimum = 0 if name == "extra_llm_latency_ms" else None
        return _parse_int(raw, where, minimum=minimum)
    if name == "extra_llm_latency_share":
        return _parse_share(raw, where)
    if name == "bug":
        value = str(raw).strip().lower() or None
        if value is not None and value not in BUGS:
            raise FaultConfigError(f"{where}={raw!r}: known bugs are {', '.join(BUGS)}")
        return value
    raise AssertionError(f"no converter for {name}")


def _parse_int(raw: Any, where: str, *, minimum: int | None) -> int:
    if isinstance(raw, bool):
        raise FaultConfigError(f"{where} must be an integer, got {raw!r}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    else:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise FaultConfigError(f"{where} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise FaultConfigError(f"{where} must be >= {minimum}, got {raw!r}")
    return value


def _parse_share(raw: Any, where: str) -> float:
    if isinstance(raw, bool):
        raise FaultConfigError(f"{where} must be a number between 0 and 1, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise FaultConfigError(f"{where} must be a number between 0 and 1, got {raw!r}") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise FaultConfigError(f"{where} must be a number between 0 and 1, got {raw!r}")
    return value


def _check_int(value: Any, name: str, *, minimum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultConfigError(f"Faults.{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise FaultConfigError(f"Faults.{name} must be >= {minimum}, got {value!r}")


def _check_share(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultConfigError(f"Faults.{name} must be a number between 0 and 1, got {value!r}")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise FaultConfigError(f"Faults.{name} must be a number between 0 and 1, got {value!r}")
