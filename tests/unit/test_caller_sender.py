"""The caller's sender: 100 ms pushes paced a lead ahead of real time, and a clip asked to
start at a moment starts on that 10 ms, padded into its first push (a barge-in lands where
the scenario says). The audio source here only keeps what it is given (no server)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from harness.call.caller import FRAME_SAMPLES, SEND_LEAD_S, SEND_SAMPLES, _Sender, _Timeline
from harness.plan.callplan import CALL_RATE


class KeepingSource:
    def __init__(self) -> None:
        self.pushes: list[np.ndarray] = []

    async def capture_frame(self, frame) -> None:
        self.pushes.append(np.frombuffer(bytes(frame.data), dtype=np.int16).copy())


async def play(at_offset: float | None, seconds: float = 0.5):
    source = KeepingSource()
    timeline = _Timeline()
    sender = _Sender(source, timeline)  # type: ignore[arg-type]
    t0 = time.monotonic()
    task = asyncio.create_task(sender.run())
    clip = np.full(FRAME_SAMPLES * 7, 1000, dtype=np.int16)  # 70 ms
    pb = sender.play(clip, None if at_offset is None else t0 + at_offset)
    start = await asyncio.wait_for(pb.started, 5)
    end = await asyncio.wait_for(pb.finished, 5)
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return t0, start, end, source, sender, timeline


@pytest.mark.parametrize("offset", [0.237, 0.31, 0.5])
def test_a_clip_starts_on_the_10_ms_it_was_asked_to(offset: float):
    t0, start, end, source, sender, timeline = asyncio.run(play(offset))
    assert abs(start - (t0 + offset)) <= 0.0051 + 0.002
    assert all(len(p) == SEND_SAMPLES for p in source.pushes)
    # what was sent: silence up to the start, then the clip, whole, then silence
    sent = np.concatenate(source.pushes)
    loud = np.flatnonzero(sent)
    assert len(loud) == FRAME_SAMPLES * 7 and loud[-1] - loud[0] == len(loud) - 1
    assert end >= start + 0.07
    # the recording puts it where it was heard
    rec = sender.channel.render(timeline.sample(start) + CALL_RATE)
    first = int(np.flatnonzero(rec)[0])
    assert abs(first - timeline.sample(start)) <= FRAME_SAMPLES


def test_without_a_moment_a_clip_starts_at_the_next_push():
    t0, start, *_ = asyncio.run(play(None))
    assert start - t0 < 0.05  # the first push, sent at once (the lead is not yet filled)


def test_pushes_stay_a_lead_ahead_of_real_time():
    async def run_for(seconds: float) -> tuple[int, float]:
        source = KeepingSource()
        sender = _Sender(source, _Timeline())  # type: ignore[arg-type]
        task = asyncio.create_task(sender.run())
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return len(source.pushes), seconds

    pushes, seconds = asyncio.run(run_for(0.5))
    sent_s = pushes * SEND_SAMPLES / CALL_RATE
    assert seconds + SEND_LEAD_S - 0.15 <= sent_s <= seconds + SEND_LEAD_S + 0.15
