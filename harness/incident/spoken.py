"""Spoken numbers as digits, with a map back to the original text.

A recogniser's transcript says ``nine oh two one oh``, ``double five``, ``the fourth of
July nineteen eighty five`` or ``one hundred and twelve``; the detectors look for digits.
:func:`normalise` rewrites number words as digits (``9 0 2 1 0``, ``55``,
``the 4th of July 1985``, ``112``) and keeps everything else as it was, so a match in the
normalised text maps back to the exact words it came from (:meth:`Normalised.span`).

Rules: a digit word is one digit (``five five five`` is ``5 5 5``); ``oh`` and ``o`` are
zero only next to another number word; ``double``/``triple`` repeat the next digit; tens
and units combine (``eighty five`` is ``85``); ``hundred`` and ``thousand`` compose
(``two thousand and five`` is ``2005``); ``nineteen``/``twenty`` followed by a two-digit
number, or by ``oh`` and a digit, is a year (``1985``, ``2003``); ordinals become ``4th``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Normalised", "normalise"]

_UNITS = {
    "zero": 0,
    "oh": 0,
    "o": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
_TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
    "twentieth": 20,
    "thirtieth": 30,
}
_REPEAT = {"double": 2, "triple": 3}
_SCALES = {"hundred": 100, "thousand": 1000}
_NUMBER_WORDS = frozenset(_UNITS) | frozenset(_TEENS) | frozenset(_TENS) | frozenset(_ORDINALS)
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*|\d+")


@dataclass(frozen=True)
class Normalised:
    """``text`` with spoken numbers as digits; ``span`` maps its offsets to ``original``."""

    text: str
    original: str
    starts: tuple[int, ...]
    """For each character of ``text``, where its source starts in ``original``."""
    ends: tuple[int, ...]
    """For each character of ``text``, where its source ends in ``original``."""

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The range of ``original`` that ``text[start:end]`` came from."""
        if end <= start:
            at = self.starts[start] if start < len(self.starts) else len(self.original)
            return at, at
        return self.starts[start], self.ends[end - 1]


@dataclass(frozen=True)
class _Tok:
    start: int
    end: int
    word: str  # lower case


@dataclass(frozen=True)
class _Group:
    first: int  # token indexes, inclusive
    last: int
    text: str
    value: int | None  # for composing years; None for digit strings
    compound: bool  # a teen, a ten or a composed number (not a digit word)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _joined(text: str, a: _Tok, b: _Tok) -> bool:
    """Whether only spaces or one hyphen separate two tokens."""
    gap = text[a.end : b.start]
    return bool(re.fullmatch(r"\s+|\s*-\s*", gap))


def _cardinal(toks: list[_Tok], i: int, j: int) -> tuple[int, int, bool] | None:
    """A number made of tens/teens/units and scales from ``toks[i]`` (before ``j``):
    (value, next index, compound)."""
    w = toks[i].word
    if w in _TENS:
        value, k = _TENS[w], i + 1
        if k < j and toks[k].word in _UNITS and toks[k].word not in ("oh", "o", "zero"):
            value, k = value + _UNITS[toks[k].word], k + 1
        compound = True
    elif w in _TEENS:
        value, k, compound = _TEENS[w], i + 1, True
    elif w in _UNITS and w not in ("oh", "o"):
        value, k, compound = _UNITS[w], i + 1, False
    else:
        return None
    if k < j and toks[k].word in _SCALES:
        value *= _SCALES[toks[k].word]
        k += 1
        compound = True
        if k < j and toks[k].word == "and":
            k += 1
        rest = _cardinal(toks, k, j) if k < j else None
        if rest is not None and rest[0] < value:
            value, k = value + rest[0], rest[1]
        elif k > 0 and toks[k - 1].word == "and":
            k -= 1
    return value, k, compound


def _groups(text: str, toks: list[_Tok], i: int, j: int) -> list[_Group]:
    """The numbers a run of number words ``toks[i:j]`` says."""
    out: list[_Group] = []
    k = i
    while k < j:
        w = toks[k].word
        if w in _REPEAT and k + 1 < j and toks[k + 1].word in _UNITS:
            digit = str(_UNITS[toks[k + 1].word])
            out.append(_Group(k, k + 1, digit * _REPEAT[w], None, False))
            k += 2
            continue
        if w in _ORDINALS:
            out.append(_Group(k, k, _ordinal(_ORDINALS[w]), None, True))
            k += 1
            continue
        if w in _TENS and k + 1 < j and toks[k + 1].word in _ORDINALS:
            n = _TENS[w] + _ORDINALS[toks[k + 1].word]
            if _ORDINALS[toks[k + 1].word] < 10:
                out.append(_Group(k, k + 1, _ordinal(n), None, True))
                k += 2
                continue
        if w in ("oh", "o", "zero"):
            out.append(_Group(k, k, "0", None, False))
            k += 1
            continue
        parsed = _cardinal(toks, k, j)
        if parsed is None:
            k += 1
            continue
        value, nxt, compound = parsed
        out.append(_Group(k, nxt - 1, str(value), value, compound))
        k = nxt
    return _years(out)


def _years(groups: list[_Group]) -> list[_Group]:
    """``19 85`` -> ``1985``; ``20 0 3`` -> ``2003`` (spoken years)."""
    out: list[_Group] = []
    k = 0
    while k < len(groups):
        g = groups[k]
        nxt = groups[k + 1] if k + 1 < len(groups) else None
        if g.compound and g.value in (19, 20) and nxt is not None:
            if nxt.compound and nxt.value is not None and 10 <= nxt.value <= 99:
                year = g.value * 100 + nxt.value
                out.append(_Group(g.first, nxt.last, str(year), year, True))
                k += 2
                continue
            after = groups[k + 2] if k + 2 < len(groups) else None
            if nxt.text == "0" and after is not None and after.value is not None:
                if 1 <= after.value <= 9 and not after.compound:
                    year = g.value * 100 + after.value
                    out.append(_Group(g.first, after.last, str(year), year, True))
                    k += 3
                    continue
        out.append(g)
        k += 1
    return out


def _is_number_word(tok: _Tok) -> bool:
    return tok.word in _NUMBER_WORDS or tok.word in _REPEAT or tok.word in _SCALES


def _beside_number(toks: list[_Tok], i: int, j: int) -> bool:
    """Whether the token before ``toks[i:j]`` or after it is a number (``five, oh``)."""
    near = [toks[k] for k in (i - 1, j) if 0 <= k < len(toks)]
    return any((_is_number_word(t) and t.word not in ("oh", "o")) or t.word.isdigit() for t in near)


@lru_cache(maxsize=4096)
def normalise(text: str) -> Normalised:
    """``text`` with its spoken numbers written as digits (see the module's rules)."""
    toks = [_Tok(m.start(), m.end(), m.group(0).lower()) for m in _WORD.finditer(text)]
    replaced: list[tuple[int, int, str]] = []  # original start, end, replacement
    i = 0
    while i < len(toks):
        if not _is_number_word(toks[i]):
            i += 1
            continue
        j = i + 1
        while j < len(toks) and _joined(text, toks[j - 1], toks[j]):
            if _is_number_word(toks[j]) or (
                toks[j].word == "and"
                and j + 1 < len(toks)
                and toks[j - 1].word in _SCALES
                and _is_number_word(toks[j + 1])
            ):
                j += 1
            else:
                break
        run = [t.word for t in toks[i:j]]
        if all(w in ("oh", "o", "and") or w in _REPEAT or w in _SCALES for w in run):
            if not (run.count("oh") + run.count("o") >= 2 or _beside_number(toks, i, j)):
                i = j  # "oh" alone is a word, not a zero
                continue
        for g in _groups(text, toks, i, j):
            replaced.append((toks[g.first].start, toks[g.last].end, g.text))
        i = j
    if not replaced:
        n = len(text)
        return Normalised(text, text, tuple(range(n)), tuple(range(1, n + 1)))
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for a, b, rep in replaced:
        parts.append(text[pos:a])
        starts.extend(range(pos, a))
        ends.extend(range(pos + 1, a + 1))
        parts.append(rep)
        starts.extend([a] * len(rep))
        ends.extend([b] * len(rep))
        pos = b
    parts.append(text[pos:])
    starts.extend(range(pos, len(text)))
    ends.extend(range(pos + 1, len(text) + 1))
    return Normalised("".join(parts), text, tuple(starts), tuple(ends))
