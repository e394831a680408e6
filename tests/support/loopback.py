"""What a test needs to prove that traffic stays on loopback: the sockets that listen, and
every packet on every interface while something runs (``ss`` and ``tcpdump``, as root)."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

NOT_ISOLATED = (
    "this host has addresses outside loopback ({}): run the e2e tests inside the loopback "
    "network namespace, `scripts/netns.sh run .venv/bin/pytest ...` (make test does; needs "
    "root), so WebRTC clients cannot bind them"
)


@dataclass(frozen=True)
class Socket:
    proto: str
    address: str
    port: int
    process: str

    @property
    def loopback(self) -> bool:
        return is_loopback(self.address)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def host_addresses() -> list[str]:
    """Every address of every interface in this network namespace."""
    out = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True)
    return [line.split()[3].split("/")[0] for line in out.stdout.splitlines()]


def listeners() -> list[Socket]:
    """TCP listeners and bound UDP sockets (what ``ss -ltnup`` lists), with their process."""
    out = subprocess.run(["ss", "-Hltnup"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        address, _, port = parts[4].rpartition(":")
        users = re.search(r'users:\(\("([^"]+)",pid=(\d+)', line)
        process = f"{users.group(1)}[{users.group(2)}]" if users else "?"
        found.append(Socket(parts[0], address, int(port) if port.isdigit() else 0, process))
    return found


@dataclass(frozen=True)
class Packet:
    interface: str
    src: str
    dst: str


class Capture:
    """``tcpdump -i any`` for the duration of a ``with`` block; ``packets`` afterwards."""

    def __init__(self, path: Path) -> None:
        if shutil.which("tcpdump") is None:
            raise RuntimeError("tcpdump is not installed: run `make tools`")
        self.path = path
        self.packets: list[Packet] = []
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Capture:
        self._proc = subprocess.Popen(
            ["tcpdump", "-i", "any", "-nn", "-U", "-w", str(self.path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while not self.path.exists() and time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"tcpdump exited: {err}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.terminate()
        self._proc.wait(10)
        out = subprocess.run(
            ["tcpdump", "-r", str(self.path), "-nn", "-q"], capture_output=True, text=True
        ).stdout
        for line in out.splitlines():
            m = re.match(r"\S+ (\S+)\s+\S+\s+(IP6?) (\S+) > (\S+?):", line)
            if m:
                self.packets.append(Packet(m.group(1), _host(m.group(3)), _host(m.group(4))))


def _host(endpoint: str) -> str:
    """``127.0.0.1.5000`` or ``::1.5000`` without the port."""
    return endpoint.rsplit(".", 1)[0] if endpoint.count(".") in (1, 4) else endpoint
