"""Bad input never hangs the harness, never exhausts it, and never turns a gate off.
Each case here hung, raised a traceback or loaded silently before."""

from __future__ import annotations

import os
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.errors import HarnessError, ScenarioError
from harness.gates import GatesFileError, load_gates
from harness.scenario.model import load_scenario, load_scenarios

SCENARIO = """\
id: hours
agent: clinic
turns:
  - say: "what are your opening hours"
"""
BOMB = """\
a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def fast(fn, limit_s: float = 2.0):
    t0 = time.monotonic()
    try:
        return fn()
    finally:
        assert time.monotonic() - t0 < limit_s, "took too long"


@pytest.mark.parametrize("loader", ["scenario", "gates"])
def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, loader):
    f = tmp_path / "x.yaml"
    f.write_text(BOMB)
    load = load_scenario if loader == "scenario" else load_gates
    with pytest.raises(ScenarioError, match="expands to more than"):
        fast(lambda: load(f))


def test_a_huge_scenario_is_refused_by_its_size(tmp_path):
    f = tmp_path / "big.yaml"
    f.write_text(SCENARIO + "# " + "x" * (50 * 1024 * 1024) + "\n")
    with pytest.raises(ScenarioError, match=r"over the 2\.1 MB limit \(set HARNESS_MAX_CONFIG"):
        fast(lambda: load_scenario(f))


def test_deep_nesting_is_an_error_not_a_recursion_traceback(tmp_path):
    f = tmp_path / "deep.yaml"
    f.write_text("id: x\nagent: clinic\nturns: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(ScenarioError) as e:
        fast(lambda: load_scenario(f))
    assert "deep" in str(e.value) and "deep.yaml" in str(e.value)


def test_a_fifo_among_the_scenarios_is_an_error_not_a_hang(tmp_path):
    (tmp_path / "ok.yaml").write_text(SCENARIO)
    os.mkfifo(tmp_path / "x.yaml")
    box: list[BaseException] = []

    def run():
        try:
            load_scenarios([tmp_path])
        except BaseException as e:
            box.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(5)
    if t.is_alive():  # unblock the reader so the thread can end
        with open(tmp_path / "x.yaml", "w"):
            pass
        pytest.fail("reading a FIFO named x.yaml blocked")
    assert box and isinstance(box[0], ScenarioError)
    assert "x.yaml" in str(box[0]) and "regular file" in str(box[0])


@pytest.mark.parametrize("loader", ["scenario", "gates"])
def test_a_non_utf8_file_is_named(tmp_path, loader):
    f = tmp_path / "latin1.yaml"
    f.write_bytes("id: caf\xe9\n".encode("latin-1"))
    load = load_scenario if loader == "scenario" else load_gates
    with pytest.raises(ScenarioError) as e:
        load(f)
    assert str(e.value).startswith(f"{f}:1: ") and "not UTF-8" in str(e.value)


def test_duplicate_keys_are_an_error_with_both_lines(tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text(SCENARIO + "id: other\n")
    with pytest.raises(
        ScenarioError, match=r"dup.yaml:5: .*duplicate key 'id' \(first on line 1\)"
    ):
        load_scenario(f)


def test_an_invalid_reply_regex_is_refused_at_load_time(tmp_path):
    f = tmp_path / "re.yaml"
    f.write_text(SCENARIO + '    expect:\n      reply_matches: "monday (to"\n')
    with pytest.raises(ScenarioError, match=r"turns\[0\]\.expect\.reply_matches.*not a regular"):
        load_scenario(f)


def test_a_misspelt_gate_metric_is_a_configuration_error(tmp_path):
    f = tmp_path / "harness.yaml"
    f.write_text(
        "gates:\n  - name: latency\n    metric: e2e_latncy\n    statistic: p90\n    fail: 3500\n"
    )
    with pytest.raises(GatesFileError) as e:
        load_gates(f)
    text = str(e.value)
    assert text.startswith(f"{f}:3: gates[0].metric: ")
    assert "did you mean 'e2e_latency'" in text and "known metrics are" in text
    # a metric of the team's own, with its unit, is allowed
    f.write_text(
        "gates:\n  - {name: c, metric: team_metric, unit: count, statistic: max, fail: 3}\n"
    )
    assert [g.metric for g in load_gates(f)] == ["team_metric"]


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_anything_but_our_errors(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("fuzz")
    f = d / "x.yaml"
    f.write_bytes(data)
    for load in (load_scenario, load_gates):
        try:
            load(f)
        except HarnessError:
            pass
