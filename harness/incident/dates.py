"""Dates of birth, told apart from the appointment dates a clinic call is full of.

Works on the normalised text (:mod:`harness.incident.spoken`), so ``the fourth of July
nineteen eighty five`` is ``the 4th of July 1985``. A candidate is any date expression:
numeric (``04/07/1985``, ``4/7/85``, ``1985-07-04``, ``04.07.1985``, ``04 07 1985``,
``19850704``), day and month in words (``July 4th 1985``, ``4 July 1985``, ``the 4th of
July``, ``July the 4th``), month and year (``July 1985``), or, after a cue only, a year
(``born in 1985``) or a month (``born in March``). ``python-dateutil`` reads each
candidate; one that is not a real date (``31/02/1990``) is not a candidate.

The rule: a date is a **date of birth** (``DOB``) when

1. a birth cue is next to it: ``born``, ``birth``, ``birthday``, ``date of birth``,
   ``DOB`` / ``D.O.B.``, within eight words before it or five after, with no other date
   in between (the whole date, whatever its form: ``born on the 4th of July``); or the
   agent's question just before asked for it (the import passes that as ``cued``);
2. or it gives a day, a month and a year, and the year is before the year of the call
   (``reference``): ``04/07/1985`` alone is a birth date, ``next Tuesday the 14th``,
   ``May 4th`` and ``12/05/2026`` in a 2026 call are appointments and are kept.

Times (``3 pm``), weekdays (``next tuesday``), month names alone (``march``, ``may I``)
and days alone (``the fourth``) are never candidates without a cue.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

from dateutil import parser as dateparser

__all__ = ["DateCandidate", "birth_cue", "date_candidates", "find_births", "month_days"]

_MON = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|"
    r"december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
)
_DAY = r"(?:3[01]|[12]\d|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]\d\d|20\d\d)"
_YEAR_ANY = rf"(?:{_YEAR}|'\d\d)"
_B = r"(?<![^\W_])"  # no letter or digit before
_E = r"(?![^\W_])"  # none after

_FORMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "numeric",
        re.compile(
            r"(?<![\d/.\-])(?:\d{1,2}([/.\-])\d{1,2}\1(?:\d{4}|\d{2})|\d{4}([/.\-])\d{1,2}\2\d{1,2})"
            r"(?![\d/\-]|\.\d)"
        ),
    ),
    ("spaced", re.compile(r"(?<!\d)(?<!\d )(\d ?\d|\d) (\d ?\d|\d) ((?:19|20)\d\d)(?!\d)")),
    ("compact", re.compile(r"(?<!\d)(?:19|20)\d{6}(?!\d)")),
    (
        "day_month",
        re.compile(
            rf"{_B}(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MON}(?:,?\s+(?:of\s+)?{_YEAR_ANY})?{_E}",
            re.IGNORECASE,
        ),
    ),
    (
        "month_day",
        re.compile(
            rf"{_B}{_MON}\s+(?:the\s+)?{_DAY}(?:,?\s+{_YEAR_ANY})?{_E}(?!\s*(?::|am|pm|a\.m|p\.m))",
            re.IGNORECASE,
        ),
    ),
    ("month_year", re.compile(rf"{_B}{_MON},?\s+(?:of\s+)?{_YEAR}{_E}", re.IGNORECASE)),
    ("year", re.compile(rf"{_B}{_YEAR}{_E}")),
    (
        "month",
        re.compile(
            r"(?<=\bin )(?:january|february|march|april|may|june|july|august|september|"
            r"october|november|december)\b",
            re.IGNORECASE,
        ),
    ),
)
_CUE_ONLY = frozenset({"year", "month"})
_CUE = re.compile(
    r"(?<!<)\b(?:born|birth|birthday|birthdate|b-?day|date\s+of\s+birth|d\.?\s?o\.?\s?b\.?|dob)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"\S+")
_REDACTED = re.compile(r"<DOB>")
_SHORT_YEAR = re.compile(r"^\d{1,2}([/.\-])\d{1,2}\1\d\d$|'\d\d$")
_CUE_BEFORE_WORDS = 8
_CUE_AFTER_WORDS = 5


@dataclass(frozen=True)
class DateCandidate:
    """A date expression in the normalised text and what it gives."""

    start: int
    end: int
    form: str
    day: int | None
    month: int | None
    year: int | None
    month_days: frozenset[tuple[int, int]] = frozenset()
    """Every (month, day) it may mean: ``04/07/1985`` is April 7 or July 4."""
    short_year: bool = False
    """The year has two digits (``4/7/85``): a birth year, so the latest one not after the
    call (``85`` is 1985, ``25`` in a 2026 call is 2025)."""

    @property
    def complete(self) -> bool:
        return None not in (self.day, self.month, self.year)


def _clean(text: str) -> str:
    text = re.sub(r"\b(?:the|of)\b", " ", text, flags=re.IGNORECASE)
    text = text.replace("'", "")
    return " ".join(text.replace(",", " ").split())


_Fields = tuple[int | None, int | None, int | None]


def _read(text: str, form: str) -> list[_Fields]:
    """The (day, month, year) readings of a candidate (month first, then day first), None
    where it does not say; no reading if it is not a date."""
    if form == "compact":
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    elif form == "spaced":
        parts = re.fullmatch(r"(\d ?\d|\d) (\d ?\d|\d) (\d{4})", text)
        if parts is None:
            return []
        text = "/".join(p.replace(" ", "") for p in parts.groups())
    elif form == "year":
        return [(None, None, int(text))]
    text = _clean(text)
    readings: list[_Fields] = []
    for dayfirst in (False, True):
        try:
            a = dateparser.parse(text, default=datetime(2000, 1, 1), dayfirst=dayfirst)
            b = dateparser.parse(text, default=datetime(2004, 2, 2), dayfirst=dayfirst)
        except (ValueError, OverflowError, TypeError):
            continue
        readings.append(
            (
                a.day if a.day == b.day else None,
                a.month if a.month == b.month else None,
                a.year if a.year == b.year else None,
            )
        )
    return [r for r in dict.fromkeys(readings) if r != (None, None, None)]


def date_candidates(text: str) -> list[DateCandidate]:
    """Every date expression in ``text`` (normalised), in order; where two overlap, the
    complete one, else the longest."""
    found: list[DateCandidate] = []
    for form, pattern in _FORMS:
        for m in pattern.finditer(text):
            readings = _read(m.group(0), form)
            if not readings:
                continue
            days = frozenset((mo, d) for d, mo, _ in readings if d is not None and mo is not None)
            short = bool(_SHORT_YEAR.search(m.group(0)))
            found.append(
                DateCandidate(
                    m.start(), m.end(), form, *readings[0], month_days=days, short_year=short
                )
            )
    # where two overlap, the one that says more wins, then the longer: in "march the 4th
    # of July 1985" the full date, not "march the 4th"
    found.sort(key=lambda c: (-c.complete, -(c.end - c.start), c.start))
    out: list[DateCandidate] = []
    for c in found:
        if any(c.start < o.end and o.start < c.end for o in out):
            continue
        out.append(c)
    return sorted(out, key=lambda c: c.start)


def _word_index(text: str, offset: int) -> int:
    return len(_WORD.findall(text[:offset]))


def birth_cue(text: str) -> bool:
    """Whether ``text`` speaks of a birth date (``date of birth``, ``born``, ``DOB`` ...)."""
    return bool(_CUE.search(text))


def _cued(text: str, c: DateCandidate, others: list[DateCandidate]) -> bool:
    for cue in _CUE.finditer(text):
        if cue.end() <= c.start:
            between = [o for o in others if cue.end() <= o.start and o.end <= c.start]
            words = _word_index(text, c.start) - _word_index(text, cue.end())
            if not between and words <= _CUE_BEFORE_WORDS:
                return True
        elif cue.start() >= c.end:
            between = [o for o in others if c.end <= o.start and o.end <= cue.start()]
            words = _word_index(text, cue.start()) - _word_index(text, c.end)
            if not between and words <= _CUE_AFTER_WORDS:
                return True
    return False


def _year(c: DateCandidate, reference: date) -> int:
    year = c.year or 0
    if c.short_year:
        year = 2000 + year % 100
        if year > reference.year:
            year -= 100
    return year


def find_births(
    text: str,
    reference: date,
    *,
    cued: bool = False,
    known: frozenset[tuple[int, int]] = frozenset(),
) -> Iterator[DateCandidate]:
    """The dates of birth in ``text`` (normalised), by the module's rule.

    ``cued``: the question this text answers asked for a date of birth. ``known``: the
    (month, day) of birth dates already learned from the call; a date on one of them is a
    birth date too, in any form.
    """
    candidates = date_candidates(text)
    # a date already redacted still stands between a cue and a later date
    redacted = [DateCandidate(m.start(), m.end(), "redacted", None, None, None)
                for m in _REDACTED.finditer(text)]  # fmt: skip
    for c in candidates:
        others = [o for o in candidates if o is not c] + redacted
        near_cue = cued or _cued(text, c, others)
        if c.form in _CUE_ONLY and not near_cue:
            continue
        if near_cue:
            yield c
        elif c.complete and c.year is not None and _year(c, reference) < reference.year:
            yield c
        elif c.month_days & known:
            yield c


def month_days(text: str) -> frozenset[tuple[int, int]]:
    """The (month, day) pairs a date string may give, for learning a birth date."""
    out: frozenset[tuple[int, int]] = frozenset()
    for c in date_candidates(text):
        out |= c.month_days
    return out
