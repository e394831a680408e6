"""People's names: where a call introduces or addresses someone, and the name words it uses.

A name is found only where the words around it say it is one; an unknown capitalised word
alone is never taken for a name. The forms:

- **introductions** (the caller, tool payloads, status messages): ``my name is ...``,
  ``my name's``, ``the name's``, ``name is``, ``my last name is``, ``surname is``,
  ``... is my name``, ``this is ...``, ``I'm ...``, ``I am ...``, ``it's ... (here)``,
  ``... speaking``, ``... here``, ``... calling``, ``(you can) call me ...``, ``I go by``;
- **titles** (anyone): ``Mr. Patel``, ``Dr Smith``, ``Mrs O'Brien``, ``Ms. Nguyen``,
  ``Mister``, ``Missus``, ``Miss``, ``Mx``, ``Doctor``, ``Professor``;
- **addressed** (anyone, cased text): ``Thanks, Maria, ...``, ``Hello Maria!``, ``...,
  Maria.`` at the end of a sentence, ``Maria, you're booked``, ``Is this Maria Lopez?``,
  ``Am I speaking with Maria?``;
- **records** (anyone): ``name: Maria Lopez``, ``patient=José``, ``for patient Maria Lopez``;
- **answers**: what the caller says right after the agent asked for a name (``May I have
  your name?`` then ``maria lopez``), when the import passes that question as ``asked``.

Case: in a text that has capitals beyond sentence starts and ``I`` (an LLM's reply, a
formatted transcript), a name word must be capitalised and not a :data:`STOP_WORDS` word.
In lower-case text (a raw transcript), a name word must not be one of the
:data:`COMMON_WORDS` either (``call me back`` teaches nothing), and the weak introductions
(``this is``, ``it's``, ``I'm``, ``call me``, ``... here``) count only at the start of a
sentence. Letters are Unicode letters: ``José``, ``Zoë``, ``Søren``, ``Łukasz``,
``Nguyễn``, with ``'`` and ``-`` inside a name (``O'Brien``, ``Mary-Jane``) and the
particles ``de``, ``van``, ``von``, ``da``, ``di``, ``del``, ``la``, ``le``, ``bin``,
``al`` between capitalised words.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from harness.incident.common_words import is_common, is_stop
from harness.incident.pii import PiiMatch

__all__ = [
    "NameFound",
    "addressed",
    "answer",
    "asks_name",
    "find_names",
    "introductions",
    "is_cased",
    "records",
    "spelled",
    "titled",
    "variants",
]

_TOKEN = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")
_PARTICLES = frozenset("de da di del della van von der den la le du dos das bin ibn al el".split())
_FILLERS = (
    r"(?:(?:hi|hello|hey|hiya|yes|yeah|yep|yup|ok|okay|oh|um|uh|er|erm|so|well|sure|right|"
    r"good\s+(?:morning|afternoon|evening)|and|but|sorry|hmm|ah|alright)\b\W*\s*)*"
)
_SENTENCE_START = rf"(?:^|(?<=[.!?;:])\s*|(?<=\n))\s*{_FILLERS}"

_STRONG = re.compile(
    r"\b(?:my\s+(?:first\s+|last\s+|full\s+|given\s+|family\s+|middle\s+|sur)?name\s+is|"
    r"my\s+(?:first\s+|last\s+|full\s+|sur)?name's|(?:the\s+)?name's|(?:the\s+)?name\s+is|"
    r"(?:first|last|full|given|family|middle)\s+name\s+is|surname\s+is|"
    r"i\s+am\s+called|i'm\s+called|i\s+go\s+by|they\s+call\s+me|people\s+call\s+me)"
    r"\s*[:,]?\s*",
    re.IGNORECASE,
)
_WEAK = re.compile(
    r"\b(?:this\s+is|it's|it\s+is|its|i'm|i\s+am|im|(?:you\s+can\s+)?call\s+me|here's)\s+",
    re.IGNORECASE,
)
_WEAK_AT_START = re.compile(
    rf"{_SENTENCE_START}(?:this\s+is|it's|it\s+is|its|i'm|i\s+am|im|(?:you\s+can\s+)?call\s+me|"
    r"here's)\s+",
    re.IGNORECASE,
)
_NAME_FIRST = re.compile(
    rf"{_SENTENCE_START}(?<![^\W_])(?P<n>[^\W\d_]+(?:['’\-][^\W\d_]+)*(?:\s+[^\W\d_]+(?:['’\-][^\W\d_]+)*)?)"
    r"\s*,?\s+(?:speaking|here|calling)\b",
    re.IGNORECASE,
)
_IS_MY_NAME = re.compile(
    r"(?P<n>[^\W\d_]+(?:['’\-][^\W\d_]+)*(?:\s+[^\W\d_]+(?:['’\-][^\W\d_]+)*)?)"
    r"\s+(?:is|'s)\s+my\s+(?:first\s+|last\s+|full\s+|sur)?name\b",
    re.IGNORECASE,
)
_TITLE = re.compile(
    r"\b(?P<t>mr|mrs|ms|miss|mx|dr|prof|mister|missus|doctor|professor)\b\.?\s+",
    re.IGNORECASE,
)
_SOFT_TITLES = frozenset({"miss", "doctor", "professor", "mister", "missus"})
_GREETING = re.compile(
    r"\b(?:hi|hello|hey|dear|thanks|thank\s+you(?:\s+so\s+much|\s+very\s+much)?|goodbye|bye|"
    r"welcome(?:\s+back)?|good\s+(?:morning|afternoon|evening|day)|great|perfect|sure|okay|"
    r"ok|alright|all\s+right|certainly|of\s+course|no\s+problem|lovely|wonderful|excellent|"
    r"sorry|got\s+it|understood|absolutely|nice\s+to\s+meet\s+you|see\s+you|take\s+care|"
    r"cheers|congratulations|well\s+done|is\s+this|am\s+i\s+speaking\s+(?:to|with)|"
    r"speaking\s+(?:to|with)|talking\s+(?:to|with))[,!]?\s+",
    re.IGNORECASE,
)
_TRAILING = re.compile(r",\s+(?=[^\W\d_])")
_LEADING = re.compile(r"(?:^|(?<=[.!?])\s+)(?=[^\W\d_][^,.!?]{0,40},\s)")
_RECORD = re.compile(
    r"(?:\b(?:(?:patient|caller|customer|client|guest|contact|first|last|full|given|family|"
    r"middle)[_\s-]?name|name|surname|patient|caller|customer|client|guest)\b['\"]?\s*[:=]\s*"
    r"['\"]?|\b(?:for|with|to)\s+(?:the\s+)?(?:patient|caller|customer|client|guest)\s+)",
    re.IGNORECASE,
)
_ASKS_NAME = re.compile(
    r"\b(?:your|the\s+patient's|the\s+caller's|their|his|her)\s+(?:full\s+|first\s+|last\s+|"
    r"sur|given\s+|family\s+)?name\b|\bwho\s+(?:am\s+i|is\s+this|is\s+it)\b|"
    r"\bwho(?:'s|\s+is)\s+(?:calling|speaking)\b|\bspell\s+(?:that|it|your)\b|"
    r"\bwhat\s+name\b|\bunder\s+what\s+name\b|\bname\s+(?:for|on)\s+the\s+booking\b",
    re.IGNORECASE,
)
_ANSWER_LEAD = re.compile(
    rf"^\s*{_FILLERS}(?:(?:it's|it\s+is|its|this\s+is|i'm|i\s+am|im|my\s+name\s+is|"
    r"my\s+name's|the\s+name's|that's|that\s+is|name's)\s+)?",
    re.IGNORECASE,
)
_SPELLED = re.compile(r"(?<![^\W_])[^\W\d_](?:[\s.,\-]{1,2}[^\W\d_]){2,}(?![^\W_])")


@dataclass(frozen=True)
class NameFound:
    """Name words at ``text[start:end]``: the span to redact and the words to learn."""

    start: int
    end: int
    words: tuple[str, ...]


def is_cased(text: str) -> bool:
    """Whether ``text`` capitalises words beyond sentence starts and ``I``."""
    for m in _TOKEN.finditer(text):
        w = m.group(0)
        if not w[0].isupper() or w in ("I", "I'm", "I'd", "I'll", "I've"):
            continue
        before = text[: m.start()].rstrip()
        if before and before[-1] not in ".!?:;\"'(“" and not before.endswith("\n"):
            return True
    return False


def variants(word: str) -> set[str]:
    """A name word as it may be written: composed, decomposed and without its accents."""
    nfc = unicodedata.normalize("NFC", word)
    plain = "".join(
        ch for ch in unicodedata.normalize("NFKD", nfc) if not unicodedata.combining(ch)
    )
    plain = plain.replace("ł", "l").replace("Ł", "L").replace("ø", "o").replace("Ø", "O")
    plain = plain.replace("đ", "d").replace("Đ", "D").replace("ß", "ss")
    return {nfc, unicodedata.normalize("NFD", nfc), plain}


def _ok(word: str, *, cased: bool, first: bool, strict: bool) -> bool:
    """Whether ``word`` may be a name word here (see the module's case rules)."""
    if len(word) < 2 or is_stop(word):
        return False
    if cased:
        return word[0].isupper() and not (first and strict and is_common(word))
    if first and strict:
        return not is_common(word)
    w = word.casefold()
    return not (len(w) >= 6 and w.endswith(("ing", "ly", "ed")))


def _take(text: str, pos: int, *, cased: bool, strict: bool, limit: int = 3) -> NameFound | None:
    """Up to ``limit`` name words from ``pos`` (spaces between them only)."""
    words: list[str] = []
    start = end = -1
    i = pos
    while len(words) < limit:
        m = _TOKEN.match(text, i)
        if m is None:
            break
        w = m.group(0)
        follow = _TOKEN.match(text, m.end() + 1) if text[m.end() : m.end() + 1] == " " else None
        if cased and words and w in _PARTICLES and follow and follow.group(0)[0].isupper():
            i = m.end() + 1
            continue
        if len(w) == 1 and cased and w.isupper() and words and text[m.end() : m.end() + 1] == ".":
            i = m.end() + 1  # a middle initial: "Maria J. Lopez"
            end = i
            while text[i : i + 1] == " ":
                i += 1
            continue
        if not _ok(w, cased=cased, first=not words, strict=strict):
            break
        if start < 0:
            start = m.start()
        words.append(w)
        end = m.end()
        gap = re.match(r"[ \t]+", text[end:])
        if gap is None:
            break
        i = end + gap.end()
    if not words:
        return None
    return NameFound(start, end, tuple(words))


def introductions(text: str) -> list[NameFound]:
    """Names a speaker gives for themselves (caller turns, tool payloads, status messages)."""
    cased = is_cased(text)
    out: list[NameFound] = []
    for m in _STRONG.finditer(text):
        found = _take(text, m.end(), cased=cased, strict=False)
        if found:
            out.append(found)
    weak = _WEAK if cased else _WEAK_AT_START
    for m in weak.finditer(text):
        found = _take(text, m.end(), cased=cased, strict=not cased)
        if found:
            out.append(found)
    for pattern in (_NAME_FIRST, _IS_MY_NAME):
        for m in pattern.finditer(text):
            found = _take(text, m.start("n"), cased=cased, strict=True, limit=2)
            if found and found.end <= m.end("n"):
                out.append(found)
    return out


def titled(text: str) -> list[NameFound]:
    """Names after a title: ``Mr. Patel``, ``dr smith``, ``Mrs O'Brien``."""
    cased = is_cased(text)
    out = []
    for m in _TITLE.finditer(text):
        soft = m.group("t").lower() in _SOFT_TITLES
        found = _take(text, m.end(), cased=cased, strict=soft or not cased, limit=2)
        if found:
            out.append(found)
    return out


def addressed(text: str) -> list[NameFound]:
    """Names a speaker addresses (cased text only): ``Thanks, Maria, ...``, ``..., Maria.``"""
    if not is_cased(text):
        return []
    out = []
    for m in _GREETING.finditer(text):
        found = _take(text, m.end(), cased=True, strict=False, limit=2)
        if found and _ends_vocative(text, found.end):
            out.append(found)
    for m in _TRAILING.finditer(text):
        found = _take(text, m.end(), cased=True, strict=False, limit=2)
        if found and re.match(r"\s*(?:[.!?]|$)", text[found.end :]):
            out.append(found)
    for m in _LEADING.finditer(text):
        found = _take(text, m.end(), cased=True, strict=True, limit=2)
        if found and text[found.end : found.end + 1] == ",":
            out.append(found)
    return out


def _ends_vocative(text: str, end: int) -> bool:
    return bool(re.match(r"\s*(?:[,.!?;:]|$)", text[end:]))


def records(text: str) -> list[NameFound]:
    """Names in records: ``name: Maria Lopez``, ``patient=José``, ``for patient Maria``."""
    cased = is_cased(text)
    out = []
    for m in _RECORD.finditer(text):
        keyed = m.group(0).rstrip().endswith((":", "=", "'", '"'))
        found = _take(text, m.end(), cased=cased, strict=not keyed)
        if found:
            out.append(found)
    return out


def asks_name(text: str) -> bool:
    """Whether a question asks for someone's name (``May I have your name, please?``)."""
    return bool(_ASKS_NAME.search(text))


def answer(text: str) -> list[NameFound]:
    """The name a text opens with, when it answers a question that asked for one."""
    lead = _ANSWER_LEAD.match(text)
    pos = lead.end() if lead else 0
    found = _take(text, pos, cased=is_cased(text), strict=True)
    return [found] if found else []


def find_names(text: str, *, speaker: str) -> list[NameFound]:
    """Every name the forms above find in ``text``; introductions only when ``speaker`` is
    not ``"agent"`` (an agent's ``This is Bright Smile Dental`` names no caller)."""
    out = titled(text) + addressed(text) + records(text)
    if speaker != "agent":
        out += introductions(text)
    return out


def spelled(text: str, known: set[str]) -> list[PiiMatch]:
    """A known name spelled out letter by letter: ``l o p e z``, ``M-A-R-I-A``."""
    out = []
    for m in _SPELLED.finditer(text):
        letters = re.sub(r"[\s.,\-]", "", m.group(0)).casefold()
        if letters in known:
            out.append(PiiMatch(m.start(), m.end(), "NAME"))
    return out
