"""What voice agents and their services import to join a call's Instance.

The distribution ``livekit-call-harness-instrument`` depends only on the OpenTelemetry API,
SDK and OTLP/HTTP exporter; livekit-agents is used when it is installed and imported only
then. Typical use (``import harness_instrument as instrument``)::

    # every service, once at start-up
    instrument.init_tracing("clinic-agent", layer="conversational", version="1.4.0")

    # the agent's entrypoint
    async def entrypoint(ctx: JobContext):
        instrument.conversation_from_job(ctx)
        ...

    # a call to the background agent carries the context in its headers
    headers = instrument.inject({})

    # the background agent
    with instrument.remote_context(request.headers):
        with instrument.action("create_booking", mutating=True, approval="approved"):
            ...

    # the after-call workflow, from a queued job's payload
    with instrument.linked_span("after_call", job["trace"]):
        ...

A span processor stamps ``conversation.id``, ``agent.layer``, ``agent.version``,
``service.version`` and ``deployment.environment.name`` (and the older
``deployment.environment``) on every span, livekit-agents' own included, so user code never
sets them. Without any code, ``harness-instrument CMD`` or
``import harness_instrument.autoconfigure`` set tracing up from the standard ``OTEL_*``
variables (:mod:`harness_instrument.auto`). Nothing here raises into the code it observes:
an unreachable collector is logged (at most once a minute) and the spans are dropped; flush
and shutdown are bounded.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import logging
import multiprocessing.util
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from harness_instrument import conventions as c

__all__ = [
    "ActionSpan",
    "ConversationSpanProcessor",
    "IntentSpan",
    "action",
    "conversation_from_job",
    "current_conversation_id",
    "extract",
    "flush",
    "get_tracer",
    "init_tracing",
    "inject",
    "intent",
    "linked_span",
    "remote_context",
    "set_conversation_id",
    "shutdown_tracing",
]

log = logging.getLogger("harness_instrument")

_TRACER_NAME = "harness_instrument"
_LOG_INTERVAL_S = 60.0
_DEFAULT_SCHEDULE_DELAY_MS = 500
# Span attribute <- resource attributes, the first one present: the current and the older
# names of one value, so a provider built elsewhere (OTEL_RESOURCE_ATTRIBUTES with only
# service.version or only deployment.environment) still stamps every name readers look for.
_STAMPED: tuple[tuple[str, tuple[str, ...]], ...] = (
    (c.AGENT_LAYER, (c.AGENT_LAYER,)),
    (c.AGENT_VERSION, (c.AGENT_VERSION, c.SERVICE_VERSION)),
    (c.SERVICE_VERSION, (c.SERVICE_VERSION, c.AGENT_VERSION)),
    (c.DEPLOYMENT_ENVIRONMENT_NAME, (c.DEPLOYMENT_ENVIRONMENT_NAME, c.DEPLOYMENT_ENVIRONMENT)),
    (c.DEPLOYMENT_ENVIRONMENT, (c.DEPLOYMENT_ENVIRONMENT, c.DEPLOYMENT_ENVIRONMENT_NAME)),
)
_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
# OpenTelemetry's own exporter loggers: rate-limited so an outage does not flood the logs
_OTEL_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk._shared_internal",
)


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.provider: TracerProvider | None = None
        self.providers: list[TracerProvider] = []
        self.conversation_id: str | None = None
        self.atexit_registered = False
        self.warned: set[str] = set()


_state = _State()


def _warn_once(key: str, message: str, *args: Any, exc_info: bool = False) -> None:
    with _state.lock:
        if key in _state.warned:
            return
        _state.warned.add(key)
    log.warning(message, *args, exc_info=exc_info)


class _RateLimit(logging.Filter):
    """Lets each distinct message through at most once per interval."""

    def __init__(self, interval_s: float = _LOG_INTERVAL_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        self._last[key] = now
        return True


def _rate_limit_otel_logs() -> None:
    for name in _OTEL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RateLimit) for f in logger.filters):
            logger.addFilter(_RateLimit())


# --- the span processor -----------------------------------------------------------------------


class ConversationSpanProcessor(SpanProcessor):
    """Stamps the instance attributes on every span when it starts.

    ``conversation.id`` comes from baggage (the span's parent context, then the current
    one), else from the process-wide conversation id that :func:`conversation_from_job`
    sets: livekit-agents starts some spans from contexts captured before the entrypoint
    could put the id in baggage. ``agent.layer``, ``agent.version``, ``service.version``,
    ``deployment.environment.name`` and ``deployment.environment`` come from the resource
    (either name of the version and of the environment fills both). Attributes a span
    already has are left alone. It never raises.
    """

    def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
        try:
            existing = span.attributes or {}
            attrs: dict[str, Any] = {}
            if c.CONVERSATION_ID not in existing:
                cid = _conversation_in(parent_context) or _conversation_in(None)
                cid = cid or _state.conversation_id
                if cid:
                    attrs[c.CONVERSATION_ID] = cid
            resource = getattr(span, "resource", None)
            res_attrs = resource.attributes if resource is not None else {}
            for key, sources in _STAMPED:
                if key in existing:
                    continue
                value = next((res_attrs[s] for s in sources if res_attrs.get(s) is not None), None)
                if value is not None:
                    attrs[key] = value
            if attrs:
                span.set_attributes(attrs)
        except Exception:
            _warn_once("on_start", "cannot stamp instance attributes on a span", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _conversation_in(ctx: otel_context.Context | None) -> str | None:
    value = baggage.get_baggage(c.BAGGAGE_CONVERSATION_ID, ctx)
    return str(value) if value else None


# --- the exporter -----------------------------------------------------------------------------


class _GuardedExporter(SpanExporter):
    """Never raises; logs an outage once, then at most once a minute with a dropped count."""

    def __init__(self, inner: SpanExporter, where: str) -> None:
        self._inner = inner
        self._where = where
        self._last_log: float | None = None
        self._dropped = 0
        self._failing = False
        self._lock = threading.Lock()

    def export(self, spans: Any) -> SpanExportResult:
        error: Exception | None = None
        try:
            result = self._inner.export(spans)
        except Exception as e:
            result, error = SpanExportResult.FAILURE, e
        if result is SpanExportResult.SUCCESS:
            if self._failing:
                self._failing = False
                log.info("trace export to %s recovered", self._where)
            return result
        with self._lock:
            self._failing = True
            self._dropped += len(spans)
            now = time.monotonic()
            if self._last_log is not None and now - self._last_log < _LOG_INTERVAL_S:
                return SpanExportResult.FAILURE
            self._last_log = now
            dropped, self._dropped = self._dropped, 0
        log.warning(
            "could not export %d spans to %s%s; the service carries on without them "
            "(logged at most once a minute)",
            dropped,
            self._where,
            f" ({type(error).__name__}: {error})" if error else "",
        )
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        try:
            self._inner.shutdown()
        except Exception:
            log.debug("trace exporter shutdown failed", exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return bool(self._inner.force_flush(timeout_millis))
        except Exception:
            return False


def _traces_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    return base if base.endswith(c.OTLP_TRACES_PATH) else base + c.OTLP_TRACES_PATH


def _make_exporter(
    endpoint: str | None, headers: Mapping[str, str] | None, timeout_s: float
) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    kwargs: dict[str, Any] = {}
    if endpoint:
        kwargs["endpoint"] = _traces_url(endpoint)
    if headers:
        kwargs["headers"] = dict(headers)
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")
    ):
        kwargs["timeout"] = timeout_s
    inner = OTLPSpanExporter(**kwargs)
    where = str(getattr(inner, "_endpoint", kwargs.get("endpoint", "the OTLP endpoint")))
    return _GuardedExporter(inner, where)


# --- set-up -----------------------------------------------------------------------------------


def init_tracing(
    service_name: str,
    layer: str,
    version: str = "0.0.0",
    environment: str = "dev",
    *,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    export_timeout_s: float = 2.0,
    schedule_delay_ms: int | None = None,
    set_global: bool = True,
    livekit: bool | None = None,
    allow_pii: bool | None = None,
) -> TracerProvider:
    """Set up tracing for one service of one layer; returns its TracerProvider.

    Spans go over OTLP/HTTP to ``endpoint`` (a base URL such as the collector's
    ``endpoint``) or, by default, where the standard ``OTEL_EXPORTER_OTLP_*`` variables
    say (endpoint, headers, compression, timeout). The resource carries ``service.name``,
    ``agent.layer``, ``agent.version`` and ``service.version`` (both ``version``),
    ``deployment.environment.name`` and the older ``deployment.environment`` (both
    ``environment``); other ``OTEL_RESOURCE_ATTRIBUTES`` are kept.

    ``livekit``: hand the provider to livekit-agents so its own spans join (None: when it
    is installed; True: it must be; False: never). ``allow_pii`` is passed on to it: False
    strips ``lk.pii.*`` attributes (transcripts, tool arguments) before export.
    ``set_global`` also makes it OpenTelemetry's global provider when none is set yet.
    """
    if layer not in c.LAYERS:
        raise ValueError(f"layer={layer!r} is not a layer; use one of {', '.join(c.LAYERS)}")
    resource = Resource.create(
        {
            c.SERVICE_NAME: service_name,
            c.AGENT_LAYER: layer,
            c.AGENT_VERSION: version,
            c.SERVICE_VERSION: version,
            c.DEPLOYMENT_ENVIRONMENT_NAME: environment,
            # still written: readers of the older name (the harness's own tests) rely on it
            c.DEPLOYMENT_ENVIRONMENT: environment,
            "process.pid": os.getpid(),
        }
    )
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(ConversationSpanProcessor())
    _rate_limit_otel_logs()
    try:
        exporter = _make_exporter(endpoint, headers, export_timeout_s)
        if schedule_delay_ms is None and not os.environ.get("OTEL_BSP_SCHEDULE_DELAY"):
            schedule_delay_ms = _DEFAULT_SCHEDULE_DELAY_MS
        provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=schedule_delay_ms)
        )
    except Exception as e:
        # a malformed OTEL_* variable must not stop the service: it runs untraced
        log.warning("tracing disabled for %s: cannot set up the OTLP exporter: %s", service_name, e)

    with _state.lock:
        _state.provider = provider
        _state.providers.append(provider)
        if not _state.atexit_registered:
            _state.atexit_registered = True
            atexit.register(_shutdown_all_at_exit)
            # Processes started by multiprocessing (livekit-agents' job processes) leave
            # through os._exit, which skips atexit but runs multiprocessing's finalizers:
            # without this, the spans that end last (the job's root span) are lost.
            multiprocessing.util.Finalize(None, _shutdown_all_at_exit, exitpriority=100)
            # A multiprocessing child clears the finalizers it inherited (forkserver and
            # fork) or registered while starting up (spawn, and the zero-code set-up run by
            # sitecustomize): register the flush again in each child.
            multiprocessing.util.register_after_fork(_state, _register_exit_flush)

    if set_global:
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)
        else:
            log.info(
                "a global tracer provider is already set; harness_instrument spans use %s's",
                service_name,
            )
    if livekit is not False:
        _hand_to_livekit(provider, required=livekit is True, allow_pii=allow_pii)
    return provider


def _hand_to_livekit(provider: TracerProvider, *, required: bool, allow_pii: bool | None) -> None:
    try:
        if not required and importlib.util.find_spec("livekit.agents") is None:
            return
    except (ImportError, ValueError):
        return
    try:
        from livekit.agents import telemetry as lk_telemetry

        lk_telemetry.set_tracer_provider(provider, allow_pii=allow_pii)
    except Exception:
        if required:
            raise
        _warn_once("livekit", "cannot hand the tracer provider to livekit-agents", exc_info=True)


def get_tracer(name: str = _TRACER_NAME) -> trace.Tracer:
    """A tracer on the provider of the last :func:`init_tracing` (else the global one)."""
    provider = _state.provider
    if provider is not None:
        return provider.get_tracer(name)
    return trace.get_tracer(name)


def _bounded(fn: Callable[[], Any], timeout_s: float) -> bool:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(fn())
        except Exception:
            log.debug("tracing flush/shutdown failed", exc_info=True)
            result.append(False)

    t = threading.Thread(target=run, name="harness-instrument-flush", daemon=True)
    t.start()
    t.join(timeout_s)
    return bool(result) and result[0] is not False


def flush(timeout_s: float = 5.0) -> bool:
    """Export the spans ended so far; False when they were not all sent in time."""
    provider = _state.provider
    if provider is None:
        return True
    return _bounded(lambda: provider.force_flush(int(timeout_s * 1000)), timeout_s)


def shutdown_tracing(timeout_s: float = 5.0) -> bool:
    """Flush and stop every provider :func:`init_tracing` made, within ``timeout_s``."""
    with _state.lock:
        providers, _state.providers = list(_state.providers), []
        _state.provider = None
    deadline = time.monotonic() + timeout_s
    ok = True
    for p in providers:
        ok = _bounded(p.shutdown, max(0.0, deadline - time.monotonic())) and ok
    return ok


def _shutdown_all_at_exit() -> None:
    shutdown_tracing(timeout_s=3.0)


def _register_exit_flush(_: object) -> None:
    try:
        multiprocessing.util.Finalize(None, _shutdown_all_at_exit, exitpriority=100)
    except Exception:
        log.debug("cannot register the exit flush in a child process", exc_info=True)


# --- the conversation id ----------------------------------------------------------------------


def set_conversation_id(conversation_id: str | None) -> None:
    """Set (or clear) the process-wide conversation id, the fallback for spans whose
    context carries no baggage. One job per process, as livekit-agents runs them."""
    _state.conversation_id = conversation_id or None


def current_conversation_id() -> str | None:
    """The conversation id in the current context's baggage, else the process-wide one."""
    return _conversation_in(None) or _state.conversation_id


def _id_from_metadata(raw: Any, key: str) -> str | None:
    if not raw or not isinstance(raw, (str, bytes)):
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if isinstance(doc, dict):
        value = doc.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def conversation_from_job(ctx: Any, *, key: str = c.METADATA_CONVERSATION_ID) -> str | None:
    """Read the conversation id of a livekit-agents job and make it current.

    Looks in the job's dispatch metadata, then the room's metadata (JSON objects with
    ``{"conversation_id": ...}``), then falls back to the room name. Puts the id in
    baggage on the current context (so spans and :func:`inject` carry it) and in the
    process-wide fallback, registers a shutdown callback that flushes the spans when the
    job ends, and returns the id (None when the job has neither metadata nor a room name).
    ``ctx`` is duck-typed: anything with ``.job.metadata``, ``.job.room`` or ``.room``.
    """
    try:
        job = getattr(ctx, "job", None)
        job_room = getattr(job, "room", None)
        room = getattr(ctx, "room", None)
        cid = None
        for raw in (
            getattr(job, "metadata", None),
            getattr(job_room, "metadata", None),
            getattr(room, "metadata", None),
        ):
            cid = _id_from_metadata(raw, key)
            if cid:
                break
        if not cid:
            name = getattr(job_room, "name", None) or getattr(room, "name", None)
            cid = str(name) if name else None
        if not cid:
            _warn_once("no-cid", "no conversation id in the job's metadata and no room name")
            return None
        otel_context.attach(baggage.set_baggage(c.BAGGAGE_CONVERSATION_ID, cid))
        set_conversation_id(cid)
        # The span the entrypoint runs under (livekit-agents' job_entrypoint) started before
        # the id was known; stamp it now so the whole job's tree carries the id.
        current = trace.get_current_span()
        if current.is_recording():
            current.set_attribute(c.CONVERSATION_ID, cid)
        add_cb = getattr(ctx, "add_shutdown_callback", None)
        if callable(add_cb):
            add_cb(_flush_on_job_shutdown)
        return cid
    except Exception:
        _warn_once("from-job", "cannot read the conversation id from the job", exc_info=True)
        return None


async def _flush_on_job_shutdown() -> None:
    import asyncio

    try:
        await asyncio.to_thread(flush, 3.0)
    except Exception:
        log.debug("flush at job shutdown failed", exc_info=True)


# --- propagation ------------------------------------------------------------------------------


class _AnyCaseGetter(Getter[Mapping[str, Any]]):
    """Reads ``traceparent`` from ``Traceparent`` too: HTTP header names have no case."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            for k in carrier:
                if isinstance(k, str) and k.lower() == lowered:
                    value = carrier[k]
                    break
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return [str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier.keys())


_GETTER = _AnyCaseGetter()


def inject(
    carrier: MutableMapping[str, str] | None = None,
    context: otel_context.Context | None = None,
) -> MutableMapping[str, str]:
    """Write W3C ``traceparent`` and ``baggage`` (with the conversation id) into ``carrier``
    (HTTP headers or a job payload dict) and return it."""
    if carrier is None:
        carrier = {}
    try:
        ctx = context if context is not None else otel_context.get_current()
        if not _conversation_in(ctx) and _state.conversation_id:
            ctx = baggage.set_baggage(c.BAGGAGE_CONVERSATION_ID, _state.conversation_id, ctx)
        _PROPAGATOR.inject(carrier, context=ctx)
    except Exception:
        _warn_once("inject", "cannot inject trace context", exc_info=True)
    return carrier


def extract(carrier: Mapping[str, Any] | None) -> otel_context.Context:
    """The context (remote parent span and baggage) carried by ``carrier``."""
    try:
        return _PROPAGATOR.extract(carrier or {}, context=otel_context.Context(), getter=_GETTER)
    except Exception:
        _warn_once("extract", "cannot extract trace context", exc_info=True)
        return otel_context.Context()


@contextlib.contextmanager
def remote_context(carrier: Mapping[str, Any] | None) -> Iterator[otel_context.Context]:
    """Continue the caller's trace (as a child) for the block: for a request handler."""
    ctx = extract(carrier)
    token = otel_context.attach(ctx)
    try:
        yield ctx
    finally:
        _detach(token)


def _detach(token: Any) -> None:
    try:
        otel_context.detach(token)
    except Exception:
        log.debug("context detach failed", exc_info=True)


# --- spans ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _span(
    name: str,
    attributes: Mapping[str, Any] | None,
    *,
    context: otel_context.Context | None = None,
    links: list[Link] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    on_error: Callable[[trace.Span], None] | None = None,
) -> Iterator[trace.Span]:
    """A current span that never raises on our side and records the block's exception."""
    try:
        span = get_tracer().start_span(
            name, context=context, kind=kind, attributes=dict(attributes or {}), links=links
        )
        token = otel_context.attach(trace.set_span_in_context(span, context))
    except Exception:
        _warn_once("start", "cannot start span %r", name, exc_info=True)
        yield trace.INVALID_SPAN
        return
    try:
        yield span
    except BaseException as e:
        if not isinstance(e, GeneratorExit):
            try:
                if on_error is not None:
                    on_error(span)
                span.record_exception(e)
                span.set_status(Status(StatusCode.ERROR, f"{type(e).__name__}: {e}"))
            except Exception:
                log.debug("cannot record an exception on span %r", name, exc_info=True)
        raise
    finally:
        _detach(token)
        try:
            span.end()
        except Exception:
            log.debug("cannot end span %r", name, exc_info=True)


def _set(span: trace.Span, key: str, value: Any) -> None:
    try:
        span.set_attribute(key, value)
    except Exception:
        log.debug("cannot set %s on a span", key, exc_info=True)


class IntentSpan:
    """The handle :func:`intent` yields: set the outcome the business logic reached."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.outcome: str | None = None

    def set_outcome(self, outcome: str) -> None:
        self.outcome = outcome
        _set(self.span, c.INTENT_OUTCOME, outcome)

    def set_attribute(self, key: str, value: Any) -> None:
        _set(self.span, key, value)


class ActionSpan:
    """The handle :func:`action` yields: record the approval decision when it is known."""

    def __init__(self, span: trace.Span, approval: str | None) -> None:
        self.span = span
        self.approval = approval

    def set_approval(self, approval: str) -> None:
        _check_approval(approval)
        self.approval = approval
        _set(self.span, c.ACTION_APPROVAL, approval)

    def set_attribute(self, key: str, value: Any) -> None:
        _set(self.span, key, value)


def _check_approval(approval: str | None) -> None:
    if approval is not None and approval not in c.APPROVALS:
        _warn_once(
            f"approval:{approval}",
            "action approval=%r is not one of %s; recorded as given",
            approval,
            ", ".join(c.APPROVALS),
        )


@contextlib.contextmanager
def intent(name: str, *, attributes: Mapping[str, Any] | None = None) -> Iterator[IntentSpan]:
    """A business-intent span (``intent.name``); set ``intent.outcome`` on the handle.

    An exception in the block marks the span as an error (outcome ``"error"`` unless one
    was set) and propagates unchanged.
    """
    attrs = {**(attributes or {}), c.INTENT_NAME: name}
    handle: IntentSpan | None = None

    def on_error(span: trace.Span) -> None:
        if handle is not None and handle.outcome is None:
            handle.set_outcome("error")

    with _span(f"{c.SPAN_INTENT_PREFIX} {name}", attrs, on_error=on_error) as span:
        handle = IntentSpan(span)
        yield handle


@contextlib.contextmanager
def action(
    name: str,
    mutating: bool = True,
    approval: str | None = None,
    *,
    key: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[ActionSpan]:
    """A background action span: ``action.name``, ``action.mutating`` and, once known,
    ``action.approval`` (``approved``, ``denied`` or ``skipped``). ``key`` (``action.key``)
    names what the action acts on, as an idempotency key without personal data, so a
    repeated action can be told from a second, different one."""
    _check_approval(approval)
    attrs: dict[str, Any] = {
        **(attributes or {}),
        c.ACTION_NAME: name,
        c.ACTION_MUTATING: bool(mutating),
    }
    if approval is not None:
        attrs[c.ACTION_APPROVAL] = approval
    if key is not None:
        attrs[c.ACTION_KEY] = str(key)
    with _span(f"{c.SPAN_ACTION_PREFIX} {name}", attrs) as span:
        yield ActionSpan(span, approval)


@contextlib.contextmanager
def linked_span(
    name: str,
    carrier: Mapping[str, Any] | otel_context.Context | None,
    *,
    attributes: Mapping[str, Any] | None = None,
    kind: SpanKind = SpanKind.CONSUMER,
) -> Iterator[trace.Span]:
    """Start a new trace linked (not parented) to the context in ``carrier``.

    For the after-call workflow, which runs after the call's trace has ended: the span is
    a root, carries a link to the call's span and the carrier's baggage (so it gets the
    conversation id), and is current for the block.
    """
    try:
        remote = carrier if isinstance(carrier, otel_context.Context) else extract(carrier)
        remote_span = trace.get_current_span(remote).get_span_context()
        links = [Link(remote_span)] if remote_span.is_valid else []
        base = otel_context.Context()
        for k, v in baggage.get_all(remote).items():
            base = baggage.set_baggage(k, v, base)
    except Exception:
        _warn_once("linked", "cannot read the context to link to", exc_info=True)
        links, base = [], otel_context.Context()
    token = otel_context.attach(base)
    try:
        with _span(name, attributes, context=base, links=links, kind=kind) as span:
            yield span
    finally:
        _detach(token)
