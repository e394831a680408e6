"""The synthetic caller's voices: offline engines, ElevenLabs (cached), recorded turns.

>>> from harness.voices import default_voice, voice_from_spec
>>> clip = default_voice().synthesize("I'd like to book a cleaning.")
>>> voice_from_spec("espeak:en-gb-scotland@150").key.voice
'en-gb-scotland'
"""

from harness.voices.base import (
    RecordMode,
    TTSCacheMiss,
    Voice,
    VoiceError,
    VoiceKey,
    VoiceUnavailable,
)
from harness.voices.cache import (
    FORMAT_VERSION,
    CachedVoice,
    CacheEntry,
    RenderResult,
    TTSCache,
    cache_digest,
    default_cache_dir,
    prerender,
)
from harness.voices.elevenlabs import ElevenLabsVoice
from harness.voices.offline import (
    OFFLINE_VOICE_SPECS,
    EspeakVoice,
    FestivalVoice,
    FliteVoice,
    default_voice,
)
from harness.voices.recorded import RecordedVoice
from harness.voices.spec import (
    ENGINES,
    ElevenLabsSettings,
    ElevenLabsSpec,
    EspeakSpec,
    FestivalSpec,
    FliteSpec,
    RecordedSpec,
    VoiceSpec,
    offline_voices,
    parse_voice_spec,
    voice_from_spec,
)

__all__ = [
    "ENGINES",
    "FORMAT_VERSION",
    "OFFLINE_VOICE_SPECS",
    "CacheEntry",
    "CachedVoice",
    "ElevenLabsSettings",
    "ElevenLabsSpec",
    "ElevenLabsVoice",
    "EspeakSpec",
    "EspeakVoice",
    "FestivalSpec",
    "FestivalVoice",
    "FliteSpec",
    "FliteVoice",
    "RecordMode",
    "RecordedSpec",
    "RecordedVoice",
    "RenderResult",
    "TTSCache",
    "TTSCacheMiss",
    "Voice",
    "VoiceError",
    "VoiceKey",
    "VoiceSpec",
    "VoiceUnavailable",
    "cache_digest",
    "default_cache_dir",
    "default_voice",
    "offline_voices",
    "parse_voice_spec",
    "prerender",
    "voice_from_spec",
]
