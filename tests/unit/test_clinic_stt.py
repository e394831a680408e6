"""The clinic's offline recogniser on synthesised caller speech."""

from __future__ import annotations

import asyncio
import shutil

import numpy as np
import pytest
from livekit import rtc

from examples.clinic import stt
from examples.clinic.wer import speak
from harness.audio.clip import Clip

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@pytest.fixture(scope="module")
def decoder():
    return stt.load_decoder()


def caller_audio(text: str) -> Clip:
    """The call path: espeak-ng at 22050 Hz, published at 48 kHz."""
    return speak(text).resample(48000)


@pytest.mark.parametrize(
    "sentence",
    ["i would like to book a cleaning appointment", "tuesday no wait thursday", "i don't know"],
)
def test_transcribes_caller_sentences(decoder, sentence):
    text, confidence = stt.transcribe(decoder, caller_audio(sentence))
    assert text == sentence
    assert 0.0 <= confidence <= 1.0


def test_transcript_does_not_depend_on_where_speech_starts_in_a_frame(decoder):
    """Codecs and packet timing move the audio by a few ms; the transcript must not flip."""
    clip = caller_audio("nine o'clock please").resample(16000)
    for offset in (0, 40, 80, 120):
        padded = Clip(np.concatenate([np.zeros(8000 + offset, np.float32), clip.samples]), 16000)
        assert stt.transcribe(decoder, padded)[0] == "nine o'clock please", offset


def test_silence_and_empty_audio_give_no_words(decoder):
    assert stt.transcribe(decoder, Clip.silence(1.0, rate=16000))[0] == ""
    assert stt.transcribe(decoder, Clip(np.zeros(0, dtype=np.float32), 16000)) == ("", 0.0)


def test_transcription_is_deterministic(decoder):
    clip = caller_audio("next tuesday please")
    assert stt.transcribe(decoder, clip) == stt.transcribe(decoder, clip)


def test_stt_interface_recognises_livekit_frames(decoder):
    clip = caller_audio("what are your opening hours")
    pcm = clip.to_int16()
    frames = [
        rtc.AudioFrame(pcm[i : i + 480].tobytes(), 48000, 1, len(pcm[i : i + 480]))
        for i in range(0, len(pcm), 480)
    ]

    async def recognise():
        engine = stt.PocketsphinxSTT(decoder=decoder)
        assert not engine.capabilities.streaming
        return await engine.recognize(frames)

    event = asyncio.run(recognise())
    assert event.type.value == "final_transcript"
    assert event.alternatives[0].text == "what are your opening hours"


def test_stereo_frames_are_mixed_down():
    mono = np.array([1000, -1000, 2000], dtype=np.int16)
    stereo = np.repeat(mono, 2)
    clip = stt.clip_from_frames(rtc.AudioFrame(stereo.tobytes(), 16000, 2, 3))
    assert clip.rate == 16000
    assert np.allclose(clip.samples, mono / 32768.0)
