"""Named presets and the condition spec parser."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from pydantic import ValidationError

from harness import audio
from harness.audio import measure, presets
from harness.core.errors import ScenarioError

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

REQUIRED = [
    "clean",
    "quiet_office",
    "noisy_street_5db",
    "bad_cell",
    "speakerphone_car",
    "cafe_10db",
]


def names(chain: audio.Chain) -> list[str]:
    return [e.name for e in chain]


def test_required_presets_exist_and_load():
    assert set(REQUIRED) <= set(audio.preset_names())
    for name in audio.preset_names():
        chain = audio.load_preset(name)
        assert chain.name == name
        assert audio.preset_description(name)


def test_preset_contents():
    assert len(audio.load_preset("clean")) == 0
    assert audio.load_preset("bad_cell").describe() == [
        {"noise": {"snr_db": 10.0, "kind": "street"}},
        {"narrowband": {"codec": "ulaw"}},
        {"packet_loss": {"rate": 0.03, "mean_burst": 3.0, "conceal": "repeat", "frame_ms": 20.0}},
    ]
    assert audio.load_preset("noisy_street_5db").describe() == [
        {"noise": {"snr_db": 5.0, "kind": "street"}}
    ]
    assert audio.load_preset("cafe_10db").describe() == [
        {"noise": {"snr_db": 10.0, "kind": "cafe"}}
    ]
    assert "car" in str(audio.load_preset("speakerphone_car"))
    assert names(audio.load_preset("quiet_office")) == ["reverb", "noise"]


def test_bad_cell_does_what_it_says():
    clip = audio.speech_like(3.0, 48000, seed=21, pauses=False)
    out = audio.load_preset("bad_cell").apply(clip, seed=5)
    assert len(out.samples) == len(clip.samples)
    assert measure.energy_above_hz(out, 4000) <= -40
    # Noise, a band limit and lost frames: far from the clean input, but not silence.
    assert measure.snr_db(clip, out) < 10
    assert measure.rms_dbfs(out) > measure.rms_dbfs(clip) - 6


@pytest.mark.parametrize("name", REQUIRED)
def test_presets_are_deterministic(name):
    if name == "speakerphone_car" and shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    clip = audio.speech_like(0.8, 16000, seed=22)
    chain = audio.load_preset(name)
    assert chain.apply(clip, 3).samples.tobytes() == chain.apply(clip, 3).samples.tobytes()
    if name != "clean":
        assert chain.apply(clip, 3).samples.tobytes() != clip.samples.tobytes()


# ------------------------------------------------------------------------------ spec forms


def test_every_spec_form():
    assert len(audio.parse_conditions(None)) == 0
    assert audio.parse_conditions("clean").name == "clean"
    assert audio.parse_conditions("bad_cell") == audio.load_preset("bad_cell")
    assert audio.parse_conditions({"preset": "bad_cell"}) == audio.load_preset("bad_cell")
    chain = audio.parse_conditions(
        [{"narrowband": {"codec": "ulaw"}}, {"noise": {"kind": "street", "snr_db": 10}}]
    )
    assert chain.describe() == [
        {"narrowband": {"codec": "ulaw"}},
        {"noise": {"snr_db": 10.0, "kind": "street"}},
    ]
    # Bare names take the defaults; `null` params too; `jitter` is time_warp.
    assert names(audio.parse_conditions(["narrowband", {"jitter": None}])) == [
        "narrowband",
        "time_warp",
    ]
    # A preset spliced into a list, and a preset with more effects after it.
    spliced = audio.parse_conditions([{"gain": {"db": -6}}, {"preset": "cafe_10db"}])
    assert names(spliced) == ["gain", "noise"]
    more = audio.parse_conditions({"preset": "landline", "effects": [{"gain": {"db": 3}}]})
    assert names(more) == ["narrowband", "gain"]
    assert more.name is None
    effect = audio.gain(db=1)
    assert audio.parse_conditions(effect).effects == (effect,)
    assert audio.parse_conditions(spliced) is spliced


def test_describe_round_trips_through_the_parser():
    for name in audio.preset_names():
        chain = audio.load_preset(name)
        again = audio.parse_conditions(chain.describe())
        assert again.effects == chain.effects


def test_condition_spec_model_normal_form():
    spec = audio.ConditionSpec.parse({"preset": "bad_cell", "effects": ["narrowband"]})
    assert spec.preset == "bad_cell"
    assert spec.effects == (audio.EffectSpec(effect="narrowband", params={}),)
    assert spec.model_dump() == {
        "preset": "bad_cell",
        "effects": ({"effect": "narrowband", "params": {}},),
    }
    assert len(spec.to_chain()) == 4


# ------------------------------------------------------------------------------ errors


NOISE = "conditions[0].noise"
BAD_SPECS = [
    ("bad_cel", "conditions", "unknown preset 'bad_cel'; did you mean 'bad_cell'?"),
    ({"preset": "nope"}, "conditions.preset", "unknown preset 'nope'"),
    ({"preset": "bad_cell", "seed": 1}, "conditions.seed", "unknown key 'seed'"),
    ([{"nosie": {"snr_db": 3}}], "conditions[0]", "unknown effect 'nosie'; did you mean 'noise'?"),
    ([{"noise": {"snr": 3}}], f"{NOISE}.snr", "unknown parameter; noise takes snr_db, kind"),
    ([{"noise": {"kind": "street"}}], f"{NOISE}.snr_db", "field required"),
    (["narrowband", {"noise": {"snr_db": "x"}}], "conditions[1].noise.snr_db", "valid number"),
    ([{"noise": {"snr_db": 10, "kind": "rain"}}], f"{NOISE}.kind", "'white'"),
    (
        [{"noise": {"snr_db": 200}}],
        f"{NOISE}.snr_db",
        "snr_db=200 is out of range; use -20 <= snr_db <= 80",
    ),
    (
        [{"packet_loss": {"rate": 0.03, "mean_burst": 0}}],
        "conditions[0].packet_loss.mean_burst",
        "mean_burst=0",
    ),
    ([{"gain": 3}], "conditions[0].gain", "parameters must be a mapping"),
    (["gain"], "conditions[0].gain.db", "field required; gain takes db"),
    ([{"gain": {"db": 1}, "echo": {}}], "conditions[0]", "must be one effect"),
    ([{"preset": "nope"}], "conditions[0].preset", "unknown preset"),
    ({"effects": "noise"}, "conditions.effects", "must be a list"),
    (42, "conditions", "must be a preset name, a list of effects"),
]


@pytest.mark.parametrize(("spec", "field", "message"), BAD_SPECS)
def test_spec_errors_name_the_field(spec, field, message):
    with pytest.raises(audio.ConditionError) as info:
        audio.parse_conditions(spec)
    err = info.value
    assert isinstance(err, ScenarioError)
    assert err.field == field
    assert message in err.reason
    assert str(err).startswith(f"{field}: ")


def test_errors_carry_the_file_and_a_custom_field_prefix():
    with pytest.raises(ScenarioError) as info:
        audio.parse_conditions(
            [{"noise": {"snr_db": 99}}], field="turns[2].conditions", file="scenarios/x.yaml"
        )
    assert str(info.value).startswith("scenarios/x.yaml: turns[2].conditions[0].noise.snr_db: ")
    assert info.value.loc == (0, "noise", "snr_db")


def test_params_models_reject_unknown_keys_and_are_strict():
    model = presets.effect_params_model("noise")
    assert model.model_validate({"snr_db": 3}).kind == "white"
    for bad in ({"snr_db": 3, "color": "x"}, {"snr_db": "3"}, {"snr_db": True}):
        with pytest.raises(ValidationError, match=r"snr_db|color"):
            model.model_validate(bad)


def test_preset_file_is_validated_on_load(monkeypatch, tmp_path):
    bad = tmp_path / "presets.yaml"
    bad.write_text("mine:\n  effects:\n    - noise: {snr_db: 500}\n")
    monkeypatch.setattr(presets, "PRESETS_FILE", bad)
    presets._preset_table.cache_clear()
    try:
        with pytest.raises(ScenarioError) as info:
            audio.preset_names()
        assert str(info.value).startswith(f"{bad}: mine.effects[0].noise.snr_db: ")
    finally:
        monkeypatch.undo()
        presets._preset_table.cache_clear()
    assert "bad_cell" in audio.preset_names()


def test_presets_cannot_include_themselves(monkeypatch, tmp_path):
    loop = tmp_path / "presets.yaml"
    loop.write_text("a:\n  effects: [{preset: b}]\nb:\n  effects: [{preset: a}]\n")
    monkeypatch.setattr(presets, "PRESETS_FILE", loop)
    presets._preset_table.cache_clear()
    try:
        with pytest.raises(ScenarioError, match="includes itself: a -> b -> a"):
            audio.load_preset("a")
    finally:
        monkeypatch.undo()
        presets._preset_table.cache_clear()


@needs_ffmpeg
def test_opus_presets_run():
    clip = audio.speech_like(0.5, 16000, seed=23)
    for name in ("speakerphone_car", "voip_lossy"):
        out = audio.load_preset(name).apply(clip, seed=1)
        assert len(out.samples) == len(clip.samples)
        assert np.all(np.isfinite(out.samples))
        assert measure.snr_db(clip, out) < 15


def test_custom_effects_can_be_registered(monkeypatch):
    monkeypatch.setattr(presets, "EFFECTS", dict(presets.EFFECTS))
    presets.effect_params_model.cache_clear()

    def dc_offset(level: float = 0.1) -> audio.FunctionEffect:
        level = audio.effects.check_range("dc_offset", "level", level, -0.5, 0.5)
        return audio.FunctionEffect("dc_offset", {"level": level}, lambda x, r, g: x + level)

    audio.register_effect("dc_offset", dc_offset)
    try:
        chain = audio.parse_conditions([{"dc_offset": {"level": 0.25}}])
        out = chain.apply(audio.Clip.silence(0.1, 8000), seed=0)
        assert np.all(out.samples == np.float32(0.25))
        with pytest.raises(audio.ConditionError) as info:
            audio.parse_conditions([{"dc_offset": {"level": 0.9}}])
        assert info.value.field == "conditions[0].dc_offset.level"
        with pytest.raises(audio.ConditionError, match="already registered"):
            audio.register_effect("noise", dc_offset)
    finally:
        presets.effect_params_model.cache_clear()
