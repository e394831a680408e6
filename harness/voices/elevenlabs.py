"""ElevenLabs voices through the official SDK, rendered once and replayed from the cache.

The API key is read from ``ELEVENLABS_API_KEY`` at render time and nowhere else; it is
never part of a cache key, a sidecar or an error message. The endpoint is the SDK's
default unless ``base_url=`` or ``ELEVENLABS_BASE_URL`` names another (tests point it at
a local stand-in).
"""

from __future__ import annotations

import io
import os
import wave
from typing import Any

from harness.audio.clip import Clip
from harness.voices.base import RecordMode, VoiceError, VoiceKey, VoiceUnavailable
from harness.voices.cache import CachedVoice, TTSCache

__all__ = ["DEFAULT_MODEL", "ElevenLabsVoice"]

DEFAULT_MODEL = "eleven_turbo_v2_5"
API_KEY_ENV = "ELEVENLABS_API_KEY"
BASE_URL_ENV = "ELEVENLABS_BASE_URL"

_FORMATS = (
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_44100",
    "pcm_48000",
    "wav_16000",
    "wav_22050",
    "wav_24000",
    "wav_44100",
    "mp3_22050_32",
    "mp3_44100_64",
    "mp3_44100_128",
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unit(name: str, value: float | None, lo: float, hi: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VoiceError(f"{name}={value!r} must be a number {lo}-{hi}")
    if not lo <= float(value) <= hi:
        raise VoiceError(f"{name}={value!r} must be between {lo} and {hi}")
    return float(value)


class ElevenLabsVoice(CachedVoice):
    """An ElevenLabs voice: ``voice_id``, ``model`` and voice settings.

    Unset settings (``None``) leave the voice's stored settings in force and are left out
    of the cache key. ``client`` may be a ready ``elevenlabs.client.ElevenLabs``.
    """

    renders_locally = False
    render_hint = (
        f"export {API_KEY_ENV} in your shell or CI secret store (never in a file) and run "
        "`harness audio render`, then commit the new files under audio_fixtures/tts/"
    )

    def __init__(
        self,
        voice_id: str,
        *,
        model: str = DEFAULT_MODEL,
        stability: float | None = None,
        similarity_boost: float | None = None,
        style: float | None = None,
        speed: float | None = None,
        use_speaker_boost: bool | None = None,
        seed: int | None = None,
        output_format: str = "pcm_16000",
        base_url: str | None = None,
        timeout: float = 60.0,
        client: Any = None,
        cache: TTSCache | str | None = None,
        record_mode: RecordMode | str | None = None,
    ) -> None:
        super().__init__(cache=cache, record_mode=record_mode)
        if not isinstance(voice_id, str) or not voice_id.strip():
            raise VoiceError(f"voice_id={voice_id!r} must be an ElevenLabs voice id")
        if not isinstance(model, str) or not model.strip():
            raise VoiceError(f"model={model!r} must be a model id like {DEFAULT_MODEL!r}")
        if output_format not in _FORMATS:
            raise VoiceError(
                f"output_format={output_format!r} must be one of: {', '.join(_FORMATS)}"
            )
        if use_speaker_boost is not None and not isinstance(use_speaker_boost, bool):
            raise VoiceError(f"use_speaker_boost={use_speaker_boost!r} must be true or false")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise VoiceError(f"seed={seed!r} must be a whole number")
        self.voice_id = voice_id.strip()
        self.model = model.strip()
        self.settings: dict[str, Any] = {
            "stability": _unit("stability", stability, 0.0, 1.0),
            "similarity_boost": _unit("similarity_boost", similarity_boost, 0.0, 1.0),
            "style": _unit("style", style, 0.0, 1.0),
            "speed": _unit("speed", speed, 0.7, 1.2),
            "use_speaker_boost": use_speaker_boost,
        }
        self.seed = seed
        self.output_format = output_format
        self.base_url = base_url
        self.timeout = timeout
        self._client = client

    @property
    def key(self) -> VoiceKey:
        return VoiceKey.make(
            "elevenlabs",
            self.voice_id,
            self.model,
            {**self.settings, "seed": self.seed, "output_format": self.output_format},
        )

    def engine_version(self) -> str | None:
        try:
            from importlib.metadata import version

            return f"elevenlabs-python {version('elevenlabs')}"
        except Exception:
            return None

    def unavailable_reason(self) -> str | None:
        if self._client is not None:
            return None
        try:
            import elevenlabs.client  # noqa: F401
        except ImportError:
            return (
                "the elevenlabs package is not installed "
                "(pip install 'livekit-call-harness[elevenlabs]')"
            )
        if not os.environ.get(API_KEY_ENV):
            where = " in this CI run (CI=true)" if _in_ci() else ""
            return f"{API_KEY_ENV} is not set{where}, so ElevenLabs cannot be called"
        return None

    def _make_client(self) -> Any:
        if self._client is not None:
            return self._client
        reason = self.unavailable_reason()
        if reason:
            raise VoiceUnavailable(reason)
        from elevenlabs.client import ElevenLabs

        kwargs: dict[str, Any] = {"api_key": os.environ[API_KEY_ENV], "timeout": self.timeout}
        base_url = self.base_url or os.environ.get(BASE_URL_ENV)
        if base_url:
            kwargs["base_url"] = base_url.rstrip("/")
        return ElevenLabs(**kwargs)

    def render(self, text: str) -> Clip:
        client = self._make_client()
        kwargs: dict[str, Any] = {
            "text": text,
            "model_id": self.model,
            "output_format": self.output_format,
        }
        chosen = {k: v for k, v in self.settings.items() if v is not None}
        if chosen:
            from elevenlabs import VoiceSettings

            kwargs["voice_settings"] = VoiceSettings(**chosen)
        if self.seed is not None:
            kwargs["seed"] = self.seed
        try:
            audio = b"".join(client.text_to_speech.convert(self.voice_id, **kwargs))
        except Exception as exc:
            raise self._explain(exc) from None
        return self._decode(audio)

    def _explain(self, exc: Exception) -> VoiceUnavailable:
        secret = os.environ.get(API_KEY_ENV) or "\0"
        status = getattr(exc, "status_code", None)
        if status is not None:
            body = str(getattr(exc, "body", ""))[:300].replace(secret, "***")
            what = {
                401: "rejected the API key",
                404: f"has no voice {self.voice_id!r} (or model {self.model!r})",
                429: "is rate-limiting or out of quota",
            }.get(status, "refused the request")
            return VoiceUnavailable(f"ElevenLabs {what} (HTTP {status}): {body}")
        detail = str(exc).replace(secret, "***")[:300]
        return VoiceUnavailable(
            f"could not reach ElevenLabs for voice {self.voice_id!r}: "
            f"{type(exc).__name__}: {detail}"
        )

    def _decode(self, audio: bytes) -> Clip:
        fmt = self.output_format
        if not audio:
            raise VoiceUnavailable(f"ElevenLabs returned no audio for voice {self.voice_id!r}")
        if fmt.startswith("pcm_"):
            if len(audio) % 2:
                audio = audio[:-1]
            return Clip.from_int16(audio, int(fmt.split("_")[1]))
        if fmt.startswith("wav_"):
            with wave.open(io.BytesIO(audio), "rb") as w:
                data, rate, channels = (
                    w.readframes(w.getnframes()),
                    w.getframerate(),
                    w.getnchannels(),
                )
            clip = Clip.from_int16(data, rate)
            if channels > 1:
                import numpy as np

                mono = clip.samples.reshape(-1, channels).mean(axis=1)
                clip = Clip(mono.astype(np.float32), rate)
            return clip
        from pydub import AudioSegment

        try:
            seg = AudioSegment.from_file(io.BytesIO(audio), format="mp3")
        except Exception as exc:
            raise VoiceUnavailable(
                f"could not decode ElevenLabs mp3 (is ffmpeg installed? `apt-get install "
                f"ffmpeg`): {exc}"
            ) from None
        seg = seg.set_channels(1).set_sample_width(2)
        return Clip.from_int16(seg.raw_data, seg.frame_rate)
