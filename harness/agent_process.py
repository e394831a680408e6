"""An agent worker started for a session (``--agent-cmd``), as a real subprocess."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from harness.errors import InfrastructureError

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
        self.cwd = cwd
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with open(self.log_path, "ab") as log:
            start_offset = log.seek(0, os.SEEK_END)
            try:
                self._proc = subprocess.Popen(
                    self.cmd,
                    env=env,
                    cwd=self.cwd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                raise InfrastructureError(
                    f"cannot start agent command {shlex.join(self.cmd)!r}: {exc}"
                ) from exc
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise InfrastructureError(
                    f"agent command {shlex.join(self.cmd)!r} exited with code "
                    f"{self._proc.returncode} before registering; log {self.log_path}:\n"
                    + self.log_tail()
                )
            if self._wrote_since(start_offset, READY_MARKER):
                return
            time.sleep(0.1)
        self.stop()
        raise InfrastructureError(
            f"agent command {shlex.join(self.cmd)!r} did not register a worker within "
            f"{self.ready_timeout:.0f}s; log {self.log_path}:\n" + self.log_tail()
        )

    def _wrote_since(self, offset: int, marker: str) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return marker.encode() in log.read()

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """Kill the whole worker at once, as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)

    def __enter__(self) -> AgentProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
