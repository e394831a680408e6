"""Offline speech recognition: pocketsphinx with the clinic's domain language model.

:class:`PocketsphinxSTT` implements livekit-agents' non-streaming ``stt.STT``; the session
pairs it with the Silero VAD (the framework wraps it in ``stt.StreamAdapter``), so each
stretch of caller speech the VAD cuts out is decoded as one utterance.

:func:`transcribe` is the whole recogniser in one function, shared by the agent and by
``python -m examples.clinic.wer``, so the word error rate measured offline is the agent's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import Counter
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents import stt, utils
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)

from harness.audio.clip import Clip

from .faults import FaultPlan, Faults

logger = logging.getLogger("clinic.stt")

LM_DIR = Path(__file__).resolve().parent / "lm"
SAMPLE_RATE = 16000
# Synthetic voices leave exact digital silence between words, which the recogniser's
# log-energy features cannot represent (log 0). A fixed, seeded noise floor at about
# -50 dBFS removes that without changing what a person would hear.
NOISE_FLOOR = 0.003
_FILLERS = ("<", "[", "++")
SUBFRAME_SHIFTS = (0, 53, 107)  # samples at 16 kHz; a frame is 160
_CHUNK_BYTES = SAMPLE_RATE // 10 * 2  # 100 ms of 16-bit audio


CONFUSABLES: dict[str, str] = {
    "tuesday": "thursday",
    "thursday": "tuesday",
    "monday": "sunday",
    "sunday": "monday",
    "friday": "monday",
    "wednesday": "tuesday",
    "saturday": "sunday",
    "nine": "five",
    "five": "nine",
    "eleven": "seven",
    "seven": "eleven",
    "ten": "two",
    "two": "ten",
    "three": "tree",
    "cleaning": "filling",
    "filling": "cleaning",
    "checkup": "cleaning",
    "book": "look",
    "john": "jan",
    "miller": "mueller",
    "hours": "ours",
    "please": "these",
    "appointment": "appointments",
}
"""What a word is misheard as when the substitution fault hits it; a word not listed
becomes :data:`FILLER_SUBSTITUTE`."""
FILLER_SUBSTITUTE = "the"


def distort_transcript(text: str, plan: FaultPlan) -> str:
    """The recogniser's faults on one transcript (see :mod:`examples.clinic.faults`): each
    occurrence of the ``stt_confuse`` word is written as its confusable on
    ``stt_confuse_share`` of them; then each word is dropped on ``stt_drop_share`` of the
    words, else replaced by its :data:`CONFUSABLES` entry on ``stt_substitute_share``."""
    f = plan.faults
    if not text or not (f.stt_confuse or f.stt_drop_share or f.stt_substitute_share):
        return text
    heard, _, written = (f.stt_confuse or "").partition(":")
    out = []
    for word in text.split():
        if heard and word == heard and plan.hit("stt_confuse_share"):
            word = written
        if plan.hit("stt_drop_share"):
            continue
        if plan.hit("stt_substitute_share"):
            word = CONFUSABLES.get(word, FILLER_SUBSTITUTE if word != FILLER_SUBSTITUTE else "a")
        out.append(word)
    return " ".join(out)


def load_decoder():
    """A pocketsphinx decoder with the bundled US English acoustic model and the clinic's
    trigram model and dictionary (``examples/clinic/lm``)."""
    from pocketsphinx import Decoder, get_model_path

    return Decoder(
        hmm=get_model_path("en-us/en-us"),
        lm=str(LM_DIR / "clinic.arpa"),
        dict=str(LM_DIR / "clinic.dict"),
        samprate=SAMPLE_RATE,
        loglevel="FATAL",
    )


def transcribe(decoder, clip: Clip) -> tuple[str, float]:
    """Decode one utterance: (lower-case words, share of the sub-frame decodes that agree).

    The recogniser analyses 10 ms frames, and where speech starts within a frame shifts
    every feature a little: enough to flip a close call when a codec or packet timing moves
    the audio by a few milliseconds. So the utterance is decoded at sub-frame offsets
    (0, 1/3 and 2/3 of a frame) and the majority wins, ties going to the best score.
    """
    audio = clip.resample(SAMPLE_RATE).samples
    if len(audio) == 0:
        return "", 0.0
    results: list[tuple[str, int]] = []
    for shift in SUBFRAME_SHIFTS:
        results.append(_decode(decoder, np.concatenate([np.zeros(shift, np.float32), audio])))
        if len(results) == 2 and results[0][0] == results[1][0]:
            break
    votes = Counter(text for text, _ in results)
    text, _ = max(results, key=lambda r: (votes[r[0]], r[1]))
    return text, votes[text] / len(results)


def _decode(decoder, audio: np.ndarray) -> tuple[str, int]:
    noise = np.random.default_rng(0).standard_normal(len(audio)).astype(np.float32)
    pcm = Clip(np.clip(audio + NOISE_FLOOR * noise, -1.0, 1.0), SAMPLE_RATE).to_int16()
    data = pcm.tobytes()
    decoder.start_utt()
    # pocketsphinx holds the GIL inside each call: feed 100 ms at a time so the agent's
    # event loop (audio in and out) keeps running while a decode is in progress
    for i in range(0, len(data), _CHUNK_BYTES):
        decoder.process_raw(data[i : i + _CHUNK_BYTES], False, False)
    decoder.end_utt()
    hyp = decoder.hyp()
    if hyp is None:
        return "", -(2**62)
    words = [w for w in hyp.hypstr.split() if not w.startswith(_FILLERS)]
    return " ".join(words), hyp.best_score


def clip_from_frames(buffer: utils.AudioBuffer) -> Clip:
    """One mono Clip from livekit audio frames (channels averaged)."""
    frame = utils.merge_frames(buffer) if isinstance(buffer, list) else buffer
    assert isinstance(frame, rtc.AudioFrame)
    data = np.frombuffer(frame.data, dtype=np.int16).astype(np.float32) / 32768.0
    if frame.num_channels > 1:
        data = data.reshape(-1, frame.num_channels).mean(axis=1)
    return Clip(data, frame.sample_rate)


class PocketsphinxSTT(stt.STT):
    """``dump_dir`` (default: ``$CLINIC_STT_DUMP_DIR``) keeps every decoded utterance as a
    WAV file named by its transcript, to debug what the recogniser actually heard."""

    def __init__(
        self,
        *,
        decoder=None,
        dump_dir: str | Path | None = None,
        faults: Faults | None = None,
        call_key: str = "",
    ) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._faults = (faults or Faults()).plan(call_key)
        self._decoder = decoder if decoder is not None else load_decoder()
        self._lock = threading.Lock()
        dump_dir = dump_dir or os.environ.get("CLINIC_STT_DUMP_DIR")
        self._dump_dir = Path(dump_dir) if dump_dir else None
        self._dumped = 0

    @property
    def model(self) -> str:
        return "en-us+clinic-trigram"

    @property
    def provider(self) -> str:
        return "pocketsphinx"

    def _decode(self, clip: Clip) -> tuple[str, float]:
        with self._lock:
            return transcribe(self._decoder, clip)

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        clip = clip_from_frames(buffer)
        text, confidence = await asyncio.to_thread(self._decode, clip)
        logger.info("recognised %.2f s of caller audio", clip.duration)
        distorted = distort_transcript(text, self._faults)
        if distorted != text:
            logger.info("fault: the recogniser wrote %r for %r", distorted, text)
            text = distorted
        if self._dump_dir is not None:
            self._dumped += 1
            slug = "-".join(text.split()[:8]).replace("'", "") or "nothing"
            clip.write_wav(self._dump_dir / f"{os.getpid()}-{self._dumped:03d}-{slug}.wav")
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=utils.shortuuid("ps_"),
            alternatives=[
                stt.SpeechData(
                    language="en", text=text, confidence=confidence, end_time=clip.duration
                )
            ],
        )
