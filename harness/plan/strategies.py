"""Hypothesis strategies for property tests of a voice agent under caller variation.

    from hypothesis import given, settings
    from harness.plan.callplan import render_plan
    from harness.scenario.model import load_scenario
    from harness.plan.strategies import audio_conditions, scenario_with, voices

    BOOKING = load_scenario("scenarios/smoke/booking.yaml")

    @settings(max_examples=20, deadline=None)
    @given(conditions=audio_conditions(kinds=("noise", "packet_loss")), voice=voices())
    def test_booking_survives(conditions, voice):
        plan = render_plan(scenario_with(BOOKING, conditions=conditions, voice=voice))
        ...

Every strategy shrinks towards the *mildest* caller: no audio effects, the default voice,
the plain turn. So when a property fails, Hypothesis reports the gentlest condition that
still breaks the agent, not the random one it happened to find first.

Needs ``hypothesis`` (the ``dev`` extra).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from pydantic import ValidationError

from harness.audio import Chain, ConditionError, parse_conditions
from harness.core.errors import ScenarioError
from harness.scenario.model import Scenario, Turn
from harness.voices import OFFLINE_VOICE_SPECS, VoiceError, parse_voice_spec

__all__ = [
    "CONDITION_KINDS",
    "DEFAULT_CONDITION_KINDS",
    "audio_conditions",
    "caller_turn_variants",
    "condition_severity",
    "scenario_with",
    "voices",
]


# --------------------------------------------------------------------------- severity knobs


@dataclass(frozen=True)
class _Knob:
    """One effect's severity dial: ``param`` moves from ``mild`` (step 0) to ``harsh``
    (step ``steps``) in equal steps; ``fixed`` are the effect's other parameters."""

    param: str
    mild: float
    harsh: float
    steps: int
    fixed: tuple[tuple[str, Any], ...] = ()

    def value(self, step: int) -> float:
        # Rounded so specs read cleanly (12.5, not 12.500000000000002).
        return round(self.mild + (self.harsh - self.mild) * step / self.steps, 6)

    def severity(self, value: float) -> float:
        return min(1.0, max(0.0, (value - self.mild) / (self.harsh - self.mild)))


# In signal-path order, which is also the order effects appear in a drawn spec: the room,
# the talker and the handset first, then the codec, then the network.
_KNOBS: dict[str, _Knob] = {
    "reverb": _Knob("rt60_s", 0.05, 1.5, 29, (("drr_db", 0.0),)),
    "echo": _Knob("decay", 0.0, 0.6, 12, (("delay_ms", 180.0),)),
    "noise": _Knob("snr_db", 40.0, 0.0, 80),
    "gain": _Knob("db", 0.0, -30.0, 30),
    "clipping": _Knob("threshold", 1.0, 0.1, 18),
    "speed": _Knob("rate", 1.0, 1.5, 10),
    "narrowband": _Knob("codec", 0.0, 1.0, 1),  # categorical, see _NARROWBAND
    "opus": _Knob("bitrate_kbps", 64.0, 6.0, 29),
    "packet_loss": _Knob("rate", 0.0, 0.2, 40, (("mean_burst", 2.0),)),
    "time_warp": _Knob("max_ms", 0.0, 60.0, 30),
}

# narrowband has no continuous dial: the band limit alone, then G.711 companding on top.
_NARROWBAND: tuple[tuple[str | None, float], ...] = ((None, 0.5), ("ulaw", 1.0))
_NARROWBAND_SEVERITY = {None: 0.5, "ulaw": 1.0, "alaw": 1.0}

#: Every effect :func:`audio_conditions` can draw, in the order a drawn spec lists them.
CONDITION_KINDS: tuple[str, ...] = tuple(_KNOBS)

#: What :func:`audio_conditions` draws by default: all but ``opus`` (which needs ffmpeg and
#: a subprocess per clip) and ``echo`` (a speakerphone fault, rarer on a caller's side).
DEFAULT_CONDITION_KINDS: tuple[str, ...] = (
    "noise",
    "packet_loss",
    "narrowband",
    "reverb",
    "gain",
    "clipping",
    "speed",
    "time_warp",
)


def _effect_spec(kind: str, step: int, noise_kind: str | None = None) -> dict[str, Any]:
    knob = _KNOBS[kind]
    if kind == "narrowband":
        return {"narrowband": {"codec": _NARROWBAND[step][0]}}
    params: dict[str, Any] = {knob.param: knob.value(step), **dict(knob.fixed)}
    if kind == "noise":
        params = {"kind": noise_kind, **params}
    return {kind: params}


def _max_step(kind: str, max_severity: float) -> int:
    if kind == "narrowband":
        # The band limit alone is always allowed; companding only at full severity.
        return max(i for i, (_, s) in enumerate(_NARROWBAND) if s <= max(max_severity, 0.5))
    return math.floor(_KNOBS[kind].steps * max_severity + 1e-9)


@st.composite
def _effect(draw: st.DrawFn, kinds: tuple[str, ...], noise_kinds: tuple[str, ...], cap: float):
    kind = draw(st.sampled_from(kinds))
    noise_kind = draw(st.sampled_from(noise_kinds)) if kind == "noise" else None
    step = draw(st.integers(0, _max_step(kind, cap)))
    return kind, _effect_spec(kind, step, noise_kind)


def audio_conditions(
    *,
    kinds: Sequence[str] = DEFAULT_CONDITION_KINDS,
    max_severity: float = 1.0,
    max_effects: int = 3,
    noise_kinds: Sequence[str] | None = None,
) -> st.SearchStrategy[list[dict[str, dict[str, Any]]]]:
    """Caller-side audio conditions, as the list-of-effects spec ``parse_conditions`` takes::

        [{"noise": {"kind": "street", "snr_db": 12.0}},
         {"packet_loss": {"rate": 0.02, "mean_burst": 2.0}}]

    Up to ``max_effects`` effects, each kind at most once, listed in signal-path order
    (:data:`CONDITION_KINDS`). Each effect has one severity dial, drawn as an integer step
    where step 0 is the mildest setting:

    ============ ============================ ==================================
    effect       step 0 (mild)                full severity
    ============ ============================ ==================================
    noise        ``snr_db`` 40                ``snr_db`` 0, in 0.5 dB steps
    packet_loss  ``rate`` 0                   ``rate`` 0.2, in 0.005 steps (bursts of 2)
    narrowband   band limit only              + μ-law companding
    reverb       ``rt60_s`` 0.05              ``rt60_s`` 1.5, in 0.05 s steps
    echo         ``decay`` 0                  ``decay`` 0.6 at 180 ms, in 0.05 steps
    gain         ``db`` 0                     ``db`` -30 (a quiet caller), in 1 dB steps
    clipping     ``threshold`` 1.0            ``threshold`` 0.1, in 0.05 steps
    speed        ``rate`` 1.0                 ``rate`` 1.5 (a fast talker), in 0.05 steps
    time_warp    ``max_ms`` 0                 ``max_ms`` 60, in 2 ms steps
    opus         ``bitrate_kbps`` 64          ``bitrate_kbps`` 6, in 2 kb/s steps
    ============ ============================ ==================================

    ``max_severity`` (0 to 1) caps every dial at that share of its range (narrowband keeps
    its band limit and companding needs 1.0). The noise bed is drawn from ``noise_kinds``
    (default: every kind, ``white`` first).

    Shrinking order: Hypothesis first drops whole effects (``[]``, the clean call, is the
    minimal example), then turns each remaining dial down towards step 0, then moves kinds
    towards the front of ``kinds`` and ``noise_kinds``. Each dial is an integer, so a
    failure that needs, say, SNR below 10 dB shrinks to exactly the mildest SNR on the grid
    that still fails (9.5 dB) with no other effect. :func:`condition_severity` ranks specs
    in the same order.
    """
    from harness.audio import NOISE_KINDS

    if isinstance(kinds, str) or not isinstance(kinds, Sequence):
        raise ConditionError(f"kinds={kinds!r} must be a list of effect names, e.g. ['noise']")
    unknown = [k for k in kinds if k not in _KNOBS]
    if unknown:
        raise ConditionError(
            f"kinds={list(kinds)!r}: {unknown[0]!r} has no severity dial; use some of "
            f"{', '.join(CONDITION_KINDS)}"
        )
    kinds = tuple(dict.fromkeys(kinds))
    noise_kinds = tuple(NOISE_KINDS if noise_kinds is None else noise_kinds)
    bad_noise = [k for k in noise_kinds if k not in NOISE_KINDS]
    if not noise_kinds or bad_noise:
        raise ConditionError(
            f"noise_kinds={list(noise_kinds)!r} must name some of {', '.join(NOISE_KINDS)}"
        )
    if (
        isinstance(max_severity, bool)
        or not isinstance(max_severity, int | float)
        or not 0.0 <= max_severity <= 1.0
    ):
        raise ConditionError(f"max_severity={max_severity!r} must be a number from 0 to 1")
    if isinstance(max_effects, bool) or not isinstance(max_effects, int) or max_effects < 0:
        raise ConditionError(f"max_effects={max_effects!r} must be a whole number >= 0")
    if not kinds or max_effects == 0:
        return st.just([])
    order = {k: i for i, k in enumerate(CONDITION_KINDS)}
    drawn = st.lists(
        _effect(kinds, noise_kinds, float(max_severity)),
        unique_by=lambda item: item[0],
        max_size=min(max_effects, len(kinds)),
    )
    return drawn.map(lambda items: [spec for _, spec in sorted(items, key=lambda i: order[i[0]])])


def condition_severity(spec: Any) -> float:
    """How harsh a condition is: the sum of its effects' severities, each from 0 to 1.

    Takes anything ``parse_conditions`` accepts (a preset name, a spec, a ``Chain``). An
    effect's severity is where its dial sits on the range in :func:`audio_conditions`,
    clamped to [0, 1] (so ``noise`` at 40 dB SNR or more counts 0, at 10 dB 0.75, at 0 dB or
    less 1). ``narrowband`` counts 0.5 for the band limit and 1 with G.711 companding; an
    effect with no dial (a registered custom effect) counts 1. The clean call is 0, and
    turning any dial up, or adding an effect, never lowers the total: this is the order
    :func:`audio_conditions` shrinks in.
    """
    chain = spec if isinstance(spec, Chain) else parse_conditions(spec)
    total = 0.0
    for effect in chain.effects:
        params = dict(effect.params)
        if effect.name == "narrowband":
            total += _NARROWBAND_SEVERITY.get(params.get("codec"), 1.0)
            continue
        knob = _KNOBS.get(effect.name)
        if knob is None or knob.param not in params:
            total += 1.0
            continue
        total += knob.severity(float(params[knob.param]))
    return round(total, 9)


# --------------------------------------------------------------------------- voices

_OFFLINE_ENGINES = ("espeak", "flite", "festival")
_FESTIVAL_SPECS = ("festival:kal_diphone",)


def voices(*, engines: Sequence[str] = ("espeak", "flite")) -> st.SearchStrategy[str]:
    """Offline caller voices as voice specs (``"espeak:en-gb@160"``, ``"flite:slt"``).

    Drawn from :data:`harness.voices.OFFLINE_VOICE_SPECS` of the given ``engines``
    (``festival`` adds ``festival:kal_diphone``). Shrinks to the default caller,
    ``espeak:en-us@160`` (the voice ``default_voice()`` builds) when espeak is included,
    else to the first voice of the first engine.
    """
    if isinstance(engines, str) or not isinstance(engines, Sequence) or not engines:
        raise VoiceError(f"engines={engines!r} must be a non-empty list, e.g. ['espeak']")
    bad = [e for e in engines if e not in _OFFLINE_ENGINES]
    if bad:
        raise VoiceError(
            f"engines={list(engines)!r}: {bad[0]!r} is not an offline engine; use some of "
            f"{', '.join(_OFFLINE_ENGINES)}"
        )
    catalogue = (*OFFLINE_VOICE_SPECS, *_FESTIVAL_SPECS)
    # Default voice first (it is first in the catalogue), then engines in the order given.
    ranked = sorted(
        (s for s in catalogue if s.split(":", 1)[0] in engines),
        key=lambda s: (s != OFFLINE_VOICE_SPECS[0], list(engines).index(s.split(":", 1)[0])),
    )
    return st.sampled_from(ranked)


# --------------------------------------------------------------------------- caller turns

_FILLERS = ("um", "uh", "er", "hmm", "you know")


def caller_turn_variants(
    text: str,
    *,
    fillers: Sequence[str] = _FILLERS,
    corrections: Sequence[str] | None = None,
    max_pause_ms: int = 2000,
    barge_in: bool = True,
) -> st.SearchStrategy[dict[str, Any]]:
    """Ways a caller might say ``text``, as scenario turn mappings
    (``harness.scenario.model.Turn``).

    Each variant is ``{"say": text}`` plus, independently:

    * ``hesitate``: a filler from ``fillers`` and a pause of 100 ms up to ``max_pause_ms``,
      after a drawn word or mid-sentence (``after_word`` absent);
    * ``self_correct``: a false start, the first words of ``text`` (or one of
      ``corrections``), then "no, sorry", then the sentence;
    * timing, one of: ``pause_before_ms`` (50 ms up to ``max_pause_ms`` of thinking before
      speaking) or, with ``barge_in``, ``barge_in_ms`` (talking over the agent, 3000 ms
      down to 300 ms into its reply).

    Shrinks to the plain turn ``{"say": text}``; within a behaviour, towards the shortest
    pause, the first filler, the shortest false start and the latest barge-in.
    """
    if not isinstance(text, str) or not text.strip():
        raise ScenarioError(f"text={text!r} must be something to say")
    if (
        isinstance(fillers, str)
        or not fillers
        or not all(isinstance(f, str) and f.strip() for f in fillers)
    ):
        raise ScenarioError(f"fillers={fillers!r} must be a non-empty list of words")
    if isinstance(max_pause_ms, bool) or not isinstance(max_pause_ms, int):
        raise ScenarioError(f"max_pause_ms={max_pause_ms!r} must be whole milliseconds")
    if not 100 <= max_pause_ms <= 10_000:
        raise ScenarioError(f"max_pause_ms={max_pause_ms!r} must be 100-10000")
    words = text.split()
    if corrections is None:
        # False starts: the first word, the first two, ... (never the whole sentence).
        starts = [" ".join(words[:n]) for n in range(1, max(2, len(words)))]
    else:
        if isinstance(corrections, str) or not corrections:
            raise ScenarioError(f"corrections={corrections!r} must be a non-empty list")
        starts = list(corrections)
        if not all(isinstance(c, str) and c.strip() for c in starts):
            raise ScenarioError(f"corrections={corrections!r} must all be something to say")

    pause = st.integers(0, (max_pause_ms - 100) // 50).map(lambda k: 100 + 50 * k)
    hesitate = st.builds(
        lambda filler, pause_ms, after: {
            "filler": filler,
            "pause_ms": pause_ms,
            **({"after_word": after} if after is not None else {}),
        },
        st.sampled_from(list(fillers)),
        pause,
        st.none() | st.integers(1, max(1, len(words) - 1)),
    )
    think = st.integers(0, (max_pause_ms - 50) // 50).map(
        lambda k: {"pause_before_ms": 50 + 50 * k}
    )
    timing = st.just({}) | think
    if barge_in:
        late_first = st.integers(0, 27).map(lambda k: {"barge_in_ms": 3000 - 100 * k})
        timing = timing | late_first

    @st.composite
    def variant(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {"say": text}
        h = draw(st.none() | hesitate)
        if h is not None:
            out["hesitate"] = h
        c = draw(st.none() | st.sampled_from(starts))
        if c is not None:
            out["self_correct"] = c
        out.update(draw(timing))
        return out

    return variant()


# --------------------------------------------------------------------------- scenarios

#: One variant per turn (``None`` keeps it), or variants by 0-based turn index.
TurnVariants = Sequence[Mapping[str, Any] | None] | Mapping[int, Mapping[str, Any]]

_BEHAVIOUR = ("say", "silence_ms", "pause_before_ms", "barge_in_ms", "hesitate", "self_correct")


def scenario_with(
    scenario: Scenario,
    *,
    conditions: Any = None,
    voice: Any = None,
    turn_variants: TurnVariants | None = None,
) -> Scenario:
    """A copy of ``scenario`` with the call's conditions, voice or turns replaced.

    ``None`` leaves a field as it is. ``conditions`` and ``voice`` replace the call-level
    ones; turns with their own ``conditions`` or ``voice`` keep them, as in the YAML (to
    force one condition on every turn, use the ``conditions`` argument of
    :func:`harness.plan.render.render_scenario_audio`).
    ``turn_variants`` is a list with one entry per turn (``None`` keeps a turn; a shorter
    list keeps the rest) or a mapping from 0-based turn index. A variant, e.g. from
    :func:`caller_turn_variants`, replaces the turn's caller behaviour (``say``,
    ``silence_ms``, ``hesitate``, ``self_correct``, ``pause_before_ms``, ``barge_in_ms``)
    and keeps its ``expect``, ``voice`` and ``conditions`` unless it sets them.

    The copy keeps the source file and line table, so errors raised while rendering it
    still name ``scenarios/x.yaml:12``. Bad arguments raise ``ScenarioError``.
    """
    if not isinstance(scenario, Scenario):
        raise ScenarioError(f"scenario={scenario!r} must be a harness.scenario.model.Scenario")
    update: dict[str, Any] = {}
    if conditions is not None:
        parse_conditions(conditions, field="conditions")  # raises ConditionError
        update["conditions"] = conditions
    if voice is not None:
        parse_voice_spec(voice, field="voice")  # raises ScenarioError
        update["voice"] = voice
    if turn_variants is not None:
        update["turns"] = _vary_turns(scenario, turn_variants)
    return scenario.model_copy(update=update)


def _vary_turns(scenario: Scenario, variants: TurnVariants) -> list[Turn]:
    n = len(scenario.turns)
    if isinstance(variants, Mapping):
        by_index = dict(variants)
    elif isinstance(variants, Sequence) and not isinstance(variants, str):
        if len(variants) > n:
            raise ScenarioError(
                f"turn_variants has {len(variants)} entries but the scenario has {n} turns",
                file=scenario.path,
            )
        by_index = dict(enumerate(variants))
    else:
        raise ScenarioError(
            f"turn_variants={variants!r} must be a list (one per turn) or {{index: variant}}"
        )
    turns = list(scenario.turns)
    for i, variant in by_index.items():
        if variant is None:
            continue
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise ScenarioError(
                f"turn_variants: index {i!r} is not a turn; use 0-{n - 1}", file=scenario.path
            )
        if not isinstance(variant, Mapping):
            raise scenario.error(f"turn variant {variant!r} must be a mapping", "turns", i)
        base = {
            k: v
            for k, v in turns[i].model_dump(exclude_defaults=True).items()
            if k not in _BEHAVIOUR
        }
        try:
            turns[i] = Turn.model_validate({**base, **variant})
        except ValidationError as exc:
            first = exc.errors()[0]
            msg = str(first["msg"]).removeprefix("Value error, ")
            where = ".".join(str(p) for p in first["loc"])
            raise scenario.error(
                f"turn variant {dict(variant)!r}: {where + ': ' if where else ''}{msg}",
                "turns",
                i,
            ) from None
    return turns
