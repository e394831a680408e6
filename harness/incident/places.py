"""Where a person lives: street addresses, PO boxes, postcodes and ZIP codes.

Works on the normalised text (:mod:`harness.incident.spoken`), so ``s w one a one a a``
is ``s w 1 a 1 a a`` and ``po box one two three`` is ``po box 1 2 3``.

- ``ADDRESS``: a house number, up to three words and a street type (``12 Oak Street``,
  ``one two three main st``), with an optional ``apt 4b``; a PO box (``P.O. Box 123``,
  ``post office box 9``).
- ``POSTCODE``: a UK postcode, written (``SW1A 1AA``) or spoken a letter or a digit at a
  time (``s w one a one a a``, ``double a`` included); a Canadian postal code
  (``K1A 0B1``); a US ZIP+4 (``90210-1234``); a five-digit US ZIP when something says it
  is one: ``zip``, ``zip code``, ``postal code``, ``postcode`` within six words before it,
  a US state just before it (``Beverly Hills, CA 90210``, ``California 90210``), or the
  agent's question just before (``cued``). A bare five-digit number is kept (it may be a
  reference number).
"""

from __future__ import annotations

import re

from harness.incident.digits import digit_runs
from harness.incident.pii import PiiMatch

__all__ = ["find_places", "zip_cue"]

_STREET_TYPES = (
    "street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    "terrace|close|crescent|highway|hwy|parkway|pkwy|square|sq|circle|cir|trail|row|mews|"
    "gardens|grove|hill|walk"
)
_ADDRESS = re.compile(
    rf"(?<![^\W_])(?:\d{{1,6}}[a-z]?|\d(?: \d){{1,5}})\s+"
    # up to three words, numbered streets too ("1 Tenth Street" is "1 10th Street" here)
    rf"(?:(?:[^\W\d_][\w'.-]*|\d{{1,3}}(?:st|nd|rd|th))\s+){{0,3}}?(?:{_STREET_TYPES})\b\.?"
    rf"(?:,?\s+(?:apt|apartment|unit|suite|flat)\.?\s+#?\w+)?",
    re.IGNORECASE,
)
_PO_BOX = re.compile(
    r"(?<![^\W_])(?:p\.?\s?o\.?|post\s+office)\s*box\s*(?:number\s+|no\.?\s*|#\s*)?\d+(?:\s\d+)*",
    re.IGNORECASE,
)
_UK = (
    r"(?:GIR ?0AA|[A-PR-UWYZ](?:\d[A-HJKPSTUW\d]?|[A-HK-Y]\d[ABEHMNPRVWXY\d]?) ?"
    r"\d[ABD-HJLNP-UW-Z]{2})"
)
_CA = r"(?:[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d)"
_WRITTEN_POSTCODE = re.compile(rf"(?<![^\W_])(?:{_UK}|{_CA})(?![^\W_])", re.IGNORECASE)
_SPOKEN_POSTCODE = re.compile(rf"(?:{_UK}|{_CA})".replace(" ?", ""), re.IGNORECASE)
_ZIP4 = re.compile(r"(?<![\d-])\d{5}-\d{4}(?![\d-])")
_SPOKEN_ZIP4 = re.compile(
    r"(?<!\d)\d(?: ?\d){4}\s*(?:-|dash|hyphen)\s*\d(?: ?\d){3}(?!\d)", re.IGNORECASE
)
_ZIP_CUE = re.compile(
    r"(?<!<)\b(?:zip|zip\s*code|zipcode|postal\s*code|post\s*code|postcode)\b", re.IGNORECASE
)
_STATES = (
    "alabama|alaska|arizona|arkansas|california|colorado|connecticut|delaware|florida|"
    "georgia|hawaii|idaho|illinois|indiana|iowa|kansas|kentucky|louisiana|maine|maryland|"
    "massachusetts|michigan|minnesota|mississippi|missouri|montana|nebraska|nevada|"
    "new hampshire|new jersey|new mexico|new york|north carolina|north dakota|ohio|oklahoma|"
    "oregon|pennsylvania|rhode island|south carolina|south dakota|tennessee|texas|utah|"
    "vermont|virginia|washington|west virginia|wisconsin|wyoming"
)
_STATE_CODES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|"
    "NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY"
)
_STATE_BEFORE = re.compile(rf"(?:\b(?i:{_STATES})|\b(?:{_STATE_CODES}))\.?,?\s*$")
_TOKEN = re.compile(r"[^\W_]+")
_BETWEEN = re.compile(r"\d|<(?:PHONE|ID|CARD|ADDRESS|POSTCODE|DOB)>")  # had digits
_ZIP_CUE_WORDS = 6


def zip_cue(text: str) -> bool:
    """Whether ``text`` speaks of a ZIP or postal code."""
    return bool(_ZIP_CUE.search(text))


def _spoken_postcodes(text: str) -> list[PiiMatch]:
    """Postcodes said a character (or two) at a time: ``s w 1 a 1 a a``, ``double a``."""
    toks = [(m.start(), m.end(), m.group(0)) for m in _TOKEN.finditer(text)]
    out: list[PiiMatch] = []
    i = 0
    while i < len(toks):
        best = None
        chars = ""
        j = i
        while j < len(toks) and j - i < 9:
            word = toks[j][2]
            if j > i and not text[toks[j - 1][1] : toks[j][0]].strip(" -.") == "":
                break
            if word.lower() in ("double", "triple") and j + 1 < len(toks):
                nxt = toks[j + 1][2]
                if len(nxt) != 1:
                    break
                chars += nxt * (2 if word.lower() == "double" else 3)
                j += 2
            elif len(word) <= 4:
                chars += word
                j += 1
            else:
                break
            if j - i >= 3 and 5 <= len(chars) <= 7 and _SPOKEN_POSTCODE.fullmatch(chars):
                best = j
        if best is not None:
            out.append(PiiMatch(toks[i][0], toks[best - 1][1], "POSTCODE"))
            i = best
        else:
            i += 1
    return out


def _zip_cued(text: str, start: int) -> bool:
    """A cue shortly before ``start``, with no other number or postcode in between."""
    before = text[:start]
    if _STATE_BEFORE.search(before):
        return True
    window = " ".join(before.split()[-_ZIP_CUE_WORDS:])
    cues = list(_ZIP_CUE.finditer(window))
    return bool(cues) and not _BETWEEN.search(window[cues[-1].end() :])


def find_places(text: str, *, cued: bool = False) -> list[PiiMatch]:
    """Addresses, PO boxes, postcodes and ZIP codes in ``text`` (normalised).

    ``cued``: the question this text answers asked for a ZIP or postal code.
    """
    out = [PiiMatch(m.start(), m.end(), "ADDRESS") for m in _ADDRESS.finditer(text)]
    out += [PiiMatch(m.start(), m.end(), "ADDRESS") for m in _PO_BOX.finditer(text)]
    out += [PiiMatch(m.start(), m.end(), "POSTCODE") for m in _WRITTEN_POSTCODE.finditer(text)]
    out += _spoken_postcodes(text)
    out += [PiiMatch(m.start(), m.end(), "POSTCODE") for m in _ZIP4.finditer(text)]
    for m in _SPOKEN_ZIP4.finditer(text):
        if cued or _zip_cued(text, m.start()):
            out.append(PiiMatch(m.start(), m.end(), "POSTCODE"))
    for s, e in digit_runs(text):
        run = text[s:e]
        digits = re.sub(r"\D", "", run)
        if len(digits) == 5 and (cued or _zip_cued(text, s)):
            out.append(PiiMatch(s, e, "POSTCODE"))
        elif len(digits) == 9 and (cued or _zip_cued(text, s)):
            out.append(PiiMatch(s, e, "POSTCODE"))
    return out
