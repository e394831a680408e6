"""An OTLP/HTTP trace receiver that assembles spans into Instances by conversation id.

``POST /v1/traces`` takes protobuf (``application/x-protobuf``) or OTLP/JSON
(``application/json``), gzip-compressed or not. Spans join calls by the rules of
:mod:`harness.trace.join` (``conversation.id``, then the call's registered ids such as the
room's name and server id, then trace membership and links) and are deduplicated by
(trace id, span id), so exporter retries, out-of-order batches and late spans all assemble
the same Instance. A span that joins no call yet waits in a bounded holding area; what
never joins is counted by service (:meth:`Collector.unmatched`). Spans for a call already
scored and discarded are counted as late, per call.

The receiver never crashes on a payload: an undecodable body gets 400 with the reason as
the body, an unknown content type 415, an oversized one 413. Spans with unusable ids are
dropped alone and reported as an OTLP partial success.

Use it from asyncio (``async with Collector() as col``) or, for synchronous callers, on
its own thread (``with Collector.run_in_thread() as col``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from harness.errors import InfrastructureError
from harness.trace import conventions as c
from harness.trace.instance import Instance, Span, prefer
from harness.trace.join import Joiner, UnmatchedReport
from harness.trace.otlp import Decoded, OtlpDecodeError, spans_from_json, spans_from_proto

__all__ = ["Collector", "CollectorStats", "CollectorThread", "IngestResult"]

log = logging.getLogger(__name__)

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"
# bodies larger than this are decoded on a worker thread, so the loop keeps serving
OFF_LOOP_BYTES = 256 * 1024
_MAX_BODY = 64 * 1024 * 1024
_EVICT_EVERY_S = 1.0
_WEAK_ROOT_QUIET_S = 6.0
"""How long a conversational or background layer whose root's local parent never arrived
must be quiet before it counts as done (livekit-agents' ``job_entrypoint`` may sit on
another tracer provider): longer than the batch processor's default 5 s schedule delay.
Never applied to the workflow layer: a workflow that crashed leaves its steps without
their root, and that must read as incomplete."""


@dataclass(frozen=True)
class IngestResult:
    """What the receiver answers to one request."""

    status: int
    body: bytes
    content_type: str
    accepted: int = 0
    rejected: int = 0
    # decoded but not yet indexed (``ingest(..., index=False)``): (mime, decoded)
    pending: tuple[str, Decoded] | None = None

    @property
    def reason(self) -> str:
        return self.body.decode("utf-8", "replace") if self.status >= 400 else ""


@dataclass(frozen=True)
class CollectorStats:
    requests: int
    bad_requests: int
    spans_accepted: int
    spans_rejected: int
    duplicates: int
    instances: int
    unassigned: int
    evicted_instances: int
    unmatched_dropped: int = 0
    """Spans that joined no call and were dropped from the holding area (age or size)."""
    late: int = 0
    """Spans for a call whose instance had already been taken and discarded."""


class _Bucket:
    __slots__ = ("last_seen", "spans")

    def __init__(self) -> None:
        self.spans: dict[tuple[str, str], Span] = {}
        self.last_seen = time.monotonic()


def _fmt_s(seconds: float) -> str:
    return f"{seconds:g}s"


def _layer_root(inst: Instance, layer: str, *, strong: bool) -> bool:
    """Strong: :meth:`Instance.layer_finished`. Weak: any span of the layer without a
    parent in the instance (its local parent may still be on its way, or never come)."""
    if strong:
        return inst.layer_finished(layer)
    return any(s.layer == layer for s in inst.roots)


class Collector:
    """OTLP/HTTP receiver on ``host:port`` (a free loopback port by default)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        retention_s: float = 600.0,
        max_instances: int = 1000,
        *,
        max_unassigned: int = 10_000,
        max_body_bytes: int = _MAX_BODY,
    ) -> None:
        if retention_s <= 0:
            raise ValueError(f"retention_s must be positive, got retention_s={retention_s!r}")
        if max_instances < 1:
            raise ValueError(f"max_instances must be at least 1, got {max_instances!r}")
        self.host = host
        self.port = port
        self.retention_s = retention_s
        self.max_instances = max_instances
        self.max_unassigned = max_unassigned
        self.max_body_bytes = max_body_bytes
        self._lock = threading.RLock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._joiner = Joiner(max_parked=max_unassigned)
        # conversations taken and discarded: their ids stay known, so late spans are
        # counted against them instead of passing for spans of no call
        self._closed: OrderedDict[str, int] = OrderedDict()
        self._max_closed = 10 * max_instances
        self._pins: Counter[str] = Counter()
        self._registered: set[str] = set()  # calls the harness placed (synthetic)
        self._events: dict[str, asyncio.Event] = {}
        self._last_evict = 0.0
        self._counts: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    # --- lifecycle ---

    async def start(self) -> Collector:
        if self._runner is not None:
            return self
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post(c.OTLP_TRACES_PATH, self._handle)
        # decompression is ours, so a bad gzip stream gets a 400 with a reason
        runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise InfrastructureError(
                f"trace collector cannot listen on {self.host}:{self.port}: {e.strerror or e}; "
                "pick another port or pass port=0 for a free one"
            ) from e
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._bound_port = sockets[0].getsockname()[1] if sockets else self.port
        self._runner = runner
        self._loop = asyncio.get_running_loop()
        log.debug("trace collector listening on %s", self.endpoint)
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._bound_port = None

    async def __aenter__(self) -> Collector:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def endpoint(self) -> str:
        """The base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (exporters add ``/v1/traces``)."""
        if self._bound_port is None:
            raise RuntimeError("the collector is not started: await collector.start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}"

    @property
    def traces_url(self) -> str:
        return self.endpoint + c.OTLP_TRACES_PATH

    @classmethod
    def run_in_thread(
        cls, *args: Any, start_timeout: float = 10.0, **kwargs: Any
    ) -> CollectorThread:
        """Start a collector on its own event loop thread, for synchronous callers."""
        return CollectorThread(cls(*args, **kwargs), start_timeout=start_timeout)

    # --- ingest ---

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._count("bad_requests")
            return web.Response(
                status=413,
                text=f"body larger than {self.max_body_bytes} bytes",
                content_type="text/plain",
            )
        except Exception as e:  # a client that hung up mid-body
            self._count("bad_requests")
            return web.Response(
                status=400, text=f"cannot read body: {e}", content_type="text/plain"
            )
        ctype = request.headers.get("Content-Type")
        cenc = request.headers.get("Content-Encoding")
        if len(body) > OFF_LOOP_BYTES:
            # decoding a large body takes seconds: do it off the loop, then index the
            # decoded spans on the loop in one step
            result = await asyncio.to_thread(self.ingest, body, ctype, cenc, index=False)
            if result.pending is not None:
                result = self._index(*result.pending)
        else:
            result = self.ingest(body, ctype, cenc)
        return web.Response(
            status=result.status, body=result.body, content_type=result.content_type
        )

    def ingest(
        self,
        body: bytes,
        content_type: str | None,
        content_encoding: str | None = None,
        *,
        index: bool = True,
    ) -> IngestResult:
        """Decode one OTLP/HTTP request body and index its spans. Never raises.

        With ``index=False`` (decoding on a worker thread) the decoded spans are not indexed
        but returned in ``pending``, for :meth:`_index` to add on the loop."""
        try:
            return self._ingest(body, content_type, content_encoding, index)
        except Exception as e:  # a bug of ours must not take the receiver down
            log.exception("trace collector failed on a request")
            self._count("bad_requests")
            return _text(500, f"internal error: {type(e).__name__}: {e}")

    def _ingest(
        self, body: bytes, content_type: str | None, content_encoding: str | None, index: bool
    ) -> IngestResult:
        self._count("requests")
        mime = (content_type or "").split(";", 1)[0].strip().lower()
        if mime not in (_PROTOBUF, _JSON):
            self._count("bad_requests")
            return _text(
                415,
                f"unsupported content type {content_type!r}: send {_PROTOBUF} or {_JSON}",
            )
        try:
            raw = _decompress(body, content_encoding, self.max_body_bytes)
        except _BodyTooLarge as e:
            self._count("bad_requests")
            return _text(413, str(e))
        except _UnsupportedEncoding as e:
            self._count("bad_requests")
            return _text(415, str(e))
        except ValueError as e:
            self._count("bad_requests")
            return _text(400, str(e))
        try:
            if mime == _PROTOBUF:
                decoded = spans_from_proto(raw)
            else:
                try:
                    doc = json.loads(raw)
                except (ValueError, RecursionError) as e:
                    raise OtlpDecodeError("", f"not valid JSON: {e}") from None
                decoded = spans_from_json(doc)
        except OtlpDecodeError as e:
            self._count("bad_requests")
            return _text(400, f"malformed ExportTraceServiceRequest: {e}")
        except RecursionError:
            self._count("bad_requests")
            return _text(400, "malformed ExportTraceServiceRequest: nested too deeply")
        if not index:
            return IngestResult(202, b"", "text/plain", pending=(mime, decoded))
        return self._index(mime, decoded)

    def _index(self, mime: str, decoded: Decoded) -> IngestResult:
        if decoded.rejected:
            with self._lock:
                self._counts["spans_rejected"] += len(decoded.rejected)
        self.add_spans(decoded.spans)
        return _success(mime, decoded)

    def add_spans(self, spans: Iterable[Span]) -> None:
        """Index already decoded spans (what a request does after decoding)."""
        touched: set[str] = set()
        now = time.monotonic()
        with self._lock:
            for s in spans:
                self._counts["spans_accepted"] += 1
                for cid, joined in self._joiner.add(s, now):
                    if self._put(cid, joined, now):
                        touched.add(cid)
            self._maybe_evict(now)
        if touched:
            self._notify(touched)

    def register_call(self, conversation_id: str, keys: Iterable[str | None]) -> None:
        """Tell the collector a call's own ids (the room's name and server id, the
        dispatch id): spans that carry one of them, and no ``conversation.id``, join it.
        Spans already waiting that carry them join now."""
        now = time.monotonic()
        with self._lock:
            self._closed.pop(conversation_id, None)
            self._registered.add(conversation_id)
            touched = {
                cid
                for cid, s in self._joiner.register(conversation_id, keys)
                if self._put(cid, s, now)
            }
        if touched:
            self._notify(touched)

    def _put(self, cid: str, s: Span, now: float) -> bool:
        if cid in self._closed:
            self._closed[cid] += 1
            self._counts["late"] += 1
            return False
        bucket = self._buckets.get(cid)
        if bucket is None:
            bucket = self._buckets[cid] = _Bucket()
        else:
            self._buckets.move_to_end(cid)
        old = bucket.spans.get(s.key)
        if old is None:
            bucket.spans[s.key] = s
        else:
            self._counts["duplicates"] += 1
            bucket.spans[s.key] = prefer(old, s)
        bucket.last_seen = now
        return True

    def _maybe_evict(self, now: float) -> None:
        if now - self._last_evict < _EVICT_EVERY_S and len(self._buckets) <= self.max_instances:
            return
        self._last_evict = now
        horizon = now - self.retention_s
        for cid in [k for k, b in self._buckets.items() if b.last_seen < horizon]:
            if not self._pins[cid]:
                self._evict(cid)
        for cid in list(self._buckets):
            if len(self._buckets) <= self.max_instances:
                break
            if not self._pins[cid]:
                self._evict(cid)
        self._joiner.expire(horizon)

    def _evict(self, cid: str) -> None:
        del self._buckets[cid]
        self._close(cid)
        self._counts["evicted_instances"] += 1

    def _close(self, cid: str) -> None:
        self._closed.setdefault(cid, 0)
        while len(self._closed) > self._max_closed:
            old, _ = self._closed.popitem(last=False)
            self._joiner.forget(old)

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    # --- reading ---

    def spans(self, conversation_id: str) -> tuple[Span, ...]:
        """The spans received so far for one conversation, by start time."""
        return self.instance(conversation_id).spans

    def instance(self, conversation_id: str) -> Instance:
        """A snapshot of one conversation (empty when nothing has arrived)."""
        with self._lock:
            bucket = self._buckets.get(conversation_id)
            spans = tuple(bucket.spans.values()) if bucket is not None else ()
        return Instance(conversation_id=conversation_id, spans=spans)

    def adopt_parked(self) -> int:
        """Give each waiting span with an adoptable key (``gen_ai.conversation.id``, the
        room's id) a conversation of its own: for production ingest, where no call was
        registered. Called on a timer, so spans that carry ``conversation.id`` and arrive
        close together claim their keys first. Returns how many spans joined."""
        now = time.monotonic()
        with self._lock:
            touched = {cid for cid, s in self._joiner.adopt_parked() if self._put(cid, s, now)}
            n = len(touched)
        if touched:
            self._notify(touched)
        return n

    def registered(self, conversation_id: str) -> bool:
        """Whether the harness placed this call itself (:meth:`register_call`) and has not
        discarded it yet: production ingest leaves such conversations to their session."""
        with self._lock:
            return conversation_id in self._registered

    def last_seen(self, conversation_id: str) -> float | None:
        """When (monotonic) the conversation's latest span arrived; None if unknown."""
        with self._lock:
            bucket = self._buckets.get(conversation_id)
            return None if bucket is None else bucket.last_seen

    def discard(self, conversation_id: str) -> None:
        """Forget one conversation (once its instance has been evaluated and saved)."""
        with self._lock:
            self._registered.discard(conversation_id)
            if conversation_id in self._buckets:
                self._evict(conversation_id)
                self._counts["evicted_instances"] -= 1
            else:
                self._close(conversation_id)

    def conversation_ids(self) -> list[str]:
        with self._lock:
            return list(self._buckets)

    def unassigned(self) -> tuple[Span, ...]:
        """Spans that joined no call (yet), oldest first."""
        with self._lock:
            return self._joiner.parked()

    def unmatched(self) -> UnmatchedReport:
        """Spans that joined no call: waiting, or dropped from the bounded holding area."""
        with self._lock:
            return self._joiner.unmatched()

    def late_spans(self, conversation_id: str) -> int:
        """Spans that arrived for ``conversation_id`` after it was discarded."""
        with self._lock:
            return self._closed.get(conversation_id, 0)

    @property
    def stats(self) -> CollectorStats:
        with self._lock:
            k = self._counts
            return CollectorStats(
                requests=k["requests"],
                bad_requests=k["bad_requests"],
                spans_accepted=k["spans_accepted"],
                spans_rejected=k["spans_rejected"],
                duplicates=k["duplicates"] + self._joiner.parked_duplicates,
                instances=len(self._buckets),
                unassigned=len(self._joiner.parked()),
                evicted_instances=k["evicted_instances"],
                unmatched_dropped=self._joiner.unmatched().dropped,
                late=k["late"],
            )

    def _quiet_s(self, cid: str) -> float:
        with self._lock:
            bucket = self._buckets.get(cid)
            return float("inf") if bucket is None else time.monotonic() - bucket.last_seen

    # --- waiting ---

    def _notify(self, cids: Iterable[str]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake(cids)
        else:
            loop.call_soon_threadsafe(self._wake, tuple(cids))

    def _wake(self, cids: Iterable[str]) -> None:
        for cid in cids:
            ev = self._events.pop(cid, None)
            if ev is not None:
                ev.set()

    async def _wait(
        self,
        cid: str,
        check: Callable[[Instance, float], tuple[bool, float | None]],
        timeout: float,
        on_timeout: Callable[[Instance], Instance],
    ) -> Instance:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        with self._lock:
            self._pins[cid] += 1
        try:
            while True:
                ev = self._events.setdefault(cid, asyncio.Event())
                inst = self.instance(cid)
                done, recheck = check(inst, self._quiet_s(cid))
                if done:
                    return inst
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return on_timeout(inst)
                wait = remaining if recheck is None else max(0.001, min(remaining, recheck))
                try:
                    await asyncio.wait_for(ev.wait(), wait)
                except TimeoutError:
                    pass
        finally:
            with self._lock:
                self._pins[cid] -= 1
                if self._pins[cid] <= 0:
                    del self._pins[cid]

    async def instance_ready(
        self,
        conversation_id: str,
        timeout: float = 15.0,
        *,
        require_layers: Sequence[str] = (c.LAYER_WORKFLOW,),
        settle_s: float = 0.25,
    ) -> Instance:
        """The instance once every required layer has finished, else marked incomplete.

        A layer has finished when its root span has arrived (spans are exported when they
        end): by default the after-call workflow's root, a ``workflow`` span with no
        parent in the instance. Pass ``require_layers=("conversational",)`` for an agent
        without a workflow. The instance is returned once no span has arrived for
        ``settle_s``. For the conversational and background layers, a span whose local
        parent never arrives also counts as the root after 6 s of quiet; a workflow step
        whose root never arrives (the workflow crashed) never does.
        On timeout the instance has ``complete=False`` and an ``incomplete_reason`` such
        as ``"after-call workflow did not complete within 15s"``.
        """
        for layer in require_layers:
            if layer not in c.LAYERS:
                raise ValueError(
                    f"require_layers has {layer!r}, which is not a layer; use any of {c.LAYERS}"
                )
        layers = tuple(require_layers)

        def check(inst: Instance, quiet: float) -> tuple[bool, float | None]:
            if not inst.spans and layers:
                return False, None
            weak = [ly for ly in layers if not _layer_root(inst, ly, strong=True)]
            if not weak:
                return (True, None) if quiet >= settle_s else (False, settle_s - quiet)
            if all(ly != c.LAYER_WORKFLOW and _layer_root(inst, ly, strong=False) for ly in weak):
                if quiet >= _WEAK_ROOT_QUIET_S:
                    return True, None
                return False, _WEAK_ROOT_QUIET_S - quiet
            return False, None

        def on_timeout(inst: Instance) -> Instance:
            missing = [ly for ly in layers if not _layer_root(inst, ly, strong=True)]
            if not missing:
                return inst
            parts = [
                f"after-call workflow did not complete within {_fmt_s(timeout)}"
                if layer == c.LAYER_WORKFLOW
                else f"{layer} layer did not complete within {_fmt_s(timeout)}"
                for layer in missing
            ]
            return inst.marked_incomplete("; ".join(parts))

        return await self._wait(conversation_id, check, timeout, on_timeout)

    async def wait_for(
        self,
        conversation_id: str,
        predicate: Callable[[Instance], bool],
        timeout: float = 15.0,
    ) -> Instance:
        """The instance once ``predicate(instance)`` holds; marked incomplete on timeout."""

        def check(inst: Instance, quiet: float) -> tuple[bool, float | None]:
            return bool(predicate(inst)), None

        def on_timeout(inst: Instance) -> Instance:
            return inst.marked_incomplete(f"condition not met within {_fmt_s(timeout)}")

        return await self._wait(conversation_id, check, timeout, on_timeout)


class CollectorThread:
    """A :class:`Collector` serving from its own event loop thread.

    Its methods block the calling thread; use it where no event loop is shared (the CLI,
    synchronous pytest fixtures).
    """

    def __init__(self, collector: Collector, *, start_timeout: float = 10.0) -> None:
        self.collector = collector
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name="harness-trace-collector", daemon=True
        )
        self._thread.start()
        if not self._started.wait(start_timeout):
            raise InfrastructureError(f"trace collector did not start within {start_timeout:g}s")
        if self._error is not None:
            self._thread.join(1.0)
            if isinstance(self._error, InfrastructureError):
                raise self._error
            raise InfrastructureError(
                f"trace collector failed to start: {self._error}"
            ) from self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.collector.start())
        except BaseException as e:
            self._error = e
            self._started.set()
            self._loop.close()
            return
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self.collector.stop())
            self._loop.close()

    @property
    def endpoint(self) -> str:
        return self.collector.endpoint

    @property
    def traces_url(self) -> str:
        return self.collector.traces_url

    def _call(self, coro: Any, timeout: float | None) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout)

    def instance_ready(
        self, conversation_id: str, timeout: float = 15.0, **kwargs: Any
    ) -> Instance:
        return self._call(
            self.collector.instance_ready(conversation_id, timeout, **kwargs), timeout + 5.0
        )

    def wait_for(
        self, conversation_id: str, predicate: Callable[[Instance], bool], timeout: float = 15.0
    ) -> Instance:
        return self._call(
            self.collector.wait_for(conversation_id, predicate, timeout), timeout + 5.0
        )

    def spans(self, conversation_id: str) -> tuple[Span, ...]:
        return self.collector.spans(conversation_id)

    def instance(self, conversation_id: str) -> Instance:
        return self.collector.instance(conversation_id)

    def discard(self, conversation_id: str) -> None:
        self.collector.discard(conversation_id)

    def register_call(self, conversation_id: str, keys: Iterable[str | None]) -> None:
        self.collector.register_call(conversation_id, keys)

    def unmatched(self) -> UnmatchedReport:
        return self.collector.unmatched()

    def stop(self, timeout: float = 5.0) -> None:
        if not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> CollectorThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- helpers ----------------------------------------------------------------------------------


class _BodyTooLarge(ValueError):
    pass


class _UnsupportedEncoding(ValueError):
    pass


def _decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise _UnsupportedEncoding(
            f"unsupported content encoding {encoding!r}: send gzip or no compression"
        )
    wbits = 16 + zlib.MAX_WBITS if enc != "deflate" else zlib.MAX_WBITS
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as e:
        raise ValueError(f"cannot decompress {enc} body: {e}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise _BodyTooLarge(f"decompressed body larger than {limit} bytes")
    if not d.eof:
        raise ValueError(f"cannot decompress {enc} body: truncated stream")
    return out


def _text(status: int, reason: str) -> IngestResult:
    return IngestResult(status=status, body=reason.encode("utf-8"), content_type="text/plain")


def _success(mime: str, decoded: Decoded) -> IngestResult:
    rejected = len(decoded.rejected)
    message = "; ".join(decoded.rejected[:5]) if rejected else ""
    if mime == _PROTOBUF:
        resp = ExportTraceServiceResponse()
        if rejected:
            resp.partial_success.rejected_spans = rejected
            resp.partial_success.error_message = message
        body = resp.SerializeToString()
    else:
        doc: dict[str, Any] = {}
        if rejected:
            doc["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
        body = json.dumps(doc).encode()
    return IngestResult(
        status=200, body=body, content_type=mime, accepted=len(decoded.spans), rejected=rejected
    )
