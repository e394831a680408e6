"""What the harness itself costs per call: the caller side's CPU shared among the calls in
progress, the calls' event-loop lag, and the counters they are read from."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.call.selfload import (
    CallerLoad,
    SelfMeter,
    caller_side_cpu,
    percentile,
    read_host_cpu,
    read_thread_cpu_s,
)


def test_reads_a_threads_cpu_from_proc_even_with_spaces_in_its_name(tmp_path: Path):
    task = tmp_path / "77"
    task.mkdir()
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S"] + ["0"] * 10 + [str(3 * ticks), str(ticks)] + ["0"] * 30
    (task / "stat").write_text(f"77 (my (odd) thread) {' '.join(fields)}\n")
    assert read_thread_cpu_s(77, tmp_path) == pytest.approx(4.0)
    assert read_thread_cpu_s(78, tmp_path) is None
    (task / "stat").write_text("77 (x) S 1 2")
    assert read_thread_cpu_s(77, tmp_path) is None


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_this_threads_cpu_grows_while_it_spins():
    tid = threading.get_native_id()
    before = read_thread_cpu_s(tid)
    end = time.thread_time() + 0.15
    while time.thread_time() < end:
        pass
    after = read_thread_cpu_s(tid)
    assert before is not None and after is not None
    assert after - before >= 0.1


def test_host_cpu_counts_idle_and_iowait_as_not_busy(tmp_path: Path):
    stat = tmp_path / "stat"
    ticks = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal
    stat.write_text(f"cpu  {ticks * 3} 0 {ticks} {ticks * 5} {ticks} 0 0 0 0 0\ncpu0 1 2 3\n")
    host = read_host_cpu(stat)
    assert host is not None
    assert (host.busy, host.total) == (pytest.approx(4.0), pytest.approx(10.0))
    stat.write_text("intr 1 2 3\n")
    assert read_host_cpu(stat) is None
    assert read_host_cpu(tmp_path / "missing") is None


def test_caller_side_is_the_process_minus_other_python_threads():
    readings = {1: 2.0, 2: 0.5, 9: 7.0}
    seen: dict[int, float] = {}
    caller, loop = caller_side_cpu(
        9,
        lambda: [1, 2, 9],
        process_s=lambda: 20.0,
        thread_s=readings.get,
        seen=seen,
    )
    assert (caller, loop) == (17.5, 7.0)
    # thread 2 ends: its CPU stays subtracted, not handed to the caller side
    del readings[2]
    caller, _ = caller_side_cpu(
        9, lambda: [1, 9], process_s=lambda: 21.0, thread_s=readings.get, seen=seen
    )
    assert caller == 18.5


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_cpu_is_shared_equally_among_the_calls_in_progress():
    clock = Clock()
    cpu = [0.0]
    meter = SelfMeter(cpu=lambda: (cpu[0], cpu[0] / 2), clock=clock)
    a = meter.begin()
    clock.t += 10
    cpu[0] += 1.0  # a alone: all of it
    meter.sample()
    b = meter.begin()
    clock.t += 10
    cpu[0] += 2.0  # a and b: 1.0 each
    load_a = meter.end(a)
    clock.t += 10
    cpu[0] += 3.0  # b alone again
    load_b = meter.end(b)
    assert load_a is not None and load_b is not None
    assert load_a.cpu_s == pytest.approx(2.0)
    assert load_b.cpu_s == pytest.approx(4.0)
    assert load_a.wall_s == pytest.approx(20.0)
    assert load_a.cpu_per_call_minute == pytest.approx(6.0)  # 2 s over a third of a minute
    # the loop thread's own time over the call's wall time: (0.5 + 1.0) / 20 s
    assert load_a.loop_busy == pytest.approx(0.075)
    assert meter.end(a) is None  # closed once


@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.floats(0, 5, allow_nan=False)), min_size=1, max_size=40
    )
)
def test_shares_add_up_to_what_the_caller_side_spent_with_calls_open(events):
    """However calls open and close, the CPU handed out equals the caller side's CPU
    during the time at least one call was open."""
    clock = Clock()
    total = [0.0]
    meter = SelfMeter(cpu=lambda: (total[0], None), clock=clock)
    meter.sample()
    open_: list[int] = []
    spent_while_open = 0.0
    loads = []
    for op, spend in events:
        clock.t += 1
        if open_:
            spent_while_open += spend
        total[0] += spend
        if op < 3 or not open_:
            open_.append(meter.begin())
        else:
            loads.append(meter.end(open_.pop(op % len(open_))))
    loads += [meter.end(t) for t in open_]
    assert sum(x.cpu_s for x in loads if x is not None) == pytest.approx(spent_while_open)


def test_lag_is_what_each_open_call_saw():
    meter = SelfMeter(cpu=lambda: (0.0, 0.0))
    a = meter.begin()
    for ms in (1.0, 2.0, 80.0):
        meter.lag(ms)
    b = meter.begin()
    meter.lag(3.0)
    la, lb = meter.end(a), meter.end(b)
    assert la is not None and lb is not None
    assert (la.loop_lag_max_ms, la.lag_samples) == (80.0, 4)
    assert (lb.loop_lag_max_ms, lb.loop_lag_p99_ms, lb.lag_samples) == (3.0, 3.0, 1)


def test_the_probe_sees_a_stalled_loop():
    async def go() -> CallerLoad | None:
        meter = SelfMeter(interval_s=0.01, cpu_every=5)
        task = asyncio.create_task(meter.run())
        token = meter.begin()
        await asyncio.sleep(0.05)
        end = time.thread_time() + 0.2  # a callback that hogs the loop
        while time.thread_time() < end:
            pass
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return meter.end(token)

    load = asyncio.run(go())
    assert load is not None
    assert load.loop_lag_max_ms is not None and load.loop_lag_max_ms >= 150
    assert load.cpu_s >= 0.15  # the stall burnt CPU on the loop thread


def test_round_trips_through_json_and_ignores_what_is_not_one():
    load = CallerLoad(1.25, 30.0, 4.5, 9.0, 600, 0.2)
    assert CallerLoad.from_dict(load.to_dict()) == load
    assert CallerLoad.from_dict(None) is None
    assert CallerLoad.from_dict({"caller_cpu_s": -1, "wall_s": 3}) is None
    assert CallerLoad.from_dict({"caller_cpu_s": True, "wall_s": 3}) is None


def test_nearest_rank_percentile():
    assert percentile([], 99) is None
    assert percentile([5.0], 99) == 5.0
    assert percentile(range(1, 101), 99) == 99
    assert percentile(range(1, 101), 50) == 50


def test_meter_refuses_nonsense_settings():
    with pytest.raises(ValueError, match="interval_s"):
        SelfMeter(interval_s=0)
    with pytest.raises(ValueError, match="cpu_every"):
        SelfMeter(cpu_every=0)
