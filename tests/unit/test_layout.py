"""The layout holds: packages import only the packages below them (import-linter), and
one module owns the run directory's file names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWNER = ROOT / "harness" / "call" / "rundir.py"
RUN_DIR_FILES = (
    "recording.wav",
    "caller.json",
    "trace.jsonl",
    "transcript.json",
    "timings.json",
    "scores.jsonl",
    "report.html",
    "perfetto.json",
    "sensitivity.json",
    "clean-baseline.json",
    "load.json",
)


def test_the_layer_contract_and_no_cycles_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), "lint-imports is missing: run `make tools` (dev extras)"
    out = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "3 kept, 0 broken" in out.stdout


def _docstrings(tree: ast.AST) -> set[int]:
    """Strings that stand alone as statements: docstrings of modules, classes, functions
    and attributes (documentation may name the files; code may not)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def spelled_file_names(path: Path) -> list[tuple[int, str]]:
    """(line, name) for each run-directory file name in the module's code: its string
    constants and f-string parts, not its docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            found += [(node.lineno, n) for n in RUN_DIR_FILES if n in node.value]
    return found


def test_only_the_run_directory_module_spells_its_file_names():
    offenders = {
        str(p.relative_to(ROOT)): hits
        for p in sorted((ROOT / "harness").rglob("*.py"))
        if p != OWNER and (hits := spelled_file_names(p))
    }
    assert offenders == {}, f"ask harness.call.rundir instead: {offenders}"
    assert {n for _, n in spelled_file_names(OWNER)} == set(RUN_DIR_FILES)


@pytest.mark.parametrize("code", ['X = "trace.jsonl"', 'f"{d}/scores.jsonl"'])
def test_the_check_sees_a_name_in_code(tmp_path: Path, code: str):
    mod = tmp_path / "m.py"
    mod.write_text(f'"""A module about trace.jsonl."""\n{code}\n')
    assert len(spelled_file_names(mod)) == 1
