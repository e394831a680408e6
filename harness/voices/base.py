"""The ``Voice`` extension point, its identity key, its errors and an optional base class.

A voice turns a caller's line into audio. Anything with a ``key`` and a
``synthesize(text) -> Clip`` method is a voice; :class:`harness.voices.cache.CachedVoice`
is a helper base class for voices whose renders should go through the content-addressed
TTS cache.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from harness.audio.clip import Clip
from harness.core.errors import HarnessError, InfrastructureError

__all__ = [
    "RecordMode",
    "TTSCacheMiss",
    "Voice",
    "VoiceError",
    "VoiceKey",
    "VoiceUnavailable",
    "normalize_text",
]


class VoiceError(HarnessError):
    """A voice was asked for something it cannot do (empty text, unknown recorded turn)."""


class VoiceUnavailable(InfrastructureError):
    """The engine behind a voice cannot run here: binary missing, no API key, bad response."""


class TTSCacheMiss(InfrastructureError):
    """A line is not in the TTS cache and may not be rendered here.

    Carries ``text``, ``voice`` (the :class:`VoiceKey`), ``digest`` and ``closest`` (the
    nearest cached entry or ``None``) so a caller can add turn context with
    :meth:`for_turn`.
    """

    def __init__(
        self,
        message: str,
        *,
        text: str,
        voice: VoiceKey,
        digest: str,
        closest: Any = None,
        turn: int | None = None,
    ) -> None:
        self.text = text
        self.voice = voice
        self.digest = digest
        self.closest = closest
        self.turn = turn
        self.reason = message
        prefix = f"turn {turn}: " if turn is not None else ""
        super().__init__(prefix + message)

    def for_turn(self, turn: int) -> TTSCacheMiss:
        """The same miss, with the scenario's turn index in front of the message."""
        return TTSCacheMiss(
            self.reason,
            text=self.text,
            voice=self.voice,
            digest=self.digest,
            closest=self.closest,
            turn=turn,
        )


class RecordMode(StrEnum):
    """How the TTS cache treats a line, after vcrpy's ``RecordMode``.

    ``once``: render on a miss, then reuse the stored audio forever (the default).
    ``none``: never render; a miss is an error (use it to prove the cache is complete).
    ``all``: render every line again and overwrite the stored audio.
    """

    ONCE = "once"
    NONE = "none"
    ALL = "all"

    @classmethod
    def resolve(cls, value: RecordMode | str | None = None) -> RecordMode:
        """``value``, else ``$HARNESS_TTS_RECORD_MODE``, else ``once``."""
        if value is None:
            value = os.environ.get("HARNESS_TTS_RECORD_MODE") or cls.ONCE
        if isinstance(value, RecordMode):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise VoiceError(f"record_mode={value!r} is not one of: {allowed}") from None


def normalize_text(text: str) -> str:
    """The form of a line that is keyed and spoken: NFC, outer whitespace stripped."""
    if not isinstance(text, str):
        raise VoiceError(f"text must be a str, got {type(text).__name__}")
    out = unicodedata.normalize("NFC", text).strip()
    if not out:
        raise VoiceError("text must contain something to say, got an empty line")
    return out


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        return {k: _thaw(v) for k, v in value}
    return value


@dataclass(frozen=True)
class VoiceKey:
    """The stable identity of a voice: what, besides the text, decides the audio.

    Never holds credentials or endpoints. ``settings`` is stored sorted and frozen so keys
    compare and hash by value; :meth:`as_dict` gives the plain form.
    """

    provider: str
    voice: str
    model: str | None = None
    settings: tuple[tuple[str, Any], ...] = field(default=())

    @classmethod
    def make(
        cls,
        provider: str,
        voice: str,
        model: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> VoiceKey:
        """Build a key, dropping settings whose value is ``None``."""
        kept = {k: v for k, v in (settings or {}).items() if v is not None}
        return cls(provider, voice, model, _freeze(kept))

    @property
    def settings_dict(self) -> dict[str, Any]:
        return _thaw(self.settings) if self.settings else {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "voice": self.voice,
            "model": self.model,
            "settings": self.settings_dict,
        }

    def __str__(self) -> str:
        out = f"{self.provider}:{self.voice}"
        if self.model:
            out += f" model={self.model}"
        if self.settings:
            out += " (" + ", ".join(f"{k}={v!r}" for k, v in self.settings_dict.items()) + ")"
        return out


@runtime_checkable
class Voice(Protocol):
    """A synthetic caller's voice."""

    @property
    def key(self) -> VoiceKey:
        """What, besides the text, decides the audio (provider, voice, model, settings)."""
        ...

    def synthesize(self, text: str) -> Clip:
        """Speak ``text``: mono float32 audio at the voice's own rate."""
        ...
