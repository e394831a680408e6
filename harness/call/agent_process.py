"""An agent worker started for a session (``--agent-cmd``), as a real subprocess."""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from harness.core.errors import InfrastructureError
from harness.core.process import ManagedProcess

# livekit-agents logs this once the worker has registered with the server.
READY_MARKER = "registered worker"


class AgentProcess:
    """Start ``cmd`` with the server's credentials in its environment; wait until the worker
    has registered; stop the whole process group at the end.

    The log is appended to, so the ready marker counts only in what this process wrote:
    an earlier process's "registered worker" in the same file must not pass for this one's."""

    def __init__(
        self,
        cmd: str | list[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        parts = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        # `{python}` is the interpreter running the harness, so ini settings need no PATH.
        self.cmd = [p.replace("{python}", sys.executable) for p in parts]
        self.env = dict(env)
        self.log_path = log_path
        self.ready_timeout = ready_timeout
        self._proc = ManagedProcess(
            self.cmd,
            env={**os.environ, **self.env},
            log_path=log_path,
            cwd=cwd,
            what="agent command",
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def start(self) -> None:
        start_offset = self._proc.spawn()
        cmd = self._proc.command
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc.stop()
                raise InfrastructureError(
                    f"agent command {cmd!r} exited with code {code} before registering; log "
                    f"{self.log_path}:\n" + self.log_tail()
                )
            if self._proc.wrote_since(start_offset, READY_MARKER):
                return
            time.sleep(0.1)
        self.stop()
        raise InfrastructureError(
            f"agent command {cmd!r} did not register a worker within "
            f"{self.ready_timeout:.0f}s; log {self.log_path}:\n" + self.log_tail()
        )

    def log_tail(self, lines: int = 20) -> str:
        return self._proc.log_tail(lines)

    def kill(self) -> None:
        """Kill the whole worker at once, as a crash would."""
        self._proc.kill()

    def stop(self, timeout: float = 10.0) -> None:
        self._proc.stop(timeout)

    def __enter__(self) -> AgentProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
