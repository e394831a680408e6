"""Slots are computed from the schedule alone, so a restarted monitor finds the same ones;
the store's record of begun slots keeps any from running twice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.monitor.schedule import Cron, Every, ScheduleError, due_slot, parse_schedule


@given(st.floats(1, 3600), st.floats(0, 2e9))
def test_every_slots_are_aligned_and_strictly_after(period, t):
    e = Every(period)
    nxt = e.next_after(t)
    assert t < nxt <= t + period + 1e-6 * max(1.0, t)
    assert e.last_at_or_before(t) <= t


@given(st.floats(0, 2e9))
def test_cron_every_five_minutes(t):
    c = Cron("*/5 * * * *")
    nxt = c.next_after(t)
    assert nxt > t and nxt % 300 == 0 and nxt - t <= 300
    last = c.last_at_or_before(t)
    assert last <= t and last % 300 == 0 and t - last < 300


@given(st.floats(10, 600), st.floats(1e6, 2e9), st.data())
def test_a_slot_never_runs_twice(period, t0, data):
    """Whatever the moments the monitor wakes at (restarts included), each due slot is
    returned at most once when begun slots are remembered."""
    e = Every(period)
    moments = sorted(data.draw(st.lists(st.floats(t0, t0 + 20 * period), max_size=40)))
    begun: list[float] = []
    for now in moments:
        slot = due_slot(e, now, begun[-1] if begun else None)
        if slot is not None:
            assert slot <= now and now - slot <= period / 2
            begun.append(slot)
    assert len(begun) == len(set(begun))
    assert begun == sorted(begun)


def test_a_monitor_down_for_long_starts_at_the_next_slot():
    e = Every(300)
    assert due_slot(e, 3000 + 10, 1200) == 3000  # within half a period: catch up
    assert due_slot(e, 3000 + 200, 1200) is None  # too late: wait for 3300


@pytest.mark.parametrize(
    ("every", "cron", "message"),
    [
        (None, None, "give one of --every"),
        ("5m", "*/5 * * * *", "give one of --every"),
        ("5 minutes", None, "--every"),
        ("0s", None, "at least 1s"),
        (None, "every five minutes", "is not a cron expression"),
    ],
)
def test_bad_schedules_say_what_to_write(every, cron, message):
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(every, cron)
