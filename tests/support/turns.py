"""Waiting on a real call's progress instead of sleeping a guessed time."""

from __future__ import annotations

import threading


class TurnReached:
    """An ``on_turn`` hook the test thread can wait on: set once a call starts turn ``n``."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._event = threading.Event()

    def __call__(self, scenario_id: str, repeat: int, turn: int) -> None:
        if turn >= self.n:
            self._event.set()

    def wait(self, timeout: float) -> None:
        assert self._event.wait(timeout), f"no call reached turn {self.n} within {timeout:.0f}s"
