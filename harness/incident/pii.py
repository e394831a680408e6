"""The kinds of personal data the incident import redacts, and one found occurrence.

Shared by the detectors (:mod:`~harness.incident.digits`, :mod:`~harness.incident.dates`,
:mod:`~harness.incident.places`, :mod:`~harness.incident.emails`,
:mod:`~harness.incident.names`) and the :class:`~harness.incident.redact.Redactor` that
combines them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["KINDS", "PiiKind", "PiiMatch", "placeholder"]

PiiKind = Literal["PHONE", "EMAIL", "CARD", "ID", "DOB", "POSTCODE", "ADDRESS", "NAME"]
KINDS: tuple[str, ...] = ("PHONE", "EMAIL", "CARD", "ID", "DOB", "POSTCODE", "ADDRESS", "NAME")


@dataclass(frozen=True)
class PiiMatch:
    """One occurrence: ``text[start:end]`` is PII of ``kind``."""

    start: int
    end: int
    kind: str


def placeholder(kind: str) -> str:
    """The typed placeholder written in comments: ``<PHONE>``."""
    return f"<{kind}>"
