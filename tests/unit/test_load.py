"""The load test without a server: its settings, the knee, when the rig is the bottleneck,
the ramp's scheduling (against a stand-in for the call session, whose calls take a few
real milliseconds), the table, load.json and the report's load section."""

from __future__ import annotations

import concurrent.futures
import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.call.rundir import RunDir
from harness.call.selfload import CallerLoad, HostCpu
from harness.core.errors import ScenarioError
from harness.evaluators.base import Score
from harness.gates import ScoreStore, parse_gates
from harness.load import (
    GateResult,
    HarnessCost,
    Knee,
    LoadConfig,
    RigLimits,
    StepResult,
    find_knee,
    hold_verdict,
    parse_duration,
    parse_ramp,
    render_table,
    resolve_load_config,
    rig_limits_hit,
    run_load,
    step_breaks,
)
from harness.load.runner import LoadResult
from harness.scenario.model import load_scenario

ROOT = Path(__file__).resolve().parents[2]

# --- settings ---------------------------------------------------------------------------


def test_ramp_reads_increasing_levels():
    assert parse_ramp("1,2,4,8,16") == (1, 2, 4, 8, 16)
    assert parse_ramp(" 3 , 5 ") == (3, 5)
    assert parse_ramp([1, 2]) == (1, 2)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "write concurrency levels"),
        ("1,x", "'x' is not a concurrency level"),
        ("0,1", "'0' is not a concurrency level"),
        ("1,-2", "is not a concurrency level"),
        ("4,2", "must increase"),
        ("2,2", "must increase"),
        ("1,5000", "at most 1000"),
    ],
)
def test_a_bad_ramp_says_what_is_wrong(text: str, why: str):
    with pytest.raises(ScenarioError, match=why) as e:
        parse_ramp(text)
    assert "--ramp" in str(e.value)


def test_durations():
    assert parse_duration("2m") == 120
    assert parse_duration("1m30s") == 90
    assert parse_duration("45") == 45
    assert parse_duration(2.5) == 2.5
    for bad in ("0s", "soon", "-3", True, 0):
        with pytest.raises(ScenarioError, match="--step-duration"):
            parse_duration(bad)


def test_marker_wins_over_command_line_wins_over_ini():
    cfg = resolve_load_config(
        {"ramp": [1, 3]},
        {"ramp": "1,2", "step_duration": "30s"},
        {"ramp": "5,6", "step_duration": "1m", "knee_factor": "3"},
    )
    assert (cfg.ramp, cfg.step_s, cfg.knee_factor, cfg.stop_at_knee) == ((1, 3), 30, 3.0, True)
    assert resolve_load_config({"keep_going": True}).stop_at_knee is False
    assert resolve_load_config(None, {}).ramp == (1, 2, 4, 8, 16)
    with pytest.raises(ScenarioError, match="'rampp' is unknown"):
        resolve_load_config({"rampp": "1,2"})
    with pytest.raises(ScenarioError, match="knee_factor"):
        resolve_load_config({"knee_factor": "1"})


def test_rig_limits_are_checked():
    with pytest.raises(ValueError, match="max_loop_busy"):
        RigLimits(max_loop_busy=1.5)
    with pytest.raises(ValueError, match="max_loop_lag_ms"):
        RigLimits(max_loop_lag_ms=0)


# --- the knee -----------------------------------------------------------------------------


def step(
    c: int, p90: float | None, *, failed: bool = False, errors: int = 0, limited=()
) -> StepResult:
    gates = [GateResult("g", "fail" if failed else "pass", 1.0, "ms", 10)]
    s = StepResult(c, calls=4, errors=errors, p90_ms=p90, gates=gates)
    s.harness_limited = list(limited)
    return s


def test_knee_at_a_failed_gate_or_a_p90_past_the_factor():
    steps = [step(1, 1000), step(2, 1900), step(4, 2100), step(8, 900, failed=True)]
    knee = find_knee(steps, 2.0)
    assert knee is not None and (knee.concurrency, knee.held, knee.blame) == (4, 2, "agent")
    assert "2.1x step 1's 1000 ms (> 2x)" in knee.reasons[0]
    knee = find_knee(steps, 3.0)
    assert knee is not None and knee.concurrency == 8
    assert knee.reasons == ("gate g failed (1 ms, n=10)",)
    assert find_knee(steps[:3], 3.0) is None


def test_calls_that_could_not_be_placed_break_a_step():
    s = step(4, 900, errors=2)
    s.first_error = "agent 'clinic' never joined"
    assert step_breaks(s, 1000, 2.0) == [
        "2 of 4 calls could not be placed: agent 'clinic' never joined"
    ]


def test_a_knee_where_the_rig_was_the_bottleneck_blames_the_harness():
    steps = [step(1, 1000), step(2, 5000, limited=["caller audio underruns: 900 ms"])]
    knee = find_knee(steps, 2.0)
    assert knee is not None and knee.blame == "harness" and knee.held == 1
    line = LoadResult(LoadConfig(ramp=(1, 2)), ["s"], steps, knee).knee_line
    assert "HARNESS-LIMITED (caller audio underruns: 900 ms)" in line
    assert "the agent held at least 1" in line


steps_strategy = st.lists(
    st.tuples(
        st.one_of(st.none(), st.floats(1, 10_000, allow_nan=False)),
        st.booleans(),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=8,
)


@given(steps_strategy, st.floats(1.1, 5))
def test_the_knee_is_the_first_step_that_breaks(raw, factor):
    steps = [
        step(2**i, p90, failed=failed, errors=errors) for i, (p90, failed, errors) in enumerate(raw)
    ]
    knee = find_knee(steps, factor)
    ref = steps[0].p90_ms

    def breaks(s: StepResult) -> bool:
        grew = ref is not None and s.p90_ms is not None and s.p90_ms > factor * ref
        return bool(s.failed_gates) or grew or s.errors > 0

    first = next((i for i, s in enumerate(steps) if breaks(s)), None)
    if first is None:
        assert knee is None
    else:
        assert knee is not None and knee.index == first
        assert knee.concurrency == steps[first].concurrency
        assert knee.held == (steps[first - 1].concurrency if first else None)
        assert all(not breaks(s) for s in steps[:first])
        assert Knee.from_dict(knee.to_dict()) == knee


def test_rig_limits_name_each_reason():
    limits = RigLimits()
    assert rig_limits_hit(HarnessCost(loop_lag_p99_ms=10, loop_busy=0.3), limits) == []
    hits = rig_limits_hit(
        HarnessCost(
            underrun_ms=420,
            underrun_calls=2,
            loop_lag_p99_ms=120,
            loop_busy=0.95,
            host_pressure=0.8,
            rig_share=0.6,
        ),
        limits,
    )
    assert [h.split(":")[0].split(" ")[0] for h in hits] == [
        "the",
        "caller",
        "event-loop",
        "host",
    ]
    assert "420 ms of gaps in 2 calls" in hits[1]
    # a saturated host whose CPU went to the agent is the agent's problem, not the rig's
    assert rig_limits_hit(HarnessCost(host_pressure=0.9, rig_share=0.1), limits) == []


def test_a_late_loop_on_a_host_the_agent_saturated_is_a_timing_note_not_the_rigs_limit():
    """The clinic on a 2-core machine: at 8 calls the host's CPU pressure is 72 %, the caller
    side used 14 % of the CPU and its loop thread 6 %; the loop woke 200 ms late at p99."""
    from harness.load import timing_notes

    cost = HarnessCost(loop_lag_p99_ms=200, loop_busy=0.06, host_pressure=0.72, rig_share=0.14)
    assert rig_limits_hit(cost, RigLimits()) == []
    (note,) = timing_notes(cost, RigLimits())
    assert note == (
        "not the rig's load (host CPU pressure 72 %, the caller side used 14 % of the host's "
        "CPU): event-loop lag p99 200 ms > 50 ms (replies timed that much late)"
    )
    # the same lag with the rig's share unknown, or large, is the rig's
    for share in (None, 0.6):
        cost = HarnessCost(loop_lag_p99_ms=200, loop_busy=0.06, rig_share=share)
        assert rig_limits_hit(cost, RigLimits()) and not timing_notes(cost, RigLimits())


def test_hold_says_whether_the_deployment_held_n_calls():
    ok = LoadResult(LoadConfig(ramp=(1, 2, 4)), ["s"], [step(1, 1), step(2, 1), step(4, 1)])
    assert hold_verdict(ok, None) == (0, None)
    assert hold_verdict(ok, 4)[0] == 0
    assert hold_verdict(ok, 8)[0] == 2  # never got there
    broke = LoadResult(LoadConfig(ramp=(1, 2)), ["s"], [step(1, 1), step(2, 1, failed=True)])
    broke.knee = find_knee(broke.steps, 2.0)
    assert hold_verdict(broke, 1)[0] == 0
    assert hold_verdict(broke, 2) == (1, "--hold 2: the deployment broke at 2 concurrent calls")


# --- the ramp, against a stand-in session ----------------------------------------------------


@dataclass
class Turn:
    caller_underrun_ms: float = 0.0


@dataclass
class Result:
    turns: tuple[Turn, ...] = (Turn(),)


@dataclass
class Trace:
    state: str = "complete"


@dataclass
class Outcome:
    scenario_id: str
    repeat: int
    artifacts: Path
    scores: tuple[Score, ...]
    verdict: str = "pass"
    error: Any = None
    trace: Trace | None = field(default_factory=Trace)
    result: Result = field(default_factory=Result)
    harness_load: CallerLoad | None = None
    host_cpu_pressure: float | None = 0.1
    data_errors: tuple = ()


class StandInSession:
    """Places a call as a thread that takes ``call_s`` seconds; its response latency grows
    with the number of calls in progress, past ``knee`` calls steeply."""

    def __init__(self, call_s: float = 0.03, knee: int = 4, underrun_at: int | None = None):
        self.call_s = call_s
        self.knee = knee
        self.underrun_at = underrun_at
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=64)
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.labels: list[tuple[str, int]] = []

    def submit(self, scenario, repeat=1, *, label=None):
        self.labels.append((label, repeat))

        def call() -> Outcome:
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
                n = self.running
            time.sleep(self.call_s)
            with self.lock:
                self.running -= 1
            latency = 800.0 * (1 if n <= self.knee else 4)
            under = 300.0 if self.underrun_at is not None and n >= self.underrun_at else 0.0
            return Outcome(
                scenario.id,
                repeat,
                Path("/runs") / f"{label}.{repeat}",
                (
                    Score("response_latency", latency, "ms"),
                    Score("response_latency", latency, "ms"),
                ),
                result=Result((Turn(under),)),
                harness_load=CallerLoad(0.02, self.call_s, 2.0, 3.0, 5, 0.1),
            )

        return self.pool.submit(call)


@pytest.fixture
def scenarios():
    return [load_scenario(ROOT / "scenarios/smoke/greeting.yaml")]


GATES = parse_gates(
    {"gates": [{"name": "lat", "metric": "response_latency", "statistic": "p90", "fail": 5000}]}
)


def test_each_step_keeps_n_calls_going_and_stops_after_the_knee(scenarios):
    session = StandInSession(knee=2)
    cfg = LoadConfig(ramp=(1, 2, 4, 8), step_s=0.4, stagger_s=0.0)
    lines: list[str] = []
    result = run_load(session, scenarios, cfg, gates=GATES, progress=lines.append)
    assert [s.concurrency for s in result.steps] == [1, 2, 4]  # 8 never ran: knee at 4
    assert result.knee is not None and result.knee.concurrency == 4 and result.knee.held == 2
    assert session.most == 4
    for s in result.steps:
        # back to back: each line placed roughly step_s / call_s calls
        assert s.calls >= s.concurrency * 5, s
        assert s.calls == s.passed and s.p50_ms is not None
        assert s.cost.caller_cpu_s == pytest.approx(0.02 * s.calls)
        assert s.cost.cpu_per_call_minute == pytest.approx(0.02 / (0.03 / 60))
        assert s.harness_limited == []
        assert {g.name for g in s.gates} == {"lat"}
    assert result.steps[2].p90_ms == pytest.approx(3200, rel=0.02)
    labels = {lab for lab, _ in session.labels}
    assert labels == {"c1-greeting", "c2-greeting", "c4-greeting"}
    repeats = [r for lab, r in session.labels if lab == "c2-greeting"]
    assert repeats == list(range(1, len(repeats) + 1))  # one directory per call
    assert lines[0] == "step 1/4: 1 concurrent call for 0.4s"
    assert lines[-1].startswith("knee: 4 concurrent calls (the agent held 2)")


def test_keep_going_runs_every_step_and_marks_rig_limited_steps(scenarios):
    session = StandInSession(knee=100, underrun_at=3)
    cfg = LoadConfig(ramp=(1, 2, 4), step_s=0.25, stagger_s=0.0, stop_at_knee=False)
    result = run_load(session, scenarios, cfg, gates=GATES, host_cpu=lambda: None)
    assert [s.concurrency for s in result.steps] == [1, 2, 4]
    assert result.knee is None
    assert result.steps[2].harness_limited and "underruns" in result.steps[2].harness_limited[0]
    table = render_table(result.steps, result.knee, 2.0, result.knee_line)
    assert table.splitlines()[0].split()[:3] == ["concurrency", "calls", "pass"]
    assert "HARNESS-LIMITED" in table.splitlines()[4]
    assert "knee: none up to 4 concurrent calls" in table
    assert "the rig was the bottleneck at 4 concurrent calls" in table


def test_the_rigs_share_of_the_host_is_measured_per_step(scenarios):
    session = StandInSession(knee=100)
    ticks = iter([HostCpu(10.0, 100.0), HostCpu(10.5, 101.0)])
    result = run_load(
        session,
        scenarios,
        LoadConfig(ramp=(1,), step_s=0.2, stagger_s=0.0),
        gates=GATES,
        host_cpu=lambda: next(ticks),
    )
    s = result.steps[0]
    assert s.cost.rig_share == pytest.approx(min(1.0, s.cost.caller_cpu_s / 0.5))


def test_staggered_lines_start_apart(scenarios):
    session = StandInSession(call_s=0.5)
    t0 = time.monotonic()
    starts: list[float] = []
    orig = session.submit

    def submit(*a, **kw):
        starts.append(time.monotonic() - t0)
        return orig(*a, **kw)

    session.submit = submit  # type: ignore[method-assign]
    run_load(session, scenarios, LoadConfig(ramp=(4,), step_s=0.4, stagger_s=0.05), gates=GATES)
    first_four = starts[:4]
    assert first_four == sorted(first_four)
    assert first_four[3] - first_four[0] >= 0.14  # 3 x 0.05 s apart


# --- what is written ----------------------------------------------------------------------


def result_of(tmp_path: Path, scenarios) -> LoadResult:
    session = StandInSession(knee=1)
    result = run_load(session, scenarios, LoadConfig(ramp=(1, 2), step_s=0.2), gates=GATES)
    result.run_dir = tmp_path
    return result


@settings(deadline=None, max_examples=25)
@given(
    st.lists(
        st.builds(
            StepResult,
            concurrency=st.integers(1, 64),
            calls=st.integers(0, 50),
            p50_ms=st.one_of(st.none(), st.floats(0, 1e5)),
            p90_ms=st.one_of(st.none(), st.floats(0, 1e5)),
            cost=st.builds(
                HarnessCost,
                caller_cpu_s=st.floats(0, 1e3),
                call_minutes=st.floats(0, 1e3),
                loop_lag_p99_ms=st.one_of(st.none(), st.floats(0, 1e4)),
            ),
            harness_limited=st.lists(st.text(max_size=20), max_size=2),
        ),
        max_size=4,
    )
)
def test_steps_round_trip_through_the_load_file(steps):
    for s in steps:
        back = StepResult.from_dict(json.loads(json.dumps(s.to_dict(), allow_nan=False)))
        assert back.concurrency == s.concurrency and back.calls == s.calls
        assert back.harness_limited == s.harness_limited
        for a, b in ((back.p90_ms, s.p90_ms), (back.cost.loop_lag_p99_ms, s.cost.loop_lag_p99_ms)):
            assert (a is None) == (b is None) and (a is None or math.isclose(a, b, abs_tol=0.1))


def test_load_file_is_written_and_read_through_the_run_directory(tmp_path: Path, scenarios):
    result = result_of(tmp_path, scenarios)
    RunDir(tmp_path).write_load(result.to_dict())  # type: ignore[arg-type]
    doc = RunDir(tmp_path).read_load()
    assert doc is not None and doc["format"] == "harness.load/1"
    assert [s["concurrency"] for s in doc["steps"]] == [1, 2]
    assert doc["knee"]["concurrency"] == 2 and doc["knee_line"].startswith("knee: 2 ")
    assert doc["cost"]["cpu_per_call_minute"] > 0
    (tmp_path / "load.json").write_text("[1, 2]")
    with pytest.raises(ScenarioError, match="list of steps"):
        RunDir(tmp_path).read_load()


def test_report_has_a_load_section_with_its_chart(tmp_path: Path, scenarios):
    from tests.unit.test_report import add_call, parse

    run = tmp_path / "run"
    add_call(run, "c1-booking")
    add_call(run, "c2-booking", cid="conv-c2")
    result = result_of(run, scenarios)
    result.steps[1].harness_limited = ["caller audio underruns: 40 ms of gaps in 1 call"]
    RunDir(run).write_load(result.to_dict())  # type: ignore[arg-type]
    from harness.report import write_report

    out = write_report(run)
    page = parse(out)
    html = out.read_text()
    assert "load" in page.ids
    assert page.find("svg", cls="load-chart")
    assert len(page.find("polyline", cls="lat-p90")) == 1
    assert page.find("rect", cls="rig-limited")
    assert "knee: 2 concurrent calls" in html and "harness-limited: caller audio" in html
    assert page.find("a", href="#load")


# --- shards ---------------------------------------------------------------------------------


def test_shards_merge_step_by_step(tmp_path: Path, scenarios):
    from harness.load.merge import merge_load_files, merged_load_text

    cfg = LoadConfig(ramp=(1, 2), step_s=0.25, stagger_s=0.0, stop_at_knee=False)
    shards = []
    for i in range(3):
        result = run_load(StandInSession(knee=1), scenarios, cfg, gates=GATES)
        if i == 2:
            result.steps[1].harness_limited = ["event-loop lag p99 80 ms > 50 ms"]
        RunDir(tmp_path / f"s{i}").write_load(result.to_dict())  # type: ignore[arg-type]
        shards.append(result)
    docs = [(tmp_path / f"s{i}", RunDir(tmp_path / f"s{i}").read_load()) for i in range(3)]
    merged, notes = merge_load_files(docs, GATES)
    assert notes == []
    assert [s.concurrency for s in merged.steps] == [3, 6]
    for i, step in enumerate(merged.steps):
        parts = [r.steps[i] for r in shards]
        assert step.calls == sum(p.calls for p in parts)
        assert step.cost.caller_cpu_s == pytest.approx(sum(p.cost.caller_cpu_s for p in parts))
        whole = ScoreStore.merged(p.store for p in parts)  # type: ignore[misc]
        assert step.p90_ms == whole.select("response_latency").quantile(0.9)
    assert merged.steps[1].harness_limited == ["shard 3: event-loop lag p99 80 ms > 50 ms"]
    # 2 calls at once broke each shard: the merged knee is found again, at 6
    assert merged.knee is not None and merged.knee.concurrency == 6
    text = merged_load_text([tmp_path / "s0", tmp_path / "s1", tmp_path / "s2"], GATES)
    assert text is not None and text.startswith("load test, 3 shards merged step by step:")
    assert "knee: 6 concurrent calls" in text


def test_shards_that_ramped_differently_do_not_merge(tmp_path: Path, scenarios):
    from harness.load.merge import merge_load_files, merged_load_text

    a = run_load(StandInSession(), scenarios, LoadConfig(ramp=(1, 2), step_s=0.1), gates=GATES)
    b = run_load(StandInSession(), scenarios, LoadConfig(ramp=(1, 3), step_s=0.1), gates=GATES)
    docs = [(tmp_path / n, r.to_dict()) for n, r in (("a", a), ("b", b))]
    with pytest.raises(ScenarioError, match="do not line up"):
        merge_load_files(docs, GATES)
    (tmp_path / "plain").mkdir()
    assert merged_load_text([tmp_path / "plain"], GATES) is None
