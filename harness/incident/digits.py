"""Numbers that identify a person: phone numbers, payment cards and national ids.

Works on the normalised text (:mod:`harness.incident.spoken`), so ``five five five one
two three four`` is the digit run ``5 5 5 1 2 3 4``.

- ``PHONE``: a run of 7 to 15 digits that ``phonenumbers`` reads as a valid number, in
  international format (``+44 20 7946 0958``, any region) or in the national format of
  :data:`DEFAULT_PHONE_REGIONS` (``(415) 555-0199``, ``020 7946 0958``, ``612 345 678``);
  else a run of 7, 8, 10 or 11 digits, or ``+`` and 8 to 15.
- ``CARD``: 13 to 19 digits that pass the Luhn check.
- ``ID``: the US SSN pattern ``123-45-6789``, the UK National Insurance number
  ``AB 12 34 56 C`` (spoken letter by letter too), a run of 7 or more digits after a word
  naming an id (``ssn``, ``social``, ``insurance``, ``passport``, ``id`` ...), and any
  other run of 7 or more digits that is not a phone number.

Runs shaped like dates (``12 05 2024``, ``2024-05-01``, ``20240501``) are left to
:mod:`harness.incident.dates`; amounts (``12,345.67``) and runs of fewer than 7 digits
(times, prices, confirmation numbers) are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from functools import lru_cache

import phonenumbers

from harness.incident.pii import PiiMatch

__all__ = [
    "DEFAULT_PHONE_REGIONS",
    "classify_run",
    "digit_runs",
    "find_numbers",
    "is_national_id",
    "is_phone",
    "luhn_ok",
]

DEFAULT_PHONE_REGIONS: tuple[str, ...] = (
    "US",
    "GB",
    "CA",
    "AU",
    "NZ",
    "IE",
    "IN",
    "ZA",
    "DE",
    "FR",
    "ES",
    "IT",
    "NL",
    "MX",
    "BR",
)
"""Regions whose national phone formats are recognised (``+`` numbers: every region)."""

_SEP = r"[ \t.\-(),/]{1,3}"
_DIGIT_RUN = re.compile(rf"(?<![^\W\d_])(?<![\d@.])\+?\(?\d+(?:{_SEP}\(?\d+\)?)*\)?(?![^\W_]|@)")
_SSN = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_NINO = re.compile(
    r"(?<![^\W_])[A-CEGHJ-PR-TW-Z][ .-]?[A-CEGHJ-NPR-TW-Z](?:[ .-]?\d){6}[ .-]?[A-D](?![^\W_])",
    re.IGNORECASE,
)
_ID_CUES = frozenset(
    "id ssn social security insurance passport license licence identification national "
    "sin nin tax medicare medicaid member policy account record".split()
)
_CUE_WORDS = 4
_AMOUNT = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+")
_DATE_GROUPS = ([4, 2, 2], [2, 2, 4], [1, 2, 4], [2, 1, 4], [1, 1, 4], [4, 1, 1], [4, 2, 1],
                [4, 1, 2])  # fmt: skip


def luhn_ok(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def is_national_id(text: str) -> bool:
    """Whether ``text`` is written like a US social security number (``123-45-6789``)."""
    return bool(_SSN.match(text.strip()))


def _groups(run: str) -> tuple[str, list[int]]:
    groups = re.findall(r"\d+", run)
    return "".join(groups), [len(g) for g in groups]


def _compact_date(digits: str) -> bool:
    """``19850704``: eight digits that read as a year, month and day."""
    if len(digits) != 8 or digits[:2] not in ("19", "20"):
        return False
    try:
        date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return False
    return True


def _date_shaped(raw: str) -> bool:
    digits, groups = _groups(raw)
    return groups in _DATE_GROUPS or (len(groups) == 1 and _compact_date(digits))


def classify_run(raw: str, phone_like: bool = False, id_cue: bool = False) -> str | None:
    """The kind of a digit run, or None to keep it. ``phone_like``: phonenumbers says so;
    ``id_cue``: the words before it name an id (``ssn``, ``passport`` ...)."""
    raw = raw.strip()
    if _AMOUNT.fullmatch(raw):
        return None  # an amount: 12,345.67 or 3.14
    digits, _ = _groups(raw)
    n = len(digits)
    if _SSN.match(raw):
        return "ID"
    if n < 7 or _date_shaped(raw):
        return None
    if 13 <= n <= 19 and luhn_ok(digits):
        return "CARD"
    if id_cue:
        return "ID"
    if phone_like or (raw.startswith("+") and 8 <= n <= 15) or n in (7, 8, 10, 11):
        return "PHONE"
    return "ID"


def _strip_run(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop separators a run picked up at its ends (a trailing '.', an unopened ')')."""
    while end > start and text[end - 1] in " \t.,-/(":
        end -= 1
    while start < end and text[start] in " \t.,-/)":
        start += 1
    if text[start:end].count("(") < text[start:end].count(")") and text[end - 1] == ")":
        end -= 1
    return start, end


def digit_runs(text: str) -> Iterator[tuple[int, int]]:
    """Every run of digits and separators (``(555) 123-4567``, ``5 5 5``), trimmed."""
    for m in _DIGIT_RUN.finditer(text):
        s, e = _strip_run(text, m.start(), m.end())
        if e > s:
            yield s, e


@lru_cache(maxsize=4096)
def is_phone(run: str, regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS) -> bool:
    """Whether ``phonenumbers`` reads a digit run as a valid number: in international format
    (``+44 20 7946 0958``, any region) or in the national format of one of ``regions``."""
    run = run.strip()
    for region in (None,) if run.startswith("+") else regions:
        try:
            number = phonenumbers.parse(run, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def find_numbers(
    text: str, phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS
) -> list[PiiMatch]:
    """Phone numbers, cards and national ids in ``text`` (normalised)."""
    out = [PiiMatch(m.start(), m.end(), "ID") for m in _NINO.finditer(text)]
    for s, e in digit_runs(text):
        run = text[s:e]
        n = sum(ch.isdigit() for ch in run)
        phone = 7 <= n <= 15 and not _date_shaped(run) and is_phone(run, phone_regions)
        before = (w.strip(".,:;!?'\"()").lower() for w in text[:s].split()[-_CUE_WORDS:])
        cue = not run.startswith("+") and any(w in _ID_CUES for w in before)
        kind = classify_run(run, phone_like=phone, id_cue=cue)
        if kind is not None:
            out.append(PiiMatch(s, e, kind))
    return out
