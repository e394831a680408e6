"""The whole reference deployment with one command, and how its services are run.

    .venv/bin/python -m examples.clinic.deploy start      # backend + workflow + agent
    .venv/bin/python -m examples.clinic.deploy services   # backend + workflow only

``start`` runs the background agent (:mod:`.backend`) and the after-call workflow
(:mod:`.after_call`) as child processes on free loopback ports, waits until each answers
``/healthz``, then runs the conversational agent (``python -m examples.clinic.agent start``,
or ``CLINIC_AGENT_CMD``) with ``CLINIC_BACKEND_URL``, ``CLINIC_WORKFLOW_URL`` and
``CLINIC_DB`` added to the environment it passes on (``OTEL_*``, ``LIVEKIT_*`` and the
fault knobs go through unchanged). The agent's output goes to this process's stdout, so
the harness sees its ``registered worker`` line; the services log to files in the
deployment directory (``CLINIC_DEPLOY_DIR``, else a new temporary one), next to the
database.

Every child stays in this process's process group: killing the group kills everything.
On SIGTERM or SIGINT the agent is stopped first (so calls in progress can still book and
queue their after-call jobs), then the services; whatever has not exited after the
timeout is killed. A second signal kills at once. A signal sent to the whole group (as
the harness and Ctrl+C do) already reached the agent, so it is not sent again (the
agent's second signal means "exit now"); the agent is given time to drain instead.

A service that dies is logged loudly and restarted on the same port (at most
:data:`MAX_RESTARTS` times a minute); a deliberate workflow crash
(``CLINIC_WORKFLOW_CRASH``) therefore costs one job, not the rest of the run. If the
agent dies, everything stops and this command exits non-zero.

Services run under the supervisor (``CLINIC_SUPERVISOR_PID`` set) ignore SIGINT and
SIGTERM, stop on :data:`STOP_SIGNAL`, and stop by themselves when the supervisor is gone.

=============================  ====================================================
environment                    meaning
=============================  ====================================================
``CLINIC_DB``                  the SQLite file both services share
``CLINIC_BACKEND_PORT``        the background agent's port (0: a free one)
``CLINIC_WORKFLOW_PORT``       the after-call workflow's port (0: a free one)
``CLINIC_BACKEND_URL``         where the agent sends bookings (set by ``start``)
``CLINIC_WORKFLOW_URL``        where the agent queues after-call jobs (set by ``start``)
``CLINIC_NOW``                 "now" in the clinic's week, e.g. ``wednesday 12:00``
``CLINIC_CALENDAR``            ``per_call`` (default) or ``shared``
``CLINIC_AGENT_CMD``           the agent command (``{python}``: this interpreter)
``CLINIC_DEPLOY_DIR``          where ``start`` keeps the database and the logs
``CLINIC_READY_TIMEOUT_S``     how long a service may take to answer (default 20)
``CLINIC_STOP_TIMEOUT_S``      how long each stop may take before a kill (default 10)
=============================  ====================================================

The fault knobs (``CLINIC_SKIP_APPROVAL``, ``CLINIC_TOOL_FAILURE_RATE``,
``CLINIC_WORKFLOW_CRASH``, ... and ``CLINIC_SEED``) are listed in
:mod:`examples.clinic.faults`; every service reads them from the same environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .faults import FaultConfigError

log = logging.getLogger("clinic.deploy")
C = TypeVar("C")

ROOT = Path(__file__).resolve().parents[2]

ENV_DB = "CLINIC_DB"
ENV_BACKEND_PORT = "CLINIC_BACKEND_PORT"
ENV_WORKFLOW_PORT = "CLINIC_WORKFLOW_PORT"
ENV_BACKEND_URL = "CLINIC_BACKEND_URL"
ENV_WORKFLOW_URL = "CLINIC_WORKFLOW_URL"
ENV_NOW = "CLINIC_NOW"
ENV_CALENDAR = "CLINIC_CALENDAR"
ENV_WORKFLOW_CRASH = "CLINIC_WORKFLOW_CRASH"
ENV_AGENT_CMD = "CLINIC_AGENT_CMD"
ENV_DEPLOY_DIR = "CLINIC_DEPLOY_DIR"
ENV_READY_TIMEOUT = "CLINIC_READY_TIMEOUT_S"
ENV_STOP_TIMEOUT = "CLINIC_STOP_TIMEOUT_S"
ENV_SUPERVISOR_PID = "CLINIC_SUPERVISOR_PID"

DEFAULT_AGENT_CMD = "{python} -m examples.clinic.agent start"
STOP_SIGNAL = signal.SIGUSR1
"""What the supervisor sends a service to stop it."""
MAX_RESTARTS = 10
RESTART_WINDOW_S = 60.0
"""A service that dies more than :data:`MAX_RESTARTS` times within this many seconds is
given up on (and the deployment stops): that is a crash loop, not a crash per call."""
LISTENING = re.compile(r"^(?P<service>[\w.-]+) listening on (?P<url>http://\S+)\s*$", re.M)
"""The line a service prints once it serves (see :func:`serve`)."""

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_SI_KERNEL = 0x80  # si_code of a signal the terminal sent to its foreground group


# --- the environment ----------------------------------------------------------------------


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FaultConfigError(f"{name} must be an integer, got {env[name]!r}") from None
    if minimum is not None and value < minimum:
        raise FaultConfigError(f"{name} must be >= {minimum}, got {env[name]!r}")
    return value


def env_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise FaultConfigError(f"{name} must be a positive number of seconds, got {env[name]!r}")
    return value


def db_path(env: Mapping[str, str], service: str) -> Path:
    """``CLINIC_DB``, else a new temporary file for this process (logged: a service run
    alone keeps its data to itself; ``deploy start`` gives both services one file)."""
    raw = env.get(ENV_DB, "").strip()
    if raw:
        return Path(raw)
    fd, name = tempfile.mkstemp(prefix=f"{service}-", suffix=".db")
    os.close(fd)
    log.warning("%s is not set; using %s", ENV_DB, name)
    return Path(name)


# --- running one service ------------------------------------------------------------------


async def serve(app: Any, *, service: str, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve ``app`` until stopped; print ``<service> listening on <url>`` once it serves.

    Alone, SIGINT and SIGTERM stop it. Under the supervisor (``CLINIC_SUPERVISOR_PID``)
    only :data:`STOP_SIGNAL` does, or the supervisor going away.
    """
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise SystemExit(f"{service}: cannot listen on {host}:{port}: {e.strerror or e}") from None
    bound = runner.addresses[0][1]
    print(f"{service} listening on http://{host}:{bound}", flush=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(STOP_SIGNAL, stop.set)
    supervisor = os.environ.get(ENV_SUPERVISOR_PID, "").strip()
    watch: asyncio.Task[None] | None = None
    if supervisor.isdigit():
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, _left_to_supervisor, service, sig)
        watch = asyncio.create_task(_watch_supervisor(int(supervisor), stop, service))
    else:
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("%s stopping", service)
    finally:
        if watch is not None:
            watch.cancel()
        await runner.cleanup()


def _left_to_supervisor(service: str, sig: int) -> None:
    log.info(
        "%s: %s ignored; the supervisor stops the services after the agent",
        service,
        signal.Signals(sig).name,
    )


async def _watch_supervisor(pid: int, stop: asyncio.Event, service: str) -> None:
    while not stop.is_set():
        if os.getppid() != pid:
            log.warning("%s: the supervisor (pid %d) is gone; stopping", service, pid)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def run_service(app: Any, *, service: str, port: int) -> None:
    asyncio.run(serve(app, service=service, port=port))


def service_main(
    *,
    service: str,
    layer: str,
    port_env: str,
    load_config: Callable[[], C],
    create_app: Callable[[C], Any],
    describe: Callable[[C], str],
) -> None:
    """What ``python -m`` of each of the clinic's services does: logging, its configuration
    from the environment (a bad knob exits with a message naming it), tracing as ``layer``,
    then :func:`serve` on ``port_env``'s port until stopped, and a flush of the spans."""
    import harness_instrument as instrument

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config()
        port = env_int(os.environ, port_env, 0, minimum=0)
    except FaultConfigError as e:
        raise SystemExit(f"{service}: {e}") from None
    instrument.init_tracing(service, layer=layer, livekit=False)
    log.info("%s: %s", service, describe(config))
    try:
        run_service(create_app(config), service=service, port=port)
    finally:
        instrument.shutdown_tracing(timeout_s=3.0)


# --- the supervisor -----------------------------------------------------------------------


class DeployError(Exception):
    """A child could not be started or kept running; the message names it and its log."""


@dataclass
class Child:
    name: str
    cmd: list[str]
    env: dict[str, str]
    log_path: Path | None = None  # None: output to our stdout
    port_env: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    url: str | None = None
    restarts: list[float] = field(default_factory=list)  # monotonic times
    _log_offset: int = field(default=0, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid})"

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join("    " + line for line in text)

    def where(self) -> str:
        if self.log_path is None:
            return ""
        tail = self.log_tail()
        return f"; log {self.log_path}" + (f":\n{tail}" if tail else " (empty)")


def _unblock_signals() -> None:  # in the child, between fork and exec
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {*_SIGNALS, signal.SIGCHLD})


def _python_cmd(cmd: str) -> list[str]:
    return [p.replace("{python}", sys.executable) for p in shlex.split(cmd)]


class Supervisor:
    """Starts, watches and stops the deployment's processes; see the module docstring.

    Signals are blocked in this process and taken with ``sigtimedwait``, so a child's exit
    (SIGCHLD) or a stop request wakes the loop at once. Use from the main thread.
    """

    def __init__(
        self,
        directory: Path,
        *,
        env: Mapping[str, str] | None = None,
        agent_cmd: Sequence[str] | None = None,
        ready_timeout: float = 20.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.directory = directory
        self.base_env = dict(os.environ if env is None else env)
        self.agent_cmd = list(agent_cmd) if agent_cmd is not None else None
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.db = Path(self.base_env.get(ENV_DB) or directory / "clinic.db").resolve()
        self.services: list[Child] = []
        self.agent: Child | None = None
        self._hurry = False
        self._last_signal: Any = None

    # --- starting ---

    def _env(self) -> dict[str, str]:
        env = dict(self.base_env)
        path = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
        env[ENV_DB] = str(self.db)
        env.pop(ENV_SUPERVISOR_PID, None)
        return env

    def start_services(self) -> None:
        from . import store

        self.directory.mkdir(parents=True, exist_ok=True)
        store.init(self.db)
        py = sys.executable
        for name, module, port_env in (
            ("clinic-backend", "examples.clinic.backend", ENV_BACKEND_PORT),
            ("clinic-workflow", "examples.clinic.after_call", ENV_WORKFLOW_PORT),
        ):
            env = self._env()
            env[ENV_SUPERVISOR_PID] = str(os.getpid())
            env.setdefault(port_env, "0")
            child = Child(
                name,
                [py, "-m", module],
                env,
                log_path=self.directory / f"{name}.log",
                port_env=port_env,
            )
            self.services.append(child)
            self._spawn(child)
        for child in self.services:  # both start at once; then each must answer
            self._wait_ready(child)
        log.info(
            "database %s; %s",
            self.db,
            ", ".join(f"{s.name} {s.url} (pid {s.pid}, log {s.log_path})" for s in self.services),
        )

    def service_env(self) -> dict[str, str]:
        """What the agent gets: the environment plus the services' URLs and the database."""
        env = self._env()
        urls = {s.name: s.url for s in self.services}
        env[ENV_BACKEND_URL] = urls.get("clinic-backend") or ""
        env[ENV_WORKFLOW_URL] = urls.get("clinic-workflow") or ""
        return env

    def start_agent(self) -> None:
        cmd = self.agent_cmd or _python_cmd(DEFAULT_AGENT_CMD)
        self.agent = Child("clinic-agent", cmd, self.service_env())
        self._spawn(self.agent)
        log.info("agent %s: %s", self.agent.describe(), shlex.join(cmd))

    def _spawn(self, child: Child) -> None:
        out: Any
        if child.log_path is not None:
            child.log_path.parent.mkdir(parents=True, exist_ok=True)
            child._log_offset = child.log_path.stat().st_size if child.log_path.exists() else 0
            out = open(child.log_path, "ab")
        else:
            sys.stdout.flush()
            out = None  # our stdout
        try:
            child.proc = subprocess.Popen(
                child.cmd,
                env=child.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_unblock_signals,  # signals are blocked here, not there
            )
        except OSError as e:
            raise DeployError(f"cannot start {child.name} ({shlex.join(child.cmd)}): {e}") from e
        finally:
            if out is not None:
                out.close()

    def _wait_ready(self, child: Child) -> None:
        """Until the child announced its URL and answers ``/healthz``."""
        deadline = time.monotonic() + self.ready_timeout
        assert child.proc is not None and child.log_path is not None
        while True:
            if child.proc.poll() is not None:
                raise DeployError(
                    f"{child.name} exited with code {child.proc.returncode} before it was "
                    f"ready{child.where()}"
                )
            if child.url is None:  # a restart keeps its URL: it comes back on the same port
                self._read_url(child)
            if child.url is not None and _healthy(child.url):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill(child)
                raise DeployError(
                    f"{child.name} did not answer {child.url or '(no URL announced yet)'}"
                    f"/healthz within {self.ready_timeout:g}s{child.where()}"
                )
            if self._take_signal(min(0.05, remaining)) in _SIGNALS:
                self._kill(child)
                raise DeployError(f"stopped while waiting for {child.name} to be ready")

    def _read_url(self, child: Child) -> None:
        assert child.log_path is not None
        with open(child.log_path, "rb") as f:
            f.seek(child._log_offset)
            text = f.read().decode("utf-8", "replace")
        m = LISTENING.search(text)
        if m is not None and m.group("service") == child.name:
            child.url = m.group("url")
            if child.port_env is not None:
                # a restart comes back on the same port: the agent keeps its URL
                child.env[child.port_env] = child.url.rsplit(":", 1)[1]

    # --- watching ---

    def _take_signal(self, timeout: float) -> int | None:
        """The next stop signal or SIGCHLD within ``timeout`` (None if none came)."""
        info = signal.sigtimedwait({*_SIGNALS, signal.SIGCHLD}, max(0.0, timeout))
        if info is None:
            return None
        if info.si_signo in _SIGNALS:
            self._last_signal = info
        return info.si_signo

    def supervise(self) -> int:
        """Until a stop signal (0) or the agent's death (non-zero)."""
        while True:
            sig = self._take_signal(1.0)
            if sig in _SIGNALS:
                info = self._last_signal
                log.info("%s: stopping the deployment", signal.Signals(info.si_signo).name)
                self.stop(agent_signalled=_sent_to_group(info))
                return 0
            if self.agent is not None and not self.agent.running():
                assert self.agent.proc is not None
                code = self.agent.proc.returncode
                log.error(
                    "!!! the agent %s exited unexpectedly with code %s; stopping the services",
                    self.agent.describe(),
                    code,
                )
                self.stop()
                return code if code else 1
            for svc in self.services:
                if not svc.running():
                    self._restart(svc)

    def _restart(self, svc: Child) -> None:
        assert svc.proc is not None
        code = svc.proc.returncode
        log.error("!!! %s exited unexpectedly with code %s%s", svc.describe(), code, svc.where())
        now = time.monotonic()
        recent = [t for t in svc.restarts if now - t < RESTART_WINDOW_S]
        if len(recent) >= MAX_RESTARTS:
            raise DeployError(
                f"{svc.name} died {len(recent) + 1} times within {RESTART_WINDOW_S:g}s; giving up"
            )
        svc.restarts.append(now)
        log.error("!!! restarting %s on %s (restart %d)", svc.name, svc.url, len(svc.restarts))
        self._spawn(svc)
        self._wait_ready(svc)
        log.info("%s is back: %s", svc.describe(), svc.url)

    # --- stopping ---

    def stop(self, *, agent_signalled: bool = False) -> None:
        """The agent first, then the services; each killed if it outlives the timeout."""
        agent = self.agent
        if agent is not None and agent.running():
            if agent_signalled:
                # it got the same signal from the group: let it drain, and signal it only
                # if it has not exited by then (a second signal makes it exit at once)
                log.info(
                    "waiting up to %gs for the agent %s, which got the signal too",
                    self.stop_timeout,
                    agent.describe(),
                )
                if not self._wait_exit([agent], self.stop_timeout):
                    log.warning("the agent is still running; sending it SIGTERM")
                    self._signal(agent, signal.SIGTERM)
            else:
                log.info("stopping the agent %s (SIGTERM)", agent.describe())
                self._signal(agent, signal.SIGTERM)
            if not self._wait_exit([agent], self.stop_timeout):
                log.warning("the agent %s did not stop in time; killing it", agent.describe())
            self._kill(agent)
            log.info("the agent exited with code %s", agent.proc.returncode if agent.proc else None)
        running = [s for s in self.services if s.running()]
        if running:
            log.info("stopping %s", ", ".join(s.describe() for s in running))
        for svc in running:
            self._signal(svc, STOP_SIGNAL)
        if not self._wait_exit(running, self.stop_timeout):
            late = ", ".join(s.describe() for s in running if s.running())
            log.warning("killing %s: not stopped in time", late)
        for svc in running:
            self._kill(svc)
        log.info("deployment stopped")

    def _wait_exit(self, children: Sequence[Child], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while any(ch.running() for ch in children):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._hurry:
                return False
            if self._take_signal(min(remaining, 0.5)) in _SIGNALS:
                log.warning("second signal: killing the deployment now")
                self._hurry = True
        return True

    def _signal(self, child: Child, sig: int) -> None:
        if child.running() and child.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(sig)

    def _kill(self, child: Child) -> None:
        if child.proc is None:
            return
        if child.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(5.0)


def _sent_to_group(info: Any) -> bool:
    """Whether a stop signal probably went to the whole process group: the terminal's
    Ctrl+C, or our parent (the harness stops its agent command with ``killpg``)."""
    return info.si_code == _SI_KERNEL or info.si_pid == os.getppid()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1.0) as resp:
            return resp.status == 200 and bool(json.loads(resp.read() or b"{}").get("ok"))
    except (OSError, ValueError, urllib.error.URLError):
        return False


# --- the command --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.clinic.deploy",
        description="Run the clinic's background agent, after-call workflow and agent.",
    )
    parser.add_argument(
        "command",
        choices=("start", "services"),
        help="start: the services and the agent; services: the two services only",
    )
    parser.add_argument("--dir", type=Path, help=f"database and logs (default ${ENV_DEPLOY_DIR})")
    parser.add_argument("--agent-cmd", help=f"the agent command (default ${ENV_AGENT_CMD})")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s clinic-deploy %(levelname)s %(message)s"
    )
    env = dict(os.environ)
    try:
        ready_timeout = env_seconds(env, ENV_READY_TIMEOUT, 20.0)
        stop_timeout = env_seconds(env, ENV_STOP_TIMEOUT, 10.0)
    except FaultConfigError as e:
        parser.error(str(e))
    directory = args.dir or Path(
        env.get(ENV_DEPLOY_DIR) or tempfile.mkdtemp(prefix="clinic-deploy-")
    )
    agent_cmd = None
    if args.command == "start":
        agent_cmd = _python_cmd(args.agent_cmd or env.get(ENV_AGENT_CMD) or DEFAULT_AGENT_CMD)
    sup = Supervisor(
        directory.resolve(),
        env=env,
        agent_cmd=agent_cmd,
        ready_timeout=ready_timeout,
        stop_timeout=stop_timeout,
    )
    signal.pthread_sigmask(signal.SIG_BLOCK, {*_SIGNALS, signal.SIGCHLD})
    try:
        sup.start_services()
        if agent_cmd is not None:
            sup.start_agent()
        else:
            svc = sup.service_env()
            print(f"export {ENV_BACKEND_URL}={svc[ENV_BACKEND_URL]}", flush=True)
            print(f"export {ENV_WORKFLOW_URL}={svc[ENV_WORKFLOW_URL]}", flush=True)
            print(f"export {ENV_DB}={svc[ENV_DB]}", flush=True)
        return sup.supervise()
    except DeployError as e:
        log.error("!!! %s", e)
        sup.stop()
        return 1
    except BaseException:
        sup.stop()
        raise


if __name__ == "__main__":
    sys.exit(main())
