"""harness.session.config: session settings and a pytest-xdist worker's share of them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.session.config import (
    SessionConfig,
    agent_command,
    collector_conflict,
    parse_collector_address,
    remote_server_source,
    worker_share,
)


@given(st.integers(1, 64), st.integers(1, 16))
def test_workers_together_run_about_the_session_concurrency(concurrency, workers):
    share = worker_share(concurrency, workers)
    assert share >= 1
    assert share * workers >= concurrency  # the session gets the parallelism it asked for
    if concurrency >= workers:
        assert (share - 1) * workers < concurrency  # and no worker takes more than needed


def test_one_worker_keeps_the_whole_concurrency():
    assert worker_share(4, 1) == 4
    assert worker_share(4, 2) == 2
    assert worker_share(1, 2) == 1


@pytest.mark.parametrize("field", ["calls", "concurrency"])
def test_counts_below_one_are_refused_by_name(field):
    with pytest.raises(ValueError, match=f"{field}=0: must be at least 1"):
        SessionConfig(**{field: 0})


def test_logs_are_per_process_only_under_xdist(tmp_path):
    serial = SessionConfig(artifacts=tmp_path, run_id="r")
    assert serial.log_path("agent") == tmp_path / "r" / "agent.log"
    workers = [SessionConfig(artifacts=tmp_path, run_id="r", worker=w) for w in ("gw0", "gw1")]
    paths = [w.log_path("agent") for w in workers]
    assert [p.name for p in paths] == ["agent.gw0.log", "agent.gw1.log"]
    assert {p.parent for p in paths} == {serial.run_dir}  # one run dir, one log per worker


def test_an_xdist_worker_takes_the_run_id_its_own_logs_and_a_share():
    session = SessionConfig(concurrency=4, calls=30, run_id="mine")
    worker = session.for_xdist_worker("gw1", 2, run_id="controller-run")
    assert (worker.run_id, worker.worker, worker.concurrency) == ("controller-run", "gw1", 2)
    assert worker.calls == 30  # everything else is the session's
    assert worker.log_path("agent").name == "agent.gw1.log"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:4318", ("127.0.0.1", 4318)),
        ("0.0.0.0:4318", ("0.0.0.0", 4318)),
        ("collector.local:80", ("collector.local", 80)),
        (":4999", ("127.0.0.1", 4999)),
        ("4999", ("127.0.0.1", 4999)),
        (" 4999 ", ("127.0.0.1", 4999)),
        ("[::1]:4318", ("::1", 4318)),
        ("[::]:0", ("::", 0)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_collector_address_forms(value, expected):
    assert parse_collector_address(value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("nonsense", "is not a listen address: write HOST:PORT, :PORT or PORT"),
        ("", "is not a listen address"),
        (":", "is not a listen address"),
        ("host:", "is not a listen address"),
        ("[::1]", "is not a listen address"),
        ("[nope]:80", "is not a listen address"),
        ("::1:4318", "write an IPv6 address in brackets, e.g. [::1]:4318"),
        ("70000", "port 70000 is above 65535"),
        ("+80", "is not a listen address"),
        ("١٢٣", "is not a listen address"),  # int() would take these digits
        ("a b:80", "is not a listen address"),
    ],
)
def test_bad_collector_addresses_are_refused_by_value(value, why):
    with pytest.raises(ValueError) as e:
        parse_collector_address(value)
    assert repr(value) in str(e.value) and why in str(e.value)


@given(st.text(max_size=40))
def test_parsing_any_collector_address_gives_a_port_or_a_valueerror_naming_it(text):
    try:
        host, port = parse_collector_address(text)
    except ValueError as e:
        assert repr(text) in str(e)
    else:
        assert host and 0 <= port <= 65535
        SessionConfig(collector_host=host, collector_port=port)  # a valid config


HOSTS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True),
)


@given(st.one_of(HOSTS, st.ip_addresses(v=6).map(str)), st.integers(0, 65535))
def test_a_formatted_address_parses_back(host, port):
    text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert parse_collector_address(text) == (host, port)
    assert parse_collector_address(f":{port}") == parse_collector_address(str(port))


def test_the_collector_listens_on_a_free_loopback_port_by_default():
    cfg = SessionConfig()
    assert (cfg.collector_host, cfg.collector_port) == ("127.0.0.1", 0)
    with pytest.raises(ValueError, match="collector_port=70000: must be 0-65535"):
        SessionConfig(collector_port=70000)


def test_a_fixed_collector_port_serves_one_process_only():
    assert collector_conflict(0, 4) is None
    assert collector_conflict(4999, 1) is None
    assert collector_conflict(4999, 0) is None
    msg = collector_conflict(4999, 2)
    assert msg is not None and "--collector" in msg and "-n 0" in msg


INI_CMD = "{python} -m examples.clinic.deploy start"


def test_without_a_remote_server_the_command_line_wins_over_the_ini():
    assert agent_command(None, INI_CMD, None) == (INI_CMD, None)
    assert agent_command("my-agent", INI_CMD, None) == ("my-agent", None)
    assert agent_command("", INI_CMD, None) == (None, None)  # --agent-cmd "": start none
    assert agent_command(None, None, None) == (None, None)


@pytest.mark.parametrize("remote", ["--livekit-url", "harness_livekit_url", "LIVEKIT_URL"])
def test_with_a_remote_server_only_the_command_line_starts_an_agent(remote):
    cmd, notice = agent_command(None, INI_CMD, remote)
    assert cmd is None
    assert notice == (
        "harness: not starting the ini's harness_agent_cmd: a remote LiveKit server was "
        f"given ({remote}); pass --agent-cmd to start one"
    )
    assert agent_command("my-agent", INI_CMD, remote) == ("my-agent", None)
    assert agent_command(None, None, remote) == (None, None)  # nothing ignored, no notice


@given(
    st.none() | st.text(max_size=8),
    st.none() | st.text(max_size=8),
    st.none() | st.sampled_from(["--livekit-url", "LIVEKIT_URL"]),
)
def test_an_agent_is_started_only_as_the_rule_says(cli, ini, remote):
    cmd, notice = agent_command(cli, ini, remote)
    if cli is not None:
        assert (cmd, notice) == (cli or None, None)
    elif remote is not None:
        assert cmd is None and (notice is not None) == bool(ini)
    else:
        assert (cmd, notice) == (ini or None, None)


def test_what_names_a_remote_server():
    env = {"LIVEKIT_URL": "wss://x.livekit.cloud"}
    assert remote_server_source("ws://a", "ws://b", env) == "--livekit-url"
    assert remote_server_source(None, "ws://b", env) == "harness_livekit_url"
    assert remote_server_source(None, None, env) == "LIVEKIT_URL"
    assert remote_server_source(None, None, {"LIVEKIT_URL": ""}) is None
    assert remote_server_source(None, None, {}) is None
