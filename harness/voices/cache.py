"""The content-addressed TTS cache: record once, replay forever.

Layout (see ``audio_fixtures/tts/README.md``)::

    <root>/ab/abcdef0123….wav    16-bit mono PCM WAV at the voice's own rate
    <root>/ab/abcdef0123….json   sidecar: provider, voice, model, settings, text, rate, …

The name is the sha256 of the canonical JSON of ``{format, provider, voice, model,
settings, text}``. Credentials and endpoints are never part of a key or a sidecar.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import wave
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.audio.clip import Clip
from harness.core.files import atomic_write
from harness.voices.base import (
    RecordMode,
    TTSCacheMiss,
    Voice,
    VoiceKey,
    VoiceUnavailable,
    normalize_text,
)

__all__ = [
    "FORMAT_VERSION",
    "CacheEntry",
    "CachedVoice",
    "RenderResult",
    "TTSCache",
    "cache_digest",
    "default_cache_dir",
    "prerender",
]

#: Bump when the stored audio format or key schema changes; every key changes with it.
FORMAT_VERSION = 1

_ENV_DIR = "HARNESS_TTS_CACHE"


def default_cache_dir() -> Path:
    """``$HARNESS_TTS_CACHE``, else the nearest ``audio_fixtures/tts`` at or above the cwd."""
    env = os.environ.get(_ENV_DIR)
    if env:
        return Path(env).expanduser()
    cwd = Path.cwd()
    for d in (cwd, *cwd.parents):
        if (d / "audio_fixtures").is_dir():
            return d / "audio_fixtures" / "tts"
    return cwd / "audio_fixtures" / "tts"


def canonical_key(key: VoiceKey, text: str) -> str:
    """The canonical JSON that is hashed: sorted keys, no spaces, UTF-8."""
    doc = {"format": FORMAT_VERSION, **key.as_dict(), "text": text}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_digest(key: VoiceKey, text: str) -> str:
    """The hex sha256 naming the cached render of ``text`` by the voice ``key``."""
    return hashlib.sha256(canonical_key(key, normalize_text(text)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """One cached render, as described by its sidecar."""

    digest: str
    key: VoiceKey
    text: str
    rate: int
    duration: float
    wav_path: Path
    engine_version: str | None = None

    @property
    def name(self) -> str:
        """The shard-relative name, e.g. ``ab/abcdef….wav``."""
        return f"{self.digest[:2]}/{self.digest}.wav"

    def differences(self, key: VoiceKey, text: str) -> list[str]:
        """Which fields differ from ``key``/``text``, most significant first."""
        out = [f for f in ("provider", "voice", "model") if getattr(self.key, f) != getattr(key, f)]
        mine, theirs = self.key.settings_dict, key.settings_dict
        out += [
            f"settings.{k}"
            for k in sorted(set(mine) | set(theirs))
            if mine.get(k, _MISSING) != theirs.get(k, _MISSING)
        ]
        if self.text != text:
            out.append("text")
        return out


_MISSING = object()


def _wav_bytes(clip: Clip) -> bytes:
    import io

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(clip.rate)
        w.writeframes(clip.to_int16().tobytes())
    return buf.getvalue()


class TTSCache:
    """A directory of cached renders. ``root=None`` resolves :func:`default_cache_dir` now."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"TTSCache({str(self.root)!r})"

    # -- addressing -------------------------------------------------------------------

    def digest(self, key: VoiceKey, text: str) -> str:
        return cache_digest(key, text)

    def wav_path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.wav"

    def sidecar_path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.json"

    # -- reading and writing ----------------------------------------------------------

    def get(self, key: VoiceKey, text: str) -> Clip | None:
        """The cached clip for ``text`` spoken by ``key``, or ``None``."""
        return self._load(self.digest(key, text))

    def __contains__(self, item: tuple[VoiceKey, str]) -> bool:
        key, text = item
        return self.wav_path(self.digest(key, text)).is_file()

    def _load(self, digest: str) -> Clip | None:
        path = self.wav_path(digest)
        try:
            head = path.read_bytes()[:64]
        except FileNotFoundError:
            return None
        if head.startswith(b"version https://git-lfs"):
            raise VoiceUnavailable(
                f"{path} is a Git LFS pointer, not audio: run `git lfs pull` to fetch the TTS cache"
            )
        if not (head.startswith(b"RIFF") and head[8:12] == b"WAVE"):
            raise VoiceUnavailable(
                f"{path} is not a WAV file; delete it and render again (`harness audio render`)"
            )
        return Clip.read_wav(path)

    def put(
        self,
        key: VoiceKey,
        text: str,
        clip: Clip,
        *,
        engine_version: str | None = None,
    ) -> CacheEntry:
        """Store ``clip`` as 16-bit mono WAV with its sidecar; both writes are atomic.

        The sidecar is written first, so a WAV that exists always has its description.
        """
        text = normalize_text(text)
        digest = self.digest(key, text)
        doc: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "digest": digest,
            **key.as_dict(),
            "text": text,
            "rate": clip.rate,
            "samples": len(clip.samples),
            "duration_s": round(clip.duration, 4),
            "engine_version": engine_version,
            "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
        sidecar = json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        atomic_write(self.sidecar_path(digest), sidecar.encode("utf-8"))
        atomic_write(self.wav_path(digest), _wav_bytes(clip))
        return CacheEntry(
            digest=digest,
            key=key,
            text=text,
            rate=clip.rate,
            duration=clip.duration,
            wav_path=self.wav_path(digest),
            engine_version=engine_version,
        )

    def entries(self) -> Iterator[CacheEntry]:
        """Every entry with a readable sidecar and its WAV, in name order."""
        if not self.root.is_dir():
            return
        for sidecar in sorted(self.root.glob("??/*.json")):
            try:
                doc = json.loads(sidecar.read_text("utf-8"))
                key = VoiceKey.make(
                    doc["provider"], doc["voice"], doc.get("model"), doc.get("settings")
                )
                entry = CacheEntry(
                    digest=sidecar.stem,
                    key=key,
                    text=doc["text"],
                    rate=int(doc["rate"]),
                    duration=float(doc.get("duration_s", 0.0)),
                    wav_path=sidecar.with_suffix(".wav"),
                    engine_version=doc.get("engine_version"),
                )
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if entry.wav_path.is_file():
                yield entry

    def closest(self, key: VoiceKey, text: str) -> CacheEntry | None:
        """The cached entry nearest to ``key``/``text``: same provider and voice first,
        then the most similar text."""
        text = normalize_text(text)
        best: tuple[float, CacheEntry] | None = None
        for entry in self.entries():
            score = 0.0
            for diff in entry.differences(key, text):
                score += {"provider": 1000.0, "voice": 100.0, "model": 10.0}.get(diff, 0.0)
                if diff.startswith("settings."):
                    score += 1.0
            ratio = difflib.SequenceMatcher(None, entry.text.lower(), text.lower()).ratio()
            score += 5.0 * (1.0 - ratio)
            if best is None or score < best[0]:
                best = (score, entry)
        return best[1] if best else None

    # -- the policy -------------------------------------------------------------------

    def fetch(self, voice: Any, text: str, mode: RecordMode | str | None = None) -> Clip:
        """``text`` spoken by ``voice`` under record ``mode`` (see :class:`RecordMode`).

        ``voice`` needs ``key`` and ``render(text)``; ``unavailable_reason()`` and
        ``engine_version()`` are used when present. A fresh render is returned as read
        back from the cache, so a miss and a later hit give identical samples.
        """
        mode = RecordMode.resolve(mode)
        text = normalize_text(text)
        key: VoiceKey = voice.key
        digest = self.digest(key, text)
        if mode is not RecordMode.ALL:
            clip = self._load(digest)
            if clip is not None:
                return clip
            if mode is RecordMode.NONE:
                raise self._miss(
                    voice,
                    text,
                    digest,
                    "record mode is 'none', so nothing is rendered",
                    "to fill the cache, run `harness audio render` or set "
                    "HARNESS_TTS_RECORD_MODE=once, then commit the new files",
                )
        reason_fn = getattr(voice, "unavailable_reason", None)
        reason = reason_fn() if reason_fn else None
        if reason:
            raise self._miss(voice, text, digest, reason, getattr(voice, "render_hint", None))
        clip = voice.render(text)
        if not isinstance(clip, Clip):
            raise TypeError(f"{type(voice).__name__}.render() returned {type(clip).__name__}")
        version_fn = getattr(voice, "engine_version", None)
        self.put(key, text, clip, engine_version=version_fn() if version_fn else None)
        stored = self._load(digest)
        if stored is None:
            raise VoiceUnavailable(f"{self.wav_path(digest)} vanished right after it was written")
        return stored

    def _miss(
        self, voice: Any, text: str, digest: str, reason: str, hint: str | None
    ) -> TTSCacheMiss:
        key: VoiceKey = voice.key
        closest = self.closest(key, text)
        lines = [
            f"no cached audio for the line {text!r} spoken by voice {key}: {reason}.",
        ]
        if hint:
            lines.append(f"How to render it: {hint}.")
        lines.append(f"Cache: {self.root} (looked for {digest[:2]}/{digest}.wav)")
        if closest is None:
            lines.append("Closest cached entry: none (the cache is empty)")
        else:
            diffs = ", ".join(closest.differences(key, text)) or "nothing"
            lines.append(
                f"Closest cached entry: {closest.name}: {closest.text!r} by {closest.key}"
                f" (differs in: {diffs})"
            )
        return TTSCacheMiss("\n".join(lines), text=text, voice=key, digest=digest, closest=closest)


@dataclass(frozen=True)
class RenderResult:
    voice: VoiceKey
    text: str
    digest: str
    clip: Clip


def prerender(
    items: Iterable[tuple[Voice, str]],
    *,
    record_mode: RecordMode | str = RecordMode.ONCE,
) -> list[RenderResult]:
    """Render every ``(voice, text)`` pair through its cache (what ``harness audio render``
    runs). Voices without a cache are simply synthesised."""
    out: list[RenderResult] = []
    for voice, text in items:
        fetch_cache = getattr(voice, "cache", None)
        if fetch_cache is not None and hasattr(voice, "render"):
            clip = fetch_cache.fetch(voice, text, record_mode)
        else:
            clip = voice.synthesize(text)
        norm = normalize_text(text)
        out.append(RenderResult(voice.key, norm, cache_digest(voice.key, norm), clip))
    return out


class CachedVoice:
    """Helper base class: subclasses implement :meth:`render`, and get a cached ``synthesize``.

    ``cache=None`` means the default cache (``$HARNESS_TTS_CACHE`` or ``audio_fixtures/tts``),
    resolved on each call; ``record_mode=None`` means ``$HARNESS_TTS_RECORD_MODE`` or ``once``.
    """

    #: Local, deterministic engines may render on a miss wherever they run.
    renders_locally: bool = True

    def __init__(
        self,
        *,
        cache: TTSCache | str | os.PathLike[str] | None = None,
        record_mode: RecordMode | str | None = None,
    ) -> None:
        if cache is not None and not hasattr(cache, "fetch"):
            cache = TTSCache(cache)
        self._cache = cache
        self._record_mode = None if record_mode is None else RecordMode.resolve(record_mode)

    @property
    def key(self) -> VoiceKey:  # pragma: no cover - subclasses override
        raise NotImplementedError

    @property
    def cache(self) -> TTSCache:
        return self._cache if self._cache is not None else TTSCache()

    @property
    def record_mode(self) -> RecordMode:
        return RecordMode.resolve(self._record_mode)

    def render(self, text: str) -> Clip:
        """Run the engine for ``text`` (already normalised), bypassing the cache."""
        raise NotImplementedError

    def unavailable_reason(self) -> str | None:
        """Why this voice cannot render right now, or ``None`` if it can."""
        return None

    def engine_version(self) -> str | None:
        """The engine's version, recorded in the cache sidecar for diagnosis."""
        return None

    def synthesize(self, text: str) -> Clip:
        return self.cache.fetch(self, text, self.record_mode)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key}>"
