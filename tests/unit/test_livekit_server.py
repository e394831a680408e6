"""The local server's configuration keeps every socket and every address on loopback."""

from __future__ import annotations

import yaml

from harness.livekit.rooms import CallRoom
from harness.livekit.server import _config_body


def test_the_local_server_listens_and_advertises_on_loopback_only():
    conf = yaml.safe_load(_config_body(7880, 7882, 3478, "key", "secret"))
    assert conf["bind_addresses"] == ["127.0.0.1"]
    rtc = conf["rtc"]
    # livekit-server opens its ICE/TCP listener on every interface whatever the bind address
    assert rtc["tcp_port"] == 0
    assert rtc["use_external_ip"] is False and rtc["node_ip"] == "127.0.0.1"
    assert rtc["ips"]["includes"] == ["127.0.0.1/32"]
    # without STUN servers of its own it hands clients public ones, which they look up
    assert rtc["stun_servers"] == ["127.0.0.1:3478"]


def test_a_call_room_offers_every_id_an_agent_span_may_carry():
    room = CallRoom("harness-c-1", "c-1", "token", "AD_1", "RM_1")
    assert room.join_keys == ("harness-c-1", "RM_1", "AD_1")
    assert CallRoom("r", "c", "t", "").join_keys == ("r",)
