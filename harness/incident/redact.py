"""PII redaction: every string of an incident fixture passes through here before it is written.

Detected, with an example of each (``docs/pii.md`` has the full rules):

==========  =================================================================================
kind        examples
==========  =================================================================================
PHONE       ``(415) 555-0199``, ``+44 20 7946 0958``, ``020 7946 0958``, ``612 345 678``,
            ``five five five one two three four``, ``double five``, ``oh`` for zero (a run
            of 7 to 15 digits ``phonenumbers`` reads as valid: ``+`` numbers of every
            region, national formats of
            :data:`~harness.incident.digits.DEFAULT_PHONE_REGIONS`; else 7, 8, 10 or 11
            digits)
EMAIL       ``jo.smith+x@mail.example.org``, ``jo dot smith at gmail dot com``
CARD        13 to 19 digits passing the Luhn check, written or spoken, grouped or not
ID          SSN ``123-45-6789``, UK NI number ``AB 12 34 56 C``, 7+ digits after ``ssn``,
            ``passport``, ``id`` ..., any other run of 7+ digits that is no phone number
DOB         ``04/07/1985``, ``4/7/85``, ``1985-07-04``, ``July 4th 1985``, ``4 July 1985``,
            ``the fourth of July nineteen eighty five``, ``born on the 4th of July``,
            ``date of birth March 3rd``: a date with a cue (``born``, ``birth``,
            ``birthday``, ``date of birth``, ``DOB``) or with day, month and a year before
            the call's (``python-dateutil`` reads each candidate;
            :mod:`harness.incident.dates`)
POSTCODE    ``SW1A 1AA``, ``s w one a one a a``, ``K1A 0B1``, ``90210-1234``, a five-digit ZIP
            after ``zip``/``postal code``/a US state (``my zip is nine oh two one oh``)
ADDRESS     ``12 Oak Street, apt 4b``, ``one two three main st``, ``P.O. Box 123``,
            ``po box one two three``
NAME        introduced (``my name is``, ``this is Maria``, ``I'm Maria Lopez``, ``it's Maria
            here``, ``Maria speaking``, ``the name's Lopez``, ``you can call me Maria``),
            titled (``Mr. Patel``, ``Dr Smith``, ``Mrs O'Brien``, ``Ms. Nguyen``), addressed
            by the agent (``Thanks, Maria, you're booked``, ``Hello Mr. Patel``), given in
            answer to ``May I have your name?``, in records (``name: Maria Lopez``) and in
            tool arguments under personal keys; Unicode letters (``José``, ``Søren``,
            ``Łukasz``, ``Nguyễn``); also spelled out (``l o p e z``)
==========  =================================================================================

Learned values: whatever is found anywhere in the call (any turn, the agent's replies,
tool arguments and results, status messages; a ZIP or a birth date given in answer to the
agent asking for one) and the arguments of tool calls under personal keys (``name``,
``phone``, ``email``, ``address``, ``zip``, ``dob``, ``ssn`` ...) are redacted wherever
they occur, in any case, with any separators between their parts (``maria_lopez.wav``,
``4-7-85`` for ``4/7/85``), without accents (``Jose`` for ``José``) and spelled out; a
birth date's day and month in any form (``July fourth``). Learn first
(:meth:`Redactor.learn_text`, :meth:`Redactor.learn_arguments`), then redact.

Kept on purpose: appointment dates and times (``next tuesday at 3 pm``, ``the fourth``,
``May 4th``, ``12/05/2026`` in a 2026 call), weekdays and months (``march``, ``may I``),
prices and amounts, numbers of fewer than 7 digits (times, confirmation numbers), a bare
five-digit number with nothing saying it is a ZIP, and ordinary words after an
introduction (``call me back``, ``this is urgent``, ``I'm calling about``).

Not detected (see ``docs/pii.md``): a name nothing introduces, titles or addresses
(``my husband john said so``, a bare name with no question before it), a lower-case name
that is also a common English word (``i'm grace``; capitalised, ``This is Grace``, it is
found), names that are function words or months (``Will``, ``May``, ``June``), street names
without a house number, cities and countries alone, ages (``I'm 42``), a day and month
without a year and without a birth cue (``the 4th of July``), a full date in the call's own
year without a cue, a bare five-digit number with no ZIP cue, ids with letters other than
the UK NI shape (passports, licence plates, record numbers), vanity numbers
(``1-800-FLOWERS``), and anything the recogniser mis-transcribed.

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
from datetime import date
from typing import Any, Literal

import phonenumbers

from harness.incident import dates, digits, emails, names, places
from harness.incident.common_words import is_common, is_stop
from harness.incident.digits import DEFAULT_PHONE_REGIONS, is_national_id, luhn_ok
from harness.incident.pii import KINDS, PiiMatch, placeholder
from harness.incident.spoken import normalise

__all__ = [
    "KINDS",
    "SYNTHETIC",
    "PiiMatch",
    "Redacted",
    "RedactionConfig",
    "Redactor",
    "Speaker",
    "find_pii",
    "is_national_id",
    "luhn_ok",
    "placeholder",
    "redact_text",
]

Speaker = Literal["caller", "agent", "system"]
"""Who wrote a text: the caller (transcripts), the agent (its replies) or a system (tool
payloads, status messages, file names). Introductions count from callers and systems only."""

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
    "DOB": tuple(f"January {d}, 1970" for d in range(1, 29)),
    "POSTCODE": tuple(f"000{i:02d}" for i in range(1, 100)),
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


@dataclass(frozen=True)
class RedactionConfig:
    """What to redact beyond the built-in detectors, and how redacted audio sounds.

    ``names``: people's names to redact (each word of a several-word name as well).
    ``spoken_names``: also learn the names and birth dates a call gives ("my name is ...").
    ``learn_from_tools``: redact the values of the agent's tool arguments that name a
    person's data, wherever they occur. ``audio_fill``: what replaces a redacted word in a
    recorded turn when word timings locate it: ``silence`` or a 1 kHz ``tone``.
    ``replay_values``: the values replayed in place of redacted ones, by kind (e.g.
    ``{"NAME": ("Anna Smith",), "PHONE": ("555-0100",)}``), instead of the built-in
    :data:`SYNTHETIC` pools: a test account your backend accepts, or a name your speech
    recognition knows. ``keep_names``: names never redacted (the clinic's own staff,
    ``("Dr Chen",)``). ``phone_regions``: regions whose national phone formats are read
    (ISO codes; ``+`` numbers are read for every region). ``reference_date``: the day of
    the call, for the birth-date rule (default: the call's start on import, else today).
    """

    names: tuple[str, ...] = ()
    spoken_names: bool = True
    learn_from_tools: bool = True
    audio_fill: Literal["silence", "tone"] = "silence"
    replay_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    keep_names: tuple[str, ...] = ()
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS
    reference_date: date | None = None

    def __post_init__(self) -> None:
        for name in ("names", "keep_names", "phone_regions"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"{name}={value!r}: give a list of names, not one string")
            object.__setattr__(self, name, tuple(str(n) for n in value))
        unknown = [r for r in self.phone_regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(
                f"phone_regions={unknown!r}: use ISO 3166 region codes such as 'US' or 'GB'"
            )
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
        if self.reference_date is not None and not isinstance(self.reference_date, date):
            raise TypeError(f"reference_date={self.reference_date!r}: give a datetime.date")


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


_PERSONAL_KEYS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(^|_)(e_?mail)(_|$)"), "EMAIL"),
    (re.compile(r"(^|_)(phone|tel|telephone|mobile|cell|callback|fax)(_|$)"), "PHONE"),
    (re.compile(r"(^|_)(card|pan|cc)(_|$)"), "CARD"),
    (re.compile(r"(^|_)(dob|birth|birthday|birthdate|date_of_birth|born)(_|$)"), "DOB"),
    (re.compile(r"(^|_)(ssn|sin|nin|nino|national_id|passport|tax_id|insurance_id)"), "ID"),
    (re.compile(r"(^|_)(zip|zipcode|zip_code|postal|postcode|post_code)(_|$)"), "POSTCODE"),
    (re.compile(r"(^|_)(address|street|addr|city|town|county|po_box)(_|$)"), "ADDRESS"),
    (
        re.compile(
            r"^(name|first_?name|last_?name|full_?name|given_?name|family_?name|surname|"
            r"middle_?name|(patient|caller|customer|client|contact|user|guest|person)(_?name)?)$"
        ),
        "NAME",
    ),
)
_PRIORITY = {"EMAIL": 0, "DOB": 2, "POSTCODE": 3, "ID": 4, "CARD": 4, "PHONE": 5, "ADDRESS": 6}
_KNOWN_PRIORITY = 1
_NAME_PRIORITY = 7


_PARTS = re.compile(r"[^\W_]+")
_JOIN = r"(?:[^\w,;!?()\[\]]|_){1,3}"  # between a literal's parts: not a list's comma


def _key(literal: str, *, fold: bool = True) -> str:
    """How a learned literal is looked up: its letters and digits, any separators between
    them (``maria_lopez``, ``4-7-85`` for ``4/7/85``, ``O Brien`` for ``O'Brien``)."""
    key = " ".join(_PARTS.findall(literal))
    return key.casefold() if fold else key


def _literal_pattern(values: Iterable[str], flags: int) -> re.Pattern[str] | None:
    alts = sorted({_key(v, fold=False) for v in values if _PARTS.search(v)}, key=len, reverse=True)
    if not alts:
        return None
    body = "|".join(_JOIN.join(re.escape(w) for w in v.split()) for v in alts)
    return re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])", flags)


class Redactor:
    """Finds and replaces PII, keeping one replacement per original value and a count by kind.

    Learn first (:meth:`learn_text`, :meth:`learn_arguments`), then :meth:`redact` every
    string that will be written.
    """

    def __init__(self, config: RedactionConfig | None = None) -> None:
        self.config = config or RedactionConfig()
        self.counts: Counter[str] = Counter()
        self.reference = self.config.reference_date or date.today()
        self._known: dict[str, str] = {}  # casefolded literal -> kind (any case)
        self._exact: dict[str, str] = {}  # literal -> kind (this case only: "Will")
        self._birthdays: set[tuple[int, int]] = set()
        self._name_words: set[str] = set()  # casefolded, for spelled-out names
        self._keep = {w.casefold() for n in self.config.keep_names for w in n.split()}
        self._keep |= {n.casefold() for n in self.config.keep_names}
        self._replacement: dict[tuple[str, str], str] = {}
        self._used: Counter[str] = Counter()
        self._static: dict[tuple[str, str], list[tuple[int, int, str, int]]] = {}
        self._patterns: tuple[re.Pattern[str] | None, re.Pattern[str] | None] = (None, None)
        self._kind_of: dict[str, str] = {}
        self._kind_of_exact: dict[str, str] = {}
        self._dirty = True
        for name in self.config.names:
            self._learn_name(tuple(name.split()), configured=True)

    # --- learning ---

    def _learn_name(self, words: Sequence[str], *, configured: bool = False) -> None:
        words = [w.strip(".,") for w in words if w.strip(".,")]
        words = [w for w in words if w.casefold() not in self._keep]
        if not words:
            return
        phrase = " ".join(words)
        if len(words) > 1 or configured:
            for v in names.variants(phrase):
                if len(v) >= 2:
                    self._known.setdefault(v.casefold(), "NAME")
        if len(words) > 1 or not configured:
            for w in words:
                if len(w) < 2 or (is_stop(w) and not configured):
                    continue
                for v in names.variants(w):
                    if is_common(v) and not configured:
                        self._exact.setdefault(v[:1].upper() + v[1:], "NAME")
                    else:
                        self._known.setdefault(v.casefold(), "NAME")
                    if len(v) >= 3:
                        self._name_words.add(v.casefold())
        self._dirty = True

    def learn_value(self, kind: str, value: str) -> None:
        """Redact ``value`` (as a whole word or phrase, any case) wherever it occurs."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}: one of {', '.join(KINDS)}")
        value = " ".join(str(value).split())
        if kind == "NAME":
            if len(value) >= 2 and not is_stop(value):
                self._learn_name(tuple(value.split()))
            return
        if kind == "DOB":
            self._birthdays |= dates.month_days(normalise(value).text)
        if len(value) >= 4 or (kind == "DOB" and len(value) >= 3):
            self._known.setdefault(value.casefold(), kind)
            self._dirty = True

    def learn_text(
        self, text: str, *, speaker: Speaker = "caller", asked: str | None = None
    ) -> None:
        """Learn the names, birth dates and ZIP codes ``text`` gives (when ``spoken_names``
        is on). ``asked``: the agent's words just before, when ``text`` answers them."""
        if not self.config.spoken_names or not text:
            return
        found = names.find_names(text, speaker=speaker)
        if asked and speaker != "agent" and names.asks_name(asked):
            found += names.answer(text)
        for f in found:
            self._learn_name(f.words)
        norm = normalise(text)
        birth_asked = bool(asked) and speaker != "agent" and dates.birth_cue(asked or "")
        for c in dates.find_births(norm.text, self.reference, cued=birth_asked):
            s, e = norm.span(c.start, c.end)
            self.learn_value("DOB", text[s:e])
            self._birthdays |= c.month_days
        zip_asked = bool(asked) and speaker != "agent" and places.zip_cue(asked or "")
        for m in places.find_places(norm.text, cued=zip_asked):
            if m.kind == "POSTCODE":
                s, e = norm.span(m.start, m.end)
                self.learn_value("POSTCODE", text[s:e])
        for m in self.find(text, speaker=speaker):
            if m.kind != "NAME":  # so "555 123 4567" also goes from "call-555-123-4567"
                self.learn_value(m.kind, text[m.start : m.end])

    def learn_arguments(self, args: Any, _key: str = "") -> None:
        """Learn from a tool call's arguments or result (nested ok): the values of personal
        keys, and what the other strings say (``"note": "caller is Maria Lopez"``)."""
        if not self.config.learn_from_tools:
            return
        if isinstance(args, Mapping):
            for k, v in args.items():
                self.learn_arguments(v, str(k))
        elif isinstance(args, Sequence) and not isinstance(args, str | bytes):
            for v in args:
                self.learn_arguments(v, _key)
        elif isinstance(args, str | int) and not isinstance(args, bool):
            key = re.sub(r"[^a-z0-9]+", "_", _key.lower()).strip("_")
            for pattern, kind in _PERSONAL_KEYS:
                if key and pattern.search(key):
                    self.learn_value(kind, str(args))
                    return
            if isinstance(args, str):
                self.learn_text(args, speaker="system")

    # --- finding ---

    def _known_patterns(self) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
        if self._dirty:
            self._patterns = (
                _literal_pattern(self._known, re.IGNORECASE),
                _literal_pattern(self._exact, 0),
            )
            self._kind_of = {_key(k): v for k, v in self._known.items()}
            self._kind_of_exact = {_key(k, fold=False): v for k, v in self._exact.items()}
            self._dirty = False
        return self._patterns

    def _detected(self, text: str, speaker: Speaker) -> list[tuple[int, int, str, int]]:
        """What the detectors find in ``text`` on their own (nothing learned): cached, as
        the import looks at each text more than once."""
        key = (text, speaker)
        if key in self._static:
            return self._static[key]
        found = [(m.start, m.end, m.kind, _PRIORITY[m.kind]) for m in emails.find_emails(text)]
        norm = normalise(text)
        normalised = [
            PiiMatch(c.start, c.end, "DOB") for c in dates.find_births(norm.text, self.reference)
        ]
        normalised += places.find_places(norm.text)
        normalised += digits.find_numbers(norm.text, self.config.phone_regions)
        for m in normalised:
            s, e = norm.span(m.start, m.end)
            found.append((s, e, m.kind, _PRIORITY[m.kind]))
        if self.config.spoken_names:
            for f in names.find_names(text, speaker=speaker):
                if " ".join(f.words).casefold() in self._keep:
                    continue
                if any(w.casefold() in self._keep for w in f.words):
                    continue
                found.append((f.start, f.end, "NAME", _NAME_PRIORITY))
        if len(self._static) > 20_000:
            self._static.clear()
        self._static[key] = found
        return found

    def _candidates(self, text: str, speaker: Speaker) -> list[tuple[int, int, str, int]]:
        found = list(self._detected(text, speaker))
        ci, cs = self._known_patterns()
        for pattern, table, fold in ((ci, self._kind_of, True), (cs, self._kind_of_exact, False)):
            if pattern is None:
                continue
            for m in pattern.finditer(text):
                kind = table.get(_key(m.group(0), fold=fold), "NAME")
                found.append((m.start(), m.end(), kind, _KNOWN_PRIORITY))
        for m in names.spelled(text, self._name_words):
            found.append((m.start, m.end, "NAME", _KNOWN_PRIORITY))
        if self._birthdays:  # a day and month alone, on a birth date learned from the call
            norm = normalise(text)
            known = frozenset(self._birthdays)
            for c in dates.find_births(norm.text, self.reference, known=known):
                s, e = norm.span(c.start, c.end)
                found.append((s, e, "DOB", _PRIORITY["DOB"]))
        return found

    def find(self, text: str, *, speaker: Speaker = "caller") -> list[PiiMatch]:
        """Every PII occurrence in ``text``, non-overlapping, in order.

        Where two overlap, the longer one's kind wins and the match covers both, so no
        part of either is left behind."""
        if not text:
            return []
        candidates = self._candidates(text, speaker)
        candidates.sort(key=lambda c: (-(c[1] - c[0]), c[3], c[0]))
        spans: list[list[Any]] = []  # [start, end, kind]
        for s, e, kind, _ in candidates:
            if e <= s:
                continue
            hit = [x for x in spans if x[0] < e and s < x[1]]
            if not hit:
                spans.append([s, e, kind])
                continue
            keep = hit[0]
            keep[0], keep[1] = min(keep[0], s), max(keep[1], e)
            for other in hit[1:]:
                keep[0], keep[1] = min(keep[0], other[0]), max(keep[1], other[1])
                spans.remove(other)
        spans.sort()
        return [PiiMatch(s, e, k) for s, e, k in spans]

    # --- replacing ---

    def replacement(self, kind: str, original: str) -> str:
        """The synthetic replay value for ``original`` (stable within this redactor)."""
        norm = re.sub(r"\W+", "", original).casefold()
        if kind in ("PHONE", "CARD", "ID", "POSTCODE"):
            norm = re.sub(r"\D", "", normalise(original).text) or norm
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
        speaker: Speaker = "caller",
    ) -> Redacted:
        """``text`` with each PII occurrence replaced; ``count`` adds them to :attr:`counts`."""
        matches = self.find(text, speaker=speaker)
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
    """PII occurrences in one text, with the built-in detectors and ``config``'s names."""
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
