"""When the monitor places its calls: every N seconds or on a cron expression.

Slots are absolute times (epoch seconds), computed from the schedule alone: an interval's
slots are multiples of the interval since the epoch, a cron expression's are its own. So a
restarted monitor (or a second ``--once`` invocation) computes the same slots, and the
store's record of slots already begun (:meth:`MonitorStore.begin_cycle`) keeps any slot
from running twice. Cron expressions are read by ``croniter``, in UTC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from croniter import croniter

from harness.gates.model import duration_seconds

__all__ = ["Cron", "Every", "Schedule", "ScheduleError", "due_slot", "parse_schedule"]


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message names the option and the fix."""


class Schedule(Protocol):
    def next_after(self, t: float) -> float:
        """The first slot strictly after ``t``."""
        ...

    def last_at_or_before(self, t: float) -> float:
        """The latest slot at or before ``t``."""
        ...

    @property
    def period_s(self) -> float:
        """The usual time between two slots (for staleness and catch-up)."""
        ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Every:
    seconds: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and self.seconds >= 1):
            raise ScheduleError(f"--every {self.seconds!r}: at least 1s (e.g. 30s, 5m)")

    def next_after(self, t: float) -> float:
        return (math.floor(t / self.seconds) + 1) * self.seconds

    def last_at_or_before(self, t: float) -> float:
        return math.floor(t / self.seconds) * self.seconds

    @property
    def period_s(self) -> float:
        return self.seconds

    def describe(self) -> str:
        return f"every {self.seconds:g}s"


@dataclass(frozen=True)
class Cron:
    expression: str

    def __post_init__(self) -> None:
        if not croniter.is_valid(self.expression):
            raise ScheduleError(
                f'--cron "{self.expression}" is not a cron expression '
                '(five fields: minute hour day month weekday, e.g. "*/5 * * * *")'
            )

    def _iter(self, t: float) -> croniter:
        return croniter(self.expression, datetime.fromtimestamp(t, UTC))

    def next_after(self, t: float) -> float:
        return float(self._iter(t).get_next(float))

    def last_at_or_before(self, t: float) -> float:
        # croniter's get_prev is strictly before; a slot exactly at t counts
        nxt = self._iter(t - 1e-3).get_next(float)
        return float(nxt) if nxt <= t else float(self._iter(t).get_prev(float))

    @property
    def period_s(self) -> float:
        it = self._iter(0.0)
        a = it.get_next(float)
        return float(it.get_next(float) - a)

    def describe(self) -> str:
        return f'cron "{self.expression}" (UTC)'


def parse_schedule(every: str | None, cron: str | None) -> Schedule:
    """The schedule from ``--every DURATION`` or ``--cron EXPR`` (exactly one)."""
    if (every is None) == (cron is None):
        raise ScheduleError('give one of --every (e.g. 5m) or --cron (e.g. "*/5 * * * *")')
    if every is not None:
        try:
            return Every(duration_seconds(every.strip()))
        except ValueError as e:
            raise ScheduleError(f"--every: {e}") from None
    assert cron is not None
    return Cron(cron.strip())


def due_slot(schedule: Schedule, now: float, last_slot: float | None) -> float | None:
    """The slot to run now, or None to wait for the next one.

    The latest slot at or before ``now`` is due if it was not begun already and is less
    than half a period old: a monitor restarted within the period catches up on the slot it
    missed; one that was down for longer starts on the next slot instead of a burst of old
    ones.
    """
    slot = schedule.last_at_or_before(now)
    if last_slot is not None and slot <= last_slot:
        return None
    if now - slot > schedule.period_s / 2:
        return None
    return slot
