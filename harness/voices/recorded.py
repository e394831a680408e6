"""Recorded caller turns, for incident replays: a WAV file per turn, no cache.

Turns are given either in order (a list: the n-th ``synthesize`` call plays the n-th
file, whatever the text) or keyed by the line they say (a mapping: ``synthesize(text)``
plays the file recorded for that text).
"""

from __future__ import annotations

import difflib
import hashlib
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.audio.clip import Clip
from harness.core.errors import ScenarioError
from harness.voices.base import VoiceError, VoiceKey, normalize_text

__all__ = ["RecordedVoice", "load_audio"]

PathLike = str | os.PathLike[str]


def load_audio(path: Path, channel: int | None = None) -> Clip:
    """Read a recorded turn: 16-bit WAV directly, anything else ffmpeg can read via pydub."""
    if not path.is_file():
        raise ScenarioError("recorded turn not found", file=path)
    try:
        return Clip.read_wav(path, channel=channel)
    except ScenarioError as exc:
        if "channel" in exc.reason:
            raise
    except Exception:
        pass
    try:
        from pydub import AudioSegment

        seg = AudioSegment.from_file(io.BytesIO(path.read_bytes()))
    except Exception as exc:
        raise ScenarioError(f"cannot read recorded turn: {exc}", file=path) from None
    if seg.channels > 1:
        if channel is None:
            raise ScenarioError(
                f"{seg.channels}-channel file; set channel: 0..{seg.channels - 1}", file=path
            )
        seg = seg.split_to_mono()[channel]
    seg = seg.set_sample_width(2)
    return Clip.from_int16(seg.raw_data, seg.frame_rate)


class RecordedVoice:
    """Replays recorded turns. ``turns`` is a list of paths or a mapping of text to path;
    relative paths are resolved against ``base_dir`` (the scenario's directory)."""

    def __init__(
        self,
        turns: Sequence[PathLike] | Mapping[str, PathLike],
        *,
        base_dir: PathLike | None = None,
        name: str | None = None,
        channel: int | None = None,
    ) -> None:
        if isinstance(turns, str | bytes | os.PathLike):
            raise VoiceError(f"turns={turns!r} must be a list of paths or a mapping text -> path")
        base = Path(base_dir) if base_dir is not None else Path.cwd()

        def resolve(p: PathLike) -> Path:
            path = Path(p)
            return path if path.is_absolute() else base / path

        self._by_text: dict[str, Path] | None
        if isinstance(turns, Mapping):
            self._by_text = {normalize_text(t): resolve(p) for t, p in turns.items()}
            self.paths = list(self._by_text.values())
        else:
            self._by_text = None
            self.paths = [resolve(p) for p in turns]
        if not self.paths:
            raise VoiceError("turns is empty: a recorded voice needs at least one turn")
        self.channel = channel
        self._name = name
        self._next = 0
        self._clips: dict[Path, Clip] = {}

    @property
    def key(self) -> VoiceKey:
        if self._name:
            ident = self._name
        else:
            joined = "\n".join(p.name for p in self.paths).encode()
            ident = "turns-" + hashlib.sha256(joined).hexdigest()[:12]
        settings = {"channel": self.channel}
        return VoiceKey.make("recorded", ident, None, settings)

    def __repr__(self) -> str:
        return f"<RecordedVoice {self.key} turns={len(self.paths)}>"

    def _load(self, path: Path) -> Clip:
        if path not in self._clips:
            self._clips[path] = load_audio(path, self.channel)
        return self._clips[path]

    def turn(self, index: int) -> Clip:
        """The ``index``-th recorded turn (0-based)."""
        if not 0 <= index < len(self.paths):
            raise VoiceError(f"recorded voice has {len(self.paths)} turns; no turn {index}")
        return self._load(self.paths[index])

    def reset(self) -> None:
        """Start again from the first turn (ordered turns only)."""
        self._next = 0

    def synthesize(self, text: str) -> Clip:
        line = normalize_text(text)
        if self._by_text is not None:
            path = self._by_text.get(line)
            if path is None:
                near = difflib.get_close_matches(line, list(self._by_text), n=1, cutoff=0.0)
                hint = f"; closest recorded line: {near[0]!r}" if near else ""
                raise VoiceError(f"no recorded turn for the line {line!r}{hint}")
            return self._load(path)
        if self._next >= len(self.paths):
            raise VoiceError(
                f"recorded voice has {len(self.paths)} turns; asked for turn "
                f"{self._next + 1} ({line!r})"
            )
        clip = self._load(self.paths[self._next])
        self._next += 1
        return clip
