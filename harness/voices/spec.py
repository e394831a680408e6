"""Voice specs as written in scenario YAML, and building voices from them.

A spec is a string::

    espeak:en-gb-scotland      espeak:en-us+f3@150      flite:slt
    festival:kal_diphone       elevenlabs:21m00Tcm4TlvDq8ikWAM

or a mapping whose ``engine`` picks the fields::

    {engine: espeak, voice: en-in, variant: f3, rate: 150, pitch: 50}
    {engine: flite, voice: slt, stretch: 1.1}
    {engine: elevenlabs, voice_id: ..., model: eleven_turbo_v2_5,
     settings: {stability: 0.5, similarity_boost: 0.75, style: 0, speed: 1.0}}
    {engine: recorded, turns: [turn1.wav, turn2.wav]}     # or {text: path, ...}

Unknown keys are rejected; every error is a :class:`~harness.core.errors.ScenarioError` naming
the field (``voice.settings.stability``). Parsing never touches the system: whether a
voice exists is checked when it first renders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.core.errors import ScenarioError
from harness.voices.base import RecordMode, Voice
from harness.voices.cache import CachedVoice, TTSCache
from harness.voices.offline import OFFLINE_VOICE_SPECS

__all__ = [
    "ENGINES",
    "ElevenLabsSettings",
    "ElevenLabsSpec",
    "EspeakSpec",
    "FestivalSpec",
    "FliteSpec",
    "RecordedSpec",
    "VoiceSpec",
    "offline_voices",
    "parse_voice_spec",
    "voice_from_spec",
]

_NAME = r"[A-Za-z0-9][A-Za-z0-9_\-]*"
_ESPEAK_LANG = r"[A-Za-z0-9][A-Za-z0-9_\-/]*"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_data(self) -> dict[str, Any]:
        """The mapping form, with default values left out (``engine`` always kept)."""
        data = self.model_dump(exclude_defaults=True, mode="json")
        return {"engine": self.engine, **data}  # type: ignore[attr-defined]

    def to_string(self) -> str | None:
        """The string form, or ``None`` when the spec needs the mapping form."""
        return None


class EspeakSpec(_Spec):
    """espeak-ng: ``voice`` is the language (``en-gb-scotland``), optionally ``+variant``."""

    engine: Literal["espeak"] = "espeak"
    voice: Annotated[str, Field(pattern=rf"^{_ESPEAK_LANG}$", max_length=64)] = "en-us"
    variant: Annotated[str | None, Field(pattern=rf"^{_NAME}$", max_length=32)] = None
    rate: Annotated[int, Field(strict=True, ge=80, le=450)] = 160
    pitch: Annotated[int | None, Field(strict=True, ge=0, le=99)] = None

    @model_validator(mode="before")
    @classmethod
    def _split_variant(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("voice"), str):
            voice = data["voice"]
            if "+" in voice:
                if data.get("variant") is not None:
                    raise ValueError(
                        f"voice={voice!r} already names a variant; drop variant={data['variant']!r}"
                    )
                lang, variant = voice.split("+", 1)
                data = {**data, "voice": lang, "variant": variant}
        return data

    def to_string(self) -> str | None:
        if self.pitch is not None:
            return None
        variant = f"+{self.variant}" if self.variant else ""
        return f"espeak:{self.voice}{variant}@{self.rate}"


class FliteSpec(_Spec):
    """flite: one of its built-in voices; ``stretch`` above 1 is slower."""

    engine: Literal["flite"] = "flite"
    voice: Annotated[str, Field(pattern=rf"^{_NAME}$", max_length=64)] = "slt"
    stretch: Annotated[float, Field(strict=True, ge=0.25, le=4.0)] = 1.0

    def to_string(self) -> str | None:
        return f"flite:{self.voice}" if self.stretch == 1.0 else None


class FestivalSpec(_Spec):
    """festival, through ``text2wave``; ``stretch`` above 1 is slower."""

    engine: Literal["festival"] = "festival"
    voice: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$", max_length=64)] = "kal_diphone"
    stretch: Annotated[float, Field(strict=True, ge=0.25, le=4.0)] = 1.0

    def to_string(self) -> str | None:
        return f"festival:{self.voice}" if self.stretch == 1.0 else None


class ElevenLabsSettings(BaseModel):
    """ElevenLabs voice settings; unset fields use the voice's own stored settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stability: Annotated[float | None, Field(strict=True, ge=0.0, le=1.0)] = None
    similarity_boost: Annotated[float | None, Field(strict=True, ge=0.0, le=1.0)] = None
    style: Annotated[float | None, Field(strict=True, ge=0.0, le=1.0)] = None
    speed: Annotated[float | None, Field(strict=True, ge=0.7, le=1.2)] = None
    use_speaker_boost: Annotated[bool | None, Field(strict=True)] = None


ElevenLabsFormat = Literal[
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_44100",
    "pcm_48000",
    "mp3_22050_32",
    "mp3_44100_64",
    "mp3_44100_128",
]


class ElevenLabsSpec(_Spec):
    """An ElevenLabs voice. Renders once with ``ELEVENLABS_API_KEY``; replays from the cache."""

    engine: Literal["elevenlabs"] = "elevenlabs"
    voice_id: Annotated[str, Field(pattern=rf"^{_NAME}$", max_length=64)]
    model: Annotated[str, Field(pattern=rf"^{_NAME}$", max_length=64)] = "eleven_turbo_v2_5"
    settings: ElevenLabsSettings = ElevenLabsSettings()
    output_format: ElevenLabsFormat = "pcm_16000"
    seed: Annotated[int | None, Field(strict=True, ge=0, le=4294967295)] = None

    def to_data(self) -> dict[str, Any]:
        data = super().to_data()
        if "settings" in data:
            data["settings"] = {k: v for k, v in data["settings"].items() if v is not None}
            if not data["settings"]:
                del data["settings"]
        return {"engine": "elevenlabs", "voice_id": self.voice_id, **data}

    def to_string(self) -> str | None:
        return (
            f"elevenlabs:{self.voice_id}"
            if self.to_data().keys()
            == {
                "engine",
                "voice_id",
            }
            else None
        )


class RecordedSpec(_Spec):
    """Recorded caller turns (incident replays): WAV paths, in order or keyed by text.

    Relative paths are resolved against the scenario file's directory.
    """

    engine: Literal["recorded"] = "recorded"
    turns: list[str] | dict[str, str]
    name: Annotated[str | None, Field(max_length=200)] = None
    channel: Annotated[int | None, Field(strict=True, ge=0, le=7)] = None

    @field_validator("turns")
    @classmethod
    def _non_empty(cls, v: list[str] | dict[str, str]) -> list[str] | dict[str, str]:
        if not v:
            raise ValueError("needs at least one recorded turn")
        return v


VoiceSpec = EspeakSpec | FliteSpec | FestivalSpec | ElevenLabsSpec | RecordedSpec

_MODELS: dict[str, type[_Spec]] = {
    "espeak": EspeakSpec,
    "flite": FliteSpec,
    "festival": FestivalSpec,
    "elevenlabs": ElevenLabsSpec,
    "recorded": RecordedSpec,
}
_ALIASES = {"espeak-ng": "espeak", "espeakng": "espeak", "eleven": "elevenlabs"}

#: The engine names a spec may use.
ENGINES: tuple[str, ...] = tuple(_MODELS)

_STRING_RE = re.compile(r"^(?P<engine>[A-Za-z0-9_\-]+)(?::(?P<rest>.*))?$", re.DOTALL)


def _join(field: str | None, *parts: Any) -> str | None:
    items = [str(p) for p in parts if p is not None and p != ""]
    if field:
        items.insert(0, field)
    return ".".join(items) or None


def _engine(name: str, field: str | None) -> str:
    low = name.strip().lower()
    low = _ALIASES.get(low, low)
    if low not in _MODELS:
        raise ScenarioError(
            f"unknown voice engine {name!r}; use one of: {', '.join(ENGINES)}",
            field=_join(field, "engine"),
        )
    return low


def _from_string(raw: str, field: str | None) -> dict[str, Any]:
    text = raw.strip()
    m = _STRING_RE.match(text)
    if not text or m is None:
        raise ScenarioError(
            f"voice spec {raw!r} is not 'engine:voice' (e.g. 'espeak:en-gb-scotland', "
            "'espeak:en-us+f3@150', 'flite:slt', 'elevenlabs:<voice_id>')",
            field=field,
        )
    engine = _engine(m["engine"], field)
    rest = m["rest"]
    if rest is None or rest == "":
        if engine in ("elevenlabs", "recorded"):
            what = (
                "a voice id: 'elevenlabs:<voice_id>'"
                if engine == "elevenlabs"
                else ("the mapping form: {engine: recorded, turns: [...]}")
            )
            raise ScenarioError(f"voice spec {raw!r} needs {what}", field=field)
        return {"engine": engine}
    if engine == "recorded":
        raise ScenarioError(
            f"voice spec {raw!r}: recorded voices need the mapping form "
            "{engine: recorded, turns: [...]}",
            field=field,
        )
    if engine == "espeak":
        voice, at, rate = rest.partition("@")
        data: dict[str, Any] = {"engine": engine, "voice": voice}
        if at:
            if not re.fullmatch(r"\d{1,4}", rate):
                raise ScenarioError(
                    f"voice spec {raw!r}: the rate after '@' must be words per minute, "
                    f"like '@150', got {rate!r}",
                    field=_join(field, "rate"),
                )
            data["rate"] = int(rate)
        return data
    if "@" in rest:
        raise ScenarioError(
            f"voice spec {raw!r}: only espeak takes '@rate'; for {engine} use the mapping "
            "form" + (" with stretch: 1.2" if engine in ("flite", "festival") else ""),
            field=field,
        )
    key = "voice_id" if engine == "elevenlabs" else "voice"
    return {"engine": engine, key: rest}


def _explain(err: dict[str, Any], model: type[BaseModel]) -> str:
    if err["type"] == "extra_forbidden":
        loc = err["loc"]
        owner: Any = model
        for part in loc[:-1]:
            ann = owner.model_fields.get(str(part)) if hasattr(owner, "model_fields") else None
            owner = ann.annotation if ann is not None else owner
        allowed = ", ".join(getattr(owner, "model_fields", {}) or model.model_fields)
        return f"unknown key {loc[-1]!r}; allowed keys: {allowed}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        return "required"
    if err["loc"] and "input" in err:
        return f"{msg} (got {err['input']!r})"
    return msg


def parse_voice_spec(raw: Any, *, field: str | None = "voice") -> VoiceSpec:
    """Parse a spec (string, mapping, or an already-parsed spec) into its model.

    ``field`` prefixes the error's field path, e.g. ``turns[2].voice``.
    """
    if isinstance(raw, _Spec):
        return raw  # type: ignore[return-value]
    if isinstance(raw, str):
        data: Mapping[str, Any] = _from_string(raw, field)
    elif isinstance(raw, Mapping):
        data = raw
    else:
        raise ScenarioError(
            f"a voice is a string like 'espeak:en-gb' or a mapping with 'engine', "
            f"got {type(raw).__name__}",
            field=field,
        )
    if "engine" not in data:
        raise ScenarioError(f"required; one of: {', '.join(ENGINES)}", field=_join(field, "engine"))
    if not isinstance(data["engine"], str):
        raise ScenarioError(
            f"must be a string, one of: {', '.join(ENGINES)} (got {data['engine']!r})",
            field=_join(field, "engine"),
        )
    engine = _engine(data["engine"], field)
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ScenarioError(f"keys must be strings, got {bad[0]!r}", field=field)
    model = _MODELS[engine]
    try:
        return model.model_validate({**data, "engine": engine})  # type: ignore[return-value]
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        loc = [p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        raise ScenarioError(_explain(first, model) + more, field=_join(field, *loc)) from None


def voice_from_spec(
    spec: Any,
    *,
    cache: TTSCache | str | os.PathLike[str] | None = None,
    record_mode: RecordMode | str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    field: str | None = "voice",
) -> Voice:
    """Build the voice a spec describes. A :class:`Voice` passes through unchanged.

    ``cache`` and ``record_mode`` apply to cached voices (all but ``recorded``);
    ``base_dir`` resolves a recorded voice's relative paths.
    """
    if not isinstance(spec, str | Mapping | _Spec) and isinstance(spec, Voice):
        return spec
    parsed = parse_voice_spec(spec, field=field)
    if isinstance(parsed, EspeakSpec):
        from harness.voices.offline import EspeakVoice

        return EspeakVoice(
            parsed.voice,
            parsed.variant,
            rate=parsed.rate,
            pitch=parsed.pitch,
            cache=cache,
            record_mode=record_mode,
        )
    if isinstance(parsed, FliteSpec):
        from harness.voices.offline import FliteVoice

        return FliteVoice(
            parsed.voice, stretch=parsed.stretch, cache=cache, record_mode=record_mode
        )
    if isinstance(parsed, FestivalSpec):
        from harness.voices.offline import FestivalVoice

        return FestivalVoice(
            parsed.voice, stretch=parsed.stretch, cache=cache, record_mode=record_mode
        )
    if isinstance(parsed, ElevenLabsSpec):
        from harness.voices.elevenlabs import ElevenLabsVoice

        s = parsed.settings
        return ElevenLabsVoice(
            parsed.voice_id,
            model=parsed.model,
            stability=s.stability,
            similarity_boost=s.similarity_boost,
            style=s.style,
            speed=s.speed,
            use_speaker_boost=s.use_speaker_boost,
            seed=parsed.seed,
            output_format=parsed.output_format,
            cache=cache,
            record_mode=record_mode,
        )
    from harness.voices.recorded import RecordedVoice

    turns: Any = parsed.turns
    return RecordedVoice(
        turns,
        base_dir=Path(base_dir) if base_dir is not None else None,
        name=parsed.name,
        channel=parsed.channel,
    )


def offline_voices(
    *,
    cache: TTSCache | str | None = None,
    record_mode: RecordMode | str | None = None,
) -> list[CachedVoice]:
    """Every voice in :data:`OFFLINE_VOICE_SPECS`, built (not checked against the system)."""
    return [
        voice_from_spec(s, cache=cache, record_mode=record_mode)  # type: ignore[misc]
        for s in OFFLINE_VOICE_SPECS
    ]
