"""How the plugin reports a broken setup, as a user sees it: errors, not failures."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
pytest_plugins = ["pytester"]
SMOKE = Path(__file__).resolve().parents[2] / "scenarios" / "smoke" / "greeting.yaml"


def test_wrong_livekit_url_is_an_error_naming_the_url(pytester: pytest.Pytester, monkeypatch):
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "greeting.yaml").write_text(SMOKE.read_text())
    monkeypatch.setenv("LIVEKIT_API_KEY", "key")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret-not-a-real-one")
    url = "ws://127.0.0.1:9"  # nothing listens on the discard port
    result = pytester.runpytest_subprocess(
        "scenarios", "-o", "harness_scenarios=scenarios/*.yaml", "--livekit-url", url, timeout=120
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors") == 1 and "failed" not in outcomes, result.stdout.str()
    result.stdout.fnmatch_lines([f"*LiveKit server at {url} is unreachable*"])
    assert "secret-not-a-real-one" not in result.stdout.str() + result.stderr.str()
