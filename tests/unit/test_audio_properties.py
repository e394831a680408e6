"""Property tests: every effect over random valid parameters and clips, and the spec parser."""

from __future__ import annotations

import shutil
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import audio
from harness.audio import presets
from harness.audio.clip import Clip

RATES = [8000, 16000, 22050, 44100, 48000]


def num(lo: float, hi: float) -> st.SearchStrategy:
    """Numbers as a YAML file would give them: ints or floats within [lo, hi]."""
    ints = st.integers(int(np.ceil(lo)), int(np.floor(hi)))
    return st.one_of(ints, st.floats(lo, hi, allow_nan=False, allow_infinity=False))


PARAMS: dict[str, st.SearchStrategy[dict]] = {
    "gain": st.fixed_dictionaries({"db": num(-60, 40)}),
    "clipping": st.fixed_dictionaries({"threshold": num(0.01, 1)}),
    "echo": st.fixed_dictionaries({"delay_ms": num(1, 2000)}, optional={"decay": num(0, 0.95)}),
    "reverb": st.fixed_dictionaries({"rt60_s": num(0.05, 3)}, optional={"drr_db": num(-20, 30)}),
    "time_warp": st.fixed_dictionaries({}, optional={"max_ms": num(0, 200)}),
    "jitter": st.fixed_dictionaries({"max_ms": num(0, 50)}),
    "speed": st.fixed_dictionaries({"rate": num(0.5, 2)}),
    "narrowband": st.fixed_dictionaries(
        {}, optional={"codec": st.sampled_from(["ulaw", "alaw", None])}
    ),
    "noise": st.fixed_dictionaries(
        {"snr_db": num(-20, 80)}, optional={"kind": st.sampled_from(audio.NOISE_KINDS)}
    ),
    "packet_loss": st.fixed_dictionaries(
        {"rate": num(0, 0.5)},
        optional={
            "mean_burst": num(1, 50),
            "conceal": st.sampled_from(["zero", "repeat"]),
            "frame_ms": num(5, 100),
        },
    ),
    "opus": st.fixed_dictionaries({"bitrate_kbps": num(6, 128)}),
}


def test_every_registered_effect_has_a_strategy():
    assert set(PARAMS) == set(audio.EFFECTS)


@st.composite
def clips(draw, max_seconds: float = 0.12) -> Clip:
    rate = draw(st.sampled_from(RATES))
    n = draw(st.integers(0, int(max_seconds * rate)))
    kind = draw(st.sampled_from(["speech", "noise", "silence", "full_scale"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if kind == "speech" and n:
        x = audio.speech_like(n / rate, rate, seed=seed).samples[:n]
    elif kind == "noise":
        x = rng.uniform(-1, 1, n) * draw(st.floats(0, 1))
    elif kind == "full_scale":
        x = np.sign(rng.standard_normal(n))
    else:
        x = np.zeros(n)
    return Clip(np.asarray(x, dtype=np.float32), rate)


def check_effect(name: str, params: dict, clip: Clip, seed: int) -> None:
    effect = audio.EFFECTS[name](**params)
    before = clip.samples.tobytes()
    out = effect.apply(clip, np.random.default_rng(seed))
    again = effect.apply(clip, np.random.default_rng(seed))
    assert clip.samples.tobytes() == before  # input untouched
    assert isinstance(out, Clip) and out.rate == clip.rate
    n = len(clip.samples)
    if name == "speed":
        expected = 0 if n == 0 else max(1, round(n / effect.params["rate"]))
        assert len(out.samples) == expected
    else:
        assert len(out.samples) == n
    assert out.samples.dtype == np.float32
    assert np.all(np.isfinite(out.samples))
    assert np.all(np.abs(out.samples) <= 1.0)
    assert out.samples.tobytes() == again.samples.tobytes()  # deterministic


FAST = [name for name in PARAMS if name != "opus"]


@pytest.mark.parametrize("name", FAST)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clip=clips(), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_effect_properties(name, clip, seed, data):
    check_effect(name, data.draw(PARAMS[name], label="params"), clip, seed)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
@settings(max_examples=6, deadline=None)
@given(params=PARAMS["opus"], clip=clips(max_seconds=0.1), seed=st.integers(0, 9))
def test_opus_properties(params, clip, seed):
    check_effect("opus", params, clip, seed)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(
        st.sampled_from(FAST).flatmap(lambda n: PARAMS[n].map(lambda p, n=n: {n: p})),
        max_size=4,
    ),
    clip=clips(max_seconds=0.06),
    seed=st.integers(0, 2**63),
)
def test_random_chains_are_deterministic(items, clip, seed):
    chain = audio.parse_conditions(items)
    a = chain.apply(clip, seed)
    assert a.samples.tobytes() == chain.apply(clip, seed).samples.tobytes()
    assert np.all(np.abs(a.samples) <= 1.0)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(PARAMS)), data=st.data())
def test_parser_accepts_every_valid_spec_and_round_trips(name, data):
    params = data.draw(PARAMS[name])
    chain = audio.parse_conditions([{name: params}])
    (effect,) = chain.effects
    direct = audio.EFFECTS[name](**params)
    assert effect == direct
    assert effect.name == ("time_warp" if name == "jitter" else name)
    for key, value in params.items():
        assert effect.params[key] == value
    assert audio.parse_conditions(chain.describe()).effects == chain.effects


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(PARAMS)),
    key=st.text(string.ascii_lowercase + "_", min_size=1, max_size=12),
    data=st.data(),
    position=st.integers(0, 3),
)
def test_parser_rejects_unknown_keys_naming_them(name, key, data, position):
    model = presets.effect_params_model(name)
    if key in model.model_fields:
        return
    params = dict(data.draw(PARAMS[name]))
    params[key] = 1
    spec = [{"narrowband": {}}] * position + [{name: params}]
    with pytest.raises(audio.ConditionError) as info:
        audio.parse_conditions(spec)
    assert info.value.field == f"conditions[{position}].{name}.{key}"
    assert info.value.loc == (position, name, key)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(n for n in PARAMS if n != "narrowband")),
    data=st.data(),
    big=st.floats(1e4, 1e9),
)
def test_parser_rejects_out_of_range_values_naming_them(name, data, big):
    params = dict(data.draw(PARAMS[name]))
    model = presets.effect_params_model(name)
    numeric = [k for k, f in model.model_fields.items() if f.annotation is float]
    key = data.draw(st.sampled_from(numeric))
    params[key] = big
    with pytest.raises(audio.ConditionError) as info:
        audio.parse_conditions([{name: params}])
    assert info.value.field == f"conditions[0].{name}.{key}"
    assert f"{key}={big!r}" in info.value.reason
