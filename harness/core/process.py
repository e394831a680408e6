"""A subprocess the harness owns: its own process group, its output appended to a log, and
a stop that leaves nothing behind (SIGTERM to the group, then SIGKILL).

The agent worker and the local LiveKit server are both one of these; each adds only how it
knows its process is ready.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from harness.core.errors import InfrastructureError

__all__ = ["ManagedProcess", "log_tail"]


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log, for an error message; empty when there is none."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class ManagedProcess:
    """``argv`` started in a new session with ``env`` (the whole environment), stdin closed
    and stdout and stderr appended to ``log_path``."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
        what: str = "command",
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.what = what
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def spawn(self) -> int:
        """Start the process; returns the log's size before it wrote anything, so a ready
        marker is looked for only in what this process wrote (the log may be shared)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        offset = self._log.seek(0, os.SEEK_END)
        try:
            self._proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            self._close_log()
            raise InfrastructureError(f"cannot start {self.what} {self.command!r}: {exc}") from exc
        return offset

    def poll(self) -> int | None:
        """The exit code, or None while it runs (or was never started)."""
        return self._proc.poll() if self._proc is not None else None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._proc

    def wrote_since(self, offset: int, marker: str) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return marker.encode() in log.read()

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)

    def kill(self, timeout: float = 10.0) -> None:
        """Kill the whole group at once, as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the group, SIGKILL after ``timeout``; closes the log."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
