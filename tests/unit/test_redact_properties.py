"""Properties of the redaction: what it removes stays removed, in any form, and redacting
twice changes nothing more."""

from __future__ import annotations

import re
import string
import unicodedata
from datetime import date

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.incident.common_words import is_common, is_stop
from harness.incident.redact import RedactionConfig, Redactor
from harness.incident.spoken import normalise

REFERENCE = date(2025, 11, 24)
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]  # fmt: skip
UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen"]  # fmt: skip
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
            "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
            "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth"]  # fmt: skip


def redactor() -> Redactor:
    return Redactor(RedactionConfig(reference_date=REFERENCE))


def spoken_two_digits(n: int) -> str:
    if n < 10:
        return f"oh {UNITS[n]}"
    if n < 20:
        return TEENS[n - 10]
    return TENS[n // 10] + ("" if n % 10 == 0 else f" {UNITS[n % 10]}")


def spoken_year(y: int) -> str:
    if y % 100 == 0:
        return "nineteen hundred" if y == 1900 else "two thousand"
    if 2000 < y < 2010:
        return f"two thousand and {UNITS[y % 10]}"
    return f"{spoken_two_digits(y // 100)} {spoken_two_digits(y % 100)}"


def spoken_ordinal(d: int) -> str:
    if d <= 20:
        return ORDINALS[d - 1]
    if d % 10 == 0:
        return "thirtieth"
    return f"{TENS[d // 10]} {ORDINALS[d % 10 - 1]}"


def suffix(d: int) -> str:
    return "th" if 10 <= d % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")


@st.composite
def births(draw) -> tuple[str, str]:
    """(a sentence, the birth date in it): written or spoken, with or without a cue."""
    born = draw(st.dates(min_value=date(1920, 1, 1), max_value=date(2015, 12, 31)))
    d, m, y = born.day, born.month, born.year
    month = MONTHS[m - 1]
    forms = [
        f"{d:02d}/{m:02d}/{y}",
        f"{m}/{d}/{y % 100:02d}",
        f"{y}-{m:02d}-{d:02d}",
        f"{d:02d}.{m:02d}.{y}",
        f"{month} {d}{suffix(d)} {y}",
        f"{month} {d}, {y}",
        f"{d} {month} {y}",
        f"the {d}{suffix(d)} of {month} {y}",
        f"the {spoken_ordinal(d)} of {month} {spoken_year(y)}",
        f"{month} {spoken_ordinal(d)} {spoken_year(y)}",
    ]
    if y % 100 <= REFERENCE.year % 100:
        forms.remove(f"{m}/{d}/{y % 100:02d}")  # "1/1/25" may be this century: the rule's limit
    token = draw(st.sampled_from(forms))
    template = draw(
        st.sampled_from(
            [
                "my date of birth is {}",
                "born {}",
                "dob {} thanks",
                "{}",
                "it's {}, my birthday",
                "yes {}",
                "I was born on {}",
            ]
        )
    )
    return template.format(token), token


@settings(max_examples=300, deadline=None)
@given(case=births())
def test_birth_dates_never_survive(case):
    text, token = case
    out = redactor().redact(text).text
    assert token.casefold() not in out.casefold(), (text, out)
    assert re.sub(r"\D", "", token) not in re.sub(r"\D", "", out) or not re.search(r"\d", token)


_UK_AREAS = ["SW", "EC", "W", "N", "M", "B", "LS", "G", "EH", "CF", "BT", "OX", "CB"]


@st.composite
def postcodes(draw) -> tuple[str, str]:
    area = draw(st.sampled_from(_UK_AREAS))
    district = str(draw(st.integers(1, 19)))
    inward = str(draw(st.integers(0, 9))) + "".join(
        draw(st.lists(st.sampled_from("ABDEFGHJLNPQRSTUWXYZ"), min_size=2, max_size=2))
    )
    written = f"{area}{district} {inward}"
    if draw(st.booleans()):
        return f"my postcode is {written}", written
    spoken = " ".join(
        UNITS[int(ch)] if ch.isdigit() else ch.lower() for ch in written.replace(" ", "")
    )
    return f"the postcode is {spoken}", spoken


@settings(max_examples=200, deadline=None)
@given(case=postcodes())
def test_uk_postcodes_never_survive(case):
    text, token = case
    out = redactor().redact(text).text
    assert token.casefold() not in out.casefold(), (text, out)


@st.composite
def zips(draw) -> tuple[str, str]:
    code = f"{draw(st.integers(501, 99950)):05d}"
    plus4 = draw(st.booleans())
    written = f"{code}-{draw(st.integers(0, 9999)):04d}" if plus4 else code
    token = written if draw(st.booleans()) else " ".join(
        UNITS[int(ch)] if ch.isdigit() else "dash" for ch in written
    )  # fmt: skip
    template = draw(st.sampled_from(["my zip is {}", "zip code {}", "the postal code is {}"]))
    return template.format(token), token


@settings(max_examples=200, deadline=None)
@given(case=zips())
def test_zip_codes_after_a_cue_never_survive(case):
    text, token = case
    out = redactor().redact(text).text
    assert token.casefold() not in out.casefold(), (text, out)
    assert not re.search(r"\d|\b(?:zero|one|two|three|four|five|six|seven|eight|nine)\b", out)


FIRST = ["Maria", "José", "Zoë", "Søren", "Łukasz", "Nguyễn", "Siobhán", "Anika", "Oluwaseun",
         "Priya", "Dmitri", "Björk", "Chloé", "Mateusz", "Ngozi", "Hiroshi", "Aoife"]  # fmt: skip
LAST = ["Lopez", "García", "Kierkegaard", "Kowalski", "Okafor", "Haddad", "O'Brien", "Müller",
        "Nakamura", "Patel", "Nguyen", "Schmidt", "Fernández", "Dąbrowski", "Al-Sayed"]  # fmt: skip
generated = st.text(alphabet=string.ascii_lowercase, min_size=4, max_size=9).map(str.capitalize)
first_names = st.one_of(st.sampled_from(FIRST), generated)
last_names = st.one_of(st.sampled_from(LAST), generated)

INTROS = [
    "my name is {first} {last}",
    "hi this is {first} {last}",
    "i'm {lfirst} {llast}",
    "it's {first} here",
    "{first} speaking",
    "the name's {last}",
    "name is {llast}",
    "you can call me {first}",
    "{first} {last} is my name",
]
ADDRESSED = [
    "Thanks, {first}, you're booked.",
    "Hello Mr. {last}, how can I help?",
    "Dr {last} will see you Tuesday.",
    "Mrs {last}, see you then.",
    "You're all set, {first}.",
]


@settings(max_examples=300, deadline=None)
@given(
    first=first_names,
    last=last_names,
    template=st.sampled_from(INTROS + ADDRESSED),
    speaker=st.sampled_from(["caller", "agent"]),
)
def test_introduced_and_addressed_names_never_survive(first, last, template, speaker):
    for word in (first, last):
        assume(not is_common(word) and not is_stop(word))
    assume(speaker == "caller" or template in ADDRESSED)
    text = template.format(first=first, last=last, lfirst=first.lower(), llast=last.lower())
    r = redactor()
    r.learn_text(text, speaker=speaker)  # type: ignore[arg-type]
    used = [w for w in (first, last) if w in text or w.lower() in text]
    later = " and ".join(used) + ", " + " ".join(w.lower() for w in used)
    for out in (r.redact(text, speaker=speaker).text, r.redact(later).text):  # type: ignore[arg-type]
        for word in used:
            plain = unicodedata.normalize("NFC", word).casefold()
            assert not re.search(rf"(?<!\w){re.escape(plain)}(?!\w)", out.casefold()), (text, out)


pii_pieces = st.sampled_from(
    [
        "my number is 555 123 4567",
        "born 04/07/1985",
        "my zip is 90210",
        "SW1A 1AA",
        "po box one two three",
        "this is Maria Lopez",
        "Thanks, Maria.",
        "card 4111 1111 1111 1111",
        "ssn 123-45-6789",
        "jo dot smith at gmail dot com",
        "12 Oak Street",
        "Mr. Patel",
        "the fourth of July nineteen eighty five",
        "nine oh two one oh",
        "s w one a one a a",
    ]
)
filler = st.sampled_from(
    [
        "next tuesday at 3 pm",
        "may I",
        "call me back",
        "the fourth",
        "yes",
        "please",
        "and",
        "march",
        "nine o'clock",
        "a cleaning",
        ",",
        ".",
    ]
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.one_of(pii_pieces, filler, st.text(max_size=8)), max_size=8))
def test_redacting_twice_changes_nothing_more(parts):
    text = " ".join(parts)
    r = redactor()
    r.learn_text(text)
    once = r.redact(text).text
    assert r.redact(once).text == once


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(
        st.one_of(
            st.sampled_from(
                UNITS + TEENS + TENS[2:] + ORDINALS + ["oh", "double", "hundred", "and", "thousand"]
            ),
            st.text(max_size=6),
        ),
        max_size=12,
    ),
    sep=st.sampled_from([" ", "-", ", "]),
)
def test_normalised_spans_map_back_inside_the_text(words, sep):
    text = sep.join(words)
    norm = normalise(text)
    assert len(norm.starts) == len(norm.text) == len(norm.ends)
    for i in range(len(norm.text)):
        s, e = norm.span(i, i + 1)
        assert 0 <= s < e <= len(text)
    if not re.search(r"\d", text):
        assert not re.search(r"\d", re.sub(r"\d+", "", norm.text))


@given(digits=st.lists(st.integers(0, 9), min_size=1, max_size=12))
def test_spoken_digits_become_their_digits(digits):
    text = " ".join(UNITS[d] if d else "oh" for d in digits)
    if len(digits) == 1 and digits[0] == 0:
        return  # "oh" alone is a word
    assert normalise(text).text.replace(" ", "") == "".join(map(str, digits))
