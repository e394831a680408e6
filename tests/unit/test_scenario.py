import string

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from harness.core.errors import ScenarioError
from harness.scenario.model import load_scenario, load_scenarios, parse_scenario, resolve_agent_name

GOOD = """\
id: booking
description: books a cleaning
agent: clinic
greeting:
  reply_contains: [bright smile]
timeouts: {agent_join_s: 5, turn_s: 10}
turns:
  - say: I would like to book a cleaning
    expect:
      reply_contains: what day
      tool_called: check_availability
  - silence_ms: 3000
  - say: goodbye
    expect:
      tool_called: {name: request_booking, args: {day: tuesday}}
"""


def test_parses_a_full_scenario() -> None:
    s = parse_scenario(GOOD, "scenarios/booking.yaml")
    assert s.id == "booking"
    assert [t.kind for t in s.turns] == ["say", "silence", "say"]
    assert s.turns[0].expect.reply_contains == ["what day"]
    assert s.turns[0].expect.tool_called.name == "check_availability"
    assert s.turns[2].expect.tool_called.args == {"day": "tuesday"}
    assert s.timeouts.turn_s == 10 and s.timeouts.call_s == 180
    assert s.line_of("turns", 1, "silence_ms") == 12


def test_missing_say_names_file_line_and_field() -> None:
    src = GOOD.replace("  - say: goodbye\n", "  - sya: goodbye\n")
    with pytest.raises(ScenarioError) as e:
        parse_scenario(src, "scenarios/x.yaml")
    assert str(e.value) == "scenarios/x.yaml:13: turns[2].sya: unknown key (check its spelling)"


def test_turn_without_say_reports_field_required() -> None:
    src = "id: a\nturns:\n  - say: hi\n  - expect: {reply_contains: [x]}\n"
    with pytest.raises(ScenarioError) as e:
        parse_scenario(src, "scenarios/x.yaml")
    assert str(e.value).startswith("scenarios/x.yaml:4: turns[1].say: field required")


def test_missing_turns_and_bad_yaml() -> None:
    with pytest.raises(ScenarioError, match=r"x.yaml:1: turns: field required"):
        parse_scenario("id: a\n", "x.yaml")
    with pytest.raises(ScenarioError, match=r"x.yaml:3: invalid YAML"):
        parse_scenario("id: a\nturns: [\n", "x.yaml")
    with pytest.raises(ScenarioError, match=r"x.yaml: empty scenario file"):
        parse_scenario("", "x.yaml")


def test_duplicate_ids_are_rejected(tmp_path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("id: same\nturns:\n  - say: hi\n")
    with pytest.raises(ScenarioError, match="duplicate scenario id 'same'"):
        load_scenarios([tmp_path])


KEYS = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
    lambda k: k not in {"say", "silence_ms", "expect", "voice", "conditions"}
)


@given(key=KEYS, index=st.integers(0, 3))
def test_any_unknown_turn_key_is_reported_at_its_line(key: str, index: int) -> None:
    turns = [{"say": f"sentence {i}"} for i in range(4)]
    turns[index][key] = 1
    src = yaml.safe_dump({"id": "t", "turns": turns}, sort_keys=False)
    with pytest.raises(ScenarioError) as e:
        parse_scenario(src, "s.yaml")
    err = e.value
    assert err.field == f"turns[{index}].{key}"
    assert err.line is not None
    assert src.splitlines()[err.line - 1].strip().lstrip("- ").strip("'").startswith(key)


@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_loader(text: str) -> None:
    try:
        parse_scenario(text, "fuzz.yaml")
    except ScenarioError as e:
        assert str(e).startswith("fuzz.yaml")


def test_a_scenario_without_agent_uses_agent_name_or_says_how_to_fix_it() -> None:
    s = parse_scenario("id: a\nturns:\n  - say: hi\n", "scenarios/a.yaml")
    assert s.agent is None
    assert resolve_agent_name(s, "my-agent") == "my-agent"
    with pytest.raises(ScenarioError) as e:
        resolve_agent_name(s, None)
    assert str(e.value) == (
        "scenarios/a.yaml: agent: not set; add `agent: <your agent_name>` to the scenario "
        "or pass --agent-name"
    )


def test_agent_name_overrides_the_scenarios_agent() -> None:
    s = parse_scenario(GOOD, "scenarios/booking.yaml")
    assert resolve_agent_name(s, None) == "clinic"
    assert resolve_agent_name(s, "other") == "other"


def test_errors_name_the_file_as_shown_but_it_is_read_where_it_is(tmp_path, monkeypatch) -> None:
    (tmp_path / "scenarios").mkdir()
    real = tmp_path / "scenarios" / "a.yaml"
    real.write_text("id: a\nturns:\n  - say: hi\n  - sya: x\n")
    monkeypatch.chdir(tmp_path / "scenarios")  # the shown path is not right from here
    with pytest.raises(ScenarioError) as e:
        load_scenario(real, shown_as="scenarios/a.yaml")
    assert str(e.value).startswith("scenarios/a.yaml:4: turns[1].sya: unknown key")
    real.write_text("id: a\nturns:\n  - say: hi\n")
    s = load_scenario(real, shown_as="scenarios/a.yaml")
    assert s.path == real  # relative voice files resolve from the real file
    assert str(s.error("bad", "turns", 0, "say")) == "scenarios/a.yaml:3: turns[0].say: bad"
    with pytest.raises(ScenarioError, match=r"^scenarios/gone.yaml: cannot read scenario"):
        load_scenario(tmp_path / "gone.yaml", shown_as="scenarios/gone.yaml")
