"""Offline speech synthesis with espeak-ng, streamed as raw PCM.

The agent's voice (British English by default) is deliberately unlike the synthetic
caller's default voice (espeak-ng ``en-us``), so recordings and transcripts of the two
sides are easy to tell apart. ``tts.TTS`` is non-streaming here; the session wraps it in
``tts.StreamAdapter``, which synthesises sentence by sentence, and each sentence's audio is
pushed as soon as espeak-ng writes it, so the first audio leaves within milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct

from livekit.agents import APIConnectionError, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

ESPEAK_RATE = 22050
_WAV_HEADER = 44


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
