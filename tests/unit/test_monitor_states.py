"""Gate states and the alert state machine: for, repeat, escalation, resolve, no data,
restarts, the monitor's own alert, and properties over any sequence of states."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.gates import Gate
from harness.gates.verdict import Verdict
from harness.monitor.model import AlertEvent, GateState
from harness.monitor.states import (
    INFRASTRUCTURE_ALERTNAME,
    INFRASTRUCTURE_KEY,
    AlertContent,
    AlertPolicy,
    AlertTracker,
    event_from_dict,
    gate_alertname,
    gate_content,
    gate_key,
    severity_of,
    state_of,
)

KEY = "gate:g:15m"
T0 = 1_767_225_600.0
RANK = {"warning": 1, "critical": 2}


def gate(**kw) -> Gate:
    base = {"name": "g", "metric": "m", "statistic": "p90", "warn": 100, "fail": 200}
    base.update(kw)
    return Gate.model_validate(base)


def verdict(status: str, value: float | None = 150.0, **kw) -> Verdict:
    return Verdict(gate(**kw), status, value, 24, (120.0, 180.0), 100.0, f"detail {status}", "ms")  # type: ignore[arg-type]


def content(state: str = "x") -> AlertContent:
    return AlertContent(
        alertname="HarnessG",
        summary=f"g is {state}",
        labels={"source": "synthetic"},
        gate="g",
        window="15m",
        value="p90 150 ms",
        n=24,
        failed_calls=(("c-1", "/calls/c-1"),),
    )


def feed(
    tracker: AlertTracker, state: GateState, at: float, policy: AlertPolicy, key: str = KEY
) -> list[AlertEvent]:
    return tracker.update(key, state, T0 + at, policy, content(state))


# --- state_of --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [("pass", "ok"), ("warn", "degraded"), ("fail", "failing"), ("insufficient", "no_data")],
)
def test_state_of_maps_each_status(status, expected):
    assert state_of(verdict(status)) == expected


@pytest.mark.parametrize("status", ["pass", "warn", "fail", "insufficient"])
def test_a_stale_window_is_no_data_whatever_it_said(status):
    assert state_of(verdict(status), stale=True) == "no_data"


def test_no_verdict_is_no_data():
    assert state_of(None) == "no_data"


def test_severity_of_states():
    assert severity_of("degraded") == "warning"
    assert severity_of("failing") == "critical"
    assert severity_of("ok") is None
    assert severity_of("no_data") is None


def test_policy_defaults_and_validation():
    p = AlertPolicy()
    assert (p.for_s, p.repeat_interval_s, p.no_data_for_s) == (0.0, 4 * 3600.0, None)
    with pytest.raises(ValueError):
        AlertPolicy(for_s=-1)
    with pytest.raises(ValueError):
        AlertPolicy(no_data_for_s=-5)


# --- for ---------------------------------------------------------------------------------------


def test_a_bad_state_fires_only_after_it_held_for_for_s():
    t, p = AlertTracker(), AlertPolicy(for_s=300)
    assert feed(t, "failing", 0, p) == []
    assert t.phase(KEY) == "pending"
    assert feed(t, "failing", 299, p) == []
    [ev] = feed(t, "failing", 300, p)
    assert ev.status == "firing"
    assert ev.severity == "critical"
    assert ev.state == "failing"
    assert ev.starts_at == T0  # when the condition began
    assert ev.key == KEY
    assert ev.alertname == "HarnessG"
    assert ev.labels == {"source": "synthetic"}
    assert ev.failed_calls == (("c-1", "/calls/c-1"),)
    assert t.phase(KEY) == "firing"


def test_for_zero_fires_at_once():
    t = AlertTracker()
    [ev] = feed(t, "degraded", 0, AlertPolicy(for_s=0))
    assert (ev.status, ev.severity) == ("firing", "warning")


def test_ok_while_pending_sends_nothing_and_restarts_the_timer():
    t, p = AlertTracker(), AlertPolicy(for_s=300)
    assert feed(t, "degraded", 0, p) == []
    assert feed(t, "ok", 200, p) == []
    assert t.phase(KEY) == "inactive"
    assert feed(t, "degraded", 250, p) == []
    assert feed(t, "degraded", 500, p) == []  # 250 s into the new episode
    [ev] = feed(t, "degraded", 550, p)
    assert ev.starts_at == T0 + 250


# --- repeat --------------------------------------------------------------------------------------


def test_firing_repeats_only_after_repeat_interval():
    t, p = AlertTracker(), AlertPolicy(repeat_interval_s=3600)
    [first] = feed(t, "failing", 0, p)
    for at in (60, 600, 3599):
        assert feed(t, "failing", at, p) == []
    [again] = feed(t, "failing", 3600, p)
    assert again.status == "firing"
    assert again.starts_at == first.starts_at
    assert feed(t, "failing", 3700, p) == []
    assert feed(t, "failing", 7199, p) == []
    assert len(feed(t, "failing", 7200, p)) == 1


# --- escalation ----------------------------------------------------------------------------------


def test_escalation_notifies_at_once_and_deescalation_waits_for_the_repeat():
    t, p = AlertTracker(), AlertPolicy(repeat_interval_s=3600)
    [warn] = feed(t, "degraded", 0, p)
    assert warn.severity == "warning"
    [crit] = feed(t, "failing", 60, p)
    assert (crit.status, crit.severity, crit.state) == ("firing", "critical", "failing")
    assert crit.starts_at == warn.starts_at
    assert feed(t, "failing", 120, p) == []  # once
    assert feed(t, "degraded", 180, p) == []  # failing → degraded: no re-notification
    assert feed(t, "failing", 240, p) == []  # still critical as notified: no escalation
    assert feed(t, "degraded", 300, p) == []
    [repeat] = feed(t, "degraded", 60 + 3600, p)
    assert repeat.severity == "warning"  # the repeat carries the current severity
    [crit2] = feed(t, "failing", 60 + 3700, p)
    assert crit2.severity == "critical"


# --- resolve -------------------------------------------------------------------------------------


def test_recovery_sends_exactly_one_resolved():
    t, p = AlertTracker(), AlertPolicy(for_s=60)
    feed(t, "failing", 0, p)
    [firing] = feed(t, "failing", 60, p)
    [resolved] = feed(t, "ok", 500, p)
    assert resolved.status == "resolved"
    assert resolved.key == firing.key
    assert resolved.alertname == firing.alertname
    assert resolved.labels == firing.labels
    assert resolved.severity == firing.severity
    assert resolved.starts_at == firing.starts_at
    assert resolved.ends_at == T0 + 500
    assert resolved.state == "ok"
    assert resolved.summary == "g is ok"
    assert feed(t, "ok", 600, p) == []
    assert t.phase(KEY) == "inactive"
    assert t.keys() == []


def test_ok_without_any_alert_sends_nothing():
    t = AlertTracker()
    assert feed(t, "ok", 0, AlertPolicy()) == []
    assert feed(t, "ok", 10, AlertPolicy()) == []


# --- no data ---------------------------------------------------------------------------------


def test_no_data_keeps_a_firing_alert_as_is():
    t, p = AlertTracker(), AlertPolicy(repeat_interval_s=600)
    feed(t, "failing", 0, p)
    for at in (60, 700, 5000):  # no resolve, no repeat, no quality alert
        assert feed(t, "no_data", at, p) == []
    assert t.phase(KEY) == "firing"
    [again] = feed(t, "failing", 5100, p)  # due since 600 s: one repeat when data returns
    assert again.status == "firing"
    [res] = feed(t, "ok", 5200, p)
    assert res.status == "resolved"
    assert res.starts_at == T0


def test_no_data_never_fires_or_resolves_by_itself():
    t, p = AlertTracker(), AlertPolicy()
    for at in range(0, 100_000, 1000):
        assert feed(t, "no_data", at, p) == []
    assert t.keys() == []


def test_no_data_keeps_a_pending_timer():
    t, p = AlertTracker(), AlertPolicy(for_s=300)
    assert feed(t, "degraded", 0, p) == []
    assert feed(t, "no_data", 200, p) == []
    assert feed(t, "no_data", 400, p) == []  # does not fire while no data
    assert t.phase(KEY) == "pending"
    [ev] = feed(t, "degraded", 450, p)
    assert ev.starts_at == T0


def test_no_data_alert_fires_after_no_data_for_s_and_resolves_when_data_returns():
    t, p = AlertTracker(), AlertPolicy(for_s=0, no_data_for_s=900)
    assert feed(t, "no_data", 0, p) == []
    assert feed(t, "no_data", 899, p) == []
    [nd] = feed(t, "no_data", 900, p)
    assert nd.status == "firing"
    assert nd.alertname == "HarnessGNoData"
    assert nd.severity == "warning"
    assert nd.state == "no_data"
    assert nd.key == f"{KEY}:no_data"
    assert "no data for 15m" in nd.summary
    assert nd.starts_at == T0
    events = feed(t, "failing", 1000, p)  # data again: NoData resolves, quality fires
    assert [(e.alertname, e.status) for e in events] == [
        ("HarnessG", "firing"),
        ("HarnessGNoData", "resolved"),
    ]
    assert events[1].ends_at == T0 + 1000
    assert events[1].starts_at == T0


def test_no_data_alert_keeps_the_quality_alert_firing():
    t, p = AlertTracker(), AlertPolicy(no_data_for_s=60)
    [q] = feed(t, "degraded", 0, p)
    feed(t, "no_data", 10, p)
    [nd] = feed(t, "no_data", 70, p)
    assert nd.alertname.endswith("NoData")
    assert {e.key for e in t.firing()} == {KEY, f"{KEY}:no_data"}
    [res_nd] = feed(t, "degraded", 80, p)  # the quality alert does not re-notify
    assert (res_nd.key, res_nd.status) == (f"{KEY}:no_data", "resolved")
    assert t.phase(KEY) == "firing"
    assert q.status == "firing"


def test_without_no_data_for_s_no_data_never_alerts():
    t, p = AlertTracker(), AlertPolicy(no_data_for_s=None)
    for at in range(0, 50_000, 600):
        assert feed(t, "no_data", at, p) == []


# --- restarts --------------------------------------------------------------------------------


def roundtrip(t: AlertTracker) -> AlertTracker:
    return AlertTracker.from_dict(json.loads(json.dumps(t.to_dict())))


def test_a_restarted_tracker_does_not_resend_a_firing_alert():
    t, p = AlertTracker(), AlertPolicy(repeat_interval_s=3600)
    [first] = feed(t, "failing", 0, p)
    t = roundtrip(t)
    assert t.phase(KEY) == "firing"
    assert feed(t, "failing", 60, p) == []
    assert len(feed(t, "failing", 3600, p)) == 1
    [res] = feed(t, "ok", 3700, p)
    assert res.starts_at == first.starts_at
    assert res.alertname == first.alertname
    assert res.failed_calls == (("c-1", "/calls/c-1"),)


def test_a_restarted_tracker_keeps_a_pending_timer():
    t, p = AlertTracker(), AlertPolicy(for_s=300, no_data_for_s=600)
    feed(t, "degraded", 0, p)
    feed(t, "no_data", 0, p, key="gate:other:1h")
    t = roundtrip(t)
    assert t.phase(KEY) == "pending"
    [ev] = feed(t, "degraded", 300, p)
    assert ev.starts_at == T0
    [nd] = feed(t, "no_data", 600, p, key="gate:other:1h")
    assert nd.key == "gate:other:1h:no_data"


def test_from_an_empty_dict_is_a_fresh_tracker():
    assert AlertTracker.from_dict({}).keys() == []


def test_content_may_be_given_as_keywords():
    t = AlertTracker()
    [ev] = t.update(
        KEY,
        "failing",
        T0,
        AlertPolicy(),
        alertname="HarnessG",
        summary="by keywords",
        labels={"gate": "g"},
        failed_calls=[("c-1", None)],
    )
    assert (ev.alertname, ev.summary, ev.labels, ev.failed_calls) == (
        "HarnessG",
        "by keywords",
        {"gate": "g"},
        (("c-1", None),),
    )
    [res] = t.update(KEY, "ok", T0 + 1, AlertPolicy(), content("ok"), summary="override")
    assert res.summary == "override"
    with pytest.raises(TypeError):
        t.update(KEY, "ok", T0 + 2, AlertPolicy(), alertname="x", summary="y", bogus=1)


def test_from_dict_rejects_another_version():
    with pytest.raises(ValueError, match="version"):
        AlertTracker.from_dict({"version": 99, "alerts": {}})


def test_event_from_dict_inverts_to_dict():
    t = AlertTracker()
    [ev] = feed(t, "failing", 0, AlertPolicy())
    assert event_from_dict(json.loads(json.dumps(ev.to_dict()))) == ev


# --- firing, retire --------------------------------------------------------------------------


def test_firing_lists_current_alerts_with_fresh_content():
    t, p = AlertTracker(), AlertPolicy()
    feed(t, "degraded", 0, p)
    t.update(KEY, "failing", T0 + 10, p, AlertContent("HarnessG", "new figures", value="v2"))
    [ev] = t.firing()
    assert (ev.summary, ev.value, ev.severity) == ("new figures", "v2", "critical")


def test_retire_resolves_a_firing_alert_and_forgets_it():
    t, p = AlertTracker(), AlertPolicy()
    feed(t, "failing", 0, p)
    [res] = t.retire(KEY, T0 + 5)
    assert (res.status, res.ends_at) == ("resolved", T0 + 5)
    assert "no longer monitored" in res.summary
    assert t.keys() == []
    assert t.retire(KEY, T0 + 6) == []


# --- the monitor's own alert -----------------------------------------------------------------


def test_infrastructure_alert_follows_the_same_rules():
    t, p = AlertTracker(), AlertPolicy(for_s=300, repeat_interval_s=3600)
    assert t.update_infrastructure(False, T0, p, detail="connection refused") == []
    assert t.update_infrastructure(True, T0 + 100, p) == []  # recovered while pending
    assert t.update_infrastructure(False, T0 + 200, p) == []
    [ev] = t.update_infrastructure(False, T0 + 500, p, detail="agent never joined")
    assert ev.key == INFRASTRUCTURE_KEY == "monitor:infrastructure"
    assert ev.alertname == INFRASTRUCTURE_ALERTNAME
    assert (ev.status, ev.severity) == ("firing", "critical")
    assert "agent never joined" in ev.summary
    assert ev.gate is None
    assert t.update_infrastructure(False, T0 + 600, p) == []
    [res] = t.update_infrastructure(True, T0 + 700, p)
    assert (res.status, res.starts_at, res.ends_at) == ("resolved", T0 + 200, T0 + 700)
    assert t.update_infrastructure(True, T0 + 800, p) == []


# --- content -----------------------------------------------------------------------------------


def test_gate_content_from_a_verdict():
    v = verdict("fail", 4600.0, name="e2e_latency_p90", runbook_url="https://wiki.example/rb")
    c = gate_content(v, "15m", labels={"source": "production"}, failed_calls=[("c-9", "/a/c-9")])
    assert c.alertname == "HarnessE2eLatencyP90" == gate_alertname("e2e_latency_p90")
    assert (c.gate, c.window, c.n) == ("e2e_latency_p90", "15m", 24)
    assert c.value == "p90 4600 ms"
    assert c.ci == "[120 ms, 180 ms]"
    assert c.runbook_url == "https://wiki.example/rb"
    assert c.failed_calls == (("c-9", "/a/c-9"),)
    assert c.summary == "e2e_latency_p90 (15m window): detail fail"
    assert dict(c.labels) == {"source": "production"}


def test_gate_content_without_value_ci_or_runbook():
    v = Verdict(gate(), "insufficient", None, 0, None, None, "no samples", "ms")
    c = gate_content(v, "1h")
    assert (c.value, c.ci, c.runbook_url, c.n) == (None, None, None, 0)


def test_gate_key_is_stable_and_sorts_labels():
    assert gate_key("g", "15m") == "gate:g:15m"
    assert gate_key("g", "15m", {"b": "2", "a": "1"}) == "gate:g:15m,a=1,b=2"


# --- properties --------------------------------------------------------------------------------

STATES: list[GateState] = ["ok", "degraded", "failing", "no_data"]
steps = st.lists(
    st.tuples(st.sampled_from(STATES), st.integers(min_value=0, max_value=4000)),
    max_size=60,
)
policies = st.builds(
    AlertPolicy,
    for_s=st.sampled_from([0.0, 60.0, 300.0, 1800.0]),
    repeat_interval_s=st.sampled_from([0.0, 600.0, 3600.0]),
    no_data_for_s=st.sampled_from([None, 0.0, 600.0]),
)


def run(
    sequence: list[tuple[GateState, int]], policy: AlertPolicy, restart_at: int | None = None
) -> list[tuple[float, AlertEvent]]:
    t, now, out = AlertTracker(), T0, []
    for i, (state, dt) in enumerate(sequence):
        if i == restart_at:
            t = roundtrip(t)
        now += dt
        out += [(now, e) for e in t.update(KEY, state, now, policy, content(state))]
    return out


def check_episodes(events: list[tuple[float, AlertEvent]], policy: AlertPolicy, for_s: float):
    firing, last_sent, severity, starts = False, 0.0, "warning", 0.0
    for at, ev in events:
        if ev.status == "firing":
            if firing:
                escalation = RANK[ev.severity] > RANK[severity]
                assert escalation or at - last_sent >= policy.repeat_interval_s
                assert ev.starts_at == starts
            else:
                assert at - ev.starts_at >= for_s
                starts = ev.starts_at
            firing, last_sent, severity = True, at, ev.severity
        else:
            assert firing, "a resolve without a firing before it"
            assert ev.starts_at == starts
            assert ev.ends_at == at
            firing = False


@settings(max_examples=150, deadline=None)
@given(steps, policies)
def test_events_alternate_firing_and_resolved_and_respect_repeat(sequence, policy):
    events = run(sequence, policy)
    quality = [(at, e) for at, e in events if e.key == KEY]
    no_data = [(at, e) for at, e in events if e.key == f"{KEY}:no_data"]
    assert len(quality) + len(no_data) == len(events)
    check_episodes(quality, policy, policy.for_s)
    check_episodes(no_data, policy, policy.no_data_for_s or 0.0)
    assert all(e.alertname == "HarnessG" for _, e in quality)
    assert all(e.alertname == "HarnessGNoData" and e.severity == "warning" for _, e in no_data)
    if policy.no_data_for_s is None:
        assert no_data == []


@settings(max_examples=100, deadline=None)
@given(steps, policies, st.integers(min_value=0, max_value=60))
def test_a_restart_anywhere_changes_no_event(sequence, policy, restart_at):
    assert run(sequence, policy, restart_at) == run(sequence, policy)
