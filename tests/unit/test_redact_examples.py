"""The redaction cases of the hardening issue, one test each: personal data that survived
redaction (and one ordinary word that did not), as the import's Redactor sees them.

They use the Redactor's public calls only (learn from a text, redact a text), as the import
does: learn from every text of the call first, then redact each one.
"""

from __future__ import annotations

import pytest

from harness.incident.redact import Redactor, find_pii, redact_text


def redacted(text: str, *, learn: tuple[str, ...] = ()) -> str:
    """``text`` redacted after learning from ``learn`` and from ``text`` itself."""
    r = Redactor()
    for t in (*learn, text):
        r.learn_text(t)
    return r.redact(text).text


def assert_gone(out: str, *tokens: str) -> None:
    for token in tokens:
        assert token.casefold() not in out.casefold(), (token, out)


# --- dates of birth -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("my date of birth is 04/07/1985", "04/07/1985"),
        ("04/07/1985", "04/07/1985"),  # no cue: day, month and a year before the call's
        ("born 4/7/85", "4/7/85"),
        ("dob 1985-07-04", "1985-07-04"),
        ("I was born July 4th 1985", "July 4th 1985"),
        ("4 July 1985", "4 July 1985"),
        ("the fourth of July nineteen eighty five", "fourth of July nineteen eighty five"),
        ("I was born on the 4th of July", "4th of July"),
        ("my birthday is the fourth of July", "fourth of July"),
    ],
)
def test_dates_of_birth(text, token):
    assert [m.kind for m in find_pii(text)] == ["DOB"]
    assert_gone(redact_text(text), token)


def test_a_learned_birth_date_goes_in_any_form():
    out = redacted("so that's july fourth, right?", learn=("I was born on 04/07/1985",))
    assert out == "so that's <DOB>, right?"


# --- postcodes, ZIP codes and PO boxes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "token", "kind"),
    [
        ("my postcode is SW1A 1AA", "SW1A 1AA", "POSTCODE"),
        ("the postcode is s w one a one a a", "s w one a one a a", "POSTCODE"),
        ("my zip is 90210", "90210", "POSTCODE"),
        ("it's 90210-1234", "90210-1234", "POSTCODE"),
        ("my zip code is nine oh two one oh", "nine oh two one oh", "POSTCODE"),
        ("send it to P.O. Box 123", "Box 123", "ADDRESS"),
        ("po box one two three", "box one two three", "ADDRESS"),
    ],
)
def test_postcodes_zip_codes_and_po_boxes(text, token, kind):
    assert [m.kind for m in find_pii(text)] == [kind]
    assert_gone(redact_text(text), token)


# --- names introduced other than by "my name is" -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("this is Maria", "Maria"),
        ("I'm Maria Lopez", "Maria Lopez"),
        ("i'm maria lopez", "maria lopez"),
        ("it's Maria here", "Maria"),
        ("Maria speaking", "Maria"),
        ("the name's Lopez", "Lopez"),
    ],
)
def test_introductions(text, name):
    assert [m.kind for m in find_pii(text)] == ["NAME"]
    # learned: the agent's later reply loses it too
    assert_gone(redacted(f"Thank you {name}, see you then", learn=(text,)), name)


def test_name_is_spelled_out_too():
    # "name is Lopez" was already learned; its spelling was not
    assert redacted("name is Lopez, l o p e z") == "name is <NAME>, <NAME>"


def test_call_me_maria_but_never_call_me_back():
    assert redacted("you can call me Maria") == "you can call me <NAME>"
    out = redacted("I'll be back on monday", learn=("can you call me back later",))
    assert out == "I'll be back on monday"


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("I'm calling for Mr. Patel", "Patel"),
        ("Dr Smith referred me", "Smith"),
        ("dr smith referred me", "smith"),
        ("Mrs O'Brien is my mother", "O'Brien"),
        ("Ms. Nguyen will bring her", "Nguyen"),
    ],
)
def test_titled_names(text, name):
    out = redacted(text)
    assert_gone(out, name)
    assert "<NAME>" in out
    assert_gone(redacted(f"{name.lower()} said tuesday", learn=(text,)), name)


# --- names only the agent says ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "name"),
    [
        ("Thanks, Maria, you're booked", "Maria"),
        ("Hello Mr. Patel", "Patel"),
        ("You're all set, Jennifer.", "Jennifer"),
        ("Is this Fatima Haddad?", "Fatima Haddad"),
    ],
)
def test_names_the_agent_says_are_learned(agent, name):
    assert_gone(redacted(agent), name)
    assert_gone(redacted(f"yes {name.lower()} is fine", learn=(agent,)), name)


# --- names beyond ASCII ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intro", "later", "gone"),
    [
        ("my name is José García", "Thank you, José García. Bye, jose.", ("josé", "jose")),
        ("Thanks, Zoë, see you Tuesday.", "zoë said tuesday", ("zoë",)),
        ("this is Søren Kierkegaard", "Goodbye, Søren.", ("søren",)),
        ("hi i'm łukasz", "Łukasz, you're booked.", ("łukasz",)),
        ("my name is Nguyễn", "nguyễn, or Nguyen", ("nguyễn", "nguyen")),
    ],
)
def test_non_ascii_names(intro, later, gone):
    out = redacted(later, learn=(intro,))
    assert_gone(out, *gone)


def test_decomposed_accents_are_the_same_name():
    import unicodedata

    nfd = unicodedata.normalize("NFD", "José")
    assert_gone(redacted(f"bye {nfd}", learn=("my name is José",)), nfd, "jos")


# --- ordinary words ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "can you call me back later",
        "may I book a cleaning next tuesday at 3 pm",
        "sometime in march",
        "the fourth works for me",
        "this is urgent",
        "I'm calling about my appointment",
        "it's for a cleaning",
        "could I come in on May 4th",
    ],
)
def test_ordinary_clinic_speech_is_kept(text):
    assert redacted(text) == text
