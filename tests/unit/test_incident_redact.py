"""PII redaction of incident fixtures: the patterns, learned values and replay values."""

from __future__ import annotations

import re
import string
from datetime import date

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from harness.incident.redact import (
    SYNTHETIC,
    RedactionConfig,
    Redactor,
    find_pii,
    is_national_id,
    luhn_ok,
    redact_text,
)

# --- strategies shared with the import tests ----------------------------------------------------


def _luhn_complete(body: str) -> str:
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError("unreachable")


digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


@st.composite
def phones(draw) -> str:
    area = draw(st.integers(200, 999))
    mid = draw(st.integers(200, 999))
    last = draw(st.integers(0, 9999))
    fmt = draw(st.sampled_from(["{a}-{m}-{l}", "({a}) {m}-{l}", "{a} {m} {l}", "{a}.{m}.{l}"]))
    if draw(st.booleans()):
        fmt = "+1 " + fmt
    return fmt.format(a=area, m=mid, l=f"{last:04d}")


@st.composite
def cards(draw) -> str:
    length = draw(st.sampled_from([15, 16]))
    body = draw(st.text(alphabet="0123456789", min_size=length - 1, max_size=length - 1))
    body = draw(st.sampled_from("3456")) + body[1:]
    number = _luhn_complete(body)
    sep = draw(st.sampled_from([" ", "-", ""]))
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


@st.composite
def ssns(draw) -> str:
    a, b, c = draw(st.integers(1, 899)), draw(st.integers(1, 99)), draw(st.integers(1, 9999))
    return f"{a:03d}-{b:02d}-{c:04d}"


emails = st.emails().filter(lambda e: len(e) < 60)

name_word = st.text(alphabet=string.ascii_lowercase, min_size=4, max_size=9).map(str.capitalize)
names = st.tuples(name_word, name_word).map(" ".join)


@st.composite
def addresses(draw) -> str:
    number = draw(st.integers(1, 99999))
    street = draw(name_word)
    kind = draw(st.sampled_from(["Street", "Avenue", "Road", "Lane", "Drive", "Blvd", "St"]))
    return f"{number} {street} {kind}"


SYNTHETIC_TEXT = " ".join(v for values in SYNTHETIC.values() for v in values).lower()


def not_synthetic(value: str) -> bool:
    return value.lower() not in SYNTHETIC_TEXT and all(
        w.lower() not in SYNTHETIC_TEXT for w in value.split() if w.isalpha()
    )


# --- examples -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("my number is 555-123-4567 thanks", ["PHONE"]),
        ("call (415) 555-0199 tomorrow", ["PHONE"]),
        ("it's five five five one two three four", ["PHONE"]),
        ("+44 20 7946 0958", ["PHONE"]),
        ("card 4242 4242 4242 4242 please", ["CARD"]),
        ("card 4242424242424242", ["CARD"]),
        ("ssn 123-45-6789", ["ID"]),
        ("my id is 123456789", ["ID"]),
        ("write to jo.smith+x@mail.example.org.", ["EMAIL"]),
        ("jo dot smith at gmail dot com", ["EMAIL"]),
        ("I live at 12 Oak Street, apt 4b", ["ADDRESS"]),
        ("one two three main st", ["ADDRESS"]),
    ],
)
def test_patterns_find_each_kind(text, kinds):
    assert [m.kind for m in find_pii(text)] == kinds


@pytest.mark.parametrize(
    "text",
    [
        "monday at 9:30, 11 and 2:15",
        "your confirmation number is 4 8 1 5",
        "that comes to $12,345.67 or 3.14159265",
        "Tuesday has openings at nine AM and eleven AM.",
        "someone told me one thing",
        "I'd like to book a cleaning next tuesday",
    ],
)
def test_ordinary_speech_is_kept(text):
    assert find_pii(text) == []
    assert redact_text(text) == text


def test_dates_in_the_calls_year_are_appointments_older_ones_birth_dates():
    text = "on 2024-05-01 or 12 05 2024"
    assert find_pii(text, RedactionConfig(reference_date=date(2024, 3, 1))) == []
    later = find_pii(text, RedactionConfig(reference_date=date(2026, 3, 1)))
    assert [m.kind for m in later] == ["DOB", "DOB"]


def test_card_needs_luhn_else_it_is_an_id():
    assert luhn_ok("4242424242424242") and not luhn_ok("4242424242424241")
    assert [m.kind for m in find_pii("4242 4242 4242 4241")] == ["ID"]


def test_national_id_pattern():
    assert is_national_id(" 123-45-6789 ")
    assert not is_national_id("123-456-789")


def test_names_from_config_each_word_and_any_case():
    config = RedactionConfig(names=("Maria Lopez",))
    assert redact_text("MARIA LOPEZ called; maria, lopez.", config) == (
        "<NAME> called; <NAME>, <NAME>."
    )


def test_spoken_names_are_learned_and_redacted_everywhere():
    r = Redactor()
    r.learn_text("hi my name is john miller and I need a cleaning")
    assert r.redact("Thank you, John. Goodbye Mr Miller").text == (
        "Thank you, <NAME>. Goodbye Mr <NAME>"
    )
    off = Redactor(RedactionConfig(spoken_names=False))
    off.learn_text("my name is john miller")
    assert off.redact("thanks john").text == "thanks john"


def test_tool_arguments_teach_personal_values():
    r = Redactor()
    r.learn_arguments(
        {"name": "Maria Lopez", "day": "tuesday", "contact": {"email": "ml@x.io", "phone": 12}}
    )
    out = r.redact("maria here, tuesday is fine, mail ml@x.io").text
    assert out == "<NAME> here, tuesday is fine, mail <EMAIL>"


def test_synthetic_values_are_stable_per_original_and_valid():
    r = Redactor()
    a = r.redact("call 555 123 4567 or 555-123-4567", style="synthetic").text
    assert a == "call 555-0100 or 555-0100"
    b = r.redact("no, 555 999 0000", style="synthetic").text
    assert b == "no, 555-0101"
    assert all(luhn_ok(card.replace(" ", "")) for card in SYNTHETIC["CARD"])
    assert all(is_national_id(v) for v in SYNTHETIC["ID"])


def test_counts_by_kind_never_values():
    r = Redactor(RedactionConfig(names=("Ann Lee",)))
    r.redact("Ann Lee at 555-123-4567, card 4242 4242 4242 4242")
    r.redact("again Ann Lee", count=False)
    assert dict(r.counts) == {"NAME": 1, "PHONE": 1, "CARD": 1}


def test_config_rejects_a_single_string():
    with pytest.raises(TypeError, match="list of names"):
        RedactionConfig(names="Ann Lee")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="audio_fill"):
        RedactionConfig(audio_fill="beep")  # type: ignore[arg-type]


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    pii=st.one_of(phones(), cards(), ssns(), emails, addresses()),
    before=st.sampled_from(["", "yes ", "my details: ", "it is "]),
    after=st.sampled_from(["", " thanks", ". bye", ", ok?"]),
)
def test_generated_pii_never_survives(pii, before, after):
    text = f"{before}{pii}{after}"
    for style in ("placeholder", "synthetic"):
        out = Redactor().redact(text, style=style).text  # type: ignore[arg-type]
        if style == "synthetic":
            assume(not_synthetic(pii))
        assert pii.lower() not in out.lower()
        # no run of the PII's digits survives either
        run = re.sub(r"\D", "", pii)
        if len(run) >= 7:
            assert run not in re.sub(r"\D", "", out)


@settings(max_examples=150, deadline=None)
@given(name=names, filler=st.sampled_from(["it's {n}", "{n} speaking", "yes {n}, thanks"]))
def test_configured_names_never_survive(name, filler):
    assume(not_synthetic(name))
    text = filler.format(n=name)
    out = redact_text(text, RedactionConfig(names=(name,)), style="synthetic")
    assert name.lower() not in out.lower()
    for word in name.split():
        assert not re.search(rf"\b{re.escape(word)}\b", out, re.IGNORECASE)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_redaction_never_crashes_and_keeps_text_without_matches(text):
    r = Redactor()
    r.learn_text(text)
    out = r.redact(text)
    if not out.matches:
        assert out.text == text
    else:
        assert all(f"<{m.kind}>" in out.text for m in out.matches)


def test_replay_values_replace_the_builtin_synthetic_pool():
    import pytest

    from harness.incident.redact import RedactionConfig, Redactor

    r = Redactor(RedactionConfig(names=("John Miller",), replay_values={"NAME": "Anna Smith"}))
    assert r.redact("my name is John Miller", style="synthetic").text == "my name is Anna Smith"
    with pytest.raises(ValueError, match="unknown kind"):
        RedactionConfig(replay_values={"NICKNAME": ("x",)})
