"""File names without personal data: the incident id names the fixture and its audio folder.

An id comes from ``--id`` or from a monitor candidate, whose id is the conversation id: a
SIP room is often named after the caller's number (``sip_5558675309``), a test after a
person (``INC-maria-lopez``). :func:`safe_id` replaces what the redactor finds in it (the
names learned from the call included) by the kind's name (``sip_PHONE``,
``INC-NAME``), so no written path holds it. A date written as eight digits is left alone
(``INC-20240501-3``): that is how incident ids carry the incident's date.
"""

from __future__ import annotations

import re
from datetime import date

from harness.incident.redact import Redactor

__all__ = ["safe_id"]

_SEPARATORS = re.compile(r"[-_.]")
_COMPACT_DATE = re.compile(r"(?<!\d)(?:19|20)\d{6}(?!\d)")


def _is_date(digits: str) -> bool:
    try:
        date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return False
    return True


def safe_id(incident_id: str, redactor: Redactor) -> tuple[str, tuple[str, ...]]:
    """``incident_id`` with its personal data replaced by kind names, and those kinds."""
    spaced = _SEPARATORS.sub(" ", incident_id)  # same length: offsets hold
    masked = _COMPACT_DATE.sub(lambda m: "d" * 8 if _is_date(m.group(0)) else m.group(0), spaced)
    matches = redactor.find(masked, speaker="system")
    if not matches:
        return incident_id, ()
    parts: list[str] = []
    pos = 0
    for m in matches:
        parts.append(incident_id[pos : m.start])
        parts.append(m.kind)
        pos = m.end
    parts.append(incident_id[pos:])
    return "".join(parts), tuple(dict.fromkeys(m.kind for m in matches))
