"""Debian's headless Chromium, driven by Playwright for Python, for tests that look at the
HTML report as a person would.

The browser gets a fresh profile and the flags this machine's closed network needs; it
loads the report from a file URL, and any request that leaves the file system is refused
and recorded (the report must need none). Console messages and page errors are kept for the
test to assert on. Playwright's own browser download is never used: ``/usr/bin/chromium``
comes from the Debian package (``make tools``), or ``HARNESS_CHROMIUM`` names another.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("HARNESS_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("HARNESS_TEST_ARTIFACTS", ROOT / ".harness" / "test-artifacts"))
"""Where screenshots go (CI uploads the directory)."""


@dataclass
class ReportPage:
    page: Any
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]


@contextlib.contextmanager
def open_report(path: Path, anchor: str = "", width: int = 1400, height: int = 1000):
    """The report at ``path`` (``#anchor`` appended) in headless Chromium."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise AssertionError(
            f"no Chromium at {CHROMIUM}: run `make tools` (Debian packages chromium and "
            "chromium-driver) or set HARNESS_CHROMIUM"
        )
    with (
        tempfile.TemporaryDirectory(prefix="harness-chromium-") as profile,
        sync_playwright() as pw,
    ):
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": width, "height": height},
        )
        try:
            seen = ReportPage(page=None)
            context.set_offline(True)  # the network is off; anything that tries is recorded
            page = context.new_page()
            seen.page = page
            page.on("console", lambda m: seen.console.append((m.type, m.text)))
            page.on("pageerror", lambda e: seen.errors.append(str(e)))
            page.on(
                "request",
                lambda r: (
                    None
                    if r.url.startswith(("file:", "data:", "blob:"))
                    else seen.requests.append(r.url)
                ),
            )
            page.goto(Path(path).resolve().as_uri() + (f"#{anchor}" if anchor else ""))
            page.wait_for_load_state("load")
            yield seen
        finally:
            context.close()


def screenshot(report: ReportPage, name: str) -> Path:
    """The visible page as ``<artifacts>/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / f"{name}.png"
    report.page.screenshot(path=str(out))
    return out
