"""Session settings, kept free of heavy imports so the pytest plugin can validate them
at start-up."""

from __future__ import annotations

import ipaddress
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.call.rundir import RunDir

DEFAULT_COLLECTOR_HOST = "127.0.0.1"


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
    collector_host: str = DEFAULT_COLLECTOR_HOST  # where the trace receiver listens
    collector_port: int = 0  # 0: a free port
    trace_settle_s: float = 3.0
    worker: str | None = None  # a pytest-xdist worker id ("gw0"): it starts its own processes
    expect_workflow: bool | None = None
    """Whether every call has an after-call workflow to wait for and to score: None learns
    it (once a call of the session has shown workflow spans, every later call expects
    them); a scenario with ``after_call`` expectations always does."""

    def __post_init__(self) -> None:
        if self.calls < 1:
            raise ValueError(f"calls={self.calls!r}: must be at least 1")
        if self.concurrency < 1:
            raise ValueError(f"concurrency={self.concurrency!r}: must be at least 1")
        if not 0 <= self.collector_port <= 65535:
            raise ValueError(f"collector_port={self.collector_port!r}: must be 0-65535")

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
        return RunDir(self.run_dir).log(name, self.worker)


def worker_share(concurrency: int, workers: int) -> int:
    """One pytest-xdist worker's share of the session's ``--concurrency``: the session as
    a whole runs up to ``concurrency`` calls at once, whatever ``-n`` is."""
    return max(1, -(-concurrency // max(1, workers)))


_HOST = re.compile(r"[A-Za-z0-9._-]+", re.ASCII)
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
_ADDRESS_FORMS = "write HOST:PORT, :PORT or PORT (e.g. 127.0.0.1:4318, :4318, [::1]:4318)"


def parse_collector_address(value: str) -> tuple[str, int]:
    """``(host, port)`` from ``HOST:PORT``, ``:PORT``, ``PORT`` or ``[IPV6]:PORT``; the host
    defaults to 127.0.0.1 and port 0 means a free one. Raises only ValueError, naming
    ``value``."""
    text = value.strip()
    host, port = DEFAULT_COLLECTOR_HOST, text
    if text.startswith("["):
        inside, sep, port = text[1:].partition("]:")
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"{value!r} is not a listen address: {_ADDRESS_FORMS}")
        host = inside
    elif ":" in text:
        host, _, port = text.rpartition(":")
        if ":" in host:
            raise ValueError(f"{value!r}: write an IPv6 address in brackets, e.g. [::1]:4318")
        host = host or DEFAULT_COLLECTOR_HOST
        if not _HOST.fullmatch(host):
            raise ValueError(f"{value!r} is not a listen address: {_ADDRESS_FORMS}")
    if not _PORT.fullmatch(port):
        raise ValueError(f"{value!r} is not a listen address: {_ADDRESS_FORMS}")
    if int(port) > 65535:
        raise ValueError(f"{value!r}: port {int(port)} is above 65535")
    return host, int(port)


def collector_conflict(port: int, workers: int) -> str | None:
    """Why a fixed collector port cannot serve ``workers`` pytest-xdist workers (each runs
    its own collector, and only one can listen on the port), or None."""
    if port == 0 or workers <= 1:
        return None
    return (
        f"--collector fixes port {port}, but each of the {workers} pytest-xdist workers "
        "runs its own trace collector: run with -n 0 or -n 1, or drop --collector"
    )


def remote_server_source(
    cli_url: str | None, ini_url: str | None, environ: Mapping[str, str]
) -> str | None:
    """What names a LiveKit server the harness does not start: ``--livekit-url``, ini
    ``harness_livekit_url`` or the ``LIVEKIT_URL`` environment variable; None if none."""
    if cli_url:
        return "--livekit-url"
    if ini_url:
        return "harness_livekit_url"
    if environ.get("LIVEKIT_URL"):
        return "LIVEKIT_URL"
    return None


def agent_command(
    cli_cmd: str | None, ini_cmd: str | None, remote: str | None
) -> tuple[str | None, str | None]:
    """The agent command to start and a notice for the user, from ``--agent-cmd``
    (``cli_cmd``), ini ``harness_agent_cmd`` (``ini_cmd``) and what named a remote server
    (``remote``, see :func:`remote_server_source`; None for a local one).

    The command line always wins, and an empty ``--agent-cmd ""`` starts none. With a
    remote server the ini's command is not started: it is written for the local setup,
    and the remote server's agents are usually deployed already.
    """
    if cli_cmd is not None:
        return (cli_cmd or None), None
    if not ini_cmd:
        return None, None
    if remote is None:
        return ini_cmd, None
    return None, (
        f"harness: not starting the ini's harness_agent_cmd: a remote LiveKit server was "
        f"given ({remote}); pass --agent-cmd to start one"
    )
