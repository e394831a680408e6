"""Prometheus and Alertmanager from Debian's packages, on loopback ports, for e2e tests;
and a small webhook receiver that stands in for Slack or a pager."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} is not installed: `make tools` installs Debian's {package} package "
            f"(or: apt-get install -y {package})"
        )
    return path


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout:g}s:\n{log.read_text()[-3000:]}")


@dataclass
class Receiver:
    """Records every POSTed JSON body, by path."""

    bodies: list[tuple[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                try:
                    rec.bodies.append((self.path, json.loads(body)))
                except ValueError:
                    rec.bodies.append((self.path, body.decode(errors="replace")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def alerts(self, path: str) -> list[dict]:
        """Every alert of every body posted to ``path``, in order."""
        out: list[dict] = []
        for p, body in list(self.bodies):
            if p == path and isinstance(body, dict):
                out.extend(body.get("alerts", []))
        return out

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class Stack:
    """Prometheus scraping ``targets`` with ``rules_file``, alerting to an Alertmanager
    whose single route posts to ``webhook_url``."""

    def __init__(self, work: Path, targets: list[str], rules_file: Path, webhook_url: str):
        self.work = work
        self.targets = targets
        self.rules_file = rules_file
        self.webhook_url = webhook_url
        self.procs: list[subprocess.Popen] = []
        self.prom_port = free_port()
        self.am_port = free_port()

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.am_port}"

    def start(self) -> Stack:
        am_cfg = self.work / "alertmanager.yml"
        am_cfg.write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "hook",
                        "group_by": ["alertname"],
                        "group_wait": "1s",
                        "group_interval": "5s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [
                        {
                            "name": "hook",
                            "webhook_configs": [
                                {"url": self.webhook_url + "/alertmanager", "send_resolved": True}
                            ],
                        }
                    ],
                }
            )
        )
        am_log = self.work / "alertmanager.log"
        am = subprocess.Popen(
            [
                binary("prometheus-alertmanager", "prometheus-alertmanager"),
                f"--config.file={am_cfg}",
                f"--web.listen-address=127.0.0.1:{self.am_port}",
                "--cluster.listen-address=",  # no gossip listener on every interface
                f"--storage.path={self.work / 'am-data'}",
            ],
            stdout=am_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(am)
        wait_ready(f"{self.alertmanager_url}/-/ready", am, am_log)
        prom_cfg = self.work / "prometheus.yml"
        prom_cfg.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
                    "rule_files": [str(self.rules_file)],
                    "alerting": {
                        "alertmanagers": [
                            {"static_configs": [{"targets": [f"127.0.0.1:{self.am_port}"]}]}
                        ]
                    },
                    "scrape_configs": [
                        {
                            "job_name": "harness-monitor",
                            "static_configs": [{"targets": self.targets}],
                        }
                    ],
                }
            )
        )
        prom_log = self.work / "prometheus.log"
        prom = subprocess.Popen(
            [
                binary("prometheus", "prometheus"),
                f"--config.file={prom_cfg}",
                f"--web.listen-address=127.0.0.1:{self.prom_port}",
                f"--storage.tsdb.path={self.work / 'prom-data'}",
            ],
            stdout=prom_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(prom)
        wait_ready(f"{self.prometheus_url}/-/ready", prom, prom_log)
        return self

    def alerts(self) -> list[dict]:
        """Prometheus's own view: ``/api/v1/alerts`` (state pending or firing)."""
        return get_json(f"{self.prometheus_url}/api/v1/alerts")["data"]["alerts"]

    def rules_loaded(self) -> list[str]:
        groups = get_json(f"{self.prometheus_url}/api/v1/rules")["data"]["groups"]
        return [r["name"] for g in groups for r in g["rules"]]

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
