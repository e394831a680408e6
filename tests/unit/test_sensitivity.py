"""harness sensitivity without a server: the catalogue loader (file:line errors, fuzzed),
the runner over a stand-in session that hands back prepared call outcomes (caught by an
expectation, by a gate, after how many calls, missed, errors, false alarms), the table,
sensitivity.json and JUnit XML."""

from __future__ import annotations

import concurrent.futures
import json
import re
import textwrap
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import build_parser
from harness.core.errors import CallFailure, HarnessError, InfrastructureError
from harness.evaluators.base import Score
from harness.gates import ScoreStore, default_gates
from harness.scenario.model import load_scenario
from harness.sensitivity import (
    SENSITIVITY_FILE,
    CatalogueError,
    load_catalogue,
    render_table,
    run_sensitivity,
    scenario_for,
    to_dict,
    write_json,
    write_junit,
)
from harness.session.engine import CallOutcome
from harness.trace.health import TraceHealth

ROOT = Path(__file__).resolve().parents[2]
SMOKE = [load_scenario(p) for p in sorted((ROOT / "scenarios" / "smoke").glob("*.yaml"))]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "faults.yaml"
    p.write_text(textwrap.dedent(text))
    return p


# --- the catalogue ---------------------------------------------------------------------------


def test_the_clinic_catalogue_loads_and_covers_every_layer():
    cat = load_catalogue(ROOT / "examples" / "clinic" / "faults.yaml")
    layers = {f.layer for f in cat.faults}
    assert {"stt", "llm", "tts", "turn_taking", "tools", "background", "workflow"} <= layers
    assert {"audio", "network", "caller"} <= layers  # faults the harness controls
    from examples.clinic.faults import Faults

    for f in cat.faults:
        if f.agent is not None:  # every knob is one the clinic knows, at 1x and at half
            for scale in (1.0, 0.5):
                Faults.from_metadata(f.metadata(scale), base=Faults())


def test_magnitude_knobs_scale_and_integers_stay_integers():
    cat = load_catalogue(ROOT / "examples" / "clinic" / "faults.yaml")
    f = {x.id: x for x in cat.faults}
    assert f["tts_silence_mid_reply"].metadata(0.5) == {
        "faults": {"tts_gap_ms": 900, "tts_gap_share": 0.5}
    }
    assert f["tts_glitch"].metadata(0.5)["faults"]["tts_glitch_per_s"] == 2.5
    assert f["noisy_line"].metadata() is None
    assert "caller.barge_in_ms=700" in f["impatient_caller"].injected()


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("faults: []\n", r"faults\.yaml:1: faults", "at least 1 item"),
        (
            "faults:\n  - id: a\n    layer: llm\n    agent: {x: 1}\n    colour: red\n",
            r"faults\.yaml:5: faults\[0\]\.colour",
            "unknown key",
        ),
        (
            "faults:\n  - id: a\n    layer: dns\n    agent: {x: 1}\n",
            r"faults\.yaml:3: faults\[0\]\.layer",
            "'dns'",
        ),
        ("faults:\n  - id: a\n    layer: llm\n", r"faults\.yaml:2: faults\[0\]\.agent", "required"),
        (
            "faults:\n  - id: a\n    layer: llm\n    agent: {x: 1}\n    magnitude: [y]\n",
            r"faults\.yaml:5: faults\[0\]\.magnitude",
            "'y' is not one of this fault's `agent` knobs",
        ),
        (
            "faults:\n  - id: a\n    layer: llm\n    agent: {x: fast}\n    magnitude: [x]\n",
            r"faults\.yaml:5: faults\[0\]\.magnitude",
            "not a number to scale",
        ),
        (
            "faults:\n  - {id: a, layer: llm, agent: {x: 1}}\n"
            "  - {id: a, layer: llm, agent: {x: 2}}\n",
            r"faults\.yaml:1: faults",
            "two faults have the id 'a'",
        ),
        (
            "faults:\n  - id: a\n    layer: caller\n    caller: {barge_in_ms: true}\n",
            r"faults\.yaml:4: faults\[0\]\.caller\.barge_in_ms",
            "not a number",
        ),
        (
            "faults:\n  - id: a\n    layer: caller\n    caller: {}\n",
            r"faults\.yaml:4: faults\[0\]\.caller",
            "give at least one",
        ),
        (
            "faults:\n  - id: a\n    layer: audio\n    conditions:\n      - noise: {snr_db: 900}\n",
            r"faults\.yaml:5: faults\[0\]\.conditions\[0\]\.noise\.snr_db",
            "out of range",
        ),
        ("faults:\n  - id: a\n   layer: x\n", r"faults\.yaml:3", "invalid YAML"),
        ("- 1\n", r"faults\.yaml:1", "a mapping with a `faults:` list"),
        ("", r"faults\.yaml", "empty catalogue"),
    ],
)
def test_catalogue_errors_name_file_line_and_field(tmp_path, text, where, message):
    with pytest.raises(CatalogueError) as err:
        load_catalogue(write(tmp_path, text))
    assert re.search(where, str(err.value)), str(err.value)
    assert message in str(err.value)


def test_selecting_faults(tmp_path):
    cat = load_catalogue(
        write(
            tmp_path,
            "faults:\n  - {id: a, layer: llm, agent: {x: 1}}\n"
            "  - {id: b, layer: stt, agent: {y: 1}}\n",
        )
    )
    assert [f.id for f in cat.select(["b"]).faults] == ["b"]
    with pytest.raises(CatalogueError, match="no fault 'c' in the catalogue; its faults are a, b"):
        cat.select(["c"])


FUZZ = settings(
    max_examples=60,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
KEYS = ["faults", "id", "layer", "agent", "magnitude", "conditions", "caller", "expect", "llm"]
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.sampled_from(KEYS),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=25,
)


@FUZZ
@given(value=values)
def test_any_document_loads_or_raises_a_catalogue_error(tmp_path, value):
    p = tmp_path / "f.yaml"
    p.write_text(yaml.safe_dump(value))
    try:
        load_catalogue(p)
    except CatalogueError:
        pass
    assert [x.name for x in tmp_path.iterdir()] == ["f.yaml"]


@FUZZ
@given(content=st.binary(max_size=300))
def test_any_bytes_load_or_raise_a_harness_error(tmp_path, content):
    p = tmp_path / "f.yaml"
    p.write_bytes(content)
    try:
        load_catalogue(p)
    except HarnessError:
        pass  # the project's own error, naming the file
    assert [x.name for x in tmp_path.iterdir()] == ["f.yaml"]


# --- the caller's behaviour as a fault ------------------------------------------------------


def test_caller_behaviour_changes_every_say_turn_under_an_id_of_its_own(tmp_path):
    cat = load_catalogue(
        write(
            tmp_path,
            "faults:\n  - id: rude\n    layer: caller\n"
            "    caller: {barge_in_ms: 700, voice: 'espeak:en-gb'}\n",
        )
    )
    booking = next(s for s in SMOKE if s.id == "booking")
    rude = scenario_for(booking, cat.faults[0])
    assert rude.id == "booking.rude" and rude.voice == "espeak:en-gb"
    assert [t.barge_in_ms for t in rude.turns if t.kind == "say"] == [700] * 5
    assert booking.turns[0].barge_in_ms is None  # the suite's own scenario is untouched
    agent_only = load_catalogue(
        write(tmp_path, "faults:\n  - {id: a, layer: llm, agent: {x: 1}}\n")
    )
    assert scenario_for(booking, agent_only.faults[0]) is booking


# --- the runner --------------------------------------------------------------------------------


class StandIn:
    """A session that places no call: it hands back the outcome ``behave`` makes for the
    fault in the dispatch metadata (or the conditions), scenario and repeat."""

    def __init__(self, tmp_path: Path, behave) -> None:
        self.tmp_path = tmp_path
        self.behave = behave
        self.placed: list[tuple[str, str, int, dict | None]] = []

    def submit(self, scenario, repeat=1, *, dispatch_metadata=None, conditions=None, label=None):
        fault = (label or "clean/").split("/")[0]
        self.placed.append((fault, scenario.id, repeat, dispatch_metadata))
        scores, failures, error = self.behave(fault, scenario.id, repeat)
        out = CallOutcome(
            scenario.id,
            repeat,
            f"c-{fault}-{scenario.id}-{repeat}",
            self.tmp_path / fault / scenario.id,
            1.5,
            None,
            failures=tuple(failures),
            error=error,
            scores=tuple(scores),
            trace=TraceHealth("complete", 10),
        )
        f: concurrent.futures.Future = concurrent.futures.Future()
        f.set_result(out)
        return f


def healthy(scenario: str) -> list[Score]:
    lat = [
        Score("e2e_latency", 900.0 + 10 * k, "ms", span="agent_turn", layer="conversational")
        for k in range(5)
    ]
    return [*lat, Score("unbacked_claims", 0.0, "count", layer="conversational")]


def behave(fault: str, scenario: str, repeat: int):
    scores = healthy(scenario)
    if fault == "phantom" and scenario == "booking":
        scores = [*scores[:-1], Score("unbacked_claims", 1.0, "count", layer="conversational")]
    if fault == "slow":  # only the p90 gate (10 samples: the second call) can see it
        scores = [
            Score("e2e_latency", 3900.0, "ms", span="agent_turn", layer="conversational")
            for _ in range(5)
        ]
    if fault == "confused" and scenario == "greeting":
        return scores, ["note: host busy", "turn 1: agent reply 'x' does not contain 'y'"], None
    if fault == "left":
        return scores, [], CallFailure("agent left the room at turn 2")
    if fault == "down":
        return [], [], InfrastructureError("cannot connect the caller to LiveKit")
    return scores, [], None


def catalogue(tmp_path: Path, ids: list[str]):
    lines = ["faults:"] + [f"  - {{id: {i}, layer: llm, agent: {{{i}: 1}}}}" for i in ids]
    return load_catalogue(write(tmp_path, "\n".join(lines) + "\n"))


def test_each_fault_is_caught_by_its_first_alarm_and_stops_there(tmp_path):
    session = StandIn(tmp_path, behave)
    cat = catalogue(tmp_path, ["phantom", "slow", "confused", "left", "fine", "down"])
    result = run_sensitivity(session, SMOKE, cat, calls=2, gates=default_gates())
    runs = {r.name: r for r in result.faults}
    assert result.clean.status == "clean" and len(result.clean.calls) == 6
    ph = runs["phantom"]
    assert ph.status == "caught" and ph.caught_by.kind == "gate"
    assert (ph.caught_by.name, ph.caught_by.call) == ("unbacked_claims", 1)  # booking first
    assert len(ph.calls) == 1  # stopped at its alarm
    sl = runs["slow"]
    assert (sl.caught_by.name, sl.caught_by.call) == ("e2e_latency_p90", 2)
    co = runs["confused"]
    assert (co.caught_by.kind, co.caught_by.name, co.caught_by.call) == (
        "expectation",
        "greeting",
        2,
    )
    assert co.caught_by.detail.startswith("turn 1:")  # notes are not alarms
    # a broken expectation stands once the scenario, placed again, breaks one too
    assert co.caught_by.confirmed_at == 3 and len(co.calls) == 3
    assert [(c.scenario, c.repeat) for c in co.calls] == [
        ("booking", 1),
        ("greeting", 1),
        ("greeting", 3),  # numbered after the run's two rounds: its own artifacts
    ]
    assert runs["left"].caught_by.detail == "agent left the room at turn 2"
    assert runs["fine"].status == "missed" and len(runs["fine"].calls) == 6
    assert runs["down"].status == "error" and runs["down"].errors == 6
    assert result.caught == 4 and not result.passed
    # every call of a fault's run carried its knobs as dispatch metadata
    assert {m["faults"]["phantom"] for f, _, _, m in session.placed if f == "phantom"} == {1}
    assert all(m is None for f, _, _, m in session.placed if f == "clean")


def test_the_clean_run_is_the_baseline_and_a_uniform_slowdown_fails_it(tmp_path):
    def slower(fault, scenario, repeat):
        scores, failures, error = behave("", scenario, repeat)
        if fault == "uniform":  # +400 ms everywhere: every absolute gate still passes
            scores = [
                Score(s.name, s.value + 400, s.unit, s.span, s.layer)
                if s.name == "e2e_latency"
                else s
                for s in scores
            ]
        return scores, failures, error

    cat = catalogue(tmp_path, ["uniform"])
    result = run_sensitivity(StandIn(tmp_path, slower), SMOKE, cat, calls=3, gates=default_gates())
    (run,) = result.faults
    assert run.status == "caught"
    assert run.caught_by.name in ("e2e_latency_p50_baseline", "e2e_latency_p90_baseline")
    assert result.baseline_source == "the clean run"
    # without that baseline (a file of the same faulty figures), it passes every gate
    store = ScoreStore()
    store.merge(run.store)
    again = run_sensitivity(
        StandIn(tmp_path, slower), SMOKE, cat, calls=3, gates=default_gates(), baseline=store
    )
    assert again.faults[0].status == "missed"


def test_false_alarms_of_the_clean_run_and_flakes(tmp_path):
    def clean_fails(fault, scenario, repeat):
        scores, failures, error = behave(fault, scenario, repeat)
        if fault == "clean" and scenario == "greeting":  # every time: a real false alarm
            return scores, ["turn 1: no reply"], None
        return scores, failures, error

    result = run_sensitivity(
        StandIn(tmp_path, clean_fails),
        SMOKE,
        catalogue(tmp_path, ["phantom"]),
        calls=2,
        gates=default_gates(),
    )
    assert result.clean.status == "false_alarm"
    assert [(a.kind, a.name, a.call, a.confirmed_at) for a in result.clean.alarms] == [
        ("expectation", "greeting", 2, 3)
    ]
    assert len(result.clean.calls) == 8  # every call, and each broken one again
    assert not result.passed and result.caught == 1


def test_a_broken_expectation_that_does_not_reproduce_is_a_flake(tmp_path):
    def once(fault, scenario, repeat):
        scores, failures, error = behave("", scenario, repeat)
        if scenario == "booking" and repeat == 1:  # a word misheard once, whatever the run
            return scores, ["turn 3: agent reply 'x' does not contain 'your name'"], None
        if fault == "phantom" and scenario == "booking":
            claim = Score("unbacked_claims", 1.0, "count", layer="conversational")
            scores = [*scores[:-1], claim]
        return scores, failures, error

    result = run_sensitivity(
        StandIn(tmp_path, once),
        SMOKE,
        catalogue(tmp_path, ["phantom"]),
        calls=2,
        gates=default_gates(),
    )
    assert result.clean.status == "clean" and result.clean.alarms == []
    assert [a.name for a in result.clean.flakes] == ["booking"]
    assert "1 flaky, not reproduced" in render_table(result)
    (ph,) = result.faults
    # the flake is no catch: the fault is caught by the gate of what it does, on the
    # booking's second call (the one placed to confirm the flake)
    assert [a.name for a in ph.flakes] == ["booking"]
    assert (ph.caught_by.kind, ph.caught_by.name, ph.caught_by.call) == (
        "gate",
        "unbacked_claims",
        2,
    )
    assert [(c.scenario, c.repeat) for c in ph.calls] == [("booking", 1), ("booking", 3)]


def test_table_json_and_junit(tmp_path):
    cat = catalogue(tmp_path, ["phantom", "fine"])
    result = run_sensitivity(StandIn(tmp_path, behave), SMOKE, cat, calls=1, gates=default_gates())
    table = render_table(result)
    lines = table.splitlines()
    assert lines[0].split() == ["fault", "layer", "injected", "result", "caught", "by", "calls"]
    assert re.search(r"^\(clean\)\s+-\s+-\s+OK\s+no alarm in 3 calls\s+3$", table, re.M)
    assert re.search(
        r"^phantom\s+llm\s+phantom=1\s+CAUGHT\s+gate unbacked_claims: .*\s1$", table, re.M
    )
    assert re.search(r"^fine\s+llm\s+fine=1\s+MISSED\s+nothing in 3 calls\s+3$", table, re.M)
    assert "score: 1/2 faults caught (50%); clean run: 0 false alarms in 3 calls" in table
    assert "missed: fine" in table

    path = write_json(result, tmp_path / "run")
    assert path.name == SENSITIVITY_FILE
    doc = json.loads(path.read_text())
    assert doc == json.loads(json.dumps(to_dict(result) | {"created_at": doc["created_at"]}))
    assert doc["format"] == "harness.sensitivity/1"
    assert doc["score"] == {"caught": 1, "total": 2, "ratio": 0.5} and doc["passed"] is False
    ph = doc["faults"][0]
    assert ph["status"] == "caught" and ph["calls_to_catch"] == 1
    assert ph["caught_by"] == {
        "kind": "gate",
        "name": "unbacked_claims",
        "detail": ph["caught_by"]["detail"],
        "call": 1,
        "confirmed_at": None,  # a gate rests on its samples: no second call
    }
    assert ph["agent"] == {"phantom": 1} and ph["calls"][0]["scenario"] == "booking"
    assert {"gate", "status", "value", "n", "detail"} <= set(ph["gates"][0])
    assert doc["clean"]["status"] == "clean" and len(doc["clean"]["calls"]) == 3

    junit = ET.parse(write_junit(result, tmp_path / "junit.xml")).getroot()
    assert junit.tag == "testsuite" and junit.get("tests") == "3" and junit.get("failures") == "1"
    cases = {c.get("name"): c for c in junit.iter("testcase")}
    assert set(cases) == {"clean", "phantom", "fine"}
    assert cases["fine"].find("failure").get("message") == "missed in 3 calls"
    assert cases["phantom"].find("failure") is None
    props = {p.get("name"): p.get("value") for p in cases["phantom"].iter("property")}
    assert props["caught_by"] == "gate unbacked_claims" and props["calls_to_catch"] == "1"


def test_the_command_line_takes_the_documented_options():
    args = build_parser().parse_args(
        [
            "sensitivity",
            "scenarios/smoke",
            "--catalogue",
            "f.yaml",
            "--calls",
            "3",
            "--scale",
            "0.5",
            "--faults",
            "a,b",
            "--junitxml",
            "j.xml",
            "--concurrency",
            "2",
        ]
    )
    assert (args.catalogue, args.calls, args.scale, args.faults, args.junitxml) == (
        "f.yaml",
        3,
        0.5,
        "a,b",
        "j.xml",
    )
    assert args.func.__name__ == "cmd_sensitivity"
