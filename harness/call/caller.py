"""The synthetic caller: joins a real LiveKit room, speaks a CallPlan in real time,
listens to the agent, records both sides, and times every turn.

Every wait has a timeout. A call that cannot go on ends with a classified error:
:class:`InfrastructureError` (server unreachable, agent never joined) or
:class:`CallFailure` (the agent left, or never spoke after a turn). Whatever happens,
the recording and the turns measured so far are kept in the :class:`CallResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from livekit import rtc

from harness.core.errors import CallFailure, HarnessError, InfrastructureError
from harness.core.files import atomic_writer
from harness.plan.callplan import CALL_RATE, CallPlan, PlannedTurn

log = logging.getLogger("harness.call.caller")

FRAME_SAMPLES = CALL_RATE // 100  # 10 ms frames
SIMULATOR_ATTRIBUTE = "lk.simulator"
AGENT_STATE_ATTRIBUTE = "lk.agent.state"
TRANSCRIPTION_TOPIC = "lk.transcription"
SEGMENT_ID_ATTRIBUTE = "lk.segment_id"
TRACK_ID_ATTRIBUTE = "lk.transcribed_track_id"
# Agent audio frames louder than this RMS (~ -45 dBFS) are agent speech.
AGENT_SPEECH_RMS = 10 ** (-45 / 20)
# How often a waiting caller looks again (for the agent to stop talking, to leave, ...):
# every wake-up of every call costs the one event loop all callers share. Timings are read
# from the audio, not from these wake-ups.
POLL_S = 0.05
# How long to wait, once the agent has left, for our own connection to report a loss: the
# caller's link and the agent's go down together when the server stops.
LINK_LOSS_GRACE_S = 2.0
# The sender keeps this much audio queued ahead of real time in the track's source, so a
# stall of the caller's event loop (many calls on few cores) shorter than this never puts
# a gap into the caller's speech. The source's own queue holds more than the lead.
SEND_LEAD_S = 0.6
SOURCE_QUEUE_MS = 1000
# The sender pushes 100 ms at a time: every push costs a round trip through LiveKit's client
# library whose answer every room of the process looks at, so with many calls on few cores
# fewer, larger pushes matter. The source re-frames to 10 ms itself, and a clip still starts
# on the 10 ms it is asked to (it is padded into its first push).
SEND_SAMPLES = FRAME_SAMPLES * 10
SEND_S = SEND_SAMPLES / CALL_RATE
UNDERRUN_FLOOR_S = 0.04
"""Gaps in the caller's speech shorter than this are not counted as underruns."""
# The agent's audio arrives RECEIVE_MS at a time. LiveKit's client library hands every audio
# frame of the process to every audio stream of the process to pick its own (and every call
# has one), so the frame rate is paid once per call in progress: 100 ms frames cost a tenth
# of 10 ms ones. Speech is still found 10 ms at a time, within each frame.
RECEIVE_MS = 100


@dataclass(frozen=True)
class TurnRecord:
    """What the caller measured on one turn. Times are epoch seconds; turn 0 is the greeting."""

    index: int
    kind: str
    text: str | None
    caller_start: float | None
    caller_end: float | None
    agent_onset: float | None
    agent_offset: float | None
    response_latency_ms: float | None
    agent_speech_ms: float
    agent_said: str
    agent_heard: str
    barge_in_ms: float | None = None
    spoken_text: str | None = None
    # Silence the caller's own host put into this turn's speech because its event loop
    # stalled for longer than the send lead: the harness, not the agent, was overloaded.
    caller_underrun_ms: float = 0.0


@dataclass(frozen=True)
class CallResult:
    conversation_id: str
    scenario_id: str
    room: str
    started_at: float
    ended_at: float
    turns: tuple[TurnRecord, ...]
    error: HarnessError | None = field(default=None, compare=False)
    recording: str | None = None

    def to_json(self) -> dict[str, Any]:
        err = None
        if self.error is not None:
            kind = "infrastructure" if isinstance(self.error, InfrastructureError) else "agent"
            err = {"kind": kind, "message": str(self.error)}
        return {
            "conversation_id": self.conversation_id,
            "scenario_id": self.scenario_id,
            "room": self.room,
            "recording": self.recording,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "turns": [asdict(t) for t in self.turns],
            "error": err,
        }

    @property
    def response_latencies_ms(self) -> list[float]:
        return [
            t.response_latency_ms
            for t in self.turns
            if t.kind == "say" and t.response_latency_ms is not None
        ]


class _Timeline:
    """One clock for the call: monotonic for waits, mapped to epoch seconds for reports."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.t0_wall = time.time()

    def wall(self, mono: float | None) -> float | None:
        return None if mono is None else self.t0_wall + (mono - self.t0)

    def sample(self, mono: float) -> int:
        return max(0, round((mono - self.t0) * CALL_RATE))


class _ChannelWriter:
    """Places 10 ms frames on the call's timeline; small jitter is absorbed, gaps stay gaps."""

    def __init__(self) -> None:
        self.chunks: list[tuple[int, np.ndarray]] = []
        self.cursor = 0

    def place(self, frame: np.ndarray, at_sample: int) -> None:
        if at_sample - self.cursor > CALL_RATE * 0.06:  # a real gap: jump ahead
            self.cursor = at_sample
        self.chunks.append((self.cursor, frame))
        self.cursor += len(frame)

    def render(self, length: int) -> np.ndarray:
        out = np.zeros(length, dtype=np.int16)
        for pos, frame in self.chunks:
            end = min(length, pos + len(frame))
            if end > pos:
                out[pos:end] = frame[: end - pos]
        return out


@dataclass
class _Playback:
    pcm: np.ndarray
    started: asyncio.Future[float]
    finished: asyncio.Future[float]
    at: float | None = None  # when it should start (monotonic); None: as soon as it can
    frames: deque[np.ndarray] | None = None  # cut into pushes once it starts
    underrun_s: float = 0.0  # gaps the source played inside this clip


class _Sender:
    """Publishes one audio track paced in real time: queued clips, silence in between.

    Frames are pushed :data:`SEND_LEAD_S` ahead of the time they play, so ``next_t`` (the
    time the frame being pushed will be heard) is what the recording and the turn timings
    use. When the loop falls behind ``next_t`` the source has run dry: the gap is counted
    against the clip being played and the schedule restarts from now.
    """

    lead_s = SEND_LEAD_S

    def __init__(self, source: rtc.AudioSource, timeline: _Timeline) -> None:
        self._source = source
        self._timeline = timeline
        self._queue: deque[_Playback] = deque()
        self._silence = np.zeros(SEND_SAMPLES, dtype=np.int16)
        self.channel = _ChannelWriter()
        self.frames_sent = 0

    def play(self, pcm: np.ndarray, at: float | None = None) -> _Playback:
        """Queue a clip: it starts after the clips before it, and not before ``at`` (to the
        10 ms) when that is given."""
        loop = asyncio.get_running_loop()
        pb = _Playback(pcm, loop.create_future(), loop.create_future(), at)
        self._queue.append(pb)
        return pb

    @staticmethod
    def _cut(pb: _Playback, next_t: float) -> float | None:
        """Cut a clip that may start in the push heard from ``next_t`` into pushes, silence
        first up to its start; returns that start, or None when it starts after this push."""
        lead = 0
        if pb.at is not None and pb.at > next_t:
            if pb.at >= next_t + SEND_S:
                return None
            lead = round((pb.at - next_t) * CALL_RATE / FRAME_SAMPLES) * FRAME_SAMPLES
        tail = (-(lead + len(pb.pcm))) % SEND_SAMPLES
        pcm = np.concatenate([np.zeros(lead, np.int16), pb.pcm, np.zeros(tail, np.int16)])
        pb.frames = deque(pcm.reshape(-1, SEND_SAMPLES))
        return next_t + lead / CALL_RATE

    async def run(self) -> None:
        next_t = time.monotonic()
        while True:
            now = time.monotonic()
            pb = self._queue[0] if self._queue else None
            if now - next_t > 0.01:  # the source ran dry: resynchronise, don't burst
                if pb is not None and pb.started.done():
                    pb.underrun_s += now - next_t
                next_t = now
            frame = self._silence
            if pb is not None and pb.frames is None:
                start = self._cut(pb, next_t)
                if start is None:
                    pb = None  # not yet: silence until its push
                else:
                    pb.started.set_result(start)
            if pb is not None:
                assert pb.frames is not None
                frame = pb.frames.popleft()
            af = rtc.AudioFrame(frame.tobytes(), CALL_RATE, 1, SEND_SAMPLES)
            await self._source.capture_frame(af)
            self.channel.place(frame, self._timeline.sample(next_t))
            self.frames_sent += 1
            if pb is not None and not pb.frames:
                self._queue.popleft()
                pb.finished.set_result(next_t + SEND_S)
            next_t += SEND_S
            delay = next_t - self.lead_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)


@dataclass(frozen=True)
class _OpenTurn:
    index: int
    kind: str
    text: str | None
    start: float  # monotonic
    end: float | None
    latency_from: float | None  # caller speech end, for response latency
    barge_in_ms: float | None = None  # how far into the agent's speech the caller started


@dataclass
class _Segment:
    segment_id: str
    track_id: str
    identity: str
    first_at: float  # monotonic time the first chunk arrived
    text: str = ""


class _AgentListener:
    """Follows the agent: its audio (speech onsets/offsets), state, transcripts, presence."""

    def __init__(self, timeline: _Timeline, hangover_s: float = 0.5) -> None:
        self.timeline = timeline
        self.hangover_s = hangover_s
        self.channel = _ChannelWriter()
        self.identity: str | None = None
        self.joined_at: float | None = None
        self.left_at: float | None = None
        self.left_reason: str | None = None
        self.track_at: float | None = None
        self.state: str | None = None
        self.speech: list[list[float]] = []  # [onset, last speech frame end] pairs, monotonic
        self.segments: dict[str, _Segment] = {}
        self._last_frame: float | None = None

    # ---- audio
    def feed(self, pcm: np.ndarray, arrival: float) -> None:
        """Audio that ended playing at ``arrival``: any number of samples, judged speech or
        not 10 ms at a time."""
        n = len(pcm)
        if n == 0:
            return
        start = arrival - n / CALL_RATE
        self.channel.place(pcm, self.timeline.sample(start))
        self._last_frame = arrival
        blocks = -(-n // FRAME_SAMPLES)
        x = pcm.astype(np.float32)
        if blocks * FRAME_SAMPLES != n:  # a short last block: judged on what it holds
            x = np.concatenate([x, np.zeros(blocks * FRAME_SAMPLES - n, np.float32)])
        x = x.reshape(blocks, FRAME_SAMPLES)
        power = np.einsum("ij,ij->i", x, x) / (32768.0**2)
        sizes = np.full(blocks, FRAME_SAMPLES)
        sizes[-1] = n - (blocks - 1) * FRAME_SAMPLES
        loud = np.flatnonzero(power >= sizes * AGENT_SPEECH_RMS**2)
        for i in loud.tolist():
            on = start + i * FRAME_SAMPLES / CALL_RATE
            off = min(arrival, on + FRAME_SAMPLES / CALL_RATE)
            if self.speech and on - self.speech[-1][1] < self.hangover_s:
                self.speech[-1][1] = off
            else:
                self.speech.append([on, off])

    def onset_after(self, t: float) -> float | None:
        return next((on for on, _ in self.speech if on >= t), None)

    def speech_between(self, start: float, end: float) -> float:
        return sum(max(0.0, min(off, end) - max(on, start)) for on, off in self.speech)

    def last_offset_between(self, start: float, end: float) -> float | None:
        offs = [off for on, off in self.speech if start <= on < end]
        return max(offs) if offs else None

    def speaking(self, now: float) -> bool:
        audio_busy = bool(self.speech) and now - self.speech[-1][1] < self.hangover_s
        if self.state is None:  # agents without the state attribute: audio alone, longer
            return bool(self.speech) and now - self.speech[-1][1] < max(1.2, self.hangover_s)
        return audio_busy or self.state in ("speaking", "thinking")

    # ---- transcripts
    def on_text(self, segment_id: str, track_id: str, identity: str, text: str, at: float) -> None:
        seg = self.segments.get(segment_id)
        if seg is None:
            self.segments[segment_id] = _Segment(segment_id, track_id, identity, at, text)
        else:
            seg.text = text  # a later stream of the same segment replaces the earlier one

    def text_between(self, start: float, end: float, *, of_agent: bool) -> str:
        picked = [
            s
            for s in self.segments.values()
            if start <= s.first_at < end and (s.identity == self.identity) == of_agent
        ]
        return " ".join(s.text.strip() for s in sorted(picked, key=lambda s: s.first_at)).strip()


class SyntheticCaller:
    """Plays a :class:`CallPlan` into a LiveKit room as a participant marked ``lk.simulator``.

    The token must grant joining that one room; the caller sets the ``lk.simulator``
    attribute itself so the agent's job ends when it hangs up.
    """

    def __init__(
        self,
        url: str,
        token: str,
        plan: CallPlan,
        *,
        conversation_id: str,
        room_name: str,
        recording_path: Path | None = None,
        identity: str = "caller",
        on_turn: Callable[[int], None] | None = None,
    ) -> None:
        self.url = url
        self._token = token
        self.plan = plan
        self.conversation_id = conversation_id
        self.room_name = room_name
        self.recording_path = recording_path
        self.identity = identity
        self._on_turn = on_turn  # called as the caller starts each planned turn
        self._open: list[_OpenTurn] = []
        self._current_turn = 0
        self._barge_onset: float | None = None
        self._connected_at = 0.0
        self._link_lost = False  # our own connection to the server dropped
        self._spoken = {t.index: t.spoken_text for t in plan.turns}
        self._underruns: dict[int, float] = {}

    async def run(self) -> CallResult:
        timeline = _Timeline()
        listener = _AgentListener(timeline)
        room = rtc.Room()
        tasks: list[asyncio.Task[Any]] = []
        sender: _Sender | None = None
        error: HarnessError | None = None
        disconnected = asyncio.Event()

        def on_participant(p: rtc.RemoteParticipant) -> None:
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT and listener.identity is None:
                listener.identity = p.identity
                listener.joined_at = time.monotonic()
                listener.state = p.attributes.get(AGENT_STATE_ATTRIBUTE)

        def on_left(p: rtc.RemoteParticipant) -> None:
            if p.identity == listener.identity and listener.left_at is None:
                listener.left_at = time.monotonic()

        def on_quality(p: rtc.Participant, quality: int) -> None:
            # A crashed agent never says goodbye: the server keeps it in the room, waiting
            # for a reconnect, for about 20 s. Its connection quality turns LOST sooner.
            lost = quality == rtc.ConnectionQuality.QUALITY_LOST
            if lost and p.identity == listener.identity and listener.left_at is None:
                listener.left_at = time.monotonic()
                listener.left_reason = "connection lost"

        def on_attrs(changed: dict[str, str], p: rtc.Participant) -> None:
            if p.identity == listener.identity and AGENT_STATE_ATTRIBUTE in changed:
                listener.state = changed[AGENT_STATE_ATTRIBUTE]

        def on_track(track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant):
            if track.kind == rtc.TrackKind.KIND_AUDIO and p.identity == listener.identity:
                if listener.track_at is None:
                    listener.track_at = time.monotonic()
                    tasks.append(asyncio.create_task(self._receive(track, listener)))

        def on_text(reader: rtc.TextStreamReader, identity: str) -> None:
            tasks.append(asyncio.create_task(self._read_text(reader, identity, listener)))

        room.on("participant_connected", on_participant)
        room.on("participant_disconnected", on_left)
        room.on("participant_attributes_changed", on_attrs)
        room.on("connection_quality_changed", on_quality)
        room.on("track_subscribed", on_track)
        room.on("disconnected", lambda *_: (disconnected.set(), self._lose_link()))
        room.on("reconnecting", lambda *_: self._lose_link())
        room.register_text_stream_handler(TRANSCRIPTION_TOPIC, on_text)

        try:
            async with asyncio.timeout(self.plan.timeouts.call_s):
                await self._connect(room)
                self._connected_at = time.monotonic()
                for p in room.remote_participants.values():
                    on_participant(p)
                    for pub in p.track_publications.values():
                        if pub.track is not None:
                            on_track(pub.track, pub, p)
                source = rtc.AudioSource(CALL_RATE, 1, queue_size_ms=SOURCE_QUEUE_MS)
                track = rtc.LocalAudioTrack.create_audio_track("caller-microphone", source)
                opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
                await asyncio.wait_for(room.local_participant.publish_track(track, opts), 10)
                sender = _Sender(source, timeline)
                tasks.append(asyncio.create_task(sender.run()))
                await self._converse(sender, listener, disconnected)
        except TimeoutError:
            error = CallFailure(
                f"call exceeded its {self.plan.timeouts.call_s:.0f}s limit at turn "
                f"{self._current_turn}",
                turn=self._current_turn,
            )
        except HarnessError as exc:
            error = exc
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(room.disconnect(), 5)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        ended = time.monotonic()
        recording = None
        if self.recording_path is not None:
            recording = str(self._write_recording(sender, listener, timeline, ended))
        return CallResult(
            conversation_id=self.conversation_id,
            scenario_id=self.plan.scenario_id,
            room=self.room_name,
            started_at=timeline.t0_wall,
            ended_at=timeline.wall(ended) or 0.0,
            turns=self._turn_records(listener, ended),
            error=error,
            recording=recording,
        )

    # ---- connection
    async def _connect(self, room: rtc.Room) -> None:
        try:
            await asyncio.wait_for(
                room.connect(self.url, self._token, rtc.RoomOptions(auto_subscribe=True)),
                self.plan.timeouts.agent_join_s,
            )
        except (TimeoutError, rtc.ConnectError) as exc:
            raise InfrastructureError(
                f"cannot connect the caller to LiveKit at {self.url}: "
                f"{type(exc).__name__} {exc}".strip()
            ) from exc
        await room.local_participant.set_attributes({SIMULATOR_ATTRIBUTE: "true"})

    async def _receive(self, track: rtc.Track, listener: _AgentListener) -> None:
        stream = rtc.AudioStream.from_track(
            track=track, sample_rate=CALL_RATE, num_channels=1, frame_size_ms=RECEIVE_MS
        )
        try:
            async for ev in stream:
                pcm = np.frombuffer(ev.frame.data, dtype=np.int16).copy()
                listener.feed(pcm, time.monotonic())
        finally:
            await stream.aclose()

    async def _read_text(
        self, reader: rtc.TextStreamReader, identity: str, listener: _AgentListener
    ) -> None:
        attrs = reader.info.attributes or {}
        seg_id = attrs.get(SEGMENT_ID_ATTRIBUTE, reader.info.stream_id)
        track_id = attrs.get(TRACK_ID_ATTRIBUTE, "")
        text, first = "", None
        with contextlib.suppress(Exception):
            async for chunk in reader:
                first = first or time.monotonic()
                text += chunk
                listener.on_text(seg_id, track_id, identity, text, first)

    def _lose_link(self) -> None:
        self._link_lost = True

    async def _agent_left(self, listener: _AgentListener) -> HarnessError:
        """The agent left: its failure, unless our own link to the server went at the same
        moment (the server stopped or the network broke), which is infrastructure. The two
        are told apart by waiting briefly for our connection's own verdict."""
        deadline = time.monotonic() + LINK_LOSS_GRACE_S
        while not self._link_lost and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        if self._link_lost:
            return InfrastructureError(
                f"lost the connection to LiveKit at {self.url} at turn {self._current_turn} "
                "(the agent's departure was the server's, not the agent's)"
            )
        why = f" ({listener.left_reason})" if listener.left_reason else ""
        return CallFailure(
            f"agent left the room at turn {self._current_turn}{why}", turn=self._current_turn
        )

    # ---- the conversation
    async def _wait(self, cond, timeout: float, on_timeout: HarnessError, listener) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if listener.left_at is not None:
                raise await self._agent_left(listener)
            if time.monotonic() >= deadline:
                raise on_timeout
            await asyncio.sleep(POLL_S)

    async def _converse(
        self, sender: _Sender, listener: _AgentListener, disconnected: asyncio.Event
    ) -> None:
        t = self.plan.timeouts
        name = self.plan.agent_name
        join_error = InfrastructureError(
            f"agent {name!r} never joined room {self.room_name} within {t.agent_join_s:.0f}s: "
            f"is a worker registered with agent_name={name!r}? (--agent-cmd starts one)"
        )
        await self._wait(
            lambda: listener.identity is not None, t.agent_join_s, join_error, listener
        )
        await self._wait(
            lambda: listener.track_at is not None,
            t.agent_join_s,
            CallFailure("agent joined but never published audio", turn=0),
            listener,
        )
        # the greeting's window opens when the caller connected: the agent may start
        # speaking (and streaming its transcript) before its track reaches the caller
        turn_start = self._connected_at
        self._record(0, "greeting", None, turn_start, None, None)
        if self.plan.agent_speaks_first:
            await self._await_reply(listener, after=turn_start, turn=0)

        for turn in self.plan.turns:
            if disconnected.is_set():
                raise InfrastructureError(f"lost the connection to LiveKit at {self.url}")
            self._current_turn = turn.index
            at = None
            if turn.barge_in_ms is not None:
                at = await self._barge_in_point(listener, turn)
                # audio queued now is heard one send lead later; the sender starts the
                # clip on the 10 ms of ``at`` within the push it falls in
                await self._sleep_until(at - sender.lead_s - SEND_S, listener)
            else:
                await self._wait(
                    lambda: not listener.speaking(time.monotonic()),
                    t.turn_s,
                    CallFailure(f"agent kept talking for {t.turn_s:.0f}s before turn {turn.index}"),
                    listener,
                )
                if turn.pause_before_s:
                    await self._sleep_until(time.monotonic() + turn.pause_before_s, listener)
            if self._on_turn is not None:
                try:
                    self._on_turn(turn.index)
                except Exception:  # a hook's bug must not cost the call its artifacts
                    log.exception("on_turn hook failed at turn %d", turn.index)
            if turn.kind == "say":
                await self._say(sender, listener, turn, at)
            else:
                await self._stay_silent(listener, turn)
        await self._wait(
            lambda: not listener.speaking(time.monotonic()),
            t.turn_s,
            CallFailure("agent kept talking after the last turn"),
            listener,
        )
        await asyncio.sleep(0.3)  # let the last transcripts land

    async def _barge_in_point(self, listener: _AgentListener, turn: PlannedTurn) -> float:
        """When to start a barge-in turn: ``barge_in_ms`` into the agent's latest reply."""
        prev = self._open[-1].start if self._open else listener.timeline.t0
        await self._wait(
            lambda: listener.onset_after(prev) is not None,
            self.plan.timeouts.turn_s,
            CallFailure(f"no agent speech to barge into at turn {turn.index}", turn=turn.index),
            listener,
        )
        onset = listener.onset_after(prev)
        assert onset is not None and turn.barge_in_ms is not None
        self._barge_onset = onset
        return onset + turn.barge_in_ms / 1000

    async def _sleep_until(self, at: float, listener: _AgentListener) -> None:
        """Until ``at`` (to the loop's timer, not to the next poll), unless the agent leaves."""
        while (left := at - time.monotonic()) > 0:
            if listener.left_at is not None:
                raise await self._agent_left(listener)
            await asyncio.sleep(min(POLL_S, left))

    async def _await_reply(self, listener: _AgentListener, *, after: float, turn: int) -> float:
        """Wait for the agent's reply to start; the next turn waits for it to end."""
        t = self.plan.timeouts
        await self._wait(
            lambda: listener.onset_after(after) is not None,
            t.turn_s,
            CallFailure(f"agent never spoke after turn {turn} (waited {t.turn_s:.0f}s)", turn=turn),
            listener,
        )
        onset = listener.onset_after(after)
        assert onset is not None
        return onset

    async def _say(
        self,
        sender: _Sender,
        listener: _AgentListener,
        turn: PlannedTurn,
        at: float | None = None,
    ) -> None:
        assert turn.audio is not None
        pb = sender.play(turn.audio.to_int16(), at)
        start = await asyncio.wait_for(pb.started, 5)
        await self._wait(
            pb.finished.done,
            turn.audio.duration + 10,
            InfrastructureError("the caller's audio stalled"),
            listener,
        )
        lead, tail = turn.speech_bounds
        speech_start, speech_end = start + lead, start + tail
        barge = None
        if turn.barge_in_ms is not None and self._barge_onset is not None:
            barge = round((speech_start - self._barge_onset) * 1000, 1)
        self._record(turn.index, "say", turn.text, speech_start, speech_end, speech_end, barge)
        if pb.underrun_s > UNDERRUN_FLOOR_S:
            self._underruns[turn.index] = round(pb.underrun_s * 1000, 1)
            log.warning(
                "the caller's audio had %.0f ms of gaps at turn %d: this host is overloaded "
                "(lower --concurrency); the agent heard the gaps",
                pb.underrun_s * 1000,
                turn.index,
            )
        await self._await_reply(listener, after=speech_start, turn=turn.index)

    async def _stay_silent(self, listener: _AgentListener, turn: PlannedTurn) -> None:
        start = time.monotonic()
        deadline = start + turn.silence_s
        self._record(turn.index, "silence", None, start, deadline, None)
        while time.monotonic() < deadline:
            if listener.left_at is not None:
                break  # the agent may hang up on a silent caller; the next turn decides
            await asyncio.sleep(POLL_S)
        if listener.onset_after(start) is not None:
            await self._wait(
                lambda: not listener.speaking(time.monotonic()),
                self.plan.timeouts.turn_s,
                CallFailure(f"agent kept talking at turn {turn.index}", turn=turn.index),
                listener,
            )

    def _record(
        self,
        index: int,
        kind: str,
        text: str | None,
        start: float,
        end: float | None,
        latency_from: float | None,
        barge_in_ms: float | None = None,
    ) -> None:
        self._open.append(_OpenTurn(index, kind, text, start, end, latency_from, barge_in_ms))

    def _turn_records(self, listener: _AgentListener, ended: float) -> tuple[TurnRecord, ...]:
        """A turn's window runs from its start to the next turn's start (or the hang-up):
        the agent's reply, speech and transcripts inside it belong to that turn."""
        tl = listener.timeline
        out = []
        for i, rec in enumerate(self._open):
            until = self._open[i + 1].start if i + 1 < len(self._open) else ended
            onset = listener.onset_after(rec.start)
            if onset is not None and onset >= until:
                onset = None
            offset = listener.last_offset_between(rec.start, until) if onset else None
            latency = (onset - rec.latency_from) * 1000 if onset and rec.latency_from else None
            out.append(
                TurnRecord(
                    index=rec.index,
                    kind=rec.kind,
                    text=rec.text,
                    caller_start=tl.wall(rec.start) if rec.kind != "greeting" else None,
                    caller_end=tl.wall(rec.end),
                    agent_onset=tl.wall(onset),
                    agent_offset=tl.wall(offset),
                    response_latency_ms=round(latency, 1) if latency is not None else None,
                    agent_speech_ms=round(listener.speech_between(rec.start, until) * 1000, 1),
                    agent_said=listener.text_between(rec.start, until, of_agent=True),
                    agent_heard=listener.text_between(rec.start, until, of_agent=False),
                    barge_in_ms=rec.barge_in_ms,
                    spoken_text=self._spoken.get(rec.index),
                    caller_underrun_ms=self._underruns.get(rec.index, 0.0),
                )
            )
        return tuple(out)

    # ---- recording
    def _write_recording(
        self,
        sender: _Sender | None,
        listener: _AgentListener,
        timeline: _Timeline,
        ended: float,
    ) -> Path:
        assert self.recording_path is not None
        length = timeline.sample(ended) + FRAME_SAMPLES
        left = sender.channel.render(length) if sender else np.zeros(length, np.int16)
        right = listener.channel.render(length)
        stereo = np.stack([left, right], axis=1).reshape(-1)
        path = self.recording_path
        with atomic_writer(path) as f, wave.open(f, "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(CALL_RATE)
            w.writeframes(stereo.tobytes())
        return path
