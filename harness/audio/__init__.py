"""Caller-side audio conditions: an effect chain, named presets, and measurements.

    from harness import audio

    chain = audio.parse_conditions("bad_cell")          # or a list of effects
    chain = audio.Chain((audio.narrowband("ulaw"), audio.noise(snr_db=10, kind="street")))
    degraded = chain.apply(clip, seed=7)                # same seed, same bytes

Effects are built by lowercase factories that check their arguments when called and raise
:class:`ConditionError` (a ``ScenarioError`` and a ``ValueError``) echoing ``name=value``
and the allowed range. Anything with ``name``, ``params`` and ``apply(clip, rng)`` is an
:class:`AudioEffect`.
"""

from __future__ import annotations

from harness.audio import measure
from harness.audio.background import NOISE_KINDS, noise
from harness.audio.clip import Clip
from harness.audio.codecs import g711_roundtrip, narrowband, opus
from harness.audio.effects import (
    AudioEffect,
    BaseEffect,
    Chain,
    ConditionError,
    FunctionEffect,
    clipping,
    echo,
    gain,
    jitter,
    reverb,
    speed,
    time_warp,
)
from harness.audio.loss import packet_loss
from harness.audio.presets import (
    EFFECTS,
    ConditionSpec,
    EffectSpec,
    load_preset,
    parse_conditions,
    preset_description,
    preset_names,
    register_effect,
)
from harness.audio.testsignals import speech_like

__all__ = [
    "EFFECTS",
    "NOISE_KINDS",
    "AudioEffect",
    "BaseEffect",
    "Chain",
    "Clip",
    "ConditionError",
    "ConditionSpec",
    "EffectSpec",
    "FunctionEffect",
    "clipping",
    "echo",
    "g711_roundtrip",
    "gain",
    "jitter",
    "load_preset",
    "measure",
    "narrowband",
    "noise",
    "opus",
    "packet_loss",
    "parse_conditions",
    "preset_description",
    "preset_names",
    "register_effect",
    "reverb",
    "speech_like",
    "speed",
    "time_warp",
]
