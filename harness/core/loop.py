"""An asyncio event loop in a thread of its own, for code that is not async itself (the
CLI, pytest's synchronous hooks): coroutines are submitted to it from any thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from harness.core.errors import InfrastructureError

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """Start a daemon thread running a new event loop. ``setup`` (a coroutine function) runs
    on the loop first; the constructor waits for it at most ``start_timeout`` seconds and
    raises its error. ``teardown`` runs on the loop when it stops."""

    def __init__(
        self,
        name: str,
        *,
        setup: Callable[[], Awaitable[Any]] | None = None,
        teardown: Callable[[], Awaitable[Any]] | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self._setup = setup
        self._teardown = teardown
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        if not self._started.wait(start_timeout):
            raise InfrastructureError(f"{name} did not start within {start_timeout:g}s")
        if self._error is not None:
            self._thread.join(1.0)
            if isinstance(self._error, InfrastructureError):
                raise self._error
            raise InfrastructureError(f"{name} failed to start: {self._error}") from self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        if self._setup is not None:
            try:
                self.loop.run_until_complete(self._setup())
            except BaseException as e:
                self._error = e
                self._started.set()
                self.loop.close()
                return
        self._started.set()
        try:
            self.loop.run_forever()
        finally:
            if self._teardown is not None:
                self.loop.run_until_complete(self._teardown())
            self.loop.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (at most ``timeout`` seconds)."""
        return self.submit(coro).result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
