"""What the ``harness monitor`` and ``harness incident list`` commands do, as functions of
plain values, so the CLI only parses and wires."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from harness.gates import GatesConfig, evaluate_gates, render_table
from harness.gates.model import BaselineRule, duration_seconds
from harness.monitor.model import Source
from harness.monitor.runner import CycleResult
from harness.monitor.store import MonitorStore
from harness.monitor.windows import WindowReport

__all__ = [
    "candidates_table",
    "compare_versions",
    "once_exit_code",
    "status_text",
    "window_table",
]

# pytest's exit codes, which `harness monitor run --once` keeps
EXIT_OK, EXIT_FAILED, EXIT_INTERNAL, EXIT_USAGE, EXIT_NO_TESTS = 0, 1, 3, 4, 5


def once_exit_code(result: CycleResult, reports: Sequence[WindowReport], alert_window: str) -> int:
    """pytest's meaning: 0 every call passed and no gate of the alert window fails; 1 a call
    or a gate failed; 3 no call could be placed (the monitor cannot reach the agent)."""
    if result.infra and not result.records:
        return EXIT_INTERNAL
    if any(not r.passed for r in result.records):
        return EXIT_FAILED
    for rep in reports:
        if rep.window.name == alert_window and rep.source == "synthetic":
            if any(g.state == "failing" for g in rep.gates):
                return EXIT_FAILED
    return EXIT_OK


def window_table(rep: WindowReport) -> str:
    """One window's gate table, headed by what it covers."""
    head = (
        f"{rep.source} calls, {rep.window.name} window: {len(rep.calls)} calls "
        f"({len(rep.failed_calls)} failed)"
        + (" [stale: no cycle finished lately]" if rep.stale else "")
    )
    states = ", ".join(f"{g.gate.name}={g.state}" for g in rep.gates)
    return f"{head}\n{render_table(rep.verdicts)}\nstates: {states}"


def compare_versions(
    store: MonitorStore,
    gates: GatesConfig,
    version_a: str,
    version_b: str,
    *,
    window: str = "24h",
    source: Source = "production",
    now: float | None = None,
) -> str:
    """Two agent versions' gate tables side by side over the same window, with each gate's
    one-sided Mann-Whitney U test of B against A (the baseline rank test)."""
    from harness.gates.baseline import compare

    now = time.time() if now is None else now
    since = now - duration_seconds(window)
    a, calls_a = store.window(since=since, until=now, source=source, agent_version=version_a)
    b, calls_b = store.window(since=since, until=now, source=source, agent_version=version_b)
    va, vb = evaluate_gates(gates, a), evaluate_gates(gates, b)
    rows = [
        (
            "gate",
            f"{version_a} (n calls {len(calls_a)})",
            f"{version_b} (n calls {len(calls_b)})",
            "B vs A",
        )
    ]
    for ga, gb in zip(va, vb, strict=True):
        gate = ga.gate
        if gate.baseline is None:
            gate = gate.model_copy(update={"baseline": BaselineRule(max_regression=0.0)})
        cmp = compare(gate, b, a)
        if cmp is None or cmp.p_value is None:
            sig = "not compared"
        else:
            word = "worse" if cmp.change and cmp.change > 0 else "better or equal"
            mark = "significant" if cmp.p_value < cmp.alpha else "not significant"
            sig = f"{cmp.change:+.1%} {word}, p={cmp.p_value:.3g} ({mark})"
        rows.append((gate.name, _cell(ga), _cell(gb), sig))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    head = f"{source} calls, {window} window: {version_a} vs {version_b}"
    return head + "\n" + "\n".join(lines)


def _cell(v) -> str:
    from harness.gates.verdict import format_value

    status = "INSUFFICIENT" if v.status == "insufficient" else v.status.upper()
    return f"{v.gate.statistic} {format_value(v.value, v.unit)} n={v.n} {status}"


def candidates_table(store: MonitorStore) -> str:
    """Production calls that failed a per-call condition, newest first."""
    cands = store.candidates()
    if not cands:
        return "no incident candidates: no production call failed a per-call condition"
    rows = [("id", "when (UTC)", "why", "trace")]
    for c in cands:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(c.at))
        rows.append((c.id, when, "; ".join(c.reasons), c.trace_path))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join([*(r[i].ljust(widths[i]) for i in range(3)), r[3]]).rstrip() for r in rows]
    lines.append(f"{len(cands)} candidates; import one: harness incident import --candidate ID")
    return "\n".join(lines)


def candidate_trace(store: MonitorStore, candidate_id: str) -> Path:
    """The saved trace of one candidate; a clear error for an unknown id."""
    from harness.core.errors import ScenarioError

    c = store.candidate(candidate_id)
    if c is None:
        known = [x.id for x in store.candidates()[:5]]
        hint = f" (recent: {', '.join(known)})" if known else " (there are none yet)"
        raise ScenarioError(
            f"no incident candidate {candidate_id!r} in {store.path}{hint}: "
            "list them with `harness incident list`"
        )
    return Path(c.trace_path)


def status_text(store: MonitorStore) -> str:
    """What the store holds and when the monitor last ran."""
    st = store.stats()
    last = store.last_cycle()
    when = (
        f"last cycle {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(last[0]))} ({last[1]})"
        if last
        else "no cycle yet"
    )
    parts = ", ".join(f"{k} {v}" for k, v in st.items() if k not in ("path",))
    return f"{store.path}: {parts}; {when}"


def monitor_config(
    *,
    scenario_paths: Sequence[str],
    every: str | None,
    cron: str | None,
    once: bool,
    gates_path: str | None,
    state_dir: str,
    windows: str,
    alert_window: str | None,
    channels: Sequence[str],
    livekit_url: str | None,
    agent_name: str | None,
    calls: int,
    concurrency: int,
    collector: str,
    metrics: str | None,
    retention: str | None,
    repeat_interval: str,
    production: bool,
    grace: str,
    agent_version: str | None,
    environment: str | None,
    retries: int = 2,
    backoff: str = "2s",
    tick: str = "5s",
):
    """A :class:`~harness.monitor.runner.MonitorConfig` from the command line's values,
    with every problem a :class:`~harness.core.errors.ScenarioError` naming the option."""
    import os

    from harness.core.errors import ScenarioError
    from harness.gates.scoring import gates_config
    from harness.monitor.alerts import channel_from_spec
    from harness.monitor.runner import MonitorConfig
    from harness.monitor.schedule import Every, ScheduleError, parse_schedule
    from harness.monitor.windows import parse_windows
    from harness.scenario.model import load_scenarios, resolve_agent_name
    from harness.session.config import parse_collector_address

    def opt(name: str, fn, value):
        try:
            return fn(value)
        except ValueError as e:
            raise ScenarioError(f"{name} {value!r}: {e}") from None

    if scenario_paths and not (livekit_url or os.environ.get("LIVEKIT_URL")):
        raise ScenarioError(
            "the monitor calls an agent that is already deployed: give --livekit-url "
            "(or LIVEKIT_URL), with LIVEKIT_API_KEY and LIVEKIT_API_SECRET in the environment"
        )
    scenarios = tuple(load_scenarios(scenario_paths)) if scenario_paths else ()
    if retries < 0:
        raise ScenarioError(f"--retries {retries}: must be 0 or more")
    if scenario_paths and not scenarios:
        raise ScenarioError("no scenario files found", file=" ".join(scenario_paths))
    for s in scenarios:
        resolve_agent_name(s, agent_name)
    try:
        schedule = Every(3600.0) if once and not (every or cron) else parse_schedule(every, cron)
    except ScheduleError as e:
        raise ScenarioError(str(e)) from None
    ch_host, ch_port = opt("--collector", parse_collector_address, collector)
    m_host, m_port = (None, None)
    if metrics:
        m_host, m_port = opt("--metrics", parse_collector_address, metrics)
    win = opt("--windows", parse_windows, windows)
    if alert_window is not None and alert_window not in {w.name for w in win}:
        names = ", ".join(w.name for w in win)
        raise ScenarioError(f"--alert-window {alert_window}: not one of --windows ({names})")
    return MonitorConfig(
        scenarios=scenarios,
        schedule=schedule,
        gates=gates_config(gates_path),
        state_dir=Path(state_dir),
        windows=win,
        livekit_url=livekit_url,
        agent_name=agent_name,
        calls_per_cycle=calls,
        concurrency=concurrency,
        collector_host=ch_host,
        collector_port=ch_port,
        metrics_host=m_host or "127.0.0.1",
        metrics_port=m_port,
        channels=tuple(opt("--channel", channel_from_spec, c) for c in channels),
        alert_window=alert_window,
        repeat_interval_s=opt("--repeat-interval", duration_seconds, repeat_interval),
        retention_s=opt("--retention", duration_seconds, retention) if retention else None,
        production=production,
        grace_s=opt("--grace", duration_seconds, grace),
        agent_version=agent_version,
        environment=environment,
        retries=retries,
        backoff_s=opt("--backoff", duration_seconds, backoff),
        tick_s=opt("--tick", duration_seconds, tick),
    )
