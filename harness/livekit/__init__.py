"""LiveKit plumbing: a local dev server or a remote one, rooms, tokens and agent dispatch."""

from harness.livekit.rooms import CallRoom, RoomService, new_conversation_id
from harness.livekit.server import (
    LIVEKIT_VERSION,
    LocalServer,
    ServerInfo,
    find_server_binary,
    livekit_server,
    remote_from_env,
)

__all__ = [
    "LIVEKIT_VERSION",
    "CallRoom",
    "LocalServer",
    "RoomService",
    "ServerInfo",
    "find_server_binary",
    "livekit_server",
    "new_conversation_id",
    "remote_from_env",
]
