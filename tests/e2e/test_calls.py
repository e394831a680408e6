"""Issue-level guarantees of a real call: truthful latency, classified failures,
real concurrency, and a recording with both sides on their own channel."""

from __future__ import annotations

import statistics
import threading
import time
import wave

import numpy as np
import pytest

from harness.scenario import parse_scenario
from tests.support.turns import TurnReached

pytestmark = pytest.mark.e2e


def test_added_llm_latency_shows_up_in_measured_response_latency(clinic_session, smoke_scenarios):
    """The same agent process, warmed up, takes calls with CLINIC_EXTRA_LLM_LATENCY_MS=0 and
    =1500 in turn (set per call through the dispatch metadata, which the clinic reads like its
    environment), so the comparison is not skewed by a cold start or by drift between runs."""
    booking = smoke_scenarios["booking"]
    latencies: dict[int, list[float]] = {0: [], 1500: []}
    with clinic_session() as session:
        session.run(booking, repeat=99)  # warm-up: the first call pays the cold start
        for r, extra in enumerate((0, 1500, 0, 1500), start=1):
            faults = {"faults": {"CLINIC_EXTRA_LLM_LATENCY_MS": extra}}
            o = session.run(booking, repeat=r, dispatch_metadata=faults)
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
    scenarios = list(smoke_scenarios.values())
    with clinic_session(concurrency=4) as session:
        singles = [session.run(s) for s in scenarios]
        longest = max(o.duration_s for o in singles)
        t0 = time.monotonic()
        futures = [session.submit(s, r) for s in scenarios for r in (2, 3)]
        outcomes = [f.result(timeout=600) for f in futures]
        wall = time.monotonic() - t0
    for o in singles + outcomes:
        assert o.verdict == "pass", o.describe()
    print(
        f"longest single call {longest:.1f}s; {len(outcomes)} calls at concurrency 4 "
        f"took {wall:.1f}s ({wall / longest:.2f}x)"
    )
    assert wall <= 1.5 * longest


def test_recording_has_caller_left_and_agent_right(clinic_session, smoke_scenarios):
    with clinic_session() as session:
        outcome = session.run(smoke_scenarios["booking"])
    assert outcome.verdict == "pass", outcome.describe()
    with wave.open(str(outcome.artifacts / "recording.wav")) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 48000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2) / 32768
    res = outcome.result
    t0 = res.started_at

    def rms(ch: int, a: float, b: float) -> float:
        seg = pcm[int((a - t0) * 48000) : int((b - t0) * 48000), ch]
        return float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0

    for turn in res.turns:
        assert turn.caller_underrun_ms == 0.0, turn  # one call on an idle host: no gaps
        if turn.kind == "say":
            # the caller is on the left while it speaks; the agent is silent on the right
            assert rms(0, turn.caller_start, turn.caller_end) > 0.01, turn
            assert rms(1, turn.caller_start + 0.2, turn.caller_end - 0.2) < 0.003, turn
        if turn.agent_onset:
            assert rms(1, turn.agent_onset, turn.agent_offset) > 0.01, turn
            assert rms(0, turn.agent_onset + 0.1, turn.agent_offset) < 0.003, turn


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
