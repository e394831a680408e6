"""Fault knobs: ways to make the clinic worse on purpose, one per row of the failure-mode
library, so tests can prove that the harness notices each.

Every knob comes from the environment (``CLINIC_<NAME>``, read by every service of the
deployment) and can be overridden per call by the dispatch metadata, e.g.
``{"faults": {"extra_llm_latency_ms": 1500}}``; metadata keys are the field names below, or
the environment variable names. The conversational agent forwards the knobs of the other
two layers with each request (the background agent's in the ``X-Clinic-Faults`` header, the
after-call workflow's decision in the job), so one dispatch reaches all three layers. Every
bad value is rejected with a message naming where it came from and what is allowed.

A fault has a *magnitude* (how bad: milliseconds, a fraction of the audio, glitches per
second; 0 is off) and a *share*: of the replies, words, utterances, requests or calls it
hits (1.0, every one, unless said otherwise). Which ones are hit is drawn from
``random.Random(f"{seed}:{conversation id}:{knob}")``: the same call always draws the same,
different calls draw independently. :data:`KNOBS` describes each knob; the README's table
is generated from it (``python -m examples.clinic.faults``).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

ENV_PREFIX = "CLINIC_"
BUGS = ("date_loop",)
GLITCH_KINDS = ("zero", "clip")
MAX_MS = 120_000
MAX_GLITCH_PER_S = 50.0
_WORD_PAIR = re.compile(r"^([a-z']+)\s*:\s*([a-z']+)$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class FaultConfigError(ValueError):
    """A fault knob has a value the clinic cannot use."""


@dataclass(frozen=True)
class Knob:
    """One knob: how its value is read, which layer it breaks, and what it does."""

    kind: str
    """``ms`` (integer ≥ 0), ``share`` (0..1), ``flag_share`` (0..1, or true/false for 1/0),
    ``fraction`` (0..1), ``per_s`` (≥ 0), ``int``, ``bug``, ``glitch_kind``, ``word_pair``."""
    layer: str
    meaning: str
    unit: str = ""


KNOBS: dict[str, Knob] = {
    "seed": Knob("int", "all", "seed of every draw; the n-th draw of a call repeats"),
    "bug": Knob(
        "bug",
        "llm",
        "a realistic dialog bug: `date_loop`: once the caller corrects the day, the agent "
        "keeps asking to confirm it and never books",
    ),
    "extra_llm_latency_ms": Knob(
        "ms", "llm", "added before the LLM's first token, once per reply to the caller", "ms"
    ),
    "extra_llm_latency_share": Knob("share", "llm", "share of replies to the caller delayed"),
    "loop_share": Knob(
        "share",
        "llm",
        "share of replies to the caller that repeat the agent's previous reply word for word "
        "instead of answering (a stuck dialog)",
    ),
    "fallback_share": Knob(
        "share",
        "llm",
        "share of replies to the caller replaced by an unhelpful fallback "
        '("Sorry, I can\'t help with that right now.")',
    ),
    "wrong_args_share": Knob(
        "share",
        "llm",
        "share of `request_booking` calls whose day is the next weekday that has the "
        "requested time open, not the caller's; the confirmation still says the caller's day",
    ),
    "phantom_booking_share": Knob(
        "share",
        "llm",
        "share of bookings the agent confirms (with a made-up confirmation number) without "
        "calling `request_booking`",
    ),
    "stt_drop_share": Knob("share", "stt", "share of recognised words dropped"),
    "stt_substitute_share": Knob(
        "share", "stt", "share of recognised words replaced by a confusable word"
    ),
    "stt_confuse": Knob(
        "word_pair",
        "stt",
        "`heard:written`, e.g. `tuesday:thursday`: the recogniser is biased toward a "
        "confusable word and writes `written` for `heard`",
    ),
    "stt_confuse_share": Knob("share", "stt", "share of the `heard` word's occurrences confused"),
    "tts_cut_fraction": Knob(
        "fraction",
        "tts",
        "fraction of a reply's audio cut from its end; the transcript still says all of it",
    ),
    "tts_cut_share": Knob("share", "tts", "share of replies cut"),
    "tts_gap_ms": Knob("ms", "tts", "silence inserted in the middle of a reply's audio", "ms"),
    "tts_gap_share": Knob("share", "tts", "share of replies with the silence"),
    "tts_glitch_per_s": Knob(
        "per_s",
        "tts",
        "20 ms glitches per second of a reply's speech, placed in loud speech, evenly spaced",
        "1/s",
    ),
    "tts_glitch_kind": Knob(
        "glitch_kind", "tts", "`zero` (the frames are zeroed) or `clip` (amplified 8x, clipped)"
    ),
    "tts_glitch_share": Knob("share", "tts", "share of replies glitched"),
    "endpointing_eager_ms": Knob(
        "ms",
        "turn_taking",
        "the end-of-turn silence (VAD 550 ms + endpointing delay 500 ms) is shortened by "
        "this much, down to 50 ms: the agent takes a pause inside the caller's sentence for "
        "its end and talks over the rest",
        "ms",
    ),
    "endpointing_slow_ms": Knob(
        "ms", "turn_taking", "added to the endpointing delay: the agent answers late", "ms"
    ),
    "endpointing_share": Knob("share", "turn_taking", "share of calls with either endpointing"),
    "tool_latency_ms": Knob(
        "ms", "background", "the background agent waits this long before answering", "ms"
    ),
    "tool_latency_share": Knob("share", "background", "share of requests delayed"),
    "tool_timeout_share": Knob(
        "share",
        "background",
        "share of requests the background agent holds past the agent's 5 s timeout",
    ),
    "tool_failure_rate": Knob(
        "share", "background", "share of requests that fail with 503 and an error span"
    ),
    "skip_approval": Knob(
        "flag_share",
        "background",
        "share of bookings written without the approval check (approval `skipped`); 1 or true: all",
    ),
    "duplicate_action_share": Knob(
        "share",
        "background",
        "share of approved bookings whose write is done a second time (a retried, "
        "non-idempotent write: a second `create_booking` with the same key)",
    ),
    "workflow_crash": Knob(
        "flag_share",
        "workflow",
        "share of calls whose after-call job kills the workflow process midway; 1 or true: all",
    ),
    "workflow_skip_share": Knob(
        "share", "workflow", "share of calls whose after-call job is never queued"
    ),
    "workflow_duplicate_share": Knob(
        "share",
        "workflow",
        "share of calls whose after-call job is queued twice (the confirmation is sent twice)",
    ),
}
"""Every knob, in the order of the README's table."""

BACKEND_KNOBS = (
    "seed",
    "tool_latency_ms",
    "tool_latency_share",
    "tool_timeout_share",
    "tool_failure_rate",
    "skip_approval",
    "duplicate_action_share",
)
"""The knobs the background agent applies (the agent forwards them with each request)."""


@dataclass(frozen=True)
class Faults:
    """The value of every knob (see :data:`KNOBS`); the defaults break nothing."""

    seed: int = 0
    bug: str | None = None
    extra_llm_latency_ms: int = 0
    extra_llm_latency_share: float = 1.0
    loop_share: float = 0.0
    fallback_share: float = 0.0
    wrong_args_share: float = 0.0
    phantom_booking_share: float = 0.0
    stt_drop_share: float = 0.0
    stt_substitute_share: float = 0.0
    stt_confuse: str | None = None
    stt_confuse_share: float = 1.0
    tts_cut_fraction: float = 0.0
    tts_cut_share: float = 1.0
    tts_gap_ms: int = 0
    tts_gap_share: float = 1.0
    tts_glitch_per_s: float = 0.0
    tts_glitch_kind: str = "zero"
    tts_glitch_share: float = 1.0
    endpointing_eager_ms: int = 0
    endpointing_slow_ms: int = 0
    endpointing_share: float = 1.0
    tool_latency_ms: int = 0
    tool_latency_share: float = 1.0
    tool_timeout_share: float = 0.0
    tool_failure_rate: float = 0.0
    skip_approval: float = 0.0
    duplicate_action_share: float = 0.0
    workflow_crash: float = 0.0
    workflow_skip_share: float = 0.0
    workflow_duplicate_share: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            checked = _check(value, f.name, where=f"Faults.{f.name}")
            if checked is not value:
                object.__setattr__(self, f.name, checked)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Faults:
        """Knobs from ``CLINIC_*`` environment variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = env_name(f.name)
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            values[f.name] = convert(raw.strip(), f.name, where=var)
        return cls(**values)

    @classmethod
    def from_metadata(cls, metadata: str | Mapping[str, Any] | None, base: Faults) -> Faults:
        """``base`` overridden by the ``"faults"`` object of job metadata, if there is one."""
        if metadata is None or metadata == "":
            return base
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except json.JSONDecodeError as e:
                raise FaultConfigError(f"dispatch metadata is not valid JSON: {e}") from None
        if not isinstance(metadata, Mapping):
            return base
        overrides = metadata.get("faults")
        if overrides is None:
            return base
        if not isinstance(overrides, Mapping):
            raise FaultConfigError(
                f"dispatch metadata faults must be a JSON object, got {overrides!r}"
            )
        return base.overridden(overrides, where="dispatch metadata faults")

    def overridden(
        self, overrides: Mapping[str, Any], *, where: str, allowed: tuple[str, ...] | None = None
    ) -> Faults:
        """A copy with ``overrides`` applied (keys: field or environment names); ``where``
        names their source in errors; ``allowed`` limits the knobs that may be given."""
        known = tuple(KNOBS) if allowed is None else allowed
        values: dict[str, Any] = {}
        for key, raw in overrides.items():
            name = str(key).lower()
            if name.startswith(ENV_PREFIX.lower()):
                name = name[len(ENV_PREFIX) :]
            if name not in known:
                raise FaultConfigError(
                    f"{where}.{key}: unknown fault knob; known knobs are {', '.join(known)}"
                )
            values[name] = convert(raw, name, where=f"{where}.{key}")
        return replace(self, **values) if values else self

    def backend_knobs(self) -> dict[str, Any]:
        """What the background agent needs of these knobs, to forward with a request."""
        return {name: getattr(self, name) for name in BACKEND_KNOBS}

    def llm_delays(self, call_key: str = "") -> LatencyPlan:
        """A fresh per-call plan of which replies get the extra latency. ``call_key`` (the
        conversation id) makes calls draw differently while each stays reproducible."""
        return LatencyPlan(self, call_key)

    def plan(self, call_key: str = "") -> FaultPlan:
        """The per-call draws of every other knob (see :class:`FaultPlan`)."""
        return FaultPlan(self, call_key)


def env_name(knob: str) -> str:
    """``extra_llm_latency_ms`` -> ``CLINIC_EXTRA_LLM_LATENCY_MS``."""
    return ENV_PREFIX + knob.upper()


class LatencyPlan:
    """Draws, one LLM request at a time, the extra delay before its first token.

    The draws come from ``random.Random(f"{seed}:{call_key}")``: the same call (seed and
    conversation id) always gets the same delays, and different calls draw independently,
    so a share of 0.2 delays about 20 % of the replies of a session, not the same replies
    of every call.
    """

    def __init__(self, faults: Faults, call_key: str = "") -> None:
        self._faults = faults
        self._rng = random.Random(f"{faults.seed}:{call_key}")

    def next_delay(self) -> float:
        """Seconds to wait before the next request's first token."""
        hit = self._rng.random() < self._faults.extra_llm_latency_share
        return self._faults.extra_llm_latency_ms / 1000.0 if hit else 0.0


class FaultPlan:
    """One call's draws: an independent, seeded stream per knob.

    ``hit("loop_share")`` draws whether the next reply (word, utterance, request or the
    call itself: whatever the knob counts) is hit. A share of 0 never draws at all, so
    switching one knob on leaves every other knob's draws unchanged.
    """

    def __init__(self, faults: Faults, call_key: str = "") -> None:
        self.faults = faults
        self.call_key = call_key
        self._rngs: dict[str, random.Random] = {}

    def rng(self, name: str) -> random.Random:
        """The stream of knob ``name`` (for draws other than a hit, e.g. which word)."""
        rng = self._rngs.get(name)
        if rng is None:
            rng = self._rngs[name] = random.Random(f"{self.faults.seed}:{self.call_key}:{name}")
        return rng

    def hit(self, share_knob: str) -> bool:
        share = float(getattr(self.faults, share_knob))
        if share <= 0.0:
            return False
        return self.rng(share_knob).random() < share


# --- conversion ---------------------------------------------------------------------------


def convert(raw: Any, name: str, *, where: str) -> Any:
    """``raw`` (an environment string or a JSON value) as knob ``name``'s value."""
    knob = KNOBS.get(name)
    if knob is None:
        raise AssertionError(f"no knob {name}")
    kind = knob.kind
    if kind in ("ms", "int"):
        value = _parse_int(raw, where, minimum=0 if kind == "ms" else None)
        if kind == "ms" and value > MAX_MS:
            raise FaultConfigError(f"{where} must be at most {MAX_MS} ms, got {raw!r}")
        return value
    if kind == "share":
        return _parse_share(raw, where)
    if kind == "flag_share":
        if isinstance(raw, bool):
            return 1.0 if raw else 0.0
        text = str(raw).strip().lower()
        if text in _TRUE:
            return 1.0
        if text in _FALSE:
            return 0.0
        return _parse_share(raw, where, flag=True)
    if kind == "fraction":
        return _parse_share(raw, where, what="a fraction between 0 and 1")
    if kind == "per_s":
        return _parse_number(raw, where, 0.0, MAX_GLITCH_PER_S, "glitches per second")
    if kind == "bug":
        value = str(raw).strip().lower() or None
        if value is not None and value not in BUGS:
            raise FaultConfigError(f"{where}={raw!r}: known bugs are {', '.join(BUGS)}")
        return value
    if kind == "glitch_kind":
        value = str(raw).strip().lower()
        if value not in GLITCH_KINDS:
            raise FaultConfigError(f"{where}={raw!r}: a glitch is {' or '.join(GLITCH_KINDS)}")
        return value
    if kind == "word_pair":
        if raw is None:
            return None
        text = str(raw).strip().lower()
        if not text:
            return None
        m = _WORD_PAIR.match(text)
        if m is None or m.group(1) == m.group(2):
            raise FaultConfigError(
                f"{where}={raw!r}: write the word heard and the word written, e.g. tuesday:thursday"
            )
        return f"{m.group(1)}:{m.group(2)}"
    raise AssertionError(f"no converter for {kind}")


def _check(value: Any, name: str, *, where: str) -> Any:
    """A constructor argument, validated (and normalised: True -> 1.0 for a flag share)."""
    kind = KNOBS[name].kind
    if kind in ("ms", "int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise FaultConfigError(f"{where} must be an integer, got {value!r}")
        if kind == "ms" and not 0 <= value <= MAX_MS:
            raise FaultConfigError(f"{where} must be >= 0 and at most {MAX_MS}, got {value!r}")
        return value
    if kind == "flag_share" and isinstance(value, bool):
        return 1.0 if value else 0.0
    if kind in ("share", "flag_share", "fraction", "per_s"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FaultConfigError(f"{where} must be a number, got {value!r}")
        top = MAX_GLITCH_PER_S if kind == "per_s" else 1.0
        if math.isnan(value) or not 0.0 <= value <= top:
            raise FaultConfigError(f"{where} must be a number between 0 and {top:g}, got {value!r}")
        return float(value)
    if value is None and kind in ("bug", "word_pair"):
        return None
    return convert(value, name, where=where)


def _parse_int(raw: Any, where: str, *, minimum: int | None) -> int:
    if isinstance(raw, bool):
        raise FaultConfigError(f"{where} must be an integer, got {raw!r}")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    else:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise FaultConfigError(f"{where} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise FaultConfigError(f"{where} must be >= {minimum}, got {raw!r}")
    return value


def _parse_share(
    raw: Any, where: str, *, what: str = "a number between 0 and 1", flag: bool = False
) -> float:
    if flag:
        what += " (or true/false)"
    if isinstance(raw, bool):
        raise FaultConfigError(f"{where} must be {what}, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise FaultConfigError(f"{where} must be {what}, got {raw!r}") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise FaultConfigError(f"{where} must be {what}, got {raw!r}")
    return value


def _parse_number(raw: Any, where: str, low: float, high: float, what: str) -> float:
    message = f"{where} must be a number of {what} between {low:g} and {high:g}, got {raw!r}"
    if isinstance(raw, bool):
        raise FaultConfigError(message)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise FaultConfigError(message) from None
    if math.isnan(value) or not low <= value <= high:
        raise FaultConfigError(message)
    return value


# --- the README's table -------------------------------------------------------------------


def knob_table() -> str:
    """The Markdown table of every knob, as the clinic's README shows it."""
    defaults = Faults()
    rows = [
        "| variable | layer | meaning | default |",
        "|---|---|---|---|",
    ]
    for name, knob in KNOBS.items():
        default = getattr(defaults, name)
        if default is None:
            shown = "none"
        else:
            shown = f"{default:g}" if isinstance(default, float) else str(default)
        unit = f" ({knob.unit})" if knob.unit else ""
        rows.append(f"| `{env_name(name)}` | {knob.layer} | {knob.meaning}{unit} | {shown} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(knob_table())
