"""Room lifecycle on livekit-api: one room per call, carrying the conversation id,
with the agent dispatched explicitly and a caller token scoped to that room only."""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from livekit import api

from harness.core.errors import InfrastructureError
from harness.livekit.server import ServerInfo

CALLER_TOKEN_TTL = timedelta(minutes=10)
API_TIMEOUT_S = 10.0

HARNESS_ROOM_PREFIX = "harness-"
"""Every room the harness opens is named ``harness-<conversation id>``: production ingest
tells a synthetic call from a real one by it, even when the session that placed the call
is gone (a monitor killed mid-call)."""


def is_harness_room(name: object) -> bool:
    return isinstance(name, str) and name.startswith(HARNESS_ROOM_PREFIX)


def new_conversation_id(prefix: str = "c") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


@dataclass(frozen=True)
class CallRoom:
    name: str
    conversation_id: str
    caller_token: str
    dispatch_id: str
    sid: str = ""
    """The room's server id, which livekit-agents puts on every span of the job
    (``lk.room_sid``, ``gen_ai.conversation.id``)."""

    @property
    def join_keys(self) -> tuple[str, ...]:
        """The ids an agent's spans may carry instead of our conversation id."""
        return tuple(k for k in (self.name, self.sid, self.dispatch_id) if k)


class RoomService:
    """A thin async wrapper over livekit-api, used as ``async with RoomService(info)``.

    Every request has a timeout. Failing to reach the server is an
    :class:`InfrastructureError` naming the URL.
    """

    def __init__(self, info: ServerInfo, *, timeout: float = API_TIMEOUT_S) -> None:
        self.info = info
        self._timeout = timeout
        self._api: api.LiveKitAPI | None = None

    async def __aenter__(self) -> RoomService:
        self._api = api.LiveKitAPI(
            self.info.http_url,
            self.info.api_key,
            self.info.api_secret,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None

    @property
    def lk(self) -> api.LiveKitAPI:
        if self._api is None:
            raise RuntimeError("RoomService used outside `async with`")
        return self._api

    async def _call(self, what: str, coro):
        try:
            return await asyncio.wait_for(coro, self._timeout)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise InfrastructureError(
                f"LiveKit server at {self.info.url} is unreachable ({what}: "
                f"{type(exc).__name__}: {exc}); check --livekit-url / LIVEKIT_URL, "
                "or run `make tools` to use a local server"
            ) from exc
        except api.TwirpError as exc:
            raise InfrastructureError(
                f"LiveKit server at {self.info.url} refused {what}: {exc.code} {exc.message}"
            ) from exc

    async def ping(self) -> None:
        await self._call("list rooms", self.lk.room.list_rooms(api.ListRoomsRequest()))

    def caller_token(self, room: str, identity: str, attributes: dict[str, str]) -> str:
        return (
            api.AccessToken(self.info.api_key, self.info.api_secret)
            .with_identity(identity)
            .with_name(identity)
            .with_ttl(CALLER_TOKEN_TTL)
            .with_attributes(attributes)
            .with_grants(
                api.VideoGrants(
                    room_join=True,
                    room=room,
                    can_publish=True,
                    can_subscribe=True,
                    can_publish_data=True,
                )
            )
            .to_jwt()
        )

    async def open_call(
        self,
        agent_name: str,
        *,
        conversation_id: str,
        caller_identity: str,
        caller_attributes: dict[str, str],
        dispatch_metadata: dict | None = None,
    ) -> CallRoom:
        """Create the room, dispatch the agent into it, and mint the caller's token."""
        room_name = f"{HARNESS_ROOM_PREFIX}{conversation_id}"
        metadata = json.dumps({"conversation_id": conversation_id})
        created = await self._call(
            "create room",
            self.lk.room.create_room(
                api.CreateRoomRequest(
                    name=room_name, metadata=metadata, empty_timeout=60, departure_timeout=5
                )
            ),
        )
        dispatch_md = json.dumps({"conversation_id": conversation_id, **(dispatch_metadata or {})})
        dispatch = await self._call(
            "dispatch agent",
            self.lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(
                    agent_name=agent_name, room=room_name, metadata=dispatch_md
                )
            ),
        )
        token = self.caller_token(room_name, caller_identity, caller_attributes)
        return CallRoom(room_name, conversation_id, token, dispatch.id, created.sid)

    async def close_call(self, room: CallRoom) -> None:
        """Delete the room; a room already gone is fine."""
        try:
            await self._call(
                "delete room", self.lk.room.delete_room(api.DeleteRoomRequest(room=room.name))
            )
        except InfrastructureError:
            pass
