"""The background agent's fault knobs, per request: latency, a timeout past the agent's,
a write done twice, a share of skipped approvals; from the environment, the body, or the
X-Clinic-Faults header the agent sends; each with a case that must not fire."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from examples.clinic import backend, clients
from examples.clinic.backend import FAULTS_HEADER, BackendConfig
from harness.trace import conventions as c
from tests.unit.test_clinic_backend import booking, by_name, rows, serving, spans, trace_headers

__all__ = ["spans"]  # the fixture, used by name


def _post(config: BackendConfig, headers: dict[str, str] | None = None, body=None):
    async def go():
        async with serving(config) as client:
            t0 = time.monotonic()
            resp = await client.post(
                "/bookings",
                json=body or booking(),
                headers={**trace_headers(), **(headers or {})},
            )
            return resp.status, await resp.json(), time.monotonic() - t0

    return asyncio.run(go())


def test_latency_delays_the_answer_and_marks_the_span(tmp_path, spans):
    status, _, took = _post(BackendConfig(tmp_path / "db", tool_latency_ms=300))
    assert status == 201 and took >= 0.29
    (server,) = by_name(spans)["POST /bookings"]
    assert server.attributes[backend.ATTR_FAULT] == "tool_latency"


def test_latency_share_zero_never_delays(tmp_path, spans):
    status, _, took = _post(
        BackendConfig(tmp_path / "db", tool_latency_ms=2000, tool_latency_share=0.0)
    )
    assert status == 201 and took < 1.5
    (server,) = by_name(spans)["POST /bookings"]
    assert backend.ATTR_FAULT not in server.attributes


def test_timeout_holds_the_request_past_the_client_which_gives_up(tmp_path, spans, monkeypatch):
    monkeypatch.setattr(backend, "TIMEOUT_HOLD_S", 0.6)

    async def go():
        async with serving(BackendConfig(tmp_path / "db", tool_timeout_share=1.0)) as server:
            monkeypatch.setenv("CLINIC_BACKEND_URL", str(server.make_url("")).rstrip("/"))
            with pytest.raises(clients.BackendUnavailable, match=r"did not answer within 0\.3"):
                await clients.availability_remote("tuesday", timeout_s=0.3)
            await asyncio.sleep(0.5)  # the server drops the request of a client gone

    asyncio.run(go())
    (server,) = by_name(spans)["GET /bookings"]
    assert server.attributes[backend.ATTR_FAULT] == "tool_timeout"


def test_a_duplicate_write_is_a_second_keyed_action_the_database_refuses(tmp_path, spans):
    db = tmp_path / "db"
    status, body, _ = _post(BackendConfig(db, duplicate_action_share=1.0))
    assert status == 201 and body["confirmation_id"] == "1001"
    assert len(rows(db)) == 1  # the slot is written once
    first, second = sorted(by_name(spans)["action create_booking"], key=lambda s: s.start_time)
    key = first.attributes[c.ACTION_KEY]
    assert key == second.attributes[c.ACTION_KEY] and key.endswith(":tuesday:09:00:cleaning")
    assert first.status.is_ok and not second.status.is_ok
    assert "written twice" in second.status.description


def test_without_the_fault_one_keyed_write(tmp_path, spans):
    _post(BackendConfig(tmp_path / "db"))
    (act,) = by_name(spans)["action create_booking"]
    assert act.attributes[c.ACTION_KEY].endswith(":tuesday:09:00:cleaning")


def test_a_skip_share_skips_that_share_of_approvals(tmp_path, spans):
    async def go():
        async with serving(BackendConfig(tmp_path / "db", skip_approval=0.5, seed=3)) as client:
            for t in ("09:00", "11:00", "14:00") * 1:
                for day in ("tuesday", "monday", "thursday", "friday", "saturday"):
                    await client.post(
                        "/bookings", json=booking(day=day, time=t), headers=trace_headers()
                    )

    asyncio.run(go())
    approvals = [a.attributes[c.ACTION_APPROVAL] for a in by_name(spans)["action create_booking"]]
    assert 3 <= approvals.count("skipped") <= 12 and len(approvals) == 15


def test_the_header_overrides_the_service_and_is_checked(tmp_path, spans):
    cfg = BackendConfig(tmp_path / "db")
    status, _, _ = _post(cfg, headers={FAULTS_HEADER: json.dumps({"skip_approval": True})})
    assert status == 201
    (act,) = by_name(spans)["action create_booking"]
    assert act.attributes[c.ACTION_APPROVAL] == "skipped"
    status, body, _ = _post(cfg, headers={FAULTS_HEADER: json.dumps({"tts_gap_ms": 5})})
    assert status == 400 and body["error"].startswith("X-Clinic-Faults.tts_gap_ms: unknown")
    status, body, _ = _post(cfg, headers={FAULTS_HEADER: "[1]"})
    assert status == 400 and "not a JSON object" in body["error"]
    status, body, _ = _post(cfg, headers={FAULTS_HEADER: json.dumps({"tool_failure_rate": 3})})
    assert status == 400 and "between 0 and 1" in body["error"]
