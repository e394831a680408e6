"""The anchors of a report's calls, importable without the rest of the report (the
pytest plugin links to them on every run)."""

from __future__ import annotations

import re

__all__ = ["anchor"]

_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def anchor(name: str) -> str:
    """The HTML id of a call's section: ``call-booking.2`` (what JUnit's report link ends in)."""
    return "call-" + (_SLUG.sub("-", name).strip("-") or "x")
