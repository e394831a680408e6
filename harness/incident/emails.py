"""E-mail addresses, written (``jo.smith+x@mail.example.org``) and spoken
(``jo dot smith at gmail dot com``, ``smith underscore 1 at example dot co dot uk``).

Works on the original text: a spoken address keeps its number words (``john one two at
gmail dot com``) inside the match.
"""

from __future__ import annotations

import re

from harness.incident.pii import PiiMatch

__all__ = ["find_emails"]

_EMAIL = re.compile(r"[^\s@<>\"(),;:\[\]]+@[^\s@<>\"(),;:\[\]]+\.[^\s@<>\"(),;:\[\]]+")
_TLD = (
    r"(?:com|net|org|edu|gov|mil|io|co|uk|us|de|fr|es|it|nl|ca|au|nz|ie|in|info|biz|me|ai|"
    r"app|dev|email|online|mail)"
)
_PART = r"[^\W_]+(?:[._-][^\W_]+)*"
_NUMBER = r"(?:\d+|zero|oh|one|two|three|four|five|six|seven|eight|nine|double|triple)"
_SPOKEN_EMAIL = re.compile(
    rf"(?<![^\W_]){_PART}(?:\s+(?:dot|underscore|dash|hyphen|period)\s+{_PART}|\s+{_NUMBER})*"
    rf"\s+at\s+{_PART}(?:\s+dot\s+{_PART})*\s+dot\s+{_TLD}(?![^\W_])",
    re.IGNORECASE,
)


def find_emails(text: str) -> list[PiiMatch]:
    """Written and spoken e-mail addresses in ``text``."""
    out = []
    for m in _EMAIL.finditer(text):
        s, e = m.start(), m.end()
        while e > s and text[e - 1] in ".!?":
            e -= 1
        out.append(PiiMatch(s, e, "EMAIL"))
    for m in _SPOKEN_EMAIL.finditer(text):
        out.append(PiiMatch(m.start(), m.end(), "EMAIL"))
    return out
