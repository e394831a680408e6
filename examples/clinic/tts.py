"""Offline speech synthesis with espeak-ng, streamed as raw PCM.

The agent's voice (British English by default) is deliberately unlike the synthetic
caller's default voice (espeak-ng ``en-us``), so recordings and transcripts of the two
sides are easy to tell apart. ``tts.TTS`` is non-streaming here; the session wraps it in
``tts.StreamAdapter``, which synthesises sentence by sentence, and each sentence's audio is
pushed as soon as espeak-ng writes it, so the first audio leaves within milliseconds.

The TTS fault knobs act on a whole reply's audio (:func:`reply_faults`, applied by the
agent's ``tts_node``): cut its end, insert a silence in its middle, or glitch it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct

import numpy as np
from livekit.agents import APIConnectionError, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from .faults import FaultPlan

ESPEAK_RATE = 22050
_WAV_HEADER = 44
GLITCH_MS = 20
CLIP_GAIN = 8.0
LOUD_DBFS = -30.0
"""A glitch is placed where the speech is at least this loud, 30 ms either side too."""
SPEECH_DBFS = -45.0
"""Frames at least this loud count as speech (for glitches per second of speech)."""


def _frame_dbfs(pcm: np.ndarray, frame: int) -> np.ndarray:
    n = len(pcm) // frame
    if n == 0:
        return np.zeros(0)
    x = pcm[: n * frame].astype(np.float64).reshape(n, frame) / 32768.0
    return 10 * np.log10(np.mean(x * x, axis=1) + 1e-20)


def cut_end(pcm: np.ndarray, fraction: float) -> np.ndarray:
    """The first ``1 - fraction`` of the audio (``fraction`` 1: nothing)."""
    keep = round(len(pcm) * (1.0 - fraction))
    return pcm[: max(0, keep)].copy()


def insert_gap(pcm: np.ndarray, rate: int, ms: int) -> np.ndarray:
    """``ms`` of digital silence inserted at the middle sample."""
    mid = len(pcm) // 2
    return np.concatenate([pcm[:mid], np.zeros(round(rate * ms / 1000), pcm.dtype), pcm[mid:]])


def glitch(pcm: np.ndarray, rate: int, per_s: float, kind: str) -> tuple[np.ndarray, int]:
    """``per_s`` glitches of :data:`GLITCH_MS` per second of speech (frames of at least
    :data:`SPEECH_DBFS`), each where the speech is loud (:data:`LOUD_DBFS`, 30 ms either side
    too), spread evenly; ``zero`` silences those samples, ``clip`` amplifies them
    :data:`CLIP_GAIN` times and clips them. Returns the audio and how many were placed."""
    frame = max(1, rate // 100)
    db = _frame_dbfs(pcm, frame)
    speech_s = float((db >= SPEECH_DBFS).sum()) / 100.0
    wanted = round(per_s * speech_s)
    loud = db >= LOUD_DBFS
    candidates = [
        i for i in range(3, len(db) - 5) if loud[i - 3 : i + 5].all()
    ]  # the glitch (2 frames) and 30 ms either side
    if wanted <= 0 or not candidates:
        return pcm, 0
    wanted = min(wanted, len(candidates))
    picks = sorted({candidates[int((k + 0.5) * len(candidates) / wanted)] for k in range(wanted)})
    out = pcm.copy()
    width = round(rate * GLITCH_MS / 1000)
    for i in picks:
        a = i * frame
        seg = out[a : a + width].astype(np.float64)
        if kind == "clip":
            out[a : a + width] = np.clip(seg * CLIP_GAIN, -32768, 32767).astype(out.dtype)
        else:
            out[a : a + width] = 0
    return out, len(picks)


def reply_faults(pcm: np.ndarray, rate: int, plan: FaultPlan) -> tuple[np.ndarray, list[str]]:
    """One reply's audio with the TTS faults the plan draws for it (cut, then gap, then
    glitches), and a line per fault applied. Each knob draws once per reply, whatever the
    others drew."""
    f = plan.faults
    applied: list[str] = []
    cut = f.tts_cut_fraction > 0 and plan.hit("tts_cut_share")
    gap = f.tts_gap_ms > 0 and plan.hit("tts_gap_share")
    glitchy = f.tts_glitch_per_s > 0 and plan.hit("tts_glitch_share")
    if cut:
        pcm = cut_end(pcm, f.tts_cut_fraction)
        applied.append(f"cut the last {f.tts_cut_fraction:.0%} of the audio")
    if gap:
        pcm = insert_gap(pcm, rate, f.tts_gap_ms)
        applied.append(f"inserted {f.tts_gap_ms} ms of silence mid-reply")
    if glitchy:
        pcm, n = glitch(pcm, rate, f.tts_glitch_per_s, f.tts_glitch_kind)
        applied.append(f"{n} {f.tts_glitch_kind} glitches")
    return pcm, applied


def tts_faults_active(plan: FaultPlan) -> bool:
    f = plan.faults
    return bool(f.tts_cut_fraction > 0 or f.tts_gap_ms > 0 or f.tts_glitch_per_s > 0)


class EspeakTTS(tts.TTS):
    def __init__(self, *, voice: str = "en-gb", words_per_minute: int = 165) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=ESPEAK_RATE,
            num_channels=1,
        )
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise RuntimeError("espeak-ng is not installed; install the espeak-ng package")
        self._binary = binary
        self._voice = voice
        self._wpm = words_per_minute

    @property
    def model(self) -> str:
        return f"espeak-ng/{self._voice}"

    @property
    def provider(self) -> str:
        return "espeak-ng"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> EspeakStream:
        return EspeakStream(tts=self, input_text=text, conn_options=conn_options)


class EspeakStream(tts.ChunkedStream):
    _tts: EspeakTTS

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        engine = self._tts
        proc = await asyncio.create_subprocess_exec(
            engine._binary,
            "-v",
            engine._voice,
            "-s",
            str(engine._wpm),
            "-b",
            "1",  # UTF-8 input
            "--stdout",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(self._input_text.encode("utf-8"))
            proc.stdin.close()
            header = await proc.stdout.readexactly(_WAV_HEADER)
            rate = struct.unpack_from("<I", header, 24)[0]
            if header[:4] != b"RIFF" or rate != ESPEAK_RATE:
                raise APIConnectionError(f"unexpected espeak-ng output (rate {rate})")
            output_emitter.initialize(
                request_id=utils.shortuuid("espeak_"),
                sample_rate=ESPEAK_RATE,
                num_channels=1,
                mime_type="audio/pcm",
            )
            while chunk := await proc.stdout.read(4096):
                output_emitter.push(chunk)
            output_emitter.flush()
            if await proc.wait() != 0:
                err = (await proc.stderr.read()).decode(errors="replace") if proc.stderr else ""
                raise APIConnectionError(f"espeak-ng failed: {err.strip()}")
        except asyncio.IncompleteReadError as e:
            raise APIConnectionError("espeak-ng produced no audio") from e
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
