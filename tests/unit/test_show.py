from pathlib import Path

from harness.cli import main
from harness.report.tree import render_tree
from harness.trace.otlp import load_instance

FIXTURE = Path(__file__).parents[1] / "fixtures/otel_file_exporter.jsonl"


def test_tree_groups_layers_and_shows_key_attributes() -> None:
    text = render_tree(load_instance(FIXTURE))
    lines = text.splitlines()
    sections = [line for line in lines if line.startswith("[")]
    assert [s.split("]")[0] for s in sections] == ["[conversational", "[background", "[workflow"]
    assert any("tool=check_availability" in line for line in lines)
    assert any("action=create_booking  mutating  approval=approved" in line for line in lines)
    assert "↳ linked to the call" in text
    # children are indented under their parents
    llm = next(i for i, line in enumerate(lines) if line.strip().startswith("llm_node"))
    turn = max(i for i in range(llm) if lines[i].strip().startswith("agent_turn"))
    assert len(lines[llm]) - len(lines[llm].lstrip()) > len(lines[turn]) - len(lines[turn].lstrip())


def test_show_command_prints_the_tree(capsys) -> None:
    assert main(["show", str(FIXTURE)]) == 0
    assert "conversation c-fixture-0001  (complete)" in capsys.readouterr().out


def test_show_names_a_missing_file(capsys, tmp_path) -> None:
    assert main(["show", str(tmp_path / "nope")]) == 2
    assert str(tmp_path / "nope") in capsys.readouterr().err
