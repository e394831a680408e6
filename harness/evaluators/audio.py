"""Agent audio health from the call's stereo recording (left: caller, right: agent)."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.core.errors import ScenarioError
from harness.evaluators.base import (
    UNIT_BOOL,
    UNIT_COUNT,
    UNIT_MS,
    UNIT_RATIO,
    BaseEvaluator,
    MetricInfo,
    Score,
)
from harness.evaluators.text import words
from harness.trace import conventions as c
from harness.trace.instance import number

if TYPE_CHECKING:
    from harness.trace.instance import Instance

FRAME_MS = 10


class RecordingError(ScenarioError):
    """A call recording the audio evaluator cannot use: names the file, what is wrong and,
    in :attr:`fix`, what to do about it."""

    def __init__(self, message: str, *, file: str | Path, fix: str | None = None) -> None:
        self.fix = fix
        super().__init__(message, file=file)


_RECORDING_FIX = "copy the recording again from where the call was made, or re-run the call"


def _data_start(path: Path) -> int | None:
    """The byte offset of a RIFF/WAVE file's ``data`` chunk payload, or None."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            size = int.from_bytes(chunk[4:], "little")
            pos += 8
            if chunk[:4] == b"data":
                return pos
            pos += size + (size & 1)
            f.seek(pos)


def check_recording(path: str | Path) -> None:
    """Raise :class:`RecordingError` unless ``path`` is a whole 16-bit stereo WAV (left:
    caller, right: agent), as the synthetic caller writes it. Reads the header and the
    file's size, not the audio."""
    p = Path(path)
    if not p.exists():
        raise RecordingError(
            "missing: the call's side file names this recording but there is no such file",
            file=p,
            fix=_RECORDING_FIX,
        )
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
    except (wave.Error, EOFError, struct.error) as e:
        raise RecordingError(
            f"not a readable WAV file ({str(e) or 'the header is cut short'})",
            file=p,
            fix=_RECORDING_FIX,
        ) from None
    except OSError as e:
        raise RecordingError(f"cannot read: {e.strerror or e}", file=p) from None
    if channels != 2 or width != 2 or rate <= 0:
        raise RecordingError(
            f"{channels} channel(s), {8 * width}-bit, {rate} Hz: the audio evaluator reads a "
            "16-bit stereo WAV (left: caller, right: agent) as the synthetic caller writes it",
            file=p,
            fix=_RECORDING_FIX,
        )
    try:
        start = _data_start(p)
        size = p.stat().st_size
    except OSError as e:
        raise RecordingError(f"cannot read: {e.strerror or e}", file=p) from None
    if start is not None:
        held = max(0, size - start) // 4
        if held < frames:
            raise RecordingError(
                f"truncated: the header declares {frames / rate:.1f} s of audio, the file "
                f"holds {held / rate:.1f} s ({size} bytes)",
                file=p,
                fix=_RECORDING_FIX,
            )


def read_stereo(path: str | Path) -> tuple[int, np.ndarray] | None:
    """``(sample_rate, samples)`` of a 16-bit stereo WAV, samples an ``(n, 2)`` int16 array
    (column 0 left, column 1 right); None when the file is missing, unreadable, truncated,
    not 16-bit or not two channels (:func:`check_recording` says which)."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 2 or w.getsampwidth() != 2 or w.getframerate() <= 0:
                return None
            rate = w.getframerate()
            frames = w.getnframes()
            data = w.readframes(frames)
    except (OSError, EOFError, wave.Error, struct.error):
        return None
    if len(data) < frames * 4:
        return None  # truncated: scores from part of the audio would describe another call
    pcm = np.frombuffer(data, dtype="<i2")
    return rate, pcm[: len(pcm) - len(pcm) % 2].reshape(-1, 2)


def active_frames(pcm: np.ndarray, frame: int, threshold_dbfs: float) -> np.ndarray:
    """One bool per whole ``frame`` of samples and per channel (shape ``(frames, channels)``,
    or ``(frames,)`` for a 1-D input): RMS at or above ``threshold_dbfs``."""
    x = pcm if pcm.ndim == 2 else pcm[:, None]
    n = len(x) // frame
    if n == 0:
        out = np.zeros((0, x.shape[1]), dtype=bool)
    else:
        f = x[: n * frame].astype(np.float32)
        np.multiply(f, f, out=f)
        energy = np.add.reduceat(f, np.arange(0, n * frame, frame), axis=0)  # per frame
        out = energy >= frame * (10 ** (threshold_dbfs / 20) * 32768.0) ** 2
    return out if pcm.ndim == 2 else out[:, 0]


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the runs of True in ``mask``."""
    if mask.size == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = edges[0::2], edges[1::2]
    return starts, ends - starts


class AudioHealth(BaseEvaluator):
    """Agent audio health, from the stereo recording (left channel: caller, right: agent).

    Audio is cut into 10 ms frames; a frame is *active* when its RMS is at least
    ``activity_dbfs`` (−45 dBFS, the threshold the caller uses to detect agent speech).

    - ``dead_air_longest`` (ms, per call): the longest run of frames where neither channel
      is active, between the first and the last active frame of the call (silence before
      anyone speaks and after the last word is not dead air).
    - ``dead_air_count`` (count, per call): such runs of at least ``dead_air_ms`` (3000 ms).
    - ``clipping_ratio`` (ratio, per call): of the agent's samples inside active frames, the
      share that lie in a run of at least ``clip_run`` (3) consecutive samples whose
      magnitude is at least ``clip_level`` (0.999) of full scale. Absent when the agent
      channel has no active frame.
    - ``truncated_speech`` (bool, per turn): the agent's audio stopped before its transcript
      ended. A turn is checked when it has agent text (:attr:`Turn.agent_said`) of at least
      3 words, was not interrupted (``lk.interrupted`` not true), and the recording can be
      placed in time (the caller side-file has ``started_at``). Its window runs from the
      turn's start (``caller_start``; the recording start for the greeting) to the next
      turn's start (or the recording's end). The speech is truncated when the agent
      channel's active time in the window is less than ``words × min_ms_per_word``
      (150 ms a word, i.e. 400 words a minute, well above any TTS voice's rate): a
      transcript that the audio cannot have carried.
    - ``truncated_turns`` (count, per call): checked turns whose speech was truncated.

    No recording, or a recording that is not 16-bit stereo WAV, gives no Score
    (:func:`check_recording` says what is wrong with one; ``harness evaluate`` reports it).
    Dead air needs at least one active frame on either channel.
    """

    name = "audio"
    reads_recording = True
    """Its Scores are left out, and the recording reported, when the call's recording
    cannot be used (:func:`harness.gates.scoring.score_call`)."""
    metrics = (
        MetricInfo("dead_air_longest", UNIT_MS, "longest silence on both channels within the call"),
        MetricInfo("dead_air_count", UNIT_COUNT, "silences on both channels of at least 3 s"),
        MetricInfo("clipping_ratio", UNIT_RATIO, "share of agent speech samples that clip"),
        MetricInfo("truncated_speech", UNIT_BOOL, "agent audio stopped before its transcript"),
        MetricInfo("truncated_turns", UNIT_COUNT, "turns whose agent speech was truncated"),
    )

    def __init__(
        self,
        *,
        activity_dbfs: float = -45.0,
        dead_air_ms: float = 3000.0,
        clip_level: float = 0.999,
        clip_run: int = 3,
        min_ms_per_word: float = 150.0,
    ) -> None:
        if not 0 < clip_level <= 1:
            raise ValueError(f"clip_level={clip_level!r}: a fraction of full scale in (0, 1]")
        if clip_run < 1:
            raise ValueError(f"clip_run={clip_run!r}: at least 1 sample")
        self.activity_dbfs = activity_dbfs
        self.dead_air_ms = dead_air_ms
        self.clip_level = clip_level
        self.clip_run = clip_run
        self.min_ms_per_word = min_ms_per_word

    def evaluate(self, instance: Instance) -> list[Score]:
        path = instance.recording_path
        if path is None:
            return []
        audio = read_stereo(path)
        if audio is None:
            return []
        rate, pcm = audio
        frame = max(1, rate * FRAME_MS // 1000)
        on = active_frames(pcm, frame, self.activity_dbfs)
        caller_on, agent_on = on[:, 0], on[:, 1]
        out: list[Score] = []
        out.extend(self._dead_air(caller_on | agent_on))
        out.extend(self._clipping(pcm[:, 1], agent_on, frame))
        out.extend(self._truncation(instance, agent_on, rate, frame, len(pcm)))
        return out

    def _dead_air(self, any_on: np.ndarray) -> list[Score]:
        on = np.flatnonzero(any_on)
        if on.size == 0:
            return []
        inner = ~any_on[on[0] : on[-1] + 1]
        starts, lengths = _runs(inner)
        longest = int(lengths.max()) * FRAME_MS if lengths.size else 0
        long_runs = [
            (int(s), int(n))
            for s, n in zip(starts, lengths, strict=True)
            if n * FRAME_MS >= self.dead_air_ms
        ]
        detail = ", ".join(
            f"{(on[0] + s) * FRAME_MS / 1000:.1f}s+{n * FRAME_MS / 1000:.1f}s" for s, n in long_runs
        )
        return [
            Score("dead_air_longest", float(longest), UNIT_MS, layer=c.LAYER_CONVERSATIONAL),
            Score(
                "dead_air_count",
                float(len(long_runs)),
                UNIT_COUNT,
                layer=c.LAYER_CONVERSATIONAL,
                detail=detail,
            ),
        ]

    def _clipping(self, right: np.ndarray, agent_on: np.ndarray, frame: int) -> list[Score]:
        if not agent_on.any():
            return []
        total = int(agent_on.sum()) * frame
        level = math.ceil(self.clip_level * 32768.0)
        x = right[: agent_on.size * frame]
        hits = np.flatnonzero((x >= level) | (x <= -level))
        bad = 0
        if hits.size:
            # runs of consecutive clipped samples, kept when long enough and inside speech
            breaks = np.flatnonzero(np.diff(hits) != 1) + 1
            for run in np.split(hits, breaks):
                if run.size >= self.clip_run:
                    bad += int(agent_on[run // frame].sum())
        return [
            Score(
                "clipping_ratio",
                bad / total,
                UNIT_RATIO,
                layer=c.LAYER_CONVERSATIONAL,
                detail=f"{bad} of {total} agent speech samples clipped",
            )
        ]

    def _truncation(
        self, instance: Instance, agent_on: np.ndarray, rate: int, frame: int, length: int
    ) -> list[Score]:
        started = number((instance.caller or {}).get("started_at"))
        if started is None:
            return []
        turns = instance.turns
        starts: list[float | None] = [
            t.caller_start if t.caller_start is not None else (started if k == 0 else None)
            for k, t in enumerate(turns)
        ]
        total_s = length / rate
        out: list[Score] = []
        for k, t in enumerate(turns):
            begin = starts[k]
            n_words = len(words(t.agent_said))
            if begin is None or n_words < 3 or t.interrupted is True:
                continue
            end = next((s for s in starts[k + 1 :] if s is not None), started + total_s)
            lo = max(0, int((begin - started) * rate) // frame)
            hi = min(agent_on.size, int((end - started) * rate) // frame)
            voiced_ms = float(agent_on[lo:hi].sum()) * FRAME_MS if hi > lo else 0.0
            needed = n_words * self.min_ms_per_word
            truncated = voiced_ms < needed
            out.append(
                Score(
                    "truncated_speech",
                    1.0 if truncated else 0.0,
                    UNIT_BOOL,
                    layer=c.LAYER_CONVERSATIONAL,
                    turn=t.index,
                    detail=f"{voiced_ms:.0f} ms of agent audio for {n_words} words "
                    f"(needs at least {needed:.0f} ms)",
                )
            )
        if out:
            n = sum(1 for s in out if s.value)
            out.append(Score("truncated_turns", float(n), UNIT_COUNT, layer=c.LAYER_CONVERSATIONAL))
        return out
