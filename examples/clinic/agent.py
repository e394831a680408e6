"""Bright Smile Dental's booking line: the conversational agent of the reference deployment.

Everything runs offline and deterministically: Silero VAD, pocketsphinx with a domain
language model, a rule-based dialog policy behind the LLM interface (with real tool
calls), and espeak-ng speech. Run it from the repository root:

    export LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    .venv/bin/python -m examples.clinic.agent start

The worker registers as agent ``clinic`` with explicit dispatch only, so it joins a room
when asked to (``CreateAgentDispatch``), never by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import sys
from collections.abc import AsyncIterable
from dataclasses import asdict
from typing import Any

import harness_instrument as instrument
import numpy as np
from livekit import rtc
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    CloseEvent,
    JobContext,
    JobProcess,
    ModelSettings,
    RunContext,
    ToolError,
    UserInputTranscribedEvent,
    UserStateChangedEvent,
    cli,
    function_tool,
    get_job_context,
    room_io,
)
from livekit.plugins import silero

from harness.audio.clip import Clip

from . import bookings, clients, dialog
from .faults import FaultPlan, Faults
from .llm import RuleBasedLLM
from .stt import PocketsphinxSTT, load_decoder, transcribe
from .tts import EspeakTTS, reply_faults, tts_faults_active

logger = logging.getLogger("clinic")

AGENT_NAME = "clinic"
SILENCE_TIMEOUT_S = 6.0
"""How long the caller may say nothing (while the agent is not speaking) before a prompt."""
GREETING_PAUSE_S = 0.5
"""Pause between the caller's side subscribing to the agent's audio and the greeting."""
VAD_SILENCE_S = 0.55
"""Silero's default: silence that ends a stretch of caller speech."""
ENDPOINTING_DELAY_S = 0.5
"""livekit-agents' default minimum endpointing delay after that silence."""
MIN_VAD_SILENCE_S = 0.05
FRAME_S = 0.02

INSTRUCTIONS = (
    "You are the receptionist of Bright Smile Dental. Answer questions about opening "
    "hours and book appointments: ask for the service and the day, check availability, "
    "offer times, ask for the caller's name, then request the booking and confirm it."
)


class ClinicAgent(Agent):
    def __init__(self, faults: Faults | None = None, call_key: str = "") -> None:
        super().__init__(instructions=INSTRUCTIONS)
        self.booked: list[dict[str, Any]] = []  # handed to the after-call workflow
        self.faults = faults or Faults()
        self._tts_plan: FaultPlan = self.faults.plan(call_key)

    async def on_enter(self) -> None:
        self.session.on("user_state_changed", self._on_user_state_changed)
        await _until_heard(get_job_context().room)
        self.session.generate_reply()  # the greeting

    def _on_user_state_changed(self, ev: UserStateChangedEvent) -> None:
        if ev.new_state != "away":
            return
        logger.info("caller silent for %.0f s", SILENCE_TIMEOUT_S)
        handle = self.session.generate_reply(instructions=dialog.CALLER_SILENT)
        # "away" only ends when the caller speaks; count a second silence from this prompt
        handle.add_done_callback(lambda _: self.session.reset_away_timer())

    async def tts_node(
        self, text: AsyncIterable[str], model_settings: ModelSettings
    ) -> AsyncIterable[rtc.AudioFrame]:
        """The default TTS, with the TTS fault knobs applied to each whole reply."""
        frames = Agent.default.tts_node(self, text, model_settings)
        if not tts_faults_active(self._tts_plan):
            async for frame in frames:
                yield frame
            return
        chunks: list[np.ndarray] = []
        rate, channels = 0, 1
        async for frame in frames:
            rate, channels = frame.sample_rate, frame.num_channels
            chunks.append(np.frombuffer(frame.data, dtype=np.int16).copy())
        if not chunks:
            return
        pcm = np.concatenate(chunks)
        if channels != 1:
            pcm = pcm.reshape(-1, channels)[:, 0].copy()
        pcm, applied = reply_faults(pcm, rate, self._tts_plan)
        for line in applied:
            logger.info("fault: %s", line)
        step = max(1, round(rate * FRAME_S))
        for i in range(0, len(pcm), step):
            piece = pcm[i : i + step]
            yield rtc.AudioFrame(piece.tobytes(), rate, 1, len(piece))

    @function_tool
    async def check_availability(self, day: str) -> str:
        """Look up the free appointment times on a day of the week.

        Args:
            day: The weekday in lower case, for example "tuesday".
        """
        logger.info("tool check_availability(day=%r)", day)
        try:
            return json.dumps(await bookings.availability(day, faults=self.faults.backend_knobs()))
        except bookings.BookingError as e:
            raise ToolError(str(e)) from None

    @function_tool
    async def request_booking(self, name: str, day: str, time: str, service: str) -> str:
        """Request an appointment for the caller.

        Args:
            name: The caller's name.
            day: The weekday in lower case, for example "tuesday".
            time: The start time as HH:MM, one of the times check_availability offered.
            service: One of cleaning, checkup, filling, whitening.
        """
        logger.info("tool request_booking(day=%r, time=%r, service=%r)", day, time, service)
        try:
            booking = await bookings.request_booking(
                name=name,
                day=day,
                time=time,
                service=service,
                faults=self.faults.backend_knobs(),
            )
        except bookings.BookingError as e:
            raise ToolError(str(e)) from None
        self.booked.append(booking)
        return json.dumps(booking)

    @function_tool
    async def end_call(self, ctx: RunContext, reason: str) -> str:
        """End the call once the goodbye that follows this tool has been spoken.

        Args:
            reason: Why the call ends, for example "caller_goodbye" or "silence".
        """
        logger.info("tool end_call(reason=%r)", reason)
        # the goodbye is spoken in this same speech; leave once it has played out
        ctx.speech_handle.add_done_callback(lambda _: ctx.session.shutdown())
        return json.dumps({"ended": True, "reason": reason})


async def _until_heard(room: rtc.Room, timeout: float = 4.0) -> None:
    """Wait until someone has subscribed to the agent's audio, plus a moment for their side
    to start playing it, so the greeting is not spoken into an empty line. Gives up after
    ``timeout`` (shorter than the silence prompt's)."""

    async def subscribed() -> None:
        while True:
            # on_enter can run before the session has connected the room
            publications = room.local_participant.track_publications if room.isconnected() else {}
            for pub in publications.values():
                if pub.kind == rtc.TrackKind.KIND_AUDIO:
                    await pub.wait_for_subscription()
                    return
            await asyncio.sleep(0.05)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(subscribed(), timeout)
    await asyncio.sleep(GREETING_PAUSE_S)


def prewarm(proc: JobProcess) -> None:
    """Load the models once per process, before any call arrives."""
    # traces go to OTEL_EXPORTER_OTLP_ENDPOINT; livekit-agents' own spans join them
    instrument.init_tracing("clinic-agent", layer="conversational")
    proc.userdata["vad"] = silero.VAD.load()
    decoder = load_decoder()
    transcribe(decoder, Clip.silence(0.5, rate=16000))
    proc.userdata["decoder"] = decoder


def _load_by_calls(server: AgentServer) -> float:
    return min(0.1 * len(server.active_jobs), 0.9)


server = AgentServer(
    host="127.0.0.1",  # the health endpoint is for local probes only
    port=0,
    num_idle_processes=1,
    setup_fnc=prewarm,
    initialize_process_timeout=30.0,
    drain_timeout=60,  # on SIGTERM, let calls in progress finish for at most a minute
    # A test deployment takes every call it is dispatched, however busy the machine is:
    # report load by calls in progress instead of CPU, which a small CI runner saturates.
    load_fnc=_load_by_calls,
    load_threshold=math.inf,
)


@server.rtc_session(agent_name=AGENT_NAME)
async def entrypoint(ctx: JobContext) -> None:
    conversation_id = instrument.conversation_from_job(ctx) or ctx.job.room.name
    dispatch = _json_object(ctx.job.metadata)
    faults = Faults.from_metadata(dispatch, base=Faults.from_env())
    changed = {k: v for k, v in asdict(faults).items() if v != getattr(Faults(), k)}
    logger.info("call %s in room %s, faults %s", conversation_id, ctx.job.room.name, changed)
    plan = faults.plan(conversation_id)
    vad, endpointing = _turn_taking(ctx.proc.userdata["vad"], plan)

    session = AgentSession(
        vad=vad,
        stt=PocketsphinxSTT(
            decoder=ctx.proc.userdata["decoder"], faults=faults, call_key=conversation_id
        ),
        llm=RuleBasedLLM(faults=faults, call_key=conversation_id),
        tts=EspeakTTS(),
        turn_handling={
            "turn_detection": "vad",
            "interruption": {"mode": "vad"},
            "preemptive_generation": {"enabled": False},
            **({"endpointing": endpointing} if endpointing else {}),
        },
        user_away_timeout=SILENCE_TIMEOUT_S,
    )

    @session.on("user_input_transcribed")
    def _log_transcript(ev: UserInputTranscribedEvent) -> None:
        if ev.is_final:
            logger.info("caller said %r", ev.transcript)

    @session.on("close")
    def _end_job(ev: CloseEvent) -> None:
        ctx.shutdown(reason=f"session closed: {ev.reason.value}")

    agent = ClinicAgent(faults, conversation_id)
    skip, twice, crash = after_call_faults(plan)

    async def _after_call() -> None:  # the after-call workflow runs once the caller is gone
        if skip:
            logger.info("fault: the after-call job is never queued")
            return
        transcript = clients.transcript_from_history(session.history.items)
        job_faults = {"workflow_crash": crash}
        for _ in range(2 if twice else 1):
            await clients.enqueue_after_call(
                conversation_id, transcript, agent.booked, faults=job_faults
            )
        if twice:
            logger.info("fault: the after-call job was queued twice")

    ctx.add_shutdown_callback(_after_call)

    await session.start(
        agent=agent,
        room=ctx.room,
        room_options=room_io.RoomOptions(
            audio_input=room_io.AudioInputOptions(sample_rate=16000),
        ),
    )


def after_call_faults(plan: FaultPlan) -> tuple[bool, bool, bool]:
    """This call's after-call faults, drawn once per call when it starts (whatever happens
    in it): the job is never queued, it is queued twice, it crashes the workflow."""
    return (
        plan.hit("workflow_skip_share"),
        plan.hit("workflow_duplicate_share"),
        plan.hit("workflow_crash"),
    )


def endpointing_settings(eager_ms: int, slow_ms: int) -> tuple[float, float]:
    """``(VAD silence, endpointing delay)`` in seconds under the endpointing faults: eager
    takes ``eager_ms`` off the delay (500 ms), then off the VAD's silence (550 ms) down to
    50 ms; slow adds ``slow_ms`` to the delay."""
    eager = eager_ms / 1000.0
    delay = max(0.0, ENDPOINTING_DELAY_S - eager) + slow_ms / 1000.0
    silence = max(MIN_VAD_SILENCE_S, VAD_SILENCE_S - max(0.0, eager - ENDPOINTING_DELAY_S))
    return silence, delay


def _turn_taking(vad: silero.VAD, plan: FaultPlan) -> tuple[silero.VAD, dict[str, float]]:
    """The VAD and endpointing options of this call, as the endpointing faults make them
    (drawn once per call on ``endpointing_share``; see :func:`endpointing_settings`)."""
    f = plan.faults
    if not (f.endpointing_eager_ms or f.endpointing_slow_ms) or not plan.hit("endpointing_share"):
        return vad, {}
    silence, delay = endpointing_settings(f.endpointing_eager_ms, f.endpointing_slow_ms)
    logger.info("fault: endpointing after %.0f ms of silence + %.0f ms", silence * 1e3, delay * 1e3)
    if silence != VAD_SILENCE_S:
        vad = silero.VAD.load(min_silence_duration=silence)
    return vad, {"min_delay": delay, "max_delay": max(3.0, delay + 0.5)}


def _json_object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        logger.warning("ignoring metadata that is not JSON")
        return {}
    return value if isinstance(value, dict) else {}


if __name__ == "__main__":
    # the worker logs to stdout by default; keep stdout for the program's output
    with contextlib.redirect_stdout(sys.stderr):
        cli.run_app(server)
