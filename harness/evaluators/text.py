"""Text normalisation for word error rate and for comparing utterances.

:func:`normalize` applies, in order:

1. lower-case (Unicode case folding);
2. numbers as words: ``1,200`` → ``one thousand two hundred``; ``3rd`` → ``third``;
   ``2.5`` → ``two point five``; ``5%`` → ``five percent``; ``$20`` → ``twenty dollars``;
   ``10:30`` → ``ten thirty`` (``10:05`` → ``ten oh five``, ``10:00`` → ``ten``). Integers
   0..9999 are read as cardinals without "and" (``105`` → ``one hundred five``); longer
   digit runs and runs with a leading zero are read digit by digit, as phone and account
   numbers are spoken (``0420`` → ``zero four two zero``);
3. punctuation stripped: every character that is not a letter, a digit or an apostrophe
   between letters becomes a space (so ``twenty-one`` → ``twenty one``, ``don't`` stays);
4. runs of whitespace collapsed to one space, ends trimmed.

Years are read as cardinals (``1999`` → ``one thousand nine hundred ninety nine``), not as
"nineteen ninety nine"; write such a scenario line in words.
"""

from __future__ import annotations

import re

__all__ = ["normalize", "number_to_words", "ordinal_to_words", "words"]

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def number_to_words(n: int) -> str:
    """English cardinal words for ``0 <= n <= 9999``, e.g. ``1234`` → ``one thousand two
    hundred thirty four`` (no hyphens, no "and")."""
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 9999:
        raise ValueError(f"n={n!r}: number_to_words covers the integers 0..9999")
    if n < 20:
        return _ONES[n]
    parts: list[str] = []
    thousands, rest = divmod(n, 1000)
    if thousands:
        parts += [_ONES[thousands], "thousand"]
    hundreds, rest = divmod(rest, 100)
    if hundreds:
        parts += [_ONES[hundreds], "hundred"]
    if rest:
        if rest < 20:
            parts.append(_ONES[rest])
        else:
            tens, ones = divmod(rest, 10)
            parts.append(_TENS[tens])
            if ones:
                parts.append(_ONES[ones])
    return " ".join(parts)


def ordinal_to_words(n: int) -> str:
    """English ordinal words for ``0 <= n <= 9999``: ``1`` → ``first``, ``21`` → ``twenty
    first``, ``100`` → ``one hundredth``, ``0`` → ``zeroth``."""
    cardinal = number_to_words(n).split()
    last = cardinal[-1]
    if last in _ORDINAL_IRREGULAR:
        cardinal[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        cardinal[-1] = last[:-1] + "ieth"
    else:
        cardinal[-1] = last + "th"
    return " ".join(cardinal)


def _digits(run: str) -> str:
    return " ".join(_ONES[int(d)] for d in run)


def _integer(run: str) -> str:
    if len(run) > 1 and run.startswith("0"):
        return _digits(run)
    n = int(run)
    return number_to_words(n) if n <= 9999 else _digits(run)


_GROUPED = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d,]*\d)")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_DECIMAL = re.compile(r"(?<![\d.])(\d+)\.(\d+)(?![\d.]*\d)")
_MONEY = re.compile(r"\$\s?(\d+(?:\.\d+)?)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_INTEGER = re.compile(r"\d+")
_NOT_WORD = re.compile(r"[^\w']+|_")
_LONE_APOSTROPHE = re.compile(r"(?<![^\W\d_])'|'(?![^\W\d_])")
_SPACES = re.compile(r"\s+")


def _ordinal(m: re.Match[str]) -> str:
    n = int(m.group(1))
    return f" {ordinal_to_words(n)} " if n <= 9999 else f" {_digits(m.group(1))} th "


def _time(m: re.Match[str]) -> str:
    hours, minutes = int(m.group(1)), m.group(2)
    out = number_to_words(hours) if hours <= 9999 else _digits(m.group(1))
    if minutes == "00":
        return f" {out} "
    if minutes.startswith("0"):
        return f" {out} oh {_ONES[int(minutes[1])]} "
    return f" {out} {number_to_words(int(minutes))} "


def _decimal(m: re.Match[str]) -> str:
    return f" {_integer(m.group(1))} point {_digits(m.group(2))} "


def normalize(text: str | None) -> str:
    """Lower-case, numbers as words, punctuation stripped, spaces collapsed (see module)."""
    if not text:
        return ""
    s = text.casefold()
    s = _GROUPED.sub(lambda m: m.group(0).replace(",", ""), s)
    s = _MONEY.sub(lambda m: f" {m.group(1)} dollars ", s)
    s = _PERCENT.sub(lambda m: f" {m.group(1)} percent ", s)
    s = _ORDINAL.sub(_ordinal, s)
    s = _TIME.sub(_time, s)
    s = _DECIMAL.sub(_decimal, s)
    s = _INTEGER.sub(lambda m: f" {_integer(m.group(0))} ", s)
    s = _NOT_WORD.sub(" ", s)
    s = _LONE_APOSTROPHE.sub(" ", s)
    return _SPACES.sub(" ", s).strip()


def words(text: str | None) -> list[str]:
    """The words of ``normalize(text)``."""
    norm = normalize(text)
    return norm.split() if norm else []
