"""Voice specs from scenario YAML: strings, mappings, errors that name the field."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.errors import ScenarioError
from harness.voices import (
    ENGINES,
    ElevenLabsSpec,
    EspeakSpec,
    EspeakVoice,
    FestivalVoice,
    FliteSpec,
    FliteVoice,
    RecordedSpec,
    Voice,
    default_voice,
    parse_voice_spec,
    voice_from_spec,
)
from harness.voices.elevenlabs import ElevenLabsVoice
from harness.voices.recorded import RecordedVoice

# -- examples --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("espeak:en-gb-scotland", EspeakSpec(voice="en-gb-scotland")),
        ("espeak:en-us+f3@150", EspeakSpec(voice="en-us", variant="f3", rate=150)),
        ("  espeak-ng:en-029  ", EspeakSpec(voice="en-029")),
        ("espeak", EspeakSpec()),
        ("flite:slt", FliteSpec(voice="slt")),
        ("elevenlabs:21m00Tcm4TlvDq8ikWAM", ElevenLabsSpec(voice_id="21m00Tcm4TlvDq8ikWAM")),
        ({"engine": "espeak", "voice": "en-in", "rate": 150}, EspeakSpec(voice="en-in", rate=150)),
        ({"engine": "espeak", "voice": "en-us+m3"}, EspeakSpec(voice="en-us", variant="m3")),
    ],
)
def test_examples_parse(raw, expected):
    assert parse_voice_spec(raw) == expected


def test_elevenlabs_mapping_parses_every_field():
    spec = parse_voice_spec(
        {
            "engine": "elevenlabs",
            "voice_id": "abc123",
            "model": "eleven_multilingual_v2",
            "settings": {"stability": 0.4, "similarity_boost": 0.8, "style": 0, "speed": 1.1},
            "seed": 7,
        }
    )
    assert isinstance(spec, ElevenLabsSpec)
    assert spec.model == "eleven_multilingual_v2"
    assert spec.settings.stability == 0.4
    assert spec.settings.style == 0.0
    assert spec.settings.speed == 1.1
    assert spec.seed == 7
    assert spec.output_format == "pcm_16000"


def test_elevenlabs_default_model_is_turbo():
    assert parse_voice_spec("elevenlabs:abc").model == "eleven_turbo_v2_5"


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"engine": "espeak", "rat": 150}, "voice.rat", "unknown key 'rat'; allowed keys: engine"),
        (
            {"engine": "elevenlabs", "voice_id": "a", "settings": {"stabilty": 0.5}},
            "voice.settings.stabilty",
            "unknown key 'stabilty'; allowed keys: stability, similarity_boost",
        ),
        (
            {"engine": "elevenlabs", "voice_id": "a", "settings": {"speed": 2}},
            "voice.settings.speed",
            "less than or equal to 1.2",
        ),
        ({"engine": "elevenlabs"}, "voice.voice_id", "required"),
        ({"engine": "espeak", "rate": "fast"}, "voice.rate", "valid integer"),
        ({"engine": "espeak", "rate": 20}, "voice.rate", "greater than or equal to 80"),
        ({"engine": "flite", "stretch": True}, "voice.stretch", "valid number"),
        ({"voice": "en-gb"}, "voice.engine", "required"),
        ({"engine": "polly"}, "voice.engine", "unknown voice engine 'polly'"),
        ("espeak:en-us@fast", "voice.rate", "words per minute"),
        ("flite:slt@150", "voice", "only espeak takes '@rate'"),
        ("elevenlabs", "voice", "needs a voice id"),
        ("recorded:x.wav", "voice", "mapping form"),
        ({"engine": "recorded", "turns": []}, "voice.turns", "at least one"),
        (42, "voice", "got int"),
    ],
)
def test_errors_name_the_field(raw, field, message):
    with pytest.raises(ScenarioError) as info:
        parse_voice_spec(raw)
    assert info.value.field == field
    assert message in str(info.value)


def test_field_prefix_is_the_callers():
    with pytest.raises(ScenarioError) as info:
        parse_voice_spec({"engine": "espeak", "pitch": 500}, field="turns[2].voice")
    assert info.value.field == "turns[2].voice.pitch"
    assert str(info.value).startswith("turns[2].voice.pitch: ")


# -- building voices -------------------------------------------------------------------


def test_voice_from_spec_builds_each_engine(tmp_path):
    wav = tmp_path / "t.wav"
    cases = {
        "espeak:en-gb+f4@150": EspeakVoice,
        "flite:awb": FliteVoice,
        "festival:kal_diphone": FestivalVoice,
        "elevenlabs:abc123": ElevenLabsVoice,
    }
    for raw, cls in cases.items():
        voice = voice_from_spec(raw, cache=tmp_path / "c")
        assert isinstance(voice, cls)
        assert isinstance(voice, Voice)
    recorded = voice_from_spec({"engine": "recorded", "turns": ["t.wav"]}, base_dir=tmp_path)
    assert isinstance(recorded, RecordedVoice)
    assert recorded.paths == [wav]


def test_voice_from_spec_keys_follow_the_spec():
    voice = voice_from_spec("espeak:en-gb+f4@150")
    assert voice.key.as_dict() == {
        "provider": "espeak",
        "voice": "en-gb+f4",
        "model": None,
        "settings": {"rate": 150},
    }
    eleven = voice_from_spec(
        {"engine": "elevenlabs", "voice_id": "v1", "settings": {"stability": 1}}
    )
    assert eleven.key.model == "eleven_turbo_v2_5"
    assert eleven.key.settings_dict["stability"] == 1.0


def test_voice_passes_through(tmp_path):
    voice = default_voice(cache=tmp_path)
    assert voice_from_spec(voice) is voice


def test_default_voice_equals_its_spec():
    assert voice_from_spec("espeak:en-us@160").key == default_voice().key


# -- properties ------------------------------------------------------------------------

_name = st.text(string.ascii_letters + string.digits, min_size=1, max_size=3).flatmap(
    lambda head: st.text(string.ascii_letters + string.digits + "_-", max_size=12).map(
        lambda tail: head + tail
    )
)

espeak_specs = st.builds(
    EspeakSpec,
    voice=_name,
    variant=st.none() | _name,
    rate=st.integers(80, 450),
    pitch=st.none() | st.integers(0, 99),
)
flite_specs = st.builds(
    FliteSpec,
    voice=_name,
    stretch=st.floats(0.25, 4.0, allow_nan=False),
)
eleven_specs = st.builds(
    ElevenLabsSpec,
    voice_id=_name,
    model=_name,
    seed=st.none() | st.integers(0, 2**32 - 1),
    settings=st.fixed_dictionaries(
        {},
        optional={
            "stability": st.floats(0, 1),
            "similarity_boost": st.floats(0, 1),
            "style": st.floats(0, 1),
            "speed": st.floats(0.7, 1.2),
            "use_speaker_boost": st.booleans(),
        },
    ),
)
recorded_specs = st.builds(
    RecordedSpec,
    turns=st.lists(_name, min_size=1, max_size=4)
    | st.dictionaries(_name, _name, min_size=1, max_size=4),
)
any_spec = espeak_specs | flite_specs | eleven_specs | recorded_specs


@given(any_spec)
def test_mapping_form_round_trips(spec):
    assert parse_voice_spec(spec.to_data()) == spec


@given(any_spec)
def test_string_form_round_trips_when_there_is_one(spec):
    text = spec.to_string()
    if text is not None:
        assert parse_voice_spec(text) == spec
    else:
        assert spec.to_data().keys() - {"engine", "voice", "voice_id", "variant", "rate"}


@given(st.text(max_size=40))
@settings(max_examples=300)
def test_any_string_parses_or_raises_scenario_error(raw):
    try:
        spec = parse_voice_spec(raw)
    except ScenarioError as exc:
        assert exc.field is not None and exc.field.startswith("voice")
    else:
        assert spec.engine in ENGINES
        assert raw.strip().split(":", 1)[0].lower() in {*ENGINES, "espeak-ng", "espeakng", "eleven"}


@given(
    engine=st.sampled_from(["espeak", "flite", "festival"]),
    extra=_name.filter(
        lambda k: k not in {"engine", "voice", "variant", "rate", "pitch", "stretch"}
    ),
    value=st.integers() | st.text(max_size=5),
)
def test_unknown_keys_are_rejected_by_name(engine, extra, value):
    with pytest.raises(ScenarioError) as info:
        parse_voice_spec({"engine": engine, extra: value})
    assert info.value.field == f"voice.{extra}"
    assert f"unknown key {extra!r}" in str(info.value)


@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=5))
def test_arbitrary_mappings_never_escape_as_other_errors(data):
    try:
        parse_voice_spec(data)
    except ScenarioError:
        pass
    else:
        assert data.get("engine", "").lower() in {*ENGINES, "espeak-ng", "espeakng", "eleven"}


def test_paths_are_not_touched_when_parsing(tmp_path):
    spec = parse_voice_spec({"engine": "recorded", "turns": {"hello": "missing.wav"}})
    assert isinstance(spec, RecordedSpec)
    assert not (Path(tmp_path) / "missing.wav").exists()
