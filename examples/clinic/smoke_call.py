"""A manual smoke call against a running clinic worker (not a test; the harness does that).

    export LIVEKIT_URL=ws://127.0.0.1:7880 LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=...
    .venv/bin/python -m examples.clinic.smoke_call "what are your opening hours" "goodbye"

Creates a room, dispatches agent ``clinic``, joins as a caller speaking with espeak-ng
(``en-us``), waits for the greeting, says each sentence after the agent's previous reply
(an empty sentence stays silent for ten seconds), and prints both sides of the transcript
as the agent publishes it on ``lk.transcription``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
import uuid

import numpy as np
from livekit import api, rtc

from harness.audio.clip import Clip

RATE = 48000
FRAME = RATE // 100  # 10 ms


def espeak(text: str) -> Clip:
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "160", "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    return Clip.from_int16(np.frombuffer(wav[44:], dtype=np.int16), 22050).resample(RATE)


async def play(source: rtc.AudioSource, clip: Clip) -> None:
    pcm = clip.to_int16()
    pcm = np.concatenate([pcm, np.zeros(-len(pcm) % FRAME, dtype=np.int16)])
    for i in range(0, len(pcm), FRAME):
        frame = rtc.AudioFrame(pcm[i : i + FRAME].tobytes(), RATE, 1, FRAME)
        await source.capture_frame(frame)
    await source.wait_for_playout()


async def main(sentences: list[str], timeout: float, faults: dict | None) -> None:
    url, key, secret = (
        os.environ[v] for v in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
    )
    room_name = f"clinic-smoke-{uuid.uuid4().hex[:8]}"
    metadata = json.dumps({"conversation_id": room_name})
    dispatch_metadata = json.dumps({"conversation_id": room_name, "faults": faults or {}})
    lkapi = api.LiveKitAPI(url, key, secret)
    await lkapi.room.create_room(api.CreateRoomRequest(name=room_name, metadata=metadata))
    await lkapi.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(
            agent_name="clinic", room=room_name, metadata=dispatch_metadata
        )
    )
    token = (
        api.AccessToken(key, secret)
        .with_identity("caller")
        .with_grants(api.VideoGrants(room_join=True, room=room_name))
        .to_jwt()
    )

    room = rtc.Room()
    agent_replies: asyncio.Queue[str] = asyncio.Queue()
    t0 = time.monotonic()
    caller_track_sid: list[str] = []

    async def read(reader: rtc.TextStreamReader, identity: str) -> None:
        text = await reader.read_all()
        track = reader.info.attributes.get("lk.transcribed_track_id", "")
        if track in caller_track_sid:
            if reader.info.attributes.get("lk.transcription_final") == "true":
                print(f"[{time.monotonic() - t0:6.1f}s] heard:  {text}")
        else:
            print(f"[{time.monotonic() - t0:6.1f}s] agent:  {text}")
            agent_replies.put_nowait(text)

    tasks: set[asyncio.Future[None]] = set()
    room.register_text_stream_handler(
        "lk.transcription", lambda r, who: tasks.add(asyncio.ensure_future(read(r, who)))
    )
    audio_frames = 0

    @room.on("track_subscribed")
    def _on_track(track: rtc.Track, *_: object) -> None:
        async def count() -> None:
            nonlocal audio_frames
            async for _ in rtc.AudioStream(track):
                audio_frames += 1

        if track.kind == rtc.TrackKind.KIND_AUDIO:
            tasks.add(asyncio.ensure_future(count()))

    @room.on("participant_disconnected")
    def _on_left(p: rtc.RemoteParticipant) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {p.identity} left the room")

    await room.connect(url, token)
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("caller", source)
    pub = await room.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    )
    caller_track_sid.append(pub.sid)
    try:
        await asyncio.wait_for(agent_replies.get(), timeout)  # the greeting
        for sentence in sentences:
            await asyncio.sleep(0.5)
            if sentence:
                print(f"[{time.monotonic() - t0:6.1f}s] caller: {sentence}")
                await play(source, espeak(sentence))
            else:
                print(f"[{time.monotonic() - t0:6.1f}s] caller: (silence)")
            await asyncio.wait_for(agent_replies.get(), timeout)
        await asyncio.sleep(5)
    finally:
        print(f"received {audio_frames} frames of agent audio")
        await room.disconnect()
        await lkapi.room.delete_room(api.DeleteRoomRequest(room=room_name))
        await lkapi.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one manual call to the clinic agent")
    parser.add_argument("sentences", nargs="*", default=["what are your opening hours"])
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--faults", type=json.loads, help="e.g. '{\"extra_llm_latency_ms\": 800}'")
    args = parser.parse_args()
    asyncio.run(main(args.sentences, args.timeout, args.faults))
