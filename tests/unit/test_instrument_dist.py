"""livekit-call-harness-instrument is its own distribution: OpenTelemetry and nothing else."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import harness_instrument
from harness_instrument import launcher

DIST = "livekit-call-harness-instrument"
PACKAGE_DIR = Path(harness_instrument.__file__).parent
HEAVY = ("harness", "livekit", "numpy", "scipy", "pydub", "aiohttp", "pydantic")


def test_it_declares_only_opentelemetry_requirements():
    requires = importlib.metadata.requires(DIST) or []
    names = {re.match(r"[A-Za-z0-9._-]+", r).group(0).lower() for r in requires}
    assert names == {
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-http",
    }
    assert all(n.startswith("opentelemetry-") for n in names)
    assert importlib.metadata.version(DIST) == "0.1.0"


def test_the_harness_pins_it():
    requires = importlib.metadata.requires("livekit-call-harness") or []
    assert f"{DIST}==0.1.0" in [r.replace(" ", "") for r in requires]


def test_importing_it_pulls_in_none_of_the_harness_stack(tmp_path):
    code = (
        "import json, sys, harness_instrument, harness_instrument.auto; "
        f"heavy = {HEAVY!r}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_its_source_never_imports_the_harness_and_livekit_only_when_asked():
    sources = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(sources) >= 6
    for path in sources:
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+harness\b", text, re.M), path
        # livekit-agents only inside init_tracing(livekit=...), never at import
        assert not re.search(r"^(from|import)\s+livekit\b", text, re.M), path


def test_the_bootstrap_dir_holds_a_sitecustomize_and_is_not_a_package():
    boot = launcher.bootstrap_dir()
    assert boot.parent == PACKAGE_DIR
    assert (boot / "sitecustomize.py").is_file()
    assert not (boot / "__init__.py").exists()


def test_the_console_script_is_installed():
    (ep,) = importlib.metadata.entry_points(group="console_scripts", name="harness-instrument")
    assert ep.value == "harness_instrument.launcher:main" and ep.dist.name == DIST
    script = Path(sys.executable).parent / "harness-instrument"
    proc = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: harness-instrument")
