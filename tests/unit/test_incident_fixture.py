"""The fixture writer: quoting, comments, layout, and the parse check before writing."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.errors import ScenarioError
from harness.incident.fixture import (
    FixtureSpec,
    FixtureTurn,
    check_fixture,
    comment,
    quote,
    render_fixture,
)

INCIDENT = {
    "id": "INC-7",
    "source_trace_id": "0af7651916cd43dd8448eb211c80319c",
    "conversation_id": "c-1",
    "imported_at": "2025-11-21T10:00:00Z",
    "occurred_at": "2025-11-20T09:00:00Z",
    "severity": "SEV-2",
    "failing_layer": "llm_dialog",
    "failed_evaluators": ["loops"],
}


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=60))
def test_quote_round_trips_any_text(text):
    assert yaml.safe_load(f"k: {quote(text)}") == {"k": text}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_comments_stay_on_one_line(text):
    line = comment(text)
    assert "\n" not in line and "\r" not in line and len(line) <= 96
    assert yaml.safe_load(f"# {line}\nk: 1\n") == {"k": 1}


def test_comment_keeps_indent_and_truncates():
    assert comment("  - a\tb\nc") == "  - a b c"
    assert comment("x" * 200).endswith("...")


def spec(**kw) -> FixtureSpec:
    base = dict(
        id="INC-7",
        incident=INCIDENT,
        header=("Incident INC-7: SEV-2.", "  - loops: loop_detected = 1"),
        agent="clinic",
        expect={"background": [{"action": "write_booking", "approval": "approved"}]},
        turns=[
            FixtureTurn(
                say='hi "there"', pause_before_ms=500, notes=('agent (greeting): "Hello"',)
            ),
            FixtureTurn(silence_ms=1200),
            FixtureTurn(
                say="yes",
                barge_in_ms=300,
                voice={"engine": "recorded", "turns": ["turn-3.wav"]},
                conditions=[{"narrowband": {"codec": "ulaw"}}],
                trailing=("redacted: PHONE x1",),
            ),
        ],
        footer=('agent: "Goodbye."',),
    )
    base.update(kw)
    return FixtureSpec(**base)


def test_render_layout_and_parse():
    text = render_fixture(spec())
    lines = text.splitlines()
    assert lines[0] == "# Incident INC-7: SEV-2."
    assert lines[1] == "#   - loops: loop_detected = 1"
    assert lines.index("id: INC-7") < lines.index("incident:") < lines.index("turns:")
    assert '  # agent (greeting): "Hello"' in lines
    assert '  - say: "hi \\"there\\""' in lines
    assert "    barge_in_ms: 300" in lines
    assert "    # redacted: PHONE x1" in lines
    assert lines[-1] == '# agent: "Goodbye."'
    data = yaml.safe_load(text)
    assert data["turns"][0] == {"say": 'hi "there"', "pause_before_ms": 500}
    assert data["turns"][2]["voice"] == {"engine": "recorded", "turns": ["turn-3.wav"]}
    scenario = check_fixture(text)
    assert scenario.id == "INC-7"
    assert [t.kind for t in scenario.turns] == ["say", "silence", "say"]
    assert scenario.turns[2].barge_in_ms == 300
    assert scenario.expect is not None and scenario.expect.background[0].approval == "approved"


def test_incident_expectations_are_checked():
    text = render_fixture(
        spec(expect={"no_loop": True, "max_response_latency_ms": 5000, "end_state": {}})
    )
    assert yaml.safe_load(text)["expect"]["no_loop"] is True
    check_fixture(text)
    with pytest.raises(ScenarioError, match="max_response_latency_ms"):
        check_fixture(render_fixture(spec(expect={"max_response_latency_ms": -1})))


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"severity": "SEV-9"}, "severity"),
        ({"failing_layer": "database"}, "failing_layer"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_incident_metadata_is_refused(patch, field):
    text = render_fixture(spec(incident={**INCIDENT, **patch}))
    with pytest.raises(ScenarioError) as info:
        check_fixture(text)
    assert field in str(info.value)


def test_bad_voice_or_conditions_are_refused():
    bad_voice = spec(turns=[FixtureTurn(say="x", voice={"engine": "recorded", "turns": []})])
    with pytest.raises(ScenarioError, match=r"turns\[0\]\.voice"):
        check_fixture(render_fixture(bad_voice))
    bad_cond = spec(turns=[FixtureTurn(say="x", conditions=[{"noise": {"snr_db": 999}}])])
    with pytest.raises(ScenarioError, match="snr_db"):
        check_fixture(render_fixture(bad_cond))
