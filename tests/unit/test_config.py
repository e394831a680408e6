"""harness.config: session settings and a pytest-xdist worker's share of them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.config import SessionConfig, worker_share


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
