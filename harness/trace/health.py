"""Why a call's trace is missing or partial, and what to change: the words the call table,
the gate table and ``harness show`` use, so a user never sees an empty Instance called
complete, nor "insufficient samples" where the truth is "no trace arrived".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.trace import conventions as c
from harness.trace.instance import NO_TRACE, Instance, TraceState
from harness.trace.join import UnmatchedReport

__all__ = [
    "SPAN_CAP_ENV",
    "ExportSetup",
    "SessionTraceReport",
    "TraceHealth",
    "no_root_reason",
    "no_trace_reason",
    "over_cap_reason",
]

ONE_LINE = "import harness_instrument.autoconfigure"
"""The one line an agent adds to export its spans from the standard OTEL_* variables."""

SPAN_CAP_ENV = "HARNESS_MAX_SPANS_PER_CALL"
"""Sets the trace receiver's cap on spans per call (:class:`~harness.trace.collector.Collector`)."""


def _services(by_service: Iterable[tuple[str, int]], limit: int = 5) -> str:
    items = list(by_service)
    text = ", ".join(f"{name}: {n}" for name, n in items[:limit])
    return text + (f", ... {len(items) - limit} more" if len(items) > limit else "")


def over_cap_reason(dropped: int, cap: int, by_service: Iterable[tuple[str, int]]) -> str:
    """Why an Instance is incomplete when its call sent more spans than the receiver keeps."""
    return (
        f"{dropped} span{'s' if dropped != 1 else ''} dropped over the cap of {cap} spans per "
        f"call (from {_services(by_service)}): the trace is cut short. Raise the cap with "
        f"{SPAN_CAP_ENV}=<spans> (or Collector(max_spans_per_call=...)), or find why the agent "
        "sends so many"
    )


@dataclass(frozen=True)
class TraceHealth:
    """A call's trace at a glance: its state, how many spans, and why it is not complete."""

    state: TraceState
    spans: int
    reason: str = ""

    @classmethod
    def of(cls, instance: Instance) -> TraceHealth:
        state = instance.trace_state
        reason = ""
        if state != "complete":
            reason = instance.incomplete_reason or no_root_reason(instance)
        return cls(state, len(instance.spans), reason)

    @property
    def label(self) -> str:
        """For a table cell: ``ok``, ``partial`` or ``none``."""
        return {"complete": "ok", "partial": "partial", "none": "none"}[self.state]

    def to_dict(self) -> dict[str, object]:
        return {"state": self.state, "spans": self.spans, "reason": self.reason}


@dataclass(frozen=True)
class ExportSetup:
    """How the agent was meant to export: the receiver's endpoint, and the command the
    harness started the agent with (None for an agent started by someone else)."""

    endpoint: str
    agent_cmd: str | None = None
    agent_env: Mapping[str, str] | None = None


def _env_problem(env: Mapping[str, str]) -> str | None:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "OTEL_SDK_DISABLED=true is set in the agent's environment: unset it"
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter and "otlp" not in exporter.split(","):
        return f"OTEL_TRACES_EXPORTER={exporter} is set in the agent's environment: use otlp"
    return None


def no_trace_reason(
    setup: ExportSetup,
    *,
    requests: int,
    unmatched: UnmatchedReport,
    traced_calls: int,
    room: str | None = None,
    room_sid: str | None = None,
) -> str:
    """The reason a call has not a single span, with its likely cause and the fix.

    ``requests`` is how many export requests the receiver took this session,
    ``unmatched`` the spans that joined no call, ``traced_calls`` how many other calls of
    the session did get spans.
    """
    env_problem = _env_problem(setup.agent_env or {})
    if env_problem:
        return f"{NO_TRACE}: {env_problem}"
    if requests == 0:
        if setup.agent_cmd is None:
            return (
                f"{NO_TRACE}: nothing was exported to the trace receiver at {setup.endpoint}. "
                "An agent the harness did not start must export there: set "
                f"OTEL_EXPORTER_OTLP_ENDPOINT={setup.endpoint} in its environment (keep the "
                "address fixed with --collector HOST:PORT), and make sure it traces: start it "
                f"with `harness agent -- <your command>`, or add `{ONE_LINE}` to it"
            )
        return (
            f"{NO_TRACE}: nothing was exported to the trace receiver at {setup.endpoint}; "
            "the agent sets up no tracing. Start it with "
            f"`harness agent -- {_short(setup.agent_cmd)}` (no code change), or add "
            f"`{ONE_LINE}` to it, or hand your own TracerProvider to "
            "livekit.agents.telemetry.set_tracer_provider(); it reads "
            "OTEL_EXPORTER_OTLP_ENDPOINT, which the harness sets"
        )
    room_ids = ", ".join(x for x in (room, room_sid) if x)
    if unmatched.total:
        return (
            f"{NO_TRACE} for this call: {unmatched.describe()}, none with this call's "
            f"{c.CONVERSATION_ID}, {c.GEN_AI_CONVERSATION_ID} or room ({room_ids}). "
            "Spans started outside a job carry no room: start them inside the entrypoint, "
            "or stamp conversation.id with harness_instrument"
        )
    return (
        f"{NO_TRACE} for this call, though {traced_calls} other call"
        f"{'s' if traced_calls != 1 else ''} got spans: the agent's exporter may not have "
        "sent them before the call was scored (OTEL_BSP_SCHEDULE_DELAY), or its job "
        "process exited before flushing"
    )


def no_root_reason(instance: Instance) -> str:
    """Why an instance with spans is partial: the conversational agent's root never came."""
    if instance.find(c.SPAN_JOB_ENTRYPOINT):
        return "the conversational agent's root span did not arrive"
    return (
        f"the agent's root span ({c.SPAN_JOB_ENTRYPOINT}) never arrived: it ends after the "
        "call, when livekit-agents' job process is already leaving without running atexit "
        "handlers, so the batch processor never sends it. Shut the provider down at process "
        "exit: `multiprocessing.util.Finalize(None, provider.shutdown, exitpriority=100)` "
        "in the worker's setup_fnc, or run the agent with `harness agent --`, which does"
    )


def _short(cmd: str, limit: int = 80) -> str:
    text = " ".join(cmd.replace("{python}", "python").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class SessionTraceReport:
    """What a session's receiver got that became no call's trace: spans that matched no
    call (by service) and spans that came after their call was scored."""

    unmatched: UnmatchedReport
    late_spans: int = 0
    over_cap: tuple[tuple[str, int], ...] = ()
    """Spans dropped because their call had reached the receiver's cap of spans per call,
    by service (most first)."""
    over_cap_calls: int = 0
    """Calls that reached the cap (each is marked incomplete)."""
    span_cap: int = 0
    """The cap in force (spans per call)."""

    @property
    def over_cap_spans(self) -> int:
        return sum(n for _, n in self.over_cap)

    def lines(self) -> list[str]:
        out = []
        if self.over_cap_spans:
            n, calls = self.over_cap_spans, self.over_cap_calls
            out.append(
                f"{n} span{'s' if n != 1 else ''} dropped over the cap of {self.span_cap} spans "
                f"per call, in {calls} call{'s' if calls != 1 else ''} "
                f"(from {_services(self.over_cap)}): those calls are marked incomplete; raise "
                f"the cap with {SPAN_CAP_ENV}=<spans>"
            )
        if self.unmatched.total:
            out.append(
                f"{self.unmatched.describe()}: they carry no conversation.id and none of the "
                f"calls' room or job ids ({', '.join(c.JOIN_KEYS[:3])}, ...)"
            )
        if self.late_spans:
            out.append(
                f"{self.late_spans} span{'s' if self.late_spans != 1 else ''} arrived after "
                "their call was scored and are not in its Instance: the agent exports late "
                "(lower OTEL_BSP_SCHEDULE_DELAY, flush at the end of the job)"
            )
        return out

    def to_dict(self) -> dict[str, object]:
        u = self.unmatched
        return {
            "parked": u.parked,
            "dropped": u.dropped,
            "by_service": [list(x) for x in u.by_service],
            "late_spans": self.late_spans,
            "over_cap": [list(x) for x in self.over_cap],
            "over_cap_calls": self.over_cap_calls,
            "span_cap": self.span_cap,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SessionTraceReport:
        by_service = data.get("by_service") or []
        over_cap = data.get("over_cap") or []
        assert isinstance(by_service, list) and isinstance(over_cap, list)
        return cls(
            UnmatchedReport(
                parked=int(data.get("parked", 0)),  # type: ignore[arg-type]
                dropped=int(data.get("dropped", 0)),  # type: ignore[arg-type]
                by_service=tuple((str(k), int(v)) for k, v in by_service),
            ),
            late_spans=int(data.get("late_spans", 0)),  # type: ignore[arg-type]
            over_cap=tuple((str(k), int(v)) for k, v in over_cap),
            over_cap_calls=int(data.get("over_cap_calls", 0)),  # type: ignore[arg-type]
            span_cap=int(data.get("span_cap", 0)),  # type: ignore[arg-type]
        )

    @classmethod
    def merged(cls, reports: Iterable[SessionTraceReport]) -> SessionTraceReport:
        """The reports of several pytest-xdist workers as one."""
        parked = dropped = late = calls = cap = 0
        services: Counter[str] = Counter()
        capped: Counter[str] = Counter()
        for r in reports:
            parked += r.unmatched.parked
            dropped += r.unmatched.dropped
            late += r.late_spans
            services.update(dict(r.unmatched.by_service))
            capped.update(dict(r.over_cap))
            calls += r.over_cap_calls
            cap = max(cap, r.span_cap)
        return cls(
            UnmatchedReport(parked, dropped, _most_first(services)),
            late,
            over_cap=_most_first(capped),
            over_cap_calls=calls,
            span_cap=cap,
        )


def _most_first(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
