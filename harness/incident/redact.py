"""PII redaction: every string of an incident fixture passes through here before it is written.

Detected, in this order of precedence when two overlap:

========  ==========================================================================
EMAIL     ``name@example.com``, and the spoken form ``john dot smith at gmail dot com``
NAME*     values learned from the call itself (see below) and names in the config
CARD      13 to 19 digits that pass the Luhn check, written or spoken, grouped or not
ID        US SSN pattern ``123-45-6789``; 9 digits; 12 to 19 digits failing Luhn
PHONE     ``+`` and 8 to 15 digits; 7, 8, 10 or 11 digits (``555 123 4567``,
          ``(555) 123-4567``, ``five five five one two three four``)
ADDRESS   a house number, up to three words and a street type (``12 Oak Street``,
          ``one two three main st``), with an optional ``apt 4b``
NAME      names listed in :class:`RedactionConfig`, each of their words, and names the
          caller gives (``my name is ...``, ``this is ... calling``)
========  ==========================================================================

Digit runs that look like dates (``2024-05-01``, ``12 05 2024``) or are shorter than 7 digits
(times, prices, confirmation numbers) are kept.

Values learned from the call: the string arguments of the agent's tool calls whose key
names a person's data (``name``, ``first_name``, ``phone``, ``email``, ``address``,
``card``, ``ssn``, ``dob`` ...) are redacted wherever they occur, so ``Maria`` goes from the
agent's replies too, not only from the turn where the caller said it.

A redacted occurrence becomes either its typed placeholder (``<PHONE>``) or a synthetic,
valid-looking replay value of the same type (``555-0100``, the Luhn-valid test card
``4242 4242 4242 4242``, ``987-65-4320`` from the range the US SSA reserves for examples),
the same original value always getting the same replacement within one import.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "KINDS",
    "SYNTHETIC",
    "PiiMatch",
    "Redacted",
    "RedactionConfig",
    "Redactor",
    "find_pii",
    "is_national_id",
    "luhn_ok",
    "placeholder",
    "redact_text",
]

PiiKind = Literal["PHONE", "EMAIL", "CARD", "ID", "ADDRESS", "NAME"]
KINDS: tuple[str, ...] = ("PHONE", "EMAIL", "CARD", "ID", "ADDRESS", "NAME")

SYNTHETIC: dict[str, tuple[str, ...]] = {
    # 555-0100..0199 is the block reserved for fictional use
    "PHONE": tuple(f"555-01{i:02d}" for i in range(100)),
    "EMAIL": tuple(f"caller{i}@example.com" for i in range(1, 100)),
    # public test card numbers, all Luhn-valid
    "CARD": (
        "4242 4242 4242 4242",
        "4000 0566 5566 5556",
        "5555 5555 5555 4444",
        "2223 0031 2200 3222",
        "5200 8282 8282 8210",
        "3782 822463 10005",
        "6011 1111 1111 1117",
        "3056 9300 0902 0004",
    ),
    # 987-65-4320..4329: reserved by the US SSA for use in examples
    "ID": tuple(f"987-65-432{i}" for i in range(10)),
    "ADDRESS": tuple(f"{i} Example Street" for i in range(1, 100)),
    "NAME": (
        "Alex Doe",
        "Sam Roe",
        "Jamie Poe",
        "Robin Moe",
        "Casey Loe",
        "Drew Zoe",
        "Kim Toe",
        "Lee Joe",
    ),
}
"""Replay values by kind, used in order of first appearance (then round again)."""


def placeholder(kind: str) -> str:
    return f"<{kind}>"


@dataclass(frozen=True)
class RedactionConfig:
    """What to redact beyond the built-in patterns, and how redacted audio sounds.

    ``names``: people's names to redact (each word of a several-word name as well).
    ``spoken_names``: also redact the names a caller gives ("my name is ...").
    ``learn_from_tools``: redact the values of the agent's tool arguments that name a
    person's data, wherever they occur. ``audio_fill``: what replaces a redacted word in a
    recorded turn when word timings locate it: ``silence`` or a 1 kHz ``tone``.
    ``replay_values``: the values replayed in place of redacted ones, by kind (e.g.
    ``{"NAME": ("Anna Smith",), "PHONE": ("555-0100",)}``), instead of the built-in
    :data:`SYNTHETIC` pools: a test account your backend accepts, or a name your speech
    recognition knows.
    """

    names: tuple[str, ...] = ()
    spoken_names: bool = True
    learn_from_tools: bool = True
    audio_fill: Literal["silence", "tone"] = "silence"
    replay_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.names, str):
            raise TypeError(f"names={self.names!r}: give a list of names, not one string")
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        values = {}
        for kind, pool in dict(self.replay_values).items():
            if kind not in KINDS:
                raise ValueError(f"replay_values[{kind!r}]: unknown kind; use one of {KINDS}")
            pool = (pool,) if isinstance(pool, str) else tuple(pool)
            if not pool or not all(isinstance(v, str) and v.strip() for v in pool):
                raise ValueError(f"replay_values[{kind!r}]={pool!r}: give non-empty strings")
            values[kind] = pool
        object.__setattr__(self, "replay_values", values)
        if self.audio_fill not in ("silence", "tone"):
            raise ValueError(f"audio_fill={self.audio_fill!r}: use 'silence' or 'tone'")


@dataclass(frozen=True)
class PiiMatch:
    """One occurrence: ``text[start:end]`` is PII of ``kind``."""

    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class Redacted:
    """A text after redaction, and the occurrences found in the original (never their value)."""

    text: str
    matches: tuple[PiiMatch, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return bool(self.matches)

    @property
    def kinds(self) -> Counter[str]:
        return Counter(m.kind for m in self.matches)


# --- detectors --------------------------------------------------------------------------------

_DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_DW = "(?:" + "|".join(_DIGIT_WORDS) + ")"
_TOKEN = rf"(?:\d+|{_DW}(?![A-Za-z]))"
_SEP = r"[ \t.\-(),/]{1,3}"
_DIGIT_RUN = re.compile(
    rf"(?<![A-Za-z0-9@.])\+?\(?{_TOKEN}(?:{_SEP}\(?{_TOKEN}\)?)*\)?(?![A-Za-z0-9@])", re.IGNORECASE
)
_SSN = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_EMAIL = re.compile(r"[^\s@<>\"(),;:\[\]]+@[^\s@<>\"(),;:\[\]]+\.[^\s@<>\"(),;:\[\]]+")
_TLD = r"(?:com|net|org|edu|gov|io|co|uk|us|de|fr|ca|au|info|biz|me)"
_SPOKEN_EMAIL = re.compile(
    rf"\b[a-z0-9]+(?:\s+(?:dot|underscore|dash)\s+[a-z0-9]+)*\s+at\s+[a-z0-9]+"
    rf"(?:\s+dot\s+[a-z0-9]+)*\s+dot\s+{_TLD}\b",
    re.IGNORECASE,
)
_STREET_TYPES = (
    "street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    "terrace|close|crescent|highway|hwy|parkway|pkwy|square|sq|circle|cir|trail|row"
)
_ADDRESS = re.compile(
    rf"(?<![\w-])(?:\d{{1,6}}[a-z]?|{_DW}(?:[ -]{_DW}){{0,5}})\s+"
    rf"(?:[A-Za-z][A-Za-z'.-]*\s+){{0,3}}?(?:{_STREET_TYPES})\b\.?"
    rf"(?:,?\s+(?:apt|apartment|unit|suite|flat)\.?\s+\w+)?",
    re.IGNORECASE,
)
_NAME_WORD = r"[A-Za-z][A-Za-z'\-]+"
_SPOKEN_NAME = re.compile(
    r"\b(?:my name is|my name's|name is|i am called|call me)\s+"
    rf"(?P<n>{_NAME_WORD}(?:\s+{_NAME_WORD})?)"
    rf"|\bthis is\s+(?P<m>{_NAME_WORD}(?:\s+{_NAME_WORD})?)\s+(?:calling|speaking|here)\b",
    re.IGNORECASE,
)
_NOT_NAMES = frozenset(
    """a an and the i im i'm is it its it's please thanks thank you yes no not so but or
    uh um er erm well just actually calling speaking here from with at on in about sorry
    okay ok hi hello hey good morning afternoon evening this that my me we our your
    mister miss mrs mr ms dr doctor again still""".split()
)
_PERSONAL_KEYS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(^|_)(e_?mail)(_|$)"), "EMAIL"),
    (re.compile(r"(^|_)(phone|tel|telephone|mobile|cell|callback)(_|$)"), "PHONE"),
    (re.compile(r"(^|_)(card|pan|cc)(_|$)"), "CARD"),
    (re.compile(r"(^|_)(ssn|sin|nin|national_id|passport|dob|birth|birthday|date_of_birth)"), "ID"),
    (re.compile(r"(^|_)(address|street|addr)(_|$)"), "ADDRESS"),
    (
        re.compile(
            r"^(name|first_?name|last_?name|full_?name|given_?name|family_?name|surname|"
            r"(patient|caller|customer|client|contact|user|guest)_?name)$"
        ),
        "NAME",
    ),
)


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


def _digits_of(run: str) -> tuple[str, list[int]]:
    """The digits a run says, and the digit count of each written group."""
    digits: list[str] = []
    groups: list[int] = []
    for tok in re.finditer(rf"\d+|{_DW}", run, re.IGNORECASE):
        t = tok.group(0)
        if t.isdigit():
            digits.append(t)
            groups.append(len(t))
        else:
            digits.append(_DIGIT_WORDS[t.lower()])
            groups.append(1)
    return "".join(digits), groups


def _date_like(groups: list[int]) -> bool:
    return groups in ([4, 2, 2], [2, 2, 4], [1, 2, 4], [2, 1, 4], [1, 1, 4], [4, 1, 1], [4, 2, 1])


_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+")


def _classify_run(raw: str) -> str | None:
    if _NUMBER.fullmatch(raw.strip()):
        return None  # an amount: 12,345.67 or 3.14
    digits, groups = _digits_of(raw)
    n = len(digits)
    if _SSN.match(raw.strip()):
        return "ID"
    if n < 7 or _date_like(groups):
        return None
    if 13 <= n <= 19 and luhn_ok(digits):
        return "CARD"
    if raw.lstrip().startswith("+") and 8 <= n <= 15:
        return "PHONE"
    if n in (7, 8, 10, 11):
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


def _literal_pattern(values: Iterable[str]) -> re.Pattern[str] | None:
    alts = sorted({v for v in values if v}, key=len, reverse=True)
    if not alts:
        return None
    body = "|".join(r"\s+".join(re.escape(w) for w in v.split()) for v in alts)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


def _name_words(name: str) -> list[str]:
    words = [w for w in re.split(r"\s+", name.strip()) if w]
    out = [" ".join(words)] if words else []
    if len(words) > 1:
        out += [w for w in words if len(w) >= 3 and w.lower() not in _NOT_NAMES]
    return out


class Redactor:
    """Finds and replaces PII, keeping one replacement per original value and a count by kind.

    Learn first (:meth:`learn_text`, :meth:`learn_arguments`), then :meth:`redact` every
    string that will be written.
    """

    def __init__(self, config: RedactionConfig | None = None) -> None:
        self.config = config or RedactionConfig()
        self.counts: Counter[str] = Counter()
        self._known: dict[str, str] = {}  # casefolded literal -> kind
        self._replacement: dict[tuple[str, str], str] = {}
        self._used: Counter[str] = Counter()
        self._pattern: re.Pattern[str] | None = None
        self._dirty = True
        for name in self.config.names:
            self._learn_name(name)

    # --- learning ---

    def _learn_name(self, name: str) -> None:
        for w in _name_words(name):
            if len(w) >= 2:
                self._known.setdefault(w.casefold(), "NAME")
        self._dirty = True

    def learn_value(self, kind: str, value: str) -> None:
        """Redact ``value`` (as a whole word or phrase, any case) wherever it occurs."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}: one of {', '.join(KINDS)}")
        value = " ".join(str(value).split())
        if kind == "NAME":
            if len(value) >= 2 and value.lower() not in _NOT_NAMES:
                self._learn_name(value)
            return
        if len(value) >= 4:
            self._known.setdefault(value.casefold(), kind)
            self._dirty = True

    def learn_text(self, text: str) -> None:
        """Learn the names a caller gives in ``text`` (when ``spoken_names`` is on)."""
        if not self.config.spoken_names or not text:
            return
        for m in _SPOKEN_NAME.finditer(text):
            raw = m.group("n") or m.group("m") or ""
            words = []
            for w in raw.split():
                if w.lower() in _NOT_NAMES:
                    break
                words.append(w)
            if words:
                self._learn_name(" ".join(words))

    def learn_arguments(self, args: Any, _key: str = "") -> None:
        """Learn the values of personal keys in a tool call's arguments (nested ok)."""
        if not self.config.learn_from_tools:
            return
        if isinstance(args, Mapping):
            for k, v in args.items():
                self.learn_arguments(v, str(k))
        elif isinstance(args, Sequence) and not isinstance(args, str | bytes):
            for v in args:
                self.learn_arguments(v, _key)
        elif isinstance(args, str | int) and not isinstance(args, bool) and _key:
            key = re.sub(r"[^a-z0-9]+", "_", _key.lower()).strip("_")
            for pattern, kind in _PERSONAL_KEYS:
                if pattern.search(key):
                    self.learn_value(kind, str(args))
                    break

    # --- finding ---

    def _known_pattern(self) -> re.Pattern[str] | None:
        if self._dirty:
            self._pattern = _literal_pattern(self._known)
            self._dirty = False
        return self._pattern

    def find(self, text: str) -> list[PiiMatch]:
        """Every PII occurrence in ``text``, non-overlapping, in order."""
        if not text:
            return []
        found: list[tuple[int, int, int, str]] = []  # start, end, priority, kind

        def add(start: int, end: int, priority: int, kind: str) -> None:
            if end > start:
                found.append((start, end, priority, kind))

        for m in _EMAIL.finditer(text):
            s, e = m.start(), m.end()
            while e > s and text[e - 1] in ".!?":
                e -= 1
            add(s, e, 0, "EMAIL")
        for m in _SPOKEN_EMAIL.finditer(text):
            add(m.start(), m.end(), 0, "EMAIL")
        known = self._known_pattern()
        if known is not None:
            for m in known.finditer(text):
                kind = self._known.get(" ".join(m.group(0).split()).casefold(), "NAME")
                add(m.start(), m.end(), 1, kind)
        for m in _DIGIT_RUN.finditer(text):
            s, e = _strip_run(text, m.start(), m.end())
            kind = _classify_run(text[s:e])
            if kind is not None:
                add(s, e, 2, kind)
        for m in _ADDRESS.finditer(text):
            add(m.start(), m.end(), 3, "ADDRESS")
        found.sort(key=lambda f: (f[0], f[2], -(f[1] - f[0])))
        out: list[PiiMatch] = []
        end = -1
        for s, e, _, kind in found:
            if s < end:
                # overlapping: a longer match of lower precedence swallows a shorter one
                last = out[-1]
                if e > last.end and kind in ("ADDRESS", "ID", "PHONE", "CARD"):
                    out[-1] = PiiMatch(last.start, e, last.kind)
                    end = e
                continue
            out.append(PiiMatch(s, e, kind))
            end = e
        return out

    # --- replacing ---

    def replacement(self, kind: str, original: str) -> str:
        """The synthetic replay value for ``original`` (stable within this redactor)."""
        norm = re.sub(r"\W+", "", original).casefold()
        if kind in ("PHONE", "CARD", "ID"):
            norm = _digits_of(original)[0] or norm
        key = (kind, norm)
        if key not in self._replacement:
            pool = self.config.replay_values.get(kind) or SYNTHETIC[kind]
            value = pool[self._used[kind] % len(pool)]
            self._used[kind] += 1
            if kind == "NAME" and len(original.split()) == 1:
                value = value.split()[0]
            self._replacement[key] = value
        return self._replacement[key]

    def redact(
        self,
        text: str,
        *,
        style: Literal["placeholder", "synthetic"] = "placeholder",
        count: bool = True,
    ) -> Redacted:
        """``text`` with each PII occurrence replaced; ``count`` adds them to :attr:`counts`."""
        matches = self.find(text)
        if not matches:
            return Redacted(text)
        parts: list[str] = []
        pos = 0
        for m in matches:
            parts.append(text[pos : m.start])
            if style == "synthetic":
                parts.append(self.replacement(m.kind, text[m.start : m.end]))
            else:
                parts.append(placeholder(m.kind))
            pos = m.end
        parts.append(text[pos:])
        if count:
            self.counts.update(m.kind for m in matches)
        return Redacted("".join(parts), tuple(matches))


def find_pii(text: str, config: RedactionConfig | None = None) -> list[PiiMatch]:
    """PII occurrences in one text, with the built-in patterns and ``config``'s names."""
    r = Redactor(config)
    r.learn_text(text)
    return r.find(text)


def redact_text(
    text: str,
    config: RedactionConfig | None = None,
    *,
    style: Literal["placeholder", "synthetic"] = "placeholder",
) -> str:
    """One text redacted on its own (names it gives included)."""
    r = Redactor(config)
    r.learn_text(text)
    return r.redact(text, style=style).text
