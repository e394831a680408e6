"""Tony's Pizza: a stock livekit-agents voice agent, offline, with no harness code in it.

Silero VAD, pocketsphinx with a grammar (pizza.jsgf) for speech recognition, a rule-based
``llm_node`` and espeak-ng speech. It has no tracing code either: start it with
``harness agent -- python examples/minimal_agent/agent.py start`` and the harness gets its
spans with no change (see README.md).

    export LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    python examples/minimal_agent/agent.py start
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents import Agent, AgentServer, AgentSession, JobContext, cli, llm, room_io, stt
from livekit.plugins import silero
from pocketsphinx import Decoder, get_model_path

HERE = Path(__file__).resolve().parent
RATE, VOICE_RATE = 16000, 22050
REPLIES = [  # (what the caller said, matched in order, what the agent answers)
    (r"hours|open", "We are open every day from eleven in the morning to ten at night."),
    (
        r"(small|medium|large)? ?(pepperoni|mushroom|hawaiian|cheese|veggie)",
        "One {0} {1} pizza. Pickup or delivery?",
    ),
    (r"delivery", "Delivery it is. Your pizza will be with you in thirty minutes."),
    (r"pickup", "Pickup it is. Your pizza will be ready in fifteen minutes."),
    (r"bye|thank", "Thanks for calling Tony's Pizza. Goodbye!"),
]


class GrammarSTT(stt.STT):
    """pocketsphinx restricted to what callers of a pizza line say (pizza.jsgf)."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._lock = threading.Lock()
        self._decoder = Decoder(
            hmm=get_model_path("en-us/en-us"),
            samprate=RATE,
            dict=get_model_path("en-us/cmudict-en-us.dict"),
            jsgf=str(HERE / "pizza.jsgf"),
            loglevel="FATAL",
        )

    def _decode(self, pcm: bytes) -> str:
        audio = np.frombuffer(pcm, np.int16).astype(np.float32)
        audio += np.random.default_rng(0).normal(0, 60, len(audio))  # no exact digital silence
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(
                np.clip(audio, -32768, 32767).astype(np.int16).tobytes(), False, True
            )
            self._decoder.end_utt()
            hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    async def _recognize_impl(self, buffer, *, language=None, conn_options=None):
        frame = rtc.combine_audio_frames(buffer)
        text = await asyncio.to_thread(self._decode, bytes(frame.data))
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(language="en", text=text)],
        )


class NoLLM(llm.LLM):
    """livekit-agents answers only when the session has an LLM, even when ``llm_node`` is
    overridden: this placeholder is never asked."""

    def chat(self, **kwargs):
        raise NotImplementedError("PizzaAgent.llm_node writes every reply")


class PizzaAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="Take pizza orders for Tony's Pizza.")

    async def on_enter(self) -> None:
        self.session.generate_reply()  # the greeting, through llm_node

    async def llm_node(self, chat_ctx, tools, model_settings):
        heard = [
            m.text_content or "" for m in chat_ctx.items if m.type == "message" and m.role == "user"
        ]
        if not heard:
            return "Tony's Pizza, what can I get you?"
        for pattern, reply in REPLIES:
            if match := re.search(pattern, heard[-1].lower()):
                return reply.format(*(g or "large" for g in match.groups()))
        return "Sorry, I didn't catch that. What pizza would you like?"

    async def tts_node(self, text, model_settings):
        sentence = "".join([piece async for piece in text])
        proc = await asyncio.create_subprocess_exec(
            "espeak-ng",
            "-v",
            "en-gb",
            "-s",
            "165",
            "--stdout",
            sentence,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        pcm = (await proc.communicate())[0][44:]  # skip the WAV header
        step = VOICE_RATE // 10 * 2  # 100 ms frames
        for i in range(0, len(pcm) - 1, step):
            chunk = pcm[i : i + step]
            yield rtc.AudioFrame(chunk, VOICE_RATE, 1, len(chunk) // 2)


# host: the health endpoint answers local probes only. load_fnc: livekit-agents' default
# (CPU share, refused above 0.7) turns calls away on a busy 2-core test machine.
server = AgentServer(host="127.0.0.1", port=0, load_fnc=lambda s: len(s.active_jobs) / 50)


@server.rtc_session(agent_name="pizza")
async def entrypoint(ctx: JobContext) -> None:
    session = AgentSession(vad=silero.VAD.load(), stt=GrammarSTT(), llm=NoLLM())
    await session.start(
        agent=PizzaAgent(),
        room=ctx.room,
        room_options=room_io.RoomOptions(audio_input=room_io.AudioInputOptions(sample_rate=RATE)),
    )


if __name__ == "__main__":
    cli.run_app(server)
