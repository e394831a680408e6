"""Project-wide test settings.

Some unit tests skip when an offline tool (espeak-ng, flite, ffmpeg) is missing, so a
developer without `make tools` can still run the rest. In CI nothing may be skipped for
that reason: a missing tool is a broken set-up, reported loudly before any test runs.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRED_TOOLS = ("espeak-ng", "flite", "text2wave", "ffmpeg")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "xdist_gate: the gate sessions again under pytest-xdist (make test-gates-xdist)"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
        if missing:
            raise pytest.UsageError(
                f"CI is set but {', '.join(missing)} not installed: run `make tools` "
                "(scripts/bootstrap.sh installs them)"
            )
