"""The PII corpus through the real import: no token reaches a written file or a file name;
and the clean corpus comes out unchanged (the false-positive rate).

The corpora are ``tests/fixtures/pii/*.yaml``; the calls around each entry are built by
``tests/fixtures/pii/build.py`` (user and agent turns, a tool call's arguments and result,
a session status message, word timings and a stereo recording). The same measurement, as a
table by kind, is ``python benchmarks/redaction_recall.py``.
"""

from __future__ import annotations

import re

import pytest

from harness.incident import check_fixture
from tests.fixtures.pii.build import (
    CLEAN_CORPUS,
    PII_CORPUS,
    PLACES,
    import_entry,
    load,
)

PII = load(PII_CORPUS)
CLEAN = load(CLEAN_CORPUS)
KINDS = {"phone", "email", "card", "national_id", "address", "postcode", "po_box", "dob",
         "name_intro", "name_title", "name_agent", "name_non_ascii"}  # fmt: skip
MAX_FALSE_POSITIVE_RATE = 0.0
"""Share of clean utterances an import may alter: none."""


_NUMBER_WORDS = re.compile(
    r"\b(?:oh|one|two|three|four|five|six|seven|eight|nine|double|fourth|third|first|"
    r"nineteen|twenty|seventy|ninety|eighty)\b"
)


def spoken(text: str) -> bool:
    return len(_NUMBER_WORDS.findall(text)) >= 2 and not re.search(r"\d", text)


def test_the_corpora_cover_every_kind_place_and_form():
    assert len(PII) >= 60 and len(CLEAN) >= 60
    assert {e.kind for e in PII} == KINDS
    assert {e.where for e in PII} == set(PLACES)
    assert all(e.pii for e in PII) and not any(e.pii for e in CLEAN)
    said_aloud = {e.kind for e in PII if spoken(e.text)}
    assert {"phone", "card", "national_id", "address", "postcode", "po_box", "dob"} <= said_aloud
    written = {e.kind for e in PII if re.search(r"\d", e.text + str(e.payload or ""))}
    assert {"phone", "card", "national_id", "address", "postcode", "po_box", "dob"} <= written
    assert any(ord(ch) > 127 for e in PII if e.kind == "name_non_ascii" for ch in e.text)


@pytest.mark.parametrize("entry", PII, ids=lambda e: e.label)
def test_no_pii_token_reaches_a_written_file_or_name(entry, tmp_path):
    result, leaked = import_entry(entry, tmp_path)
    assert leaked == []
    assert result.redactions, "nothing was redacted"
    assert result.audio_paths  # the caller's turns were cut: WAV names are checked too
    check_fixture(result.text)


def test_clean_clinic_speech_comes_out_unchanged(tmp_path):
    altered = []
    for entry in CLEAN:
        result, _ = import_entry(entry, tmp_path / str(entry.n))
        says = [t.say for t in check_fixture(result.text).turns]
        if result.redactions or (entry.where == "user" and entry.text not in says):
            altered.append((entry.text, dict(result.redactions)))
    rate = len(altered) / len(CLEAN)
    assert rate <= MAX_FALSE_POSITIVE_RATE, altered
