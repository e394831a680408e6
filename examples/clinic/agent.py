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
from dataclasses import asdict
from typing import Any

import harness_instrument as instrument
from livekit import rtc
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    CloseEvent,
    JobContext,
    JobProcess,
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
from .faults import Faults
from .llm import RuleBasedLLM
from .stt import PocketsphinxSTT, load_decoder, transcribe
from .tts import EspeakTTS

logger = logging.getLogger("clinic")

AGENT_NAME = "clinic"
SILENCE_TIMEOUT_S = 6.0
"""How long the caller may say nothing (while the agent is not speaking) before a prompt."""
GREETING_PAUSE_S = 0.5
"""Pause between the caller's side subscribing to the agent's audio and the greeting."""

INSTRUCTIONS = (
    "You are the receptionist of Bright Smile Dental. Answer questions about opening "
    "hours and book appointments: ask for the service and the day, check availability, "
    "offer times, ask for the caller's name, then request the booking and confirm it."
)


class ClinicAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions=INSTRUCTIONS)
        self.booked: list[dict[str, Any]] = []  # handed to the after-call workflow

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

    @function_tool
    async def check_availability(self, day: str) -> str:
        """Look up the free appointment times on a day of the week.

        Args:
            day: The weekday in lower case, for example "tuesday".
        """
        logger.info("tool check_availability(day=%r)", day)
        try:
            return json.dumps(await bookings.availability(day))
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
            booking = await bookings.request_booking(name=name, day=day, time=time, service=service)
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
    logger.info("call %s in room %s, faults %s", conversation_id, ctx.job.room.name, asdict(faults))

    session = AgentSession(
        vad=ctx.proc.userdata["vad"],
        stt=PocketsphinxSTT(decoder=ctx.proc.userdata["decoder"]),
        llm=RuleBasedLLM(faults=faults, call_key=conversation_id),
        tts=EspeakTTS(),
        turn_handling={
            "turn_detection": "vad",
            "interruption": {"mode": "vad"},
            "preemptive_generation": {"enabled": False},
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

    agent = ClinicAgent()

    async def _after_call() -> None:  # the after-call workflow runs once the caller is gone
        transcript = clients.transcript_from_history(session.history.items)
        await clients.enqueue_after_call(conversation_id, transcript, agent.booked)

    ctx.add_shutdown_callback(_after_call)

    await session.start(
        agent=agent,
        room=ctx.room,
        room_options=room_io.RoomOptions(
            audio_input=room_io.AudioInputOptions(sample_rate=16000),
        ),
    )


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
