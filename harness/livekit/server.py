"""Where the LiveKit server comes from: a remote one named by LIVEKIT_URL, or a local
``livekit-server --dev`` on free loopback ports that we start and stop ourselves."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.errors import InfrastructureError
from harness.core.process import ManagedProcess, log_tail

LIVEKIT_VERSION = "v1.13.5"
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ServerInfo:
    """How to reach a LiveKit server. The secret never appears in ``repr``."""

    url: str
    api_key: str
    api_secret: str = field(repr=False)
    local: bool = False

    @property
    def http_url(self) -> str:
        return self.url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)

    def env(self) -> dict[str, str]:
        """Environment for an agent worker process pointed at this server."""
        return {
            "LIVEKIT_URL": self.url,
            "LIVEKIT_API_KEY": self.api_key,
            "LIVEKIT_API_SECRET": self.api_secret,
        }


def remote_from_env(url: str | None = None) -> ServerInfo | None:
    """The server named by ``url`` or LIVEKIT_URL, with LIVEKIT_API_KEY/SECRET; None if unset."""
    url = url or os.environ.get("LIVEKIT_URL")
    if not url:
        return None
    key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
    if not key or not secret:
        raise InfrastructureError(
            f"LiveKit server {url} was given but LIVEKIT_API_KEY and LIVEKIT_API_SECRET are "
            "not both set: export them, or unset LIVEKIT_URL to start a local dev server"
        )
    return ServerInfo(url=url, api_key=key, api_secret=secret)


def find_server_binary() -> Path:
    """LIVEKIT_SERVER_BIN, else the one `make tools` built, else ``livekit-server`` on PATH."""
    env = os.environ.get("LIVEKIT_SERVER_BIN")
    if env:
        path = Path(env)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise InfrastructureError(f"LIVEKIT_SERVER_BIN={env} is not an executable file")
        return path
    for candidate in (
        Path.cwd() / ".tools/bin/livekit-server",
        _REPO_ROOT / ".tools/bin/livekit-server",
    ):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("livekit-server")
    if on_path:
        return Path(on_path)
    raise InfrastructureError(
        "livekit-server not found: run `make tools` (builds it into .tools/bin), "
        "set LIVEKIT_SERVER_BIN to a livekit-server binary, or set LIVEKIT_URL, "
        "LIVEKIT_API_KEY and LIVEKIT_API_SECRET to use a running server"
    )


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config_body(port: int, rtc_udp: int, stun: int, key: str, secret: str) -> str:
    # Loopback only: bind and advertise 127.0.0.1, no STUN / external IP discovery, a
    # single UDP port for media. ICE over TCP is off (tcp_port 0): livekit-server opens
    # its TCP mux on every interface, whatever bind_addresses says, and loopback UDP
    # needs no fallback. The server hands its STUN servers to every client, and without
    # any configured it hands out public ones, which clients then look up in DNS: name a
    # loopback port where nothing answers instead.
    return "\n".join(
        [
            f"port: {port}",
            "bind_addresses: ['127.0.0.1']",
            "rtc:",
            "  tcp_port: 0",
            f"  udp_port: {rtc_udp}",
            "  use_external_ip: false",
            f"  stun_servers: ['127.0.0.1:{stun}']",
            "  enable_loopback_candidate: true",
            "  node_ip: 127.0.0.1",
            "  ips:",
            "    includes: ['127.0.0.1/32']",
            "keys:",
            f"  {key}: {secret}",
            "",
        ]
    )


def wait_until_answers(http_url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Poll the server's HTTP root until it answers 200, the process dies, or ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise InfrastructureError(f"livekit-server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(http_url + "/", timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise InfrastructureError(
        f"no LiveKit server answered at {http_url} within {timeout:.0f}s ({last})"
    )


class LocalServer:
    """A ``livekit-server --dev`` on free loopback ports.

    >>> with LocalServer() as server:
    ...     print(server.info.url)
    """

    def __init__(
        self,
        binary: Path | None = None,
        *,
        log_path: Path | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        self._binary = binary
        self._log_path = log_path
        self._start_timeout = start_timeout
        self._proc: ManagedProcess | None = None
        self.info: ServerInfo | None = None

    def start(self) -> ServerInfo:
        binary = self._binary or find_server_binary()
        key, secret = "harness", secrets.token_hex(24)
        for attempt in range(3):
            port, udp, stun = (
                _free_port(socket.SOCK_STREAM),
                _free_port(socket.SOCK_DGRAM),
                _free_port(socket.SOCK_DGRAM),
            )
            if self._log_path is None:
                fd, name = tempfile.mkstemp(prefix="livekit-server-", suffix=".log")
                os.close(fd)
                self._log_path = Path(name)
            env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
            env["LIVEKIT_CONFIG"] = _config_body(port, udp, stun, key, secret)
            self._proc = ManagedProcess(
                [str(binary), "--dev", "--bind", "127.0.0.1", "--node-ip", "127.0.0.1"],
                env=env,
                log_path=self._log_path,
                what="livekit-server",
            )
            self._proc.spawn()
            info = ServerInfo(f"ws://127.0.0.1:{port}", key, secret, local=True)
            try:
                wait_until_answers(info.http_url, self._start_timeout, self._proc.process)
            except InfrastructureError as exc:
                self.stop()
                if attempt == 2:
                    raise InfrastructureError(
                        f"{exc}; log: {self._log_path}\n{self.log_tail()}"
                    ) from None
                continue
            self.info = info
            return info
        raise AssertionError("unreachable")

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self._log_path, lines) if self._log_path is not None else ""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stop(timeout)

    def __enter__(self) -> ServerInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def livekit_server(url: str | None = None, *, log_path: Path | None = None):
    """Yield a reachable server: the remote one if ``url``/LIVEKIT_URL is set, else a local one."""
    remote = remote_from_env(url)
    if remote is not None:
        yield remote
        return
    server = LocalServer(log_path=log_path)
    try:
        yield server.start()
    finally:
        server.stop()
