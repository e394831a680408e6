"""The report's file names and anchors, importable without the rest of the report (the
pytest plugin and the CLI name them on every run)."""

from __future__ import annotations

import re

__all__ = ["PERFETTO_FILE", "REPORT_FILE", "anchor"]

REPORT_FILE = "report.html"
PERFETTO_FILE = "perfetto.json"

_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def anchor(name: str) -> str:
    """The HTML id of a call's section: ``call-booking.2`` (what JUnit's report link ends in)."""
    return "call-" + (_SLUG.sub("-", name).strip("-") or "x")
