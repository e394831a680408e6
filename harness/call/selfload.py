"""What the harness itself costs while it places calls: the caller side's CPU time per call
and the health of the event loop that runs the callers.

A load test must not blame the agent for the rig's own limits. Each call records the CPU
the caller side spent on it and how late the calls' event loop woke up (its lag) while it
ran; with the caller's frame underruns (:mod:`harness.call.caller`) and the host's CPU
pressure (:mod:`harness.call.hostload`), that tells a saturated harness from a saturated
agent.

The caller side is the calls' event loop thread (the callers' Python work: pushing and
receiving audio, recording, the transcription streams, the room API) plus the native
threads of LiveKit's client library (WebRTC, Opus). Other Python threads of the process
(the main thread, the executor threads that score and save calls) are left out. The
trace receiver shares the calls' loop and is counted with them; it decodes large bodies
on executor threads, which are left out. Where several calls run at once, each second of
caller-side CPU is shared equally among the calls in progress during it.

Linux only (``/proc``); elsewhere the process's own CPU time stands for the caller side.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CallerLoad",
    "CpuSample",
    "HostCpu",
    "SelfMeter",
    "caller_side_cpu",
    "percentile",
    "read_host_cpu",
    "read_thread_cpu_s",
]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_TASKS = Path("/proc/self/task")
PROC_STAT = Path("/proc/stat")

LAG_INTERVAL_S = 0.05
"""How often the lag probe wakes up."""
CPU_EVERY = 20
"""The probe reads the CPU counters every this many wake-ups (once a second)."""


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by the nearest rank; None for no values."""
    xs = sorted(values)
    if not xs:
        return None
    k = max(0, min(len(xs) - 1, math.ceil(q / 100 * len(xs)) - 1))
    return xs[k]


def read_thread_cpu_s(tid: int, tasks: Path = _TASKS) -> float | None:
    """User plus system CPU seconds of one thread of this process; None when it is gone
    (or there is no ``/proc``)."""
    try:
        text = (tasks / str(tid) / "stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: the fields follow the last ')'
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class HostCpu:
    """Cumulative CPU seconds of the whole host, from ``/proc/stat``: ``busy`` (all but idle
    and I/O wait) and ``total``."""

    busy: float
    total: float


def read_host_cpu(path: Path = PROC_STAT) -> HostCpu | None:
    try:
        line = path.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    parts = line.split()
    if not parts or parts[0] != "cpu":
        return None
    try:
        ticks = [int(x) for x in parts[1:]]
    except ValueError:
        return None
    if len(ticks) < 5:
        return None
    # user nice system idle iowait irq softirq steal (guest is counted in user already)
    total = sum(ticks[:8])
    idle = ticks[3] + ticks[4]
    return HostCpu((total - idle) / _TICKS, total / _TICKS)


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds at one moment: the caller side and, within it, the calls'
    event loop thread alone."""

    at: float
    caller_s: float
    loop_s: float | None


def caller_side_cpu(
    loop_tid: int | None,
    excluded: Callable[[], Iterable[int]] | None = None,
    *,
    process_s: Callable[[], float] | None = None,
    thread_s: Callable[[int], float | None] = read_thread_cpu_s,
    seen: dict[int, float] | None = None,
) -> tuple[float, float | None]:
    """(caller-side CPU seconds so far, the loop thread's alone): the process's CPU minus
    that of its other Python threads (``excluded``: their native ids; default every Python
    thread but ``loop_tid``). ``seen`` keeps the last reading of each excluded thread, so
    the CPU of one that has since ended stays subtracted."""
    if process_s is None:
        t = os.times()
        total = t.user + t.system
    else:
        total = process_s()
    if excluded is None:
        ids = [
            th.native_id
            for th in threading.enumerate()
            if th.native_id is not None and th.native_id != loop_tid
        ]
    else:
        ids = [i for i in excluded() if i != loop_tid]
    memo = seen if seen is not None else {}
    for tid in ids:
        v = thread_s(tid)
        if v is not None:
            memo[tid] = max(v, memo.get(tid, 0.0))
    other = sum(memo.values())
    loop = thread_s(loop_tid) if loop_tid is not None else None
    return max(0.0, total - other), loop


@dataclass(frozen=True)
class CallerLoad:
    """What the caller side cost one call, and how its event loop kept time meanwhile."""

    cpu_s: float
    """Caller-side CPU seconds attributed to the call (its share while others ran too)."""
    wall_s: float
    loop_lag_p99_ms: float | None
    """99th percentile of how late the calls' event loop woke up during the call."""
    loop_lag_max_ms: float | None
    lag_samples: int = 0
    loop_busy: float | None = None
    """Share of the call's wall time in which the loop thread was on a CPU (0..1): near 1,
    the single thread that runs every caller is saturated."""

    @property
    def cpu_per_call_minute(self) -> float | None:
        """CPU seconds per minute of call."""
        return self.cpu_s / (self.wall_s / 60) if self.wall_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None, n: int = 4) -> float | None:
            return None if v is None else round(v, n)

        return {
            "caller_cpu_s": r(self.cpu_s),
            "wall_s": r(self.wall_s, 3),
            "loop_lag_p99_ms": r(self.loop_lag_p99_ms, 2),
            "loop_lag_max_ms": r(self.loop_lag_max_ms, 2),
            "lag_samples": self.lag_samples,
            "loop_busy": r(self.loop_busy),
        }

    @classmethod
    def from_dict(cls, d: Any) -> CallerLoad | None:
        """Read :meth:`to_dict` back; None for anything else (an older run's file)."""
        if not isinstance(d, dict):
            return None

        def num(key: str) -> float | None:
            v = d.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                return None
            return float(v)

        cpu, wall = num("caller_cpu_s"), num("wall_s")
        if cpu is None or wall is None or cpu < 0 or wall < 0:
            return None
        samples = d.get("lag_samples")
        return cls(
            cpu,
            wall,
            num("loop_lag_p99_ms"),
            num("loop_lag_max_ms"),
            samples if isinstance(samples, int) and not isinstance(samples, bool) else 0,
            num("loop_busy"),
        )


@dataclass
class _Open:
    t0: float
    cpu_s: float = 0.0
    loop_s: float = 0.0
    loop_known: bool = True
    lags: list[float] = field(default_factory=list)


class SelfMeter:
    """Runs on the calls' event loop (:meth:`run` as a task); :meth:`begin` and :meth:`end`
    bracket each call. Every ``interval_s`` it measures how late it woke up; every
    ``cpu_every`` wake-ups it reads the caller side's CPU and shares the increase among
    the calls open at the time."""

    def __init__(
        self,
        *,
        interval_s: float = LAG_INTERVAL_S,
        cpu_every: int = CPU_EVERY,
        cpu: Callable[[], tuple[float, float | None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0 or cpu_every < 1:
            raise ValueError(f"interval_s={interval_s!r}, cpu_every={cpu_every!r}: positive")
        self.interval_s = interval_s
        self.cpu_every = cpu_every
        self._cpu = cpu
        self._clock = clock
        self._open: dict[int, _Open] = {}
        self._next = 0
        self._last: CpuSample | None = None
        self._seen: dict[int, float] = {}
        self._loop_tid: int | None = None
        self.lags: list[float] = []
        """Every lag measured, in ms (bounded: the most recent ``MAX_LAGS``)."""

    MAX_LAGS = 100_000

    def _read_cpu(self) -> tuple[float, float | None]:
        if self._cpu is not None:
            return self._cpu()
        if self._loop_tid is None:  # every reading is taken on the calls' loop thread
            self._loop_tid = threading.get_native_id()
        return caller_side_cpu(self._loop_tid, seen=self._seen)

    def sample(self) -> None:
        """Read the CPU counters and share what the caller side spent since the last
        reading among the calls open now."""
        caller, loop = self._read_cpu()
        now = CpuSample(self._clock(), caller, loop)
        last, self._last = self._last, now
        if last is None or not self._open:
            return
        d_caller = max(0.0, now.caller_s - last.caller_s)
        d_loop = None
        if now.loop_s is not None and last.loop_s is not None:
            d_loop = max(0.0, now.loop_s - last.loop_s)
        share = 1 / len(self._open)
        for call in self._open.values():
            call.cpu_s += d_caller * share
            if d_loop is None:
                call.loop_known = False
            else:
                call.loop_s += d_loop  # the thread's own time, not a share: how busy it was

    def lag(self, ms: float) -> None:
        self.lags.append(ms)
        if len(self.lags) > self.MAX_LAGS:
            del self.lags[: len(self.lags) // 2]
        for call in self._open.values():
            call.lags.append(ms)

    async def run(self) -> None:
        """The probe: until cancelled."""
        self.sample()
        ticks = 0
        while True:
            t = self._clock()
            await asyncio.sleep(self.interval_s)
            self.lag(max(0.0, (self._clock() - t - self.interval_s) * 1000))
            ticks += 1
            if ticks % self.cpu_every == 0:
                self.sample()

    def begin(self) -> int:
        """Open a call; returns its token for :meth:`end`. The counters are read first, so
        what was spent before the call is not handed to it."""
        self.sample()
        self._next += 1
        self._open[self._next] = _Open(self._clock())
        return self._next

    def end(self, token: int) -> CallerLoad | None:
        """Close a call: its share of the caller side's CPU (read now, so the last part of
        the call counts) and its loop lag; None for a call already closed."""
        if token not in self._open:
            return None
        self.sample()
        call = self._open.pop(token)
        wall = max(0.0, self._clock() - call.t0)
        busy = None
        if call.loop_known and wall > 0:
            busy = min(1.0, call.loop_s / wall)
        return CallerLoad(
            cpu_s=call.cpu_s,
            wall_s=wall,
            loop_lag_p99_ms=percentile(call.lags, 99),
            loop_lag_max_ms=max(call.lags) if call.lags else None,
            lag_samples=len(call.lags),
            loop_busy=busy,
        )

    @property
    def open_calls(self) -> int:
        return len(self._open)
