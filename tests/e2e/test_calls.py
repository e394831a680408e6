"""Issue-level guarantees of a real call: truthful latency, classified failures and real
concurrency (the two-channel recording is checked on the booking call of test_instance)."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import pytest

from harness.scenario.model import load_scenario, parse_scenario
from tests.support.turns import TurnReached

pytestmark = pytest.mark.e2e
SUITES = Path(__file__).parent / "suites"


def test_added_llm_latency_shows_up_in_measured_response_latency(clinic_session):
    """The same agent process, warmed up, takes calls with CLINIC_EXTRA_LLM_LATENCY_MS=0 and
    =1500 in turn (set per call through the dispatch metadata, which the clinic reads like its
    environment), so the comparison is not skewed by a cold start or by drift between runs."""
    quick = load_scenario(SUITES / "quick_hours.yaml")
    latencies: dict[int, list[float]] = {0: [], 1500: []}
    with clinic_session() as session:
        # warm-up: the first call pays the cold start
        session.run(load_scenario(SUITES / "hours_short.yaml"), repeat=99)
        for r, extra in enumerate((0, 1500, 0, 1500), start=1):
            faults = {"faults": {"CLINIC_EXTRA_LLM_LATENCY_MS": extra}}
            o = session.run(quick, repeat=r, dispatch_metadata=faults)
            assert o.verdict == "pass", o.describe()
            latencies[extra] += o.result.response_latencies_ms
    medians = {k: statistics.median(v) for k, v in latencies.items()}
    rise = medians[1500] - medians[0]
    print(
        f"median response latency over {len(latencies[0])} turns each: {medians[0]:.0f} ms "
        f"-> {medians[1500]:.0f} ms (+{rise:.0f} ms)"
    )
    assert 1350 <= rise <= 1650, latencies


def test_agent_killed_mid_call_fails_with_the_turn(clinic_session, smoke_scenarios):
    booking = smoke_scenarios["booking"]
    turn_1 = TurnReached(1)
    with clinic_session(on_turn=turn_1) as session:
        future = session.submit(booking)
        turn_1.wait(timeout=60)  # past the greeting: the caller starts its first turn
        assert not future.done(), future.result().describe()
        t_kill = time.time()
        session.agent.kill()
        outcome = future.result(timeout=booking.timeouts.turn_s + 60)
        elapsed = outcome.result.ended_at - t_kill  # from the kill to the caller hanging up
    assert outcome.verdict == "fail", outcome.describe()
    assert "agent left the room at turn" in str(outcome.error)
    assert elapsed <= booking.timeouts.turn_s + 5, f"took {elapsed:.1f}s to notice"
    print(f"{outcome.error} ({elapsed:.1f}s after the kill)")


def test_concurrent_calls_overlap(clinic_session, smoke_scenarios):
    # the longest scenario alone, then every scenario at once: three calls at a time is
    # what a busy 2-core host runs without starving the agent (at four it often does not)
    scenarios = list(smoke_scenarios.values())
    with clinic_session(concurrency=3) as session:
        single = session.run(smoke_scenarios["booking"])
        t0 = time.monotonic()
        futures = [session.submit(s, 2) for s in scenarios]
        outcomes = [f.result(timeout=600) for f in futures]
        wall = time.monotonic() - t0
    for o in [single, *outcomes]:
        assert o.verdict == "pass", o.describe()
    longest = max(o.duration_s for o in [single, *outcomes])
    print(
        f"longest call {longest:.1f}s; {len(outcomes)} calls at concurrency 3 "
        f"took {wall:.1f}s ({wall / longest:.2f}x)"
    )
    assert wall <= 1.3 * longest


def test_unreachable_agent_is_an_infrastructure_error(clinic_session):
    scenario = parse_scenario(
        "id: nobody\nagent: no-such-agent\ntimeouts: {agent_join_s: 3}\nturns:\n  - say: hello\n"
    )
    with clinic_session() as session:
        t0 = time.monotonic()
        outcome = session.run(scenario)
    assert outcome.verdict == "error"
    assert "never joined" in str(outcome.error)
    assert time.monotonic() - t0 < 10
    assert threading.active_count() < 50
