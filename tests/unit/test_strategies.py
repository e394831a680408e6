"""harness.plan.strategies: specs that parse and render, shrinking to the mildest failing case."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from harness import audio
from harness.audio import ConditionError, parse_conditions
from harness.core.errors import ScenarioError
from harness.plan.callplan import render_plan
from harness.plan.strategies import (
    CONDITION_KINDS,
    audio_conditions,
    caller_turn_variants,
    condition_severity,
    scenario_with,
    voices,
)
from harness.scenario.model import Turn, parse_scenario
from harness.voices import OFFLINE_VOICE_SPECS, VoiceError, default_voice, voice_from_spec

FAST = settings(max_examples=25, deadline=None, database=None)
CLIP = audio.speech_like(0.5, 16000, seed=3)

SCENARIO_YAML = """\
id: strat
voice: espeak:en-us
conditions: landline
turns:
  - say: I need a cleaning.
    expect: {reply_contains: day}
  - silence_ms: 500
  - say: Tuesday, please.
    conditions: clean
"""


@pytest.fixture(scope="module", autouse=True)
def _tts_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_TTS_CACHE", str(tmp_path_factory.mktemp("tts")))
        yield


@pytest.fixture(scope="module")
def scenario():
    return parse_scenario(SCENARIO_YAML, "scenarios/strat.yaml")


def _minimal(strategy, condition=lambda _x: True):
    return find(strategy, condition, settings=settings(database=None, max_examples=2000))


# --------------------------------------------------------------------------- audio_conditions


@FAST
@given(spec=audio_conditions(kinds=CONDITION_KINDS, max_effects=len(CONDITION_KINDS)))
def test_every_drawn_spec_parses_back_to_the_same_effects(spec):
    chain = parse_conditions(spec)
    assert [e.name for e in chain] == [next(iter(item)) for item in spec]
    for item, described in zip(spec, chain.describe(), strict=True):
        ((name, params),) = item.items()
        assert {k: described[name][k] for k in params} == params
    assert [e.name for e in chain] == sorted((e.name for e in chain), key=CONDITION_KINDS.index), (
        "effects are listed in signal-path order"
    )


@settings(max_examples=15, deadline=None, database=None)
@given(spec=audio_conditions(), seed=st.integers(0, 2**32))
def test_drawn_conditions_render_deterministically(spec, seed):
    chain = parse_conditions(spec)
    a, b = chain.apply(CLIP, seed), chain.apply(CLIP, seed)
    assert a.rate == CLIP.rate
    assert np.array_equal(a.samples, b.samples)
    assert np.all(np.isfinite(a.samples)) and np.max(np.abs(a.samples)) <= 1.0


@FAST
@given(spec=audio_conditions(max_severity=0.25))
def test_max_severity_caps_every_dial(spec):
    for item in spec:
        cap = 0.5 if "narrowband" in item else 0.25  # the band limit alone counts 0.5
        assert condition_severity([item]) <= cap
    assert condition_severity(spec) <= 0.5 + 0.25 * max(0, len(spec) - 1)


@FAST
@given(spec=audio_conditions(kinds=("noise",), noise_kinds=("pink", "car")))
def test_kinds_and_noise_kinds_restrict_the_draw(spec):
    assert len(spec) <= 1
    for item in spec:
        assert set(item) == {"noise"} and item["noise"]["kind"] in ("pink", "car")


def test_the_minimal_condition_is_the_clean_call():
    assert _minimal(audio_conditions()) == []
    assert parse_conditions([]).effects == ()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kinds": ["noise", "thunder"]}, "thunder"),
        ({"kinds": "noise"}, "list of effect names"),
        ({"max_severity": 1.5}, "max_severity=1.5"),
        ({"max_effects": -1}, "max_effects=-1"),
        ({"noise_kinds": ["rain"]}, "noise_kinds"),
    ],
)
def test_bad_arguments_are_rejected_when_built(kwargs, match):
    with pytest.raises(ConditionError, match=match):
        audio_conditions(**kwargs)


# --------------------------------------------------------------------------- severity


def test_condition_severity_ranks_presets_and_specs():
    assert condition_severity(None) == condition_severity("clean") == 0.0
    assert condition_severity([{"noise": {"kind": "street", "snr_db": 10}}]) == 0.75
    assert condition_severity("landline") == 1.0
    assert condition_severity("bad_cell") == pytest.approx(0.75 + 1.0 + 0.15)
    assert condition_severity("landline") < condition_severity("bad_cell")
    chain = parse_conditions("bad_cell")
    assert condition_severity(chain) == condition_severity(chain.describe())


@FAST
@given(spec=audio_conditions(kinds=CONDITION_KINDS, max_effects=4), data=st.data())
def test_severity_never_drops_when_an_effect_is_added(spec, data):
    total = condition_severity(spec)
    assert 0.0 <= total <= len(spec)
    if spec:
        i = data.draw(st.integers(0, len(spec) - 1))
        assert condition_severity(spec[:i] + spec[i + 1 :]) <= total


def _snr_below(x: float):
    def fails(spec) -> bool:
        return any(item.get("noise", {}).get("snr_db", 99.0) < x for item in spec)

    return fails


@pytest.mark.parametrize("threshold, expected", [(12.0, 11.5), (25.3, 25.0), (3.0, 2.5)])
def test_a_failure_below_an_snr_shrinks_to_the_mildest_failing_condition(threshold, expected):
    # A property that fails whenever noise is below `threshold` dB SNR, as a flaky agent
    # would. Hypothesis reruns the shrunk example last, so `seen[-1]` is what it reports.
    fails = _snr_below(threshold)
    seen: list[list[dict]] = []

    @settings(max_examples=300, deadline=None, database=None)
    @given(spec=audio_conditions())
    def prop(spec):
        seen.append(spec)
        assert not fails(spec)

    with pytest.raises(AssertionError):
        prop()
    shrunk = seen[-1]
    assert shrunk == [{"noise": {"kind": "white", "snr_db": expected}}]
    assert expected < threshold <= expected + 0.5, "the mildest SNR on the 0.5 dB grid"
    failing = [s for s in seen if fails(s)]
    assert min(condition_severity(s) for s in failing) == condition_severity(shrunk)
    assert _minimal(audio_conditions(), fails) == shrunk


@FAST
@given(spec=audio_conditions(kinds=CONDITION_KINDS, max_effects=len(CONDITION_KINDS)))
def test_every_failing_condition_is_at_least_as_severe_as_the_shrunk_one(spec):
    fails = _snr_below(12.0)
    if fails(spec):
        assert condition_severity(spec) >= condition_severity(
            [{"noise": {"kind": "white", "snr_db": 11.5}}]
        )


def test_a_loss_failure_shrinks_to_the_lowest_failing_loss_rate():
    def fails(spec):
        return any(item.get("packet_loss", {}).get("rate", 0.0) > 0.04 for item in spec)

    shrunk = _minimal(audio_conditions(), fails)
    assert shrunk == [{"packet_loss": {"rate": 0.045, "mean_burst": 2.0}}]


# --------------------------------------------------------------------------- voices


def test_voices_shrink_to_the_default_caller():
    spec = _minimal(voices())
    assert spec == "espeak:en-us@160"
    assert voice_from_spec(spec).key == default_voice().key
    assert _minimal(voices(engines=("flite",))) == "flite:kal"


@settings(max_examples=20, deadline=None, database=None)
@given(spec=voices(engines=("espeak", "flite")))
def test_every_offline_voice_spec_builds_and_exists_here(spec):
    assert spec in OFFLINE_VOICE_SPECS
    voice = voice_from_spec(spec)
    assert voice.key.provider == spec.split(":")[0]
    voice.check()  # the engine is installed and has this voice


@settings(max_examples=10, deadline=None, database=None)
@given(spec=voices(engines=("flite",)))
def test_engines_restrict_the_voices(spec):
    assert spec.startswith("flite:")


def test_voices_rejects_unknown_engines():
    with pytest.raises(VoiceError, match="elevenlabs"):
        voices(engines=("espeak", "elevenlabs"))


# --------------------------------------------------------------------------- turn variants

TEXT = "I'd like to book a cleaning on Tuesday."


@settings(max_examples=60, deadline=None, database=None)
@given(variant=caller_turn_variants(TEXT))
def test_turn_variants_validate_as_turns(variant):
    turn = Turn.model_validate(variant)
    assert turn.say == TEXT
    assert not (turn.barge_in_ms is not None and turn.pause_before_ms)
    if turn.hesitate and turn.hesitate.after_word is not None:
        assert 1 <= turn.hesitate.after_word < len(TEXT.split())
    if turn.self_correct:
        assert TEXT.startswith(turn.self_correct) and turn.self_correct != TEXT


def test_turn_variants_shrink_to_the_plain_turn():
    assert _minimal(caller_turn_variants(TEXT)) == {"say": TEXT}
    hesitant = _minimal(caller_turn_variants(TEXT), lambda v: "hesitate" in v)
    assert hesitant == {"say": TEXT, "hesitate": {"filler": "um", "pause_ms": 100}}
    barging = _minimal(caller_turn_variants(TEXT), lambda v: "barge_in_ms" in v)
    assert barging == {"say": TEXT, "barge_in_ms": 3000}


@settings(max_examples=20, deadline=None, database=None)
@given(variant=caller_turn_variants("Yes.", corrections=["No"], barge_in=False))
def test_turn_variant_options(variant):
    assert "barge_in_ms" not in variant
    assert variant.get("self_correct", "No") == "No"
    Turn.model_validate(variant)


def test_turn_variants_reject_empty_text():
    with pytest.raises(ScenarioError, match="something to say"):
        caller_turn_variants("  ")


# --------------------------------------------------------------------------- scenario_with


def test_scenario_with_replaces_fields_and_keeps_the_source(scenario):
    changed = scenario_with(
        scenario,
        conditions=[{"noise": {"kind": "white", "snr_db": 20.0}}],
        voice="flite:slt",
        turn_variants=[{"say": "I need a cleaning.", "pause_before_ms": 300}],
    )
    assert changed.voice == "flite:slt" and scenario.voice == "espeak:en-us"
    assert changed.conditions == [{"noise": {"kind": "white", "snr_db": 20.0}}]
    assert changed.turns[0].pause_before_ms == 300
    assert changed.turns[0].expect == scenario.turns[0].expect, "expect is kept"
    assert changed.turns[1:] == scenario.turns[1:]
    assert changed.path == scenario.path
    assert changed.line_of("turns", 2, "say") == scenario.line_of("turns", 2, "say") == 8
    err = changed.error("boom", "turns", 2, "say")
    assert str(err) == "scenarios/strat.yaml:8: turns[2].say: boom"


def test_scenario_with_nothing_is_an_equal_copy(scenario):
    same = scenario_with(scenario)
    assert same == scenario and same.path == scenario.path


def test_a_variant_replaces_the_turns_behaviour(scenario):
    hesitant = scenario_with(
        scenario, turn_variants={2: {"say": "Tuesday, please.", "self_correct": "Monday"}}
    )
    plain = scenario_with(hesitant, turn_variants={2: {"say": "Tuesday, please."}})
    assert hesitant.turns[2].self_correct == "Monday"
    assert plain.turns[2].self_correct is None
    assert plain.turns[2].conditions == "clean", "the turn's own conditions are kept"


def test_scenario_with_errors_name_the_file_and_turn(scenario):
    with pytest.raises(ScenarioError) as info:
        scenario_with(scenario, turn_variants=[None, {"say": "hi", "barge_in_ms": -5}])
    assert str(info.value).startswith("scenarios/strat.yaml:7: turns[1]: turn variant")
    with pytest.raises(ConditionError, match="bad_cel"):
        scenario_with(scenario, conditions="bad_cel")
    with pytest.raises(ScenarioError, match="unknown voice engine"):
        scenario_with(scenario, voice="nope:x")
    with pytest.raises(ScenarioError, match="index 7"):
        scenario_with(scenario, turn_variants={7: {"say": "hi"}})


@settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    variant=caller_turn_variants("Tuesday, please."),
    conditions=audio_conditions(kinds=("noise", "packet_loss", "narrowband")),
    voice=voices(),
)
def test_drawn_scenarios_render_as_drawn(scenario, variant, conditions, voice):
    varied = scenario_with(scenario, conditions=conditions, voice=voice, turn_variants={0: variant})
    plan = render_plan(varied)
    first = plan.turns[0]
    assert first.audio is not None and first.audio.rate == 48000
    assert list(first.conditions) == parse_conditions(conditions).describe()
    assert first.voice == str(voice_from_spec(voice).key)
    spoken = first.spoken_text or ""
    if "hesitate" in variant:
        assert variant["hesitate"]["filler"] in spoken
    if "self_correct" in variant:
        assert spoken.startswith(variant["self_correct"] + " no, sorry")
    again = render_plan(varied)
    assert np.array_equal(again.turns[0].audio.samples, first.audio.samples)
