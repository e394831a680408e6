"""A call session: one LiveKit server, optionally one agent worker and one trace collector,
and an event loop on its own thread that runs up to K real-time calls at once.

The pytest plugin and ``harness run`` both drive calls through this class, so the two
paths behave the same.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import logging
import os
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from harness.call.agent_process import AgentProcess
from harness.call.caller import CallResult, SyntheticCaller
from harness.call.expectations import (
    check_call_expectations,
    check_expectations,
    check_score_expectations,
    tool_calls_of,
)
from harness.call.hostload import OVERLOADED, PressureMeter
from harness.call.rundir import (
    CALLER_FORMAT,
    CallDir,
    CallerFile,
    RunDir,
    TimingsFile,
    TranscriptFile,
    call_dir_name,
)
from harness.call.selfload import CallerLoad, SelfMeter
from harness.core.errors import CallFailure, HarnessError, InfrastructureError
from harness.core.loop import LoopThread
from harness.gates.scoring import SessionScores, expected_end_state, score_instance
from harness.livekit import LocalServer, RoomService, ServerInfo, new_conversation_id
from harness.livekit.rooms import CallRoom
from harness.livekit.server import remote_from_env
from harness.plan.callplan import CallPlan, render_plan
from harness.scenario.model import Scenario, resolve_agent_name
from harness.session.config import SessionConfig
from harness.trace import conventions as c
from harness.trace.health import (
    ExportSetup,
    SessionTraceReport,
    TraceHealth,
    no_root_reason,
    no_trace_reason,
)
from harness.trace.instance import Instance
from harness.trace.validate import DataError

log = logging.getLogger("harness.session.engine")
T = TypeVar("T")

Verdict = Literal["pass", "fail", "error"]


@dataclass(frozen=True)
class CallOutcome:
    scenario_id: str
    repeat: int
    conversation_id: str
    artifacts: Path
    duration_s: float
    result: CallResult | None
    failures: tuple[str, ...] = ()
    error: HarnessError | None = None
    scores: tuple[Any, ...] = ()
    trace: TraceHealth | None = None
    """Whether the call's Instance got its spans; None when the call never got that far."""
    host_cpu_pressure: float | None = None
    """Share of the call in which some task on the host waited for a CPU (Linux PSI)."""
    data_errors: tuple[DataError, ...] = ()
    """What the call's Instance quarantined as impossible (:mod:`harness.trace.validate`)."""
    harness_load: CallerLoad | None = None
    """What the caller side cost this call and how its event loop kept time
    (:mod:`harness.call.selfload`)."""

    @property
    def verdict(self) -> Verdict:
        if isinstance(self.error, InfrastructureError):
            return "error"
        if self.error is not None or self.failures:
            return "fail"
        return "pass"

    def describe(self) -> str:
        lines = []
        if self.error is not None:
            lines.append(str(self.error))
        lines.extend(self.failures)
        lines.append(f"artifacts: {self.artifacts}")
        return "\n".join(lines)


def overload_notes(result: CallResult, cpu_pressure: float | None = None) -> tuple[str, ...]:
    """Why a failed call may not be the agent's fault: the host was saturated, or the
    caller's own audio had gaps."""
    notes = []
    if cpu_pressure is not None and cpu_pressure > OVERLOADED:
        notes.append(
            f"note: host overloaded: some task waited for a CPU {cpu_pressure * 100:.0f} % of this "
            "call, so slow or misheard replies may be the machine's (lower --concurrency)"
        )
    notes.extend(
        f"note: the caller's audio had {t.caller_underrun_ms:.0f} ms of gaps at turn "
        f"{t.index}, because this host was overloaded (lower --concurrency)"
        for t in result.turns
        if t.caller_underrun_ms > 0
    )
    return tuple(notes)


FIRST_SPAN_WAIT_S = 2.0
"""After a call, how long to wait for its first span from an agent the harness started
(it exports every 200 ms)."""
FIRST_SPAN_WAIT_EXTERNAL_S = 6.0
"""... and from an agent started by someone else, whose batch processor may keep the
OpenTelemetry default of 5 s."""
SERVICE_NAME_DEFAULT = "livekit-agent"
WORKFLOW_WAIT_S = 10.0
"""How long a call waits for the after-call workflow its deployment has shown, when its
scenario expects no after-call step of its own."""
WORKFLOW_SETTLE_S = 1.0
"""After the workflow's root arrived, how long more spans (a second run) may take."""


def otel_env(
    endpoint: str, traces_url: str, env: dict[str, str], agent_cmd: str | None = None
) -> dict[str, str]:
    """The standard OpenTelemetry variables for an agent process the harness starts, given
    the environment it would otherwise get: spans go to our receiver over OTLP/HTTP, soon
    after they end; ``OTEL_SERVICE_NAME`` and the resource's ``agent.layer`` and
    ``deployment.environment.name`` are filled in only where the agent's environment has
    none. A traces-specific endpoint the environment holds (a production collector) would
    win over ``OTEL_EXPORTER_OTLP_ENDPOINT``, so it is replaced too."""
    out = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces_url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    if not env.get("OTEL_SERVICE_NAME"):
        out["OTEL_SERVICE_NAME"] = _service_name(agent_cmd) or SERVICE_NAME_DEFAULT
    given = env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    keys = {part.split("=", 1)[0].strip() for part in given.split(",") if "=" in part}
    extra = [
        f"{key}={value}"
        for key, value in (
            (c.AGENT_LAYER, c.LAYER_CONVERSATIONAL),
            (c.DEPLOYMENT_ENVIRONMENT_NAME, "test"),
        )
        if key not in keys
    ]
    if extra:
        out["OTEL_RESOURCE_ATTRIBUTES"] = ",".join([p for p in (given.strip(),) if p] + extra)
    return out


def _service_name(agent_cmd: str | None) -> str | None:
    """What ``harness agent --`` would call the command: the script or module's name."""
    from harness_instrument.launcher import service_name_for

    if not agent_cmd:
        return None
    try:
        parts = shlex.split(agent_cmd.replace("{python}", "python"))
    except ValueError:
        return None
    return service_name_for(parts)


class CallSession:
    """Use as a context manager; ``submit()`` schedules a call and returns a future."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        on_progress: Callable[[str], None] | None = None,
        on_turn: Callable[[str, int, int], None] | None = None,
    ) -> None:
        """``on_progress(message)`` reports the session's steps; ``on_turn(scenario_id,
        repeat, turn)`` is called, from the calls' event loop, as a caller starts a turn:
        the moment to inject a fault "at turn N"."""
        self.config = config
        self._progress = on_progress or (lambda msg: log.info(msg))
        self._on_turn = on_turn
        self._loop: LoopThread | None = None
        self._server: LocalServer | None = None
        self.server: ServerInfo | None = None
        self.agent: AgentProcess | None = None
        self.collector: Any = None
        self._sem: asyncio.Semaphore | None = None
        self._plans: dict[str, CallPlan] = {}
        self.scores = SessionScores(config.run_dir)
        self._plan_lock = threading.Lock()
        self._export: ExportSetup | None = None
        self._traced_calls = 0
        self._workflow_seen = False
        self._actions_seen = False
        self.trace_report: SessionTraceReport | None = None
        """Spans that became no call's trace; set when the session closes."""
        self.meter = SelfMeter()
        """The caller side's CPU and the calls' loop lag, per call."""
        self._meter_task: concurrent.futures.Future[None] | None = None

    # ---- lifecycle
    def start(self) -> CallSession:
        cfg = self.config
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        self._loop = LoopThread("harness-calls")
        self._sem = self._loop.run(self._make_semaphore(cfg.concurrency))
        self._meter_task = self._loop.submit(self.meter.run())
        try:
            remote = remote_from_env(cfg.livekit_url)
            if remote is None:
                self._server = LocalServer(log_path=cfg.log_path("livekit-server"))
                self.server = self._server.start()
                self._progress(f"started livekit-server on {self.server.url}")
            else:
                self.server = remote
            self._loop.run(self._ping(), timeout=30)
            agent_env = {**self.server.env(), **cfg.agent_env}
            if cfg.collect_traces:
                self.collector = self._start_collector()
                endpoint = self.collector.endpoint
                agent_env.update(
                    otel_env(
                        endpoint,
                        self.collector.traces_url,
                        {**os.environ, **agent_env},
                        cfg.agent_cmd,
                    )
                )
                self._export = ExportSetup(
                    endpoint,
                    cfg.agent_cmd,
                    {**os.environ, **agent_env} if cfg.agent_cmd else None,
                )
                self._progress(self.export_notice or f"trace receiver on {endpoint}")
            if cfg.agent_cmd:
                self.agent = AgentProcess(
                    cfg.agent_cmd, env=agent_env, log_path=cfg.log_path("agent")
                )
                self._progress(f"starting agent: {cfg.agent_cmd}")
                self.agent.start()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def export_notice(self) -> str | None:
        """Where an agent the harness did not start must send its spans; None when the
        harness started the agent (it told the agent itself) or collects no traces."""
        if self._export is None or self._export.agent_cmd:
            return None
        endpoint = self._export.endpoint
        return (
            f"trace receiver on {endpoint}: the agent must export OTLP/HTTP there "
            f"(OTEL_EXPORTER_OTLP_ENDPOINT={endpoint})"
        )

    def trace_report_now(self) -> SessionTraceReport | None:
        """Spans that became no call's trace so far (the final report once closed)."""
        if self.collector is None:
            return self.trace_report
        return self.collector.trace_report()

    @staticmethod
    async def _make_semaphore(n: int) -> asyncio.Semaphore:
        return asyncio.Semaphore(n)

    async def _ping(self) -> None:
        assert self.server is not None
        async with RoomService(self.server) as rooms:
            await rooms.ping()

    def _start_collector(self) -> Any:
        from harness.trace.collector import Collector

        assert self._loop is not None
        collector = Collector(host=self.config.collector_host, port=self.config.collector_port)
        self._loop.run(collector.start(), timeout=10)
        return collector

    def stop_collector(self) -> None:
        """Take the trace collector away mid-session, as an outage would."""
        if self.collector is not None and self._loop is not None:
            self._loop.run(self.collector.stop(), timeout=10)
            self.collector = None

    def close(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
        if self._loop is not None:
            if self.collector is not None:
                self.trace_report = self.trace_report_now()
                with contextlib.suppress(Exception):
                    self._loop.run(self.collector.stop(), timeout=10)
                self.collector = None
            if self._meter_task is not None:
                self._meter_task.cancel()
                with contextlib.suppress(Exception):
                    self._loop.run(asyncio.sleep(0), timeout=5)  # let the probe end
                self._meter_task = None
            self._loop.stop()
            self._loop = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> CallSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- calls
    def plan_for(self, scenario: Scenario, conditions: Any = None) -> CallPlan:
        """Render a scenario once per session and condition (the TTS cache makes later
        sessions fast). ``conditions`` overrides the scenario's own, e.g. a preset name."""
        key = (scenario.id, json.dumps(conditions, sort_keys=True, default=str))
        with self._plan_lock:
            if key not in self._plans:
                self._plans[key] = render_plan(scenario, conditions=conditions)
            return self._plans[key]

    def submit(
        self,
        scenario: Scenario,
        repeat: int = 1,
        *,
        dispatch_metadata: dict | None = None,
        conditions: Any = None,
        label: str | None = None,
    ) -> concurrent.futures.Future[CallOutcome]:
        """Schedule one call. ``label`` names its artifacts directory (default: the id)."""
        if self._loop is None:
            raise RuntimeError("CallSession.submit() before start()")
        resolve_agent_name(scenario, self.config.agent_name)  # a clear error, now
        return self._loop.submit(
            self._guarded_call(scenario, repeat, dispatch_metadata, conditions, label)
        )

    def run(self, scenario: Scenario, repeat: int = 1, **kw: Any) -> CallOutcome:
        timeout = scenario.timeouts.call_s + 120
        return self.submit(scenario, repeat, **kw).result(timeout)

    async def _guarded_call(
        self,
        scenario: Scenario,
        repeat: int,
        dispatch_metadata: dict | None,
        conditions: Any = None,
        label: str | None = None,
    ) -> CallOutcome:
        assert self._sem is not None
        async with self._sem:
            return await self._call(scenario, repeat, dispatch_metadata, conditions, label)

    async def _call(
        self,
        scenario: Scenario,
        repeat: int,
        dispatch_metadata: dict | None,
        conditions: Any = None,
        label: str | None = None,
    ) -> CallOutcome:
        assert self.server is not None
        cfg = self.config
        call_dir = RunDir(cfg.run_dir).call(call_dir_name(label or scenario.id, repeat))
        out_dir = call_dir.path
        out_dir.mkdir(parents=True, exist_ok=True)
        cid = new_conversation_id()
        t0 = time.monotonic()
        pressure = PressureMeter().start()
        metered = self.meter.begin()
        harness_load: CallerLoad | None = None
        result: CallResult | None = None
        try:
            plan = await asyncio.to_thread(self.plan_for, scenario, conditions)
            plan = plan.with_agent(resolve_agent_name(scenario, cfg.agent_name))
            async with RoomService(self.server) as rooms:
                room = await rooms.open_call(
                    plan.agent_name,
                    conversation_id=cid,
                    caller_identity=f"caller-{cid}",
                    caller_attributes={"lk.simulator": "true"},
                    dispatch_metadata=dispatch_metadata,
                )
                if self.collector is not None:
                    self.collector.register_call(cid, room.join_keys)
                try:
                    caller = SyntheticCaller(
                        self.server.url,
                        room.caller_token,
                        plan,
                        conversation_id=cid,
                        room_name=room.name,
                        recording_path=call_dir.recording,
                        identity=f"caller-{cid}",
                        on_turn=(
                            functools.partial(self._on_turn, label or scenario.id, repeat)
                            if self._on_turn is not None
                            else None
                        ),
                    )
                    self._progress(f"calling {scenario.id} #{repeat} ({cid})")
                    result = await caller.run()
                finally:
                    # the caller's own share ends as it hangs up: collecting and scoring the
                    # call are not the caller's work
                    harness_load = self.meter.end(metered)
                    await rooms.close_call(room)
            # a call that never took place (no server, no agent joined) is an error of its
            # own, not also an after-call workflow that did not run
            placed = not isinstance(result.error, InfrastructureError)
            workflow = placed and self.expects_workflow(plan)
            instance = await self._collect(cid, plan, result, room, workflow)
            traced = instance if instance.spans else None
            self._actions_seen = self._actions_seen or bool(instance.actions)
            caller = {
                **result.to_json(),
                "expected_end_state": expected_end_state(plan),
                "plan": plan_record(plan),
                "workflow_expected": workflow,
                # the deployment records its actions (action.* spans): a confirmation
                # without one is unbacked; an agent that records none is not judged
                "actions_expected": self._actions_seen,
            }
            instance = dc_replace(
                instance.with_caller(caller, call_dir.recording_name), source=out_dir
            )
            await asyncio.to_thread(save_instance, instance, out_dir)
            scores = tuple(await asyncio.to_thread(score_instance, instance, plan))
            self.scores.record(
                scores,
                traced=traced is not None,
                data_errors=instance.data_errors,
                conversation_id=cid,
                scenario=scenario.id,
                repeat=repeat,
            )
            if self.collector is not None:
                self.collector.discard(cid)  # later spans are counted as late
            tool_calls = tool_calls_of(traced)
            failures = tuple(
                check_expectations(plan, result, tool_calls)
                + check_call_expectations(plan, traced, result.ended_at)
                + check_score_expectations(plan, result, scores)
            )
            cpu_pressure = pressure.share()
            if failures:
                failures += overload_notes(result, cpu_pressure)
            outcome = CallOutcome(
                scenario.id,
                repeat,
                cid,
                out_dir,
                time.monotonic() - t0,
                result,
                failures=failures,
                error=result.error,
                scores=scores,
                trace=TraceHealth.of(instance),
                host_cpu_pressure=cpu_pressure,
                data_errors=instance.data_errors,
                harness_load=harness_load,
            )
        except HarnessError as exc:
            if result is not None:  # keep what the caller measured
                _save_caller_only(result, call_dir, exc)
            outcome = CallOutcome(
                scenario.id,
                repeat,
                cid,
                out_dir,
                time.monotonic() - t0,
                result,
                error=exc,
                host_cpu_pressure=pressure.share(),
                harness_load=harness_load or self.meter.end(metered),
            )
        except Exception as exc:  # a harness bug: keep the call's data, report as an error
            log.exception("call %s crashed", cid)
            outcome = CallOutcome(
                scenario.id,
                repeat,
                cid,
                out_dir,
                time.monotonic() - t0,
                result,
                error=InfrastructureError(f"harness crashed: {type(exc).__name__}: {exc}"),
                harness_load=harness_load or self.meter.end(metered),
            )
        write_artifacts(outcome)
        self._progress(f"{scenario.id} #{repeat}: {outcome.verdict} in {outcome.duration_s:.1f}s")
        return outcome

    def expects_workflow(self, plan: CallPlan) -> bool:
        """Whether this call must have an after-call workflow: its scenario expects an
        after-call step, the session says so (``expect_workflow``), or (when that is None)
        an earlier call of the session showed the deployment has one."""
        if plan.workflow_timeout_s:
            return True
        if self.config.expect_workflow is not None:
            return self.config.expect_workflow
        return self._workflow_seen

    async def _collect(
        self,
        cid: str,
        plan: CallPlan,
        result: CallResult,
        room: CallRoom,
        workflow: bool = False,
    ) -> Instance:
        """The call's Instance from the collector. One that is empty or incomplete is
        returned as such, with the reason and the fix: a finding, never "complete"."""
        collector = self.collector
        if collector is None:
            why = "tracing is off" if not self.config.collect_traces else "the receiver stopped"
            return Instance(cid).marked_incomplete(f"no trace: {why} for this session")
        # an agent that traces has sent its first spans by now; don't wait for one that doesn't
        wait = FIRST_SPAN_WAIT_S if self.config.agent_cmd else FIRST_SPAN_WAIT_EXTERNAL_S
        deadline = time.monotonic() + wait
        while not collector.spans(cid) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if not collector.spans(cid):
            assert self._export is not None
            reason = no_trace_reason(
                self._export,
                requests=collector.stats.requests,
                unmatched=collector.unmatched(),
                traced_calls=self._traced_calls,
                room=room.name,
                room_sid=room.sid,
            )
            return Instance(cid).marked_incomplete(reason)
        self._traced_calls += 1
        workflow_s = plan.workflow_timeout_s or (WORKFLOW_WAIT_S if workflow else None)
        layers = ("conversational", "workflow") if workflow_s else ("conversational",)
        timeout = workflow_s if workflow_s else self.config.trace_settle_s + 10
        if result.error is not None:  # the call already failed: take what has arrived
            timeout = min(timeout, self.config.trace_settle_s)
        inst = await collector.instance_ready(cid, timeout, require_layers=layers)
        if workflow_s and inst.complete:
            # a second after-call run (a job queued twice) comes right after the first
            await asyncio.sleep(WORKFLOW_SETTLE_S)
            later = collector.instance(cid)
            if len(later.spans) > len(inst.spans) and later.complete:
                inst = later
        if inst.layers.get(c.LAYER_WORKFLOW):
            self._workflow_seen = True
        if not inst.complete and not inst.layer_finished(c.LAYER_CONVERSATIONAL):
            inst = inst.marked_incomplete(f"{inst.incomplete_reason}: {no_root_reason(inst)}")
        return inst


def _save_caller_only(result: CallResult, call: CallDir, error: HarnessError) -> None:
    """A call that failed before its trace was collected keeps what the caller measured,
    in the one caller file schema."""
    call.write_caller(
        CallerFile(
            format=CALLER_FORMAT,
            conversation_id=result.conversation_id,
            recording=call.recording_name if call.recording.is_file() else None,
            complete=False,
            incomplete_reason=f"the call failed before its trace was collected: {error}",
            caller=result.to_json(),
        )
    )


def save_instance(instance: Any, out_dir: Path) -> None:
    from harness.trace.otlp import save_instance as save

    save(instance, out_dir)


def plan_record(plan: CallPlan) -> list[dict[str, Any]]:
    """What the caller sent, per turn: voice and audio conditions (for reading a run later)."""
    return [
        {"index": t.index, "voice": t.voice, "conditions": list(t.conditions)}
        for t in plan.turns
        if t.kind == "say"
    ]


def write_artifacts(outcome: CallOutcome) -> None:
    """The call's transcript and timings files, next to its recording (timings last: a
    call with a verdict there has all its files)."""
    call = CallDir(outcome.artifacts)
    res = outcome.result
    turns = res.turns if res else ()
    transcript = TranscriptFile(
        {
            "conversation_id": outcome.conversation_id,
            "scenario_id": outcome.scenario_id,
            "turns": [
                {
                    "index": t.index,
                    "kind": t.kind,
                    "caller": t.text,
                    "agent_heard": t.agent_heard,
                    "agent_said": t.agent_said,
                }
                for t in turns
            ],
        }
    )
    timings = TimingsFile(
        {
            "conversation_id": outcome.conversation_id,
            "verdict": outcome.verdict,
            "duration_s": round(outcome.duration_s, 3),
            "error": str(outcome.error) if outcome.error else None,
            "failures": list(outcome.failures),
            "call": res.to_json() if res else None,
            "trace": outcome.trace.to_dict() if outcome.trace else None,
            "host_cpu_pressure": outcome.host_cpu_pressure,
            "data_errors": [e.to_dict() for e in outcome.data_errors],
            "harness": outcome.harness_load.to_dict() if outcome.harness_load else None,
        }
    )
    call.write_transcript(transcript)
    call.write_timings(timings)


def session_failure(outcome: CallOutcome) -> HarnessError | None:
    """The error to raise for an outcome: infrastructure first, then agent failures."""
    if outcome.verdict == "pass":
        return None
    if outcome.error is not None:
        return outcome.error
    return CallFailure("\n".join(outcome.failures))


class Schedule:
    """Calls submitted ahead of time, so up to K run at once while pytest reports each
    item in order. Keys are (scenario id, repeat)."""

    def __init__(self, session: CallSession) -> None:
        self.session = session
        self._futures: dict[tuple[str, int], concurrent.futures.Future[CallOutcome]] = {}

    def ensure(self, calls: list[tuple[Scenario, int]]) -> None:
        for scenario, repeat in calls:
            key = (scenario.id, repeat)
            if key not in self._futures:
                self._futures[key] = self.session.submit(scenario, repeat)

    def outcome(self, scenario: Scenario, repeat: int) -> CallOutcome:
        self.ensure([(scenario, repeat)])
        timeout = scenario.timeouts.call_s + 180  # rendering and queueing behind K calls
        try:
            return self._futures[(scenario.id, repeat)].result(timeout)
        except concurrent.futures.TimeoutError:
            raise InfrastructureError(
                f"call {scenario.id} #{repeat} did not finish within {timeout:.0f}s"
            ) from None
