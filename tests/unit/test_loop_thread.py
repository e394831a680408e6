"""The one event-loop thread: runs coroutines for synchronous code, reports a failed setup,
tears down on stop, and never hangs."""

from __future__ import annotations

import asyncio
import threading

import pytest

from harness.core.errors import InfrastructureError
from harness.core.loop import LoopThread


def test_runs_coroutines_from_another_thread_and_tears_down():
    events: list[str] = []

    async def setup() -> None:
        events.append("setup")

    async def teardown() -> None:
        events.append("teardown")

    lt = LoopThread("test-loop", setup=setup, teardown=teardown)

    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    assert lt.run(where(), timeout=5) == "test-loop"
    lt.stop()
    assert events == ["setup", "teardown"] and not lt.alive
    lt.stop()  # twice is fine


def test_a_failed_setup_is_an_infrastructure_error_naming_the_thread():
    async def setup() -> None:
        raise OSError("address in use")

    with pytest.raises(InfrastructureError, match="test-loop failed to start: address in use"):
        LoopThread("test-loop", setup=setup)


def test_a_setup_that_never_ends_is_a_timeout_not_a_hang():
    async def setup() -> None:
        await asyncio.Event().wait()

    with pytest.raises(InfrastructureError, match=r"did not start within 0\.2s"):
        LoopThread("test-loop", setup=setup, start_timeout=0.2)
