"""Session settings, kept free of heavy imports so the pytest plugin can validate them
at start-up."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


@dataclass(frozen=True)
class SessionConfig:
    """Settings shared by every call of a session (command line > ini > defaults)."""

    livekit_url: str | None = None
    agent_name: str | None = None  # overrides each scenario's `agent`
    agent_cmd: str | None = None
    agent_env: dict[str, str] = field(default_factory=dict)
    calls: int = 1
    concurrency: int = 1
    artifacts: Path = Path(".harness/runs")
    run_id: str = field(default_factory=new_run_id)
    collect_traces: bool = True
    trace_settle_s: float = 3.0
    worker: str | None = None  # a pytest-xdist worker id ("gw0"): it starts its own processes

    def __post_init__(self) -> None:
        if self.calls < 1:
            raise ValueError(f"calls={self.calls!r}: must be at least 1")
        if self.concurrency < 1:
            raise ValueError(f"concurrency={self.concurrency!r}: must be at least 1")

    @property
    def run_dir(self) -> Path:
        return self.artifacts / self.run_id

    def for_xdist_worker(self, worker: str, workers: int, run_id: str) -> SessionConfig:
        """This session as one of ``workers`` pytest-xdist workers: the controller's run id,
        logs of its own, and its share of the session's concurrency."""
        share = worker_share(self.concurrency, workers)
        return replace(self, run_id=run_id, worker=worker, concurrency=share)

    def log_path(self, name: str) -> Path:
        """Where a process this session starts writes its log: ``<run dir>/<name>.log``, or
        ``<name>.gw0.log`` for a pytest-xdist worker, whose siblings share the run dir."""
        suffix = f".{self.worker}" if self.worker else ""
        return self.run_dir / f"{name}{suffix}.log"


def worker_share(concurrency: int, workers: int) -> int:
    """One pytest-xdist worker's share of the session's ``--concurrency``: the session as
    a whole runs up to ``concurrency`` calls at once, whatever ``-n`` is."""
    return max(1, -(-concurrency // max(1, workers)))
