"""How busy the machine was during a call: Linux's CPU pressure (PSI), the share of wall
time in which at least one runnable task waited for a CPU.

Real-time calls compete with everything else on the host. When the host is saturated, a
healthy agent answers late and mishears (its recogniser is starved), so a failed latency
gate says more about the machine than the agent. The harness measures the pressure over
each call and says "host overloaded" where it was high, instead of blaming the agent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OVERLOADED", "PressureMeter", "overload_note", "read_cpu_stall_us"]

PSI_CPU = Path("/proc/pressure/cpu")
OVERLOADED = 0.5
"""CPU pressure above which the host counts as overloaded during a call: for half the
call some task was waiting for a CPU."""


def read_cpu_stall_us(path: Path = PSI_CPU) -> int | None:
    """The ``some total=`` microseconds of ``/proc/pressure/cpu``; None without PSI."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            for field in line.split():
                if field.startswith("total="):
                    try:
                        return int(field[6:])
                    except ValueError:
                        return None
    return None


@dataclass
class PressureMeter:
    """CPU pressure between :meth:`start` and :meth:`share` (None without PSI)."""

    path: Path = PSI_CPU
    _stall: int | None = None
    _t0: float = 0.0

    def start(self) -> PressureMeter:
        self._stall = read_cpu_stall_us(self.path)
        self._t0 = time.monotonic()
        return self

    def share(self) -> float | None:
        """Share of the wall time since start in which some task waited for a CPU, 0..1."""
        end = read_cpu_stall_us(self.path)
        wall_us = (time.monotonic() - self._t0) * 1e6
        if self._stall is None or end is None or wall_us <= 0:
            return None
        return min(1.0, max(0.0, (end - self._stall) / wall_us))


def overload_note(pressures: list[float | None]) -> str | None:
    """``host overloaded during 4 of 9 calls (CPU pressure up to 83 %): ...``, or None."""
    known = [p for p in pressures if p is not None]
    high = [p for p in known if p > OVERLOADED]
    if not high:
        return None
    return (
        f"host overloaded during {len(high)} of {len(pressures)} calls (CPU pressure up to "
        f"{max(high) * 100:.0f} %: tasks waited for a CPU that share of the time): slow or "
        "misheard replies in those calls may be the machine's, not the agent's; lower "
        "--concurrency"
    )
