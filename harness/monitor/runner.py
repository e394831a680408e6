"""The monitor: scheduled cycles of real calls, production ingest, windows, alerts, metrics.

One process, three threads of work:

- the **schedule** (this module's loop): at each due slot, a cycle places every scenario
  as a real call to the deployed agent through the engine pytest uses
  (:class:`~harness.session.engine.CallSession`, never starting an agent or a server), and stores
  each completed call in its own transaction;
- the **receiver**: the session's OTLP collector on a fixed address, which takes the spans
  of the synthetic calls and, through :class:`~harness.monitor.ingest.ProductionIngest`,
  scores every other conversation as ``source="production"``;
- the **evaluation tick**: every few seconds, each window's gate states, the alert
  tracker's notifications and the ``/metrics`` gauges, plus the heartbeat.

A call that fails for infrastructure (server unreachable, agent never joined) is retried
with backoff and then recorded apart (:class:`~harness.monitor.model.InfraFailure`): it
feeds the "cannot reach the agent" alert and never a quality window.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.errors import HarnessError, InfrastructureError
from harness.gates import GatesConfig
from harness.gates.verdict import format_value
from harness.monitor.alerts import AlertChannel
from harness.monitor.ingest import ProductionIngest
from harness.monitor.metrics import MonitorMetrics
from harness.monitor.model import AlertEvent, CallRecord, InfraFailure, Source, WindowSpec
from harness.monitor.schedule import Schedule, due_slot
from harness.monitor.states import INFRASTRUCTURE_KEY as INFRA_KEY
from harness.monitor.states import AlertPolicy, AlertTracker, gate_alertname
from harness.monitor.store import MonitorStore
from harness.monitor.windows import WindowReport, evaluate_window
from harness.scenario.model import Scenario
from harness.session.config import SessionConfig
from harness.session.engine import CallOutcome, CallSession

__all__ = ["CycleResult", "Monitor", "MonitorConfig", "infra_kind"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorConfig:
    scenarios: tuple[Scenario, ...]
    schedule: Schedule
    gates: GatesConfig
    state_dir: Path
    windows: tuple[WindowSpec, ...]
    livekit_url: str | None = None
    agent_name: str | None = None
    calls_per_cycle: int = 1
    concurrency: int = 1
    collector_host: str = "127.0.0.1"
    collector_port: int = 4318
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9464
    channels: tuple[AlertChannel, ...] = ()
    alert_window: str | None = None  # default: the shortest window
    repeat_interval_s: float = 4 * 3600
    retries: int = 2
    backoff_s: float = 2.0
    retention_s: float | None = 30 * 86400
    production: bool = True
    grace_s: float = 30.0
    tick_s: float = 5.0
    agent_version: str | None = None
    environment: str | None = None

    @property
    def store_path(self) -> Path:
        return self.state_dir / "monitor.sqlite3"

    @property
    def alert_spec(self) -> WindowSpec:
        if self.alert_window is None:
            return self.windows[0]
        for w in self.windows:
            if w.name == self.alert_window:
                return w
        raise ValueError(
            f"--alert-window {self.alert_window}: not one of --windows "
            f"({', '.join(w.name for w in self.windows)})"
        )


@dataclass
class CycleResult:
    slot: float
    records: list[CallRecord] = field(default_factory=list)
    infra: list[InfraFailure] = field(default_factory=list)
    skipped: bool = False

    @property
    def status(self) -> str:
        if self.infra and not self.records:
            return "unreachable"
        if self.infra:
            return "partial"
        return "ok" if all(r.passed for r in self.records) else "failed"


def infra_kind(error: BaseException) -> str:
    """``agent_not_joined``, ``server_unreachable`` or ``other``, from the error's text."""
    text = str(error).lower()
    if "never joined" in text:
        return "agent_not_joined"
    markers = ("connect", "unreachable", "refused", "livekit", "server", "timed out", "timeout")
    if any(m in text for m in markers):
        return "server_unreachable"
    return "other"


class Monitor:
    """See the module docstring. ``progress(message)`` reports steps for people."""

    def __init__(
        self, config: MonitorConfig, *, progress: Callable[[str], None] | None = None
    ) -> None:
        self.config = config
        self._progress = progress or (lambda m: log.info(m))
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = MonitorStore(config.store_path, retention_s=config.retention_s)
        self.metrics = MonitorMetrics(config.gates)
        self.tracker = AlertTracker.from_dict(self.store.load_alert_states().get("tracker", {}))
        self.session: CallSession | None = None
        self.ingest: ProductionIngest | None = None
        self._metrics_server: object | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.alerts_sent: list[AlertEvent] = []

    # --- lifecycle ---

    def start(self) -> Monitor:
        cfg = self.config
        if cfg.metrics_port is not None:
            self._metrics_server, port = self.metrics.serve(cfg.metrics_host, cfg.metrics_port)
            self._progress(f"metrics on http://{cfg.metrics_host}:{port}/metrics")
        self.metrics.heartbeat(time.time())
        if not cfg.scenarios and cfg.production:  # ingest only: a receiver of its own
            self.ingest = ProductionIngest(
                self.store,
                cfg.state_dir,
                host=cfg.collector_host,
                port=cfg.collector_port,
                grace_s=cfg.grace_s,
                on_call=self._on_production_call,
            ).start()
            self._progress(f"production ingest: OTLP/HTTP on {self.ingest.endpoint}")
        elif cfg.production:
            # the receiver is the call session's: open it now, not at the first slot, or
            # production spans posted before that slot (up to half a period) are refused
            try:
                self._ensure_session()
            except InfrastructureError as e:
                self._progress(f"the receiver opens with the first cycle: {e}")
        return self

    def _ensure_session(self) -> CallSession:
        """The long-lived call session: the remote server, no agent process, the receiver
        on the configured address. Raises InfrastructureError if the server is down."""
        if self.session is not None:
            return self.session
        cfg = self.config
        session_cfg = SessionConfig(
            livekit_url=cfg.livekit_url,
            agent_name=cfg.agent_name,
            agent_cmd=None,
            concurrency=cfg.concurrency,
            artifacts=cfg.state_dir / "runs",
            run_id="monitor",
            collector_host=cfg.collector_host,
            collector_port=cfg.collector_port,
        )
        session = CallSession(session_cfg, on_progress=self._progress)
        session.start()
        self.session = session
        if cfg.production and session.collector is not None:
            self.ingest = ProductionIngest(
                self.store,
                cfg.state_dir,
                collector=session.collector,
                grace_s=cfg.grace_s,
                on_call=self._on_production_call,
            ).start()
        return session

    def close(self) -> None:
        self._stop.set()
        if self.ingest is not None:
            self.ingest.stop(drain=True)
            self.ingest = None
        if self.session is not None:
            self.session.close()
            self.session = None
        if self._metrics_server is not None:
            close = getattr(self._metrics_server, "close", None) or getattr(
                self._metrics_server, "shutdown", None
            )
            if close is not None:
                close()
            self._metrics_server = None
        self.store.close()

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self) -> None:
        """Ask :meth:`run_forever` to return after the current step (SIGTERM does)."""
        self._stop.set()

    # --- the schedule ---

    def run_forever(self) -> None:
        cfg = self.config
        self._interrupted_cycles()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, lambda *_: self.stop())
            except ValueError:  # not the main thread
                pass
        self._progress(
            f"monitor: {len(cfg.scenarios)} scenarios {cfg.schedule.describe()}, "
            f"windows {', '.join(w.name for w in cfg.windows)}, store {cfg.store_path}"
        )
        next_tick = 0.0
        while not self._stop.is_set():
            now = time.time()
            last = self.store.last_cycle()
            slot = due_slot(cfg.schedule, now, last[0] if last else None)
            if slot is not None and cfg.scenarios:
                self.run_cycle(slot)
                next_tick = 0.0
            now = time.time()
            if now >= next_tick:
                self.evaluate(now)
                next_tick = now + cfg.tick_s
            nxt = cfg.schedule.next_after(now)
            self._stop.wait(max(0.05, min(nxt, next_tick) - time.time()))

    def run_once(self) -> CycleResult:
        """One cycle now (for cron and CI schedulers), then one evaluation."""
        self._interrupted_cycles()
        slot = round(time.time(), 3)
        result = self.run_cycle(slot)
        if self.ingest is not None:
            self.ingest.poll()
        self.evaluate(time.time())
        return result

    def _interrupted_cycles(self) -> None:
        """A cycle left ``running`` by a killed monitor is marked ``interrupted``: its
        completed calls are stored; it is never run again."""
        from harness.monitor.recover import recover_unstored

        cfg = self.config
        found = recover_unstored(
            self.store,
            cfg.state_dir / "runs" / "monitor",
            agent_version=cfg.agent_version,
            environment=cfg.environment,
        )
        for rec in found.records:
            self.metrics.observe_call(rec)
            self._progress(f"stored {rec.conversation_id}: recovered from its artifacts")
        if found.unreadable:
            self._progress(f"recovery: {found.unreadable} unreadable artifact lines skipped")
        for slot, status, *_ in self.store.cycles():
            if status == "running":
                self.store.finish_cycle(slot, "interrupted", time.time())
                self._progress(f"cycle {_ts(slot)} was interrupted; its completed calls are kept")

    def run_cycle(self, slot: float) -> CycleResult:
        cfg = self.config
        result = CycleResult(slot)
        if not self.store.begin_cycle(slot, time.time()):
            result.skipped = True
            return result
        self._progress(f"cycle {_ts(slot)}: {len(cfg.scenarios)} scenarios")
        try:
            session = self._connect(result)
            if session is not None:
                calls = [(s, r) for s in cfg.scenarios for r in range(1, cfg.calls_per_cycle + 1)]
                futures = [(s, r, self._submit(session, s, r, slot)) for s, r in calls]
                for s, r, fut in futures:
                    self._finish_call(session, s, r, slot, fut, result)
        finally:
            status = result.status
            self.store.finish_cycle(slot, status, time.time())
            self.metrics.cycle(status, time.time())
        self._infra_state(result)
        self._progress(
            f"cycle {_ts(slot)}: {status}, {len(result.records)} calls stored, "
            f"{len(result.infra)} infrastructure failures"
        )
        if any(r.artifacts for r in result.records):
            from harness.report import report_at_end

            calls = [Path(r.artifacts) for r in result.records if r.artifacts]
            self._progress(report_at_end(calls[0].parent, calls=calls, gates=cfg.gates))
        return result

    def _connect(self, result: CycleResult) -> CallSession | None:
        cfg = self.config
        for attempt in range(cfg.retries + 1):
            try:
                return self._ensure_session()
            except InfrastructureError as e:
                if attempt < cfg.retries:
                    self._stop.wait(cfg.backoff_s * 2**attempt)
                    continue
                self._record_infra(result, e, None)
        return None

    def _submit(self, session: CallSession, scenario: Scenario, repeat: int, slot: float):
        return session.submit(scenario, repeat, label=f"{_label(slot)}-{scenario.id}")

    def _finish_call(self, session, scenario, repeat, slot, future, result: CycleResult) -> None:
        cfg = self.config
        for attempt in range(cfg.retries + 1):
            try:
                outcome: CallOutcome = future.result(timeout=scenario.timeouts.call_s + 180)
            except Exception as e:  # a session that died, a timeout: infrastructure
                outcome = None
                error: BaseException = e
            else:
                error = outcome.error if isinstance(outcome.error, InfrastructureError) else None
            if error is None and outcome is not None:
                rec = self._record(outcome, slot)
                if self.store.add_call(rec):
                    self.metrics.observe_call(rec)
                    result.records.append(rec)
                    self._progress(f"stored {rec.conversation_id}")
                return
            if attempt < cfg.retries:
                self._progress(
                    f"{scenario.id}: {error}; retrying in {cfg.backoff_s * 2**attempt:g}s"
                )
                self._stop.wait(cfg.backoff_s * 2**attempt)
                future = self._submit(session, scenario, repeat, slot)
                continue
            self._record_infra(result, error, scenario.id, slot)

    def _record(self, outcome: CallOutcome, slot: float) -> CallRecord:
        cfg = self.config
        failures = tuple(outcome.failures)
        if outcome.error is not None:
            failures = (str(outcome.error), *failures)
        traced = outcome.trace is not None and outcome.trace.state != "none"
        return CallRecord(
            conversation_id=outcome.conversation_id,
            source="synthetic",
            ended_at=time.time(),
            scores=tuple(outcome.scores),
            passed=outcome.verdict == "pass",
            scenario=outcome.scenario_id,
            cycle=slot,
            agent_version=cfg.agent_version,
            environment=cfg.environment,
            failures=failures,
            artifacts=str(outcome.artifacts),
            traced=traced,
            data_errors=outcome.data_errors,
        )

    def _record_infra(
        self,
        result: CycleResult,
        error: BaseException | None,
        scenario: str | None,
        slot: float | None = None,
    ) -> None:
        kind = infra_kind(error) if error is not None else "other"
        f = InfraFailure(time.time(), kind, str(error), scenario, slot or result.slot)
        self.store.add_infra_failure(f)
        self.metrics.infra_failure(kind)
        result.infra.append(f)
        self._progress(f"infrastructure: {kind}: {error}")

    def _on_production_call(self, rec: CallRecord) -> None:
        self.metrics.observe_call(rec)

    # --- evaluation and alerts ---

    def _sources(self) -> list[Source]:
        out: list[Source] = []
        if self.config.scenarios:
            out.append("synthetic")
        if self.config.production:
            out.append("production")
        return out

    def _stale(self, source: Source, now: float) -> bool:
        """Synthetic windows go stale when no cycle has finished for two periods plus the
        longest call: the monitor itself stopped (or cannot run), which is no data."""
        if source != "synthetic":
            return False
        last = self.store.last_cycle()
        if last is None:
            return True
        budget = max((s.timeouts.call_s for s in self.config.scenarios), default=120)
        return now - last[0] > 2 * self.config.schedule.period_s + budget

    def evaluate(self, now: float) -> list[WindowReport]:
        """Every window's gate states, the alerts they call for, and the gauges."""
        with self._lock:
            cfg = self.config
            self.metrics.heartbeat(now)
            if self.ingest is not None:
                pass  # the ingest polls on its own thread
            reports: list[WindowReport] = []
            for source in self._sources():
                stale = self._stale(source, now)
                for window in cfg.windows:
                    rep = evaluate_window(self.store, cfg.gates, window, now, source, stale=stale)
                    reports.append(rep)
                    for gw in rep.gates:
                        self.metrics.set_window(gw.gate, window.name, source, gw.verdict, gw.state)
                    for metric in ("mutating_actions", "unapproved_mutations"):
                        self._risk(metric, rep, window, source)
                    if window == cfg.alert_spec:
                        self._alert_on(rep, now)
                for version, environment in self.store.versions(source):
                    if version is None and environment is None:
                        continue
                    for window in cfg.windows:
                        rep = evaluate_window(
                            self.store,
                            cfg.gates,
                            window,
                            now,
                            source,
                            agent_version=version,
                            environment=environment,
                        )
                        for gw in rep.gates:
                            self.metrics.set_window(
                                gw.gate,
                                window.name,
                                source,
                                gw.verdict,
                                gw.state,
                                agent_version=version or "",
                                environment=environment or "",
                            )
            self.store.save_alert_state("tracker", self.tracker.to_dict(), now)
            self._resend_firing()
            self.store.prune(now)
            return reports

    def _resend_firing(self) -> None:
        """Alertmanager forgets an alert that is not re-posted before its ``endsAt``: the
        channels that want it get every firing alert again at each evaluation."""
        firing = self.tracker.firing()
        if not firing:
            return
        for ch in self.config.channels:
            if getattr(ch, "resend_firing", False):
                res = ch.send(firing)
                self.metrics.alert_delivery(ch.name, "ok" if res.ok else "error")

    def _risk(self, metric: str, rep: WindowReport, window: WindowSpec, source: str) -> None:
        by_layer: dict[str, float] = {}
        for call in rep.calls:
            for s in call.scores:
                if s.name == metric:
                    by_layer[s.layer or "unknown"] = by_layer.get(s.layer or "unknown", 0) + s.value
        n = len(rep.calls)
        for layer in set(by_layer) | {"background", "conversational", "workflow"}:
            value = by_layer.get(layer, 0.0) / n if n else None
            self.metrics.set_window_rate(metric, layer, window.name, source, value)

    def _alert_on(self, rep: WindowReport, now: float) -> None:
        cfg = self.config
        failed = tuple((c.conversation_id, c.artifacts) for c in rep.failed_calls)[:20]
        for gw in rep.gates:
            gate, v = gw.gate, gw.verdict
            key = f"{rep.source}:{rep.window.name}:{gate.name}"
            policy = AlertPolicy(
                for_s=gate.for_seconds or 0.0, repeat_interval_s=cfg.repeat_interval_s
            )
            value = format_value(v.value, v.unit)
            ci = (
                f"[{format_value(v.ci[0], v.unit)}, {format_value(v.ci[1], v.unit)}]"
                if v.ci
                else None
            )
            events = self.tracker.update(
                key,
                gw.state,
                now,
                policy,
                alertname=gate_alertname(gate.name),
                labels={
                    "gate": gate.name,
                    "window": rep.window.name,
                    "source": rep.source,
                    "metric": gate.metric,
                },
                summary=(
                    f"{gate.name} ({rep.window.name} window, {rep.source}): "
                    f"{gate.statistic} {value} {ci or ''}, n={v.n}: {v.detail}"
                ),
                gate=gate.name,
                window=rep.window.name,
                value=f"{gate.statistic} {value}",
                ci=ci,
                n=v.n,
                failed_calls=failed,
                runbook_url=gate.runbook_url,
            )
            self._deliver(events)

    def _infra_state(self, result: CycleResult) -> None:
        reachable = not (result.infra and not result.records)
        self.metrics.set_reachable(reachable)
        now = time.time()
        detail = result.infra[-1].detail if result.infra else ""
        events = self.tracker.update(
            INFRA_KEY,
            "ok" if reachable else "failing",
            now,
            AlertPolicy(for_s=0.0, repeat_interval_s=self.config.repeat_interval_s),
            alertname="HarnessMonitorCannotReachAgent",
            labels={"source": "synthetic", "kind": result.infra[-1].kind if result.infra else ""},
            summary=(
                "the monitor cannot reach the agent: "
                f"{len(result.infra)} calls of the cycle failed for infrastructure ({detail})"
                if not reachable
                else "the monitor reaches the agent again"
            ),
        )
        self._deliver(events)
        self.store.save_alert_state("tracker", self.tracker.to_dict(), now)

    def _deliver(self, events: Sequence[AlertEvent]) -> None:
        if not events:
            return
        self.alerts_sent.extend(events)
        for e in events:
            self._progress(f"alert {e.status}: {e.summary}")
        for ch in self.config.channels:
            res = ch.send(events)
            self.metrics.alert_delivery(ch.name, "ok" if res.ok else "error")
            if not res.ok:
                self._progress(f"alert channel {ch.display}: delivery failed: {res.error}")


def _ts(slot: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(slot))


def _label(slot: float) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(slot))


class MonitorError(HarnessError):
    """The monitor cannot start: a usage problem the message names."""
