"""End-to-end fixtures: a real livekit-server, the real clinic agent as a subprocess,
real calls. Nothing here is mocked; a missing server binary is an error, not a skip."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.scenario.model import load_scenario
from harness.session.engine import CallSession, SessionConfig

ROOT = Path(__file__).resolve().parents[2]
CLINIC_CMD = "{python} -m examples.clinic.deploy start"


@pytest.fixture
def clinic_session(tmp_path: Path):
    """Factory: ``with clinic_session(env={...}, concurrency=K) as session: ...``."""

    @contextlib.contextmanager
    def make(env: dict[str, str] | None = None, on_turn=None, **kw) -> Iterator[CallSession]:
        cfg = SessionConfig(
            agent_cmd=CLINIC_CMD,
            agent_env=env or {},
            artifacts=kw.pop("artifacts", tmp_path / "runs"),
            **kw,
        )
        with CallSession(cfg, on_turn=on_turn) as session:
            yield session

    return make


@pytest.fixture
def smoke_scenarios():
    return {p.stem: load_scenario(p) for p in sorted((ROOT / "scenarios/smoke").glob("*.yaml"))}
