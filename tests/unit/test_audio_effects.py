"""The effect chain and the simple effects, checked by measurement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import audio
from harness.audio import measure
from harness.audio.clip import Clip
from harness.core.errors import ScenarioError


def white(seconds: float, rate: int, seed: int = 0, amp: float = 0.1) -> Clip:
    rng = np.random.default_rng(seed)
    return Clip((amp * rng.standard_normal(round(seconds * rate))).astype(np.float32), rate)


def impulse(seconds: float, rate: int, amp: float = 0.5) -> Clip:
    x = np.zeros(round(seconds * rate), dtype=np.float32)
    x[0] = amp
    return Clip(x, rate)


RANDOM_CHAIN = audio.Chain(
    (
        audio.reverb(rt60_s=0.3),
        audio.noise(snr_db=15, kind="pink"),
        audio.noise(snr_db=20, kind="babble"),
        audio.time_warp(max_ms=10),
        audio.packet_loss(rate=0.1, mean_burst=2),
    )
)


# ------------------------------------------------------------------------------ the chain


def test_same_seed_gives_byte_identical_output():
    clip = audio.speech_like(1.0, 16000, seed=1)
    a = RANDOM_CHAIN.apply(clip, seed=42)
    b = RANDOM_CHAIN.apply(clip, seed=42)
    assert a.samples.tobytes() == b.samples.tobytes()
    assert a.rate == b.rate == 16000


def test_different_seeds_differ():
    clip = audio.speech_like(1.0, 16000, seed=1)
    a = RANDOM_CHAIN.apply(clip, seed=1)
    b = RANDOM_CHAIN.apply(clip, seed=2)
    assert not np.array_equal(a.samples, b.samples)


def test_each_effect_has_its_own_stream():
    # Appending an effect must not change the randomness of the ones before it.
    clip = audio.speech_like(0.5, 16000, seed=2)
    one = audio.Chain((audio.noise(snr_db=10, kind="white"),))
    two = one.then(audio.gain(db=0))
    assert np.array_equal(one.apply(clip, 9).samples, two.apply(clip, 9).samples)


def test_chain_does_not_modify_its_input():
    clip = audio.speech_like(0.5, 16000, seed=3)
    before = clip.samples.copy()
    RANDOM_CHAIN.apply(clip, seed=0)
    assert np.array_equal(clip.samples, before)


def test_empty_chain_is_the_identity():
    clip = audio.speech_like(0.3, 16000)
    assert audio.Chain().apply(clip, seed=0) is clip


@pytest.mark.parametrize("seed", [-1, 1.5, "7", True])
def test_chain_rejects_bad_seeds(seed):
    with pytest.raises(audio.ConditionError, match="seed="):
        audio.Chain((audio.gain(db=1),)).apply(audio.speech_like(0.1), seed)


def test_chain_rejects_things_that_are_not_effects():
    with pytest.raises(audio.ConditionError, match=r"effects\[1\]"):
        audio.Chain((audio.gain(db=1), "noise"))


def test_user_effects_plug_in_through_the_protocol():
    class Invert(audio.BaseEffect):
        name = "invert"

        def process(self, samples, rate, rng):
            return -samples

    class Bare:  # no base class at all: only the protocol's shape
        name = "half"

        @property
        def params(self):
            return {"factor": 0.5}

        def apply(self, clip, rng):
            return Clip(clip.samples * 0.5, clip.rate)

    assert isinstance(Bare(), audio.AudioEffect)
    clip = audio.speech_like(0.2, 8000)
    out = audio.Chain((Invert(), Bare())).apply(clip, seed=0)
    np.testing.assert_array_equal(out.samples, -0.5 * clip.samples)
    assert repr(Invert()) == "invert()"


def test_describe_lists_the_effects_as_a_spec():
    chain = audio.Chain((audio.gain(db=-3), audio.noise(snr_db=10, kind="car")))
    assert chain.describe() == [
        {"gain": {"db": -3.0}},
        {"noise": {"snr_db": 10.0, "kind": "car"}},
    ]
    assert repr(chain) == "Chain([gain(db=-3.0), noise(snr_db=10.0, kind='car')])"
    assert len(chain + chain) == 4


# ------------------------------------------------------------------------------ gain, clipping


@pytest.mark.parametrize("db", [-30.0, -6.0, 0.0, 3.5, 12.0])
def test_gain_changes_rms_by_the_db_asked(db):
    clip = audio.speech_like(1.0, 16000, level_dbfs=-30)
    out = audio.gain(db=db).apply(clip, np.random.default_rng(0))
    assert measure.rms_dbfs(out) - measure.rms_dbfs(clip) == pytest.approx(db, abs=0.01)


def test_gain_clips_to_full_scale():
    out = audio.gain(db=40).apply(audio.speech_like(0.5, 16000), np.random.default_rng(0))
    assert np.max(np.abs(out.samples)) == 1.0
    assert measure.clipping_ratio(out) > 0.05


@pytest.mark.parametrize("threshold", [0.05, 0.1, 0.3])
def test_clipping_ratio_matches_the_share_above_threshold(threshold):
    clip = audio.speech_like(2.0, 16000, level_dbfs=-15, seed=4)
    expected = float(np.mean(np.abs(clip.samples) >= np.float32(threshold)))
    out = audio.clipping(threshold=threshold).apply(clip, np.random.default_rng(0))
    assert expected > 0.005  # the test signal really is clipped
    assert np.max(np.abs(out.samples)) == pytest.approx(threshold, rel=1e-6)
    assert measure.clipping_ratio(out, threshold=np.float32(threshold)) == pytest.approx(expected)
    # Without the threshold, the flat tops are found from the signal alone (runs shorter
    # than three samples are missed, hence the 10 %).
    assert measure.clipping_ratio(out) == pytest.approx(expected, rel=0.1)
    assert measure.clipping_ratio(clip) == 0.0


# ------------------------------------------------------------------------------ echo, reverb


def test_echo_impulse_response_has_geometric_echoes():
    rate, delay_ms, decay = 8000, 50.0, 0.5
    out = audio.echo(delay_ms=delay_ms, decay=decay).apply(
        impulse(1.0, rate), np.random.default_rng(0)
    )
    d = round(delay_ms * rate / 1000)
    y = out.samples
    assert y[0] == pytest.approx(0.5)
    for k in (1, 2, 3):
        assert y[k * d] == pytest.approx(0.5 * decay**k, rel=1e-5)
    assert np.max(np.abs(np.delete(y, np.arange(0, len(y), d)))) < 1e-6


@pytest.mark.parametrize("decay", [0.3, 0.6, 0.9])
def test_echo_energy_gain_is_one_over_one_minus_decay_squared(decay):
    clip = white(4.0, 16000, amp=0.05)
    out = audio.echo(delay_ms=30, decay=decay).apply(clip, np.random.default_rng(0))
    gain_db = measure.rms_dbfs(out) - measure.rms_dbfs(clip)
    assert gain_db == pytest.approx(-10 * math.log10(1 - decay**2), abs=0.3)


@pytest.mark.parametrize("rt60", [0.2, 0.6, 1.2])
def test_reverb_decays_60_db_in_rt60(rt60):
    out = audio.reverb(rt60_s=rt60, drr_db=-10).apply(
        impulse(2 * rt60 + 0.5, 16000), np.random.default_rng(3)
    )
    assert measure.rt60_s(out) == pytest.approx(rt60, rel=0.1)


def test_reverb_keeps_the_level_and_fills_the_pauses():
    clip = audio.speech_like(2.0, 16000, seed=5)
    out = audio.reverb(rt60_s=0.8).apply(clip, np.random.default_rng(1))
    assert measure.rms_dbfs(out) == pytest.approx(measure.rms_dbfs(clip), abs=2.0)
    silent = clip.samples == 0
    assert silent.mean() > 0.1  # the test signal has pauses...
    tail = float(np.mean(out.samples[silent].astype(np.float64) ** 2))
    assert 10 * math.log10(tail) > measure.rms_dbfs(clip) - 25  # ...and reverb fills them


def test_reverb_direct_to_reverberant_ratio():
    rate = 16000
    for drr in (-5.0, 0.0, 10.0):
        out = audio.reverb(rt60_s=0.4, drr_db=drr).apply(
            impulse(1.0, rate), np.random.default_rng(0)
        )
        y = out.samples.astype(np.float64)
        assert 10 * math.log10(y[0] ** 2 / np.sum(y[1:] ** 2)) == pytest.approx(drr, abs=0.2)


# ------------------------------------------------------------------------------ time warp, speed


@pytest.mark.parametrize("max_ms", [2.0, 10.0, 40.0])
def test_time_warp_displacement_stays_within_max_ms(max_ms):
    rate, n = 16000, 16000 * 4
    ramp = np.linspace(-1, 1, n)
    out = audio.time_warp(max_ms=max_ms).apply(
        Clip(ramp.astype(np.float32), rate), np.random.default_rng(7)
    )
    displacement_ms = (out.samples - ramp) / (2 / (n - 1)) / rate * 1000
    assert np.max(np.abs(displacement_ms)) <= max_ms + 0.1
    assert np.max(np.abs(displacement_ms)) >= max_ms / 4  # it does move
    assert abs(displacement_ms[0]) < 0.1 and abs(displacement_ms[-1]) < 0.1
    assert np.all(np.diff(out.samples) >= 0)  # time only runs forward


def test_jitter_is_time_warp():
    assert audio.jitter(max_ms=5) == audio.time_warp(max_ms=5)
    assert audio.time_warp(0).apply(
        audio.speech_like(0.3), np.random.default_rng(0)
    ).samples.tobytes() == (audio.speech_like(0.3).samples.tobytes())


def dominant_hz(clip: Clip) -> float:
    x = clip.samples * np.hanning(len(clip.samples))
    spec = np.abs(np.fft.rfft(x, 8 * len(x)))
    return float(np.fft.rfftfreq(8 * len(x), 1 / clip.rate)[np.argmax(spec)])


@pytest.mark.parametrize("rate", [0.6, 0.8, 1.25, 1.8])
def test_speed_changes_duration_not_pitch(rate):
    sr = 16000
    t = np.arange(2 * sr) / sr
    tone = Clip((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    out = audio.speed(rate=rate).apply(tone, np.random.default_rng(0))
    assert len(out.samples) == round(len(tone.samples) / rate)
    assert dominant_hz(out) == pytest.approx(220, abs=2)
    assert measure.rms_dbfs(out) == pytest.approx(measure.rms_dbfs(tone), abs=0.5)


def test_speed_on_speech_keeps_the_active_level():
    clip = audio.speech_like(2.0, 16000, seed=8)
    out = audio.speed(rate=1.3).apply(clip, np.random.default_rng(0))
    assert len(out.samples) == round(len(clip.samples) / 1.3)
    assert measure.active_level_dbfs(out) == pytest.approx(-20, abs=1.0)


# ------------------------------------------------------------------------------ argument checks

BAD_ARGS = [
    (audio.gain, {"db": 50}, "db=50", "-60 <= db <= 40"),
    (audio.clipping, {"threshold": 0}, "threshold=0", "0.01 <= threshold <= 1"),
    (audio.echo, {"delay_ms": 0.5}, "delay_ms=0.5", "1 <= delay_ms <= 2000"),
    (audio.echo, {"delay_ms": 10, "decay": 1.0}, "decay=1.0", "0 <= decay <= 0.95"),
    (audio.reverb, {"rt60_s": 5}, "rt60_s=5", "0.05 <= rt60_s <= 3"),
    (audio.reverb, {"rt60_s": 0.5, "drr_db": 40}, "drr_db=40", "-20 <= drr_db <= 30"),
    (audio.time_warp, {"max_ms": -1}, "max_ms=-1", "0 <= max_ms <= 200"),
    (audio.speed, {"rate": 3}, "rate=3", "0.5 <= rate <= 2"),
    (audio.narrowband, {"codec": "gsm"}, "codec='gsm'", "'ulaw', 'alaw', None"),
    (audio.opus, {"bitrate_kbps": 2}, "bitrate_kbps=2", "6 <= bitrate_kbps <= 128"),
    (audio.noise, {"snr_db": 100}, "snr_db=100", "-20 <= snr_db <= 80"),
    (audio.noise, {"snr_db": 5, "kind": "rain"}, "kind='rain'", "'white', 'pink'"),
    (audio.packet_loss, {"rate": 0.7}, "rate=0.7", "0 <= rate <= 0.5"),
    (audio.packet_loss, {"rate": 0.1, "mean_burst": 0.5}, "mean_burst=0.5", "1 <= mean_burst"),
    (audio.packet_loss, {"rate": 0.1, "conceal": "plc"}, "conceal='plc'", "'zero', 'repeat'"),
    (audio.packet_loss, {"rate": 0.1, "frame_ms": 1}, "frame_ms=1", "5 <= frame_ms <= 100"),
    (audio.gain, {"db": "3"}, "db='3'", "must be a number"),
    (audio.gain, {"db": float("nan")}, "db=nan", "finite"),
    (audio.noise, {"snr_db": True}, "snr_db=True", "must be a number"),
]


@pytest.mark.parametrize(("factory", "kwargs", "echo_", "allowed"), BAD_ARGS)
def test_factories_validate_when_built(factory, kwargs, echo_, allowed):
    with pytest.raises(audio.ConditionError) as info:
        factory(**kwargs)
    err = info.value
    assert isinstance(err, ScenarioError) and isinstance(err, ValueError)
    assert echo_ in str(err)
    assert allowed in str(err)
    assert err.param == echo_.split("=")[0]
