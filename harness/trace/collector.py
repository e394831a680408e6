"""An OTLP/HTTP trace receiver that assembles spans into Instances by conversation id.

``POST /v1/traces`` takes protobuf (``application/x-protobuf``) or OTLP/JSON
(``application/json``), gzip- or deflate-compressed or not. Spans join calls by the rules of
:mod:`harness.trace.join` (``conversation.id``, then the call's registered ids such as the
room's name and server id, then trace membership and links) and are deduplicated by
(trace id, span id), so exporter retries, out-of-order batches and late spans all assemble
the same Instance. A span that joins no call yet waits in a bounded holding area; what
never joins is counted by service (:meth:`Collector.unmatched`). Spans for a call already
scored and discarded are counted as late, per call.

Answers follow the OTLP/HTTP specification, in the request's encoding (protobuf when the
request names no encoding we take). A success is an ``ExportTraceServiceResponse``; spans
dropped alone (unusable ids, or over the cap of spans per call) make it a partial success
with ``rejected_spans`` and the reason. A failure is a ``google.rpc.Status`` with the
reason (and a ``BadRequest`` naming the field for bad data):

- 400: the body cannot be decompressed or decoded (exporters do not retry it);
- 408: the body did not arrive within ``read_timeout_s`` (a client that stalls mid-body);
- 413: the body is over ``max_body_bytes``, before or after decompression (a declared
  ``Content-Length`` over it is refused before a byte is read);
- 415: an unknown content type or content encoding;
- 503 with ``Retry-After``: the bodies being read and decoded already hold
  ``max_inflight_bytes`` (exporters retry after the interval).

The receiver never crashes on a payload and never lets one request stall the others: a body
over 256 KiB once decompressed is decoded on a worker thread and its spans are indexed on
the loop in slices of about 10 ms. A connection that sends no complete request for
``idle_timeout_s`` is closed. Each conversation keeps at most ``max_spans_per_call`` spans
(``HARNESS_MAX_SPANS_PER_CALL``, default 20,000); spans past it are dropped, counted per
conversation and per service (:attr:`Collector.stats`, :meth:`Collector.trace_report`), and
the conversation's Instance is marked incomplete with the reason and how to raise the cap.

Use it from asyncio (``async with Collector() as col``) or, for synchronous callers, on
its own thread (``with Collector.run_in_thread() as col``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from harness.core.errors import InfrastructureError, ScenarioError
from harness.core.loop import LoopThread
from harness.trace import conventions as c
from harness.trace.health import SPAN_CAP_ENV, SessionTraceReport, over_cap_reason
from harness.trace.instance import Instance, Span, prefer
from harness.trace.join import Joiner, UnmatchedReport, count_service
from harness.trace.otlp import Decoded, OtlpDecodeError, spans_from_json, spans_from_proto

__all__ = [
    "DEFAULT_MAX_SPANS_PER_CALL",
    "Collector",
    "CollectorStats",
    "CollectorThread",
    "IngestResult",
    "span_cap_from_env",
]

log = logging.getLogger(__name__)

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"
OFF_LOOP_BYTES = 256 * 1024
"""Bodies larger than this once decompressed are decoded on a worker thread."""
_MAX_BODY = 64 * 1024 * 1024
DEFAULT_MAX_SPANS_PER_CALL = 20_000
_MAX_KEYS_PER_CALL = 1000
"""Join keys and trace ids the joiner learns per conversation: a call has a handful (one
trace per layer, the room's and the job's ids); a sender minting new traces for ever does
not grow the tables."""
_INDEX_STEP = 256
_INDEX_SLICE_S = 0.01
"""How long a large body's spans are indexed on the loop before other requests run."""
_RETRY_AFTER_S = 1
_EVICT_EVERY_S = 1.0
_WEAK_ROOT_QUIET_S = 6.0
"""How long a conversational or background layer whose root's local parent never arrived
must be quiet before it counts as done (livekit-agents' ``job_entrypoint`` may sit on
another tracer provider): longer than the batch processor's default 5 s schedule delay.
Never applied to the workflow layer: a workflow that crashed leaves its steps without
their root, and that must read as incomplete."""

# google.rpc.Code per HTTP status (OTLP clients act on the HTTP status, not on this code)
_RPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    408: code_pb2.DEADLINE_EXCEEDED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    500: code_pb2.INTERNAL,
    503: code_pb2.UNAVAILABLE,
}


def span_cap_from_env() -> int:
    """The cap of spans per call: ``HARNESS_MAX_SPANS_PER_CALL``, else 20,000."""
    raw = os.environ.get(SPAN_CAP_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_SPANS_PER_CALL
    try:
        value = int(raw)
    except ValueError:
        raise ScenarioError(f"{SPAN_CAP_ENV}={raw!r} is not a number of spans") from None
    if value < 1:
        raise ScenarioError(f"{SPAN_CAP_ENV}={raw!r} must be at least 1")
    return value


@dataclass(frozen=True)
class IngestResult:
    """What the receiver answers to one request."""

    status: int
    body: bytes
    content_type: str
    accepted: int = 0
    rejected: int = 0
    message: str = ""
    """A failure's ``Status.message``, or a partial success's ``error_message``."""
    retry_after: int | None = None
    """Seconds, for the ``Retry-After`` header of a 503."""

    @property
    def reason(self) -> str:
        return self.message if self.status >= 400 else ""

    def response(self) -> web.Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return web.Response(
            status=self.status, body=self.body, content_type=self.content_type, headers=headers
        )


@dataclass(frozen=True)
class CollectorStats:
    requests: int
    bad_requests: int
    """Requests answered 400, 408, 413, 415 or 500 (their spans, if any, are not counted)."""
    spans_accepted: int
    """Spans decoded from requests (those later dropped over the cap are counted again in
    ``spans_over_cap``)."""
    spans_rejected: int
    """Spans dropped alone for unusable ids (answered as a partial success)."""
    duplicates: int
    instances: int
    unassigned: int
    evicted_instances: int
    unmatched_dropped: int = 0
    """Spans that joined no call and were dropped from the holding area (age or size)."""
    late: int = 0
    """Spans for a call whose instance had already been taken and discarded."""
    spans_over_cap: int = 0
    """Spans dropped because their conversation already held ``max_spans_per_call``."""
    calls_over_cap: int = 0
    """Conversations that reached the cap."""
    throttled: int = 0
    """Requests answered 503 because ``max_inflight_bytes`` were already in flight."""
    timed_out: int = 0
    """Requests whose body did not arrive within ``read_timeout_s`` (answered 408)."""
    inflight_bytes: int = 0
    """Bytes of request bodies being read or decoded now."""
    decoding: int = 0
    """Request bodies being decoded on worker threads now."""


class _Bucket:
    __slots__ = ("last_seen", "over_cap", "spans")

    def __init__(self) -> None:
        self.spans: dict[tuple[str, str], Span] = {}
        self.last_seen = time.monotonic()
        self.over_cap: Counter[str] | None = None
        """Spans dropped over the cap, by service; None until the first."""


def _fmt_s(seconds: float) -> str:
    return f"{seconds:g}s"


def _layer_root(inst: Instance, layer: str, *, strong: bool) -> bool:
    """Strong: :meth:`Instance.layer_finished`. Weak: any span of the layer without a
    parent in the instance (its local parent may still be on its way, or never come)."""
    if strong:
        return inst.layer_finished(layer)
    return any(s.layer == layer for s in inst.roots)


def _most_first(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _also_incomplete(inst: Instance, reason: str) -> Instance:
    """``inst`` marked incomplete for ``reason`` too, keeping a reason it already has (an
    empty instance's is only "no trace", which ``reason`` replaces)."""
    if inst.spans and not inst.complete and inst.incomplete_reason:
        reason = f"{inst.incomplete_reason}; {reason}"
    return inst.marked_incomplete(reason)


class _Budget:
    """Bytes of request bodies held at once (being read, decompressed or decoded)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.lock = threading.Lock()

    def fits(self, size: int) -> bool:
        with self.lock:
            return self.held + size <= self.limit


class _Share:
    """One request's bytes in the :class:`_Budget`, grown as its body arrives and inflates
    (never by what it only declares: a lying ``Content-Length`` holds nothing)."""

    __slots__ = ("budget", "held")

    def __init__(self, budget: _Budget) -> None:
        self.budget = budget
        self.held = 0

    def grow(self, want: int) -> bool:
        """Hold ``want`` bytes in all; False (holding what it held) if over the budget."""
        b = self.budget
        with b.lock:
            extra = want - self.held
            if extra <= 0:
                return True
            if b.held + extra > b.limit:
                return False
            b.held += extra
            self.held = want
            return True

    def release(self) -> None:
        with self.budget.lock:
            self.budget.held -= self.held
            self.held = 0


class Collector:
    """OTLP/HTTP receiver on ``host:port`` (a free loopback port by default).

    ``max_spans_per_call`` (default ``HARNESS_MAX_SPANS_PER_CALL``, else 20,000) caps the
    spans one conversation keeps. ``max_body_bytes`` caps one body, before and after
    decompression; ``max_inflight_bytes`` (default four bodies) the bodies being read and
    decoded at once. ``read_timeout_s`` is how long a body may take to arrive;
    ``idle_timeout_s`` how long a connection may stay open without a complete request.
    ``off_loop_bytes`` is the decompressed size above which a body is decoded on a worker
    thread (None: always on the loop, which stalls the receiver; for measurements).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        retention_s: float = 600.0,
        max_instances: int = 1000,
        *,
        max_unassigned: int = 10_000,
        max_body_bytes: int = _MAX_BODY,
        max_spans_per_call: int | None = None,
        max_inflight_bytes: int | None = None,
        read_timeout_s: float = 30.0,
        idle_timeout_s: float = 60.0,
        off_loop_bytes: int | None = OFF_LOOP_BYTES,
    ) -> None:
        if retention_s <= 0:
            raise ValueError(f"retention_s must be positive, got retention_s={retention_s!r}")
        if max_instances < 1:
            raise ValueError(f"max_instances must be at least 1, got {max_instances!r}")
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes!r}")
        if max_spans_per_call is None:
            max_spans_per_call = span_cap_from_env()
        elif max_spans_per_call < 1:
            raise ValueError(f"max_spans_per_call must be at least 1, got {max_spans_per_call!r}")
        if max_inflight_bytes is None:
            max_inflight_bytes = 4 * max_body_bytes
        elif max_inflight_bytes < max_body_bytes:
            raise ValueError(
                f"max_inflight_bytes={max_inflight_bytes!r} is below max_body_bytes="
                f"{max_body_bytes!r}: a body of the largest size could never be taken"
            )
        if read_timeout_s <= 0 or idle_timeout_s <= 0:
            raise ValueError(
                f"read_timeout_s and idle_timeout_s must be positive, got "
                f"read_timeout_s={read_timeout_s!r}, idle_timeout_s={idle_timeout_s!r}"
            )
        self.host = host
        self.port = port
        self.retention_s = retention_s
        self.max_instances = max_instances
        self.max_unassigned = max_unassigned
        self.max_body_bytes = max_body_bytes
        self.max_spans_per_call = max_spans_per_call
        self.max_inflight_bytes = max_inflight_bytes
        self.read_timeout_s = read_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.off_loop_bytes = off_loop_bytes
        self._lock = threading.RLock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._joiner = Joiner(max_parked=max_unassigned, max_keys=_MAX_KEYS_PER_CALL)
        # conversations taken and discarded: their ids stay known, so late spans are
        # counted against them instead of passing for spans of no call
        self._closed: OrderedDict[str, int] = OrderedDict()
        self._max_closed = 10 * max_instances
        self._pins: Counter[str] = Counter()
        self._registered: set[str] = set()  # calls the harness placed (synthetic)
        self._events: dict[str, asyncio.Event] = {}
        self._last_evict = 0.0
        self._counts: Counter[str] = Counter()
        self._over_cap: Counter[str] = Counter()  # spans dropped over the cap, by service
        self._budget = _Budget(max_inflight_bytes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    # --- lifecycle ---

    async def start(self) -> Collector:
        if self._runner is not None:
            return self
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post(c.OTLP_TRACES_PATH, self._handle)
        # decompression is ours, so a bad gzip stream gets a 400 with a reason; a connection
        # without a complete request (headers that never end, or none) closes when idle
        runner = web.AppRunner(
            app,
            access_log=None,
            auto_decompress=False,
            keepalive_timeout=self.idle_timeout_s,
        )
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

    # --- serving ---

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ctype = request.headers.get("Content-Type")
        reply = _reply_type(ctype)
        share = _Share(self._budget)
        try:
            self._count("requests")
            refused = _check_type(ctype, reply)
            declared = request.content_length
            if refused is None and declared is not None and declared > self.max_body_bytes:
                refused = _failure(413, self._too_large(declared), reply)
            if refused is not None:  # answered unread: aiohttp drains what the client sends
                self._count("bad_requests")
                return refused.response()
            if declared is not None and not self._budget.fits(declared):
                return self._throttle(reply).response()
            body = await self._read_body(request, share, reply)
            if isinstance(body, IngestResult):
                return body.response()
            result = await self._decode_and_index(
                body, reply, request.headers.get("Content-Encoding"), share
            )
            return result.response()
        except Exception as e:  # a bug of ours must not take the receiver down
            log.exception("trace collector failed on a request")
            self._count("bad_requests")
            return _failure(500, f"internal error: {type(e).__name__}: {e}", reply).response()
        finally:
            share.release()

    async def _read_body(
        self, request: web.Request, share: _Share, reply: str
    ) -> bytes | IngestResult:
        """The whole body, or the answer refusing it: 408 if it does not arrive within
        ``read_timeout_s``, 413 past ``max_body_bytes``, 503 past the in-flight budget."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.read_timeout_s):
                while True:
                    chunk = await request.content.readany()
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        self._count("bad_requests")
                        return _failure(413, self._too_large(size), reply)
                    if not share.grow(size):
                        return self._throttle(reply)
                    chunks.append(chunk)
        except TimeoutError:
            self._count("bad_requests")
            self._count("timed_out")
            return _failure(
                408,
                f"the body did not arrive within {_fmt_s(self.read_timeout_s)} "
                f"({size} bytes came): send it faster or raise read_timeout_s",
                reply,
            )
        except Exception as e:  # a client that hung up mid-body, or broke the framing
            self._count("bad_requests")
            return _failure(400, f"cannot read body: {e}", reply)
        return b"".join(chunks)

    async def _decode_and_index(
        self, body: bytes, mime: str, encoding: str | None, share: _Share
    ) -> IngestResult:
        off_loop = self.off_loop_bytes
        if off_loop is None:  # everything on the loop (measurements only)
            decoded = self._decode(body, mime, encoding, self.max_body_bytes, share=share)
        elif len(body) > off_loop:
            decoded = await self._decode_off_loop(body, mime, encoding, share)
        else:
            # a small compressed body may inflate to 64 MB: inflate up to the threshold
            # here, and decode what is larger on a worker thread
            decoded = self._decode(body, mime, encoding, off_loop, share=share, small=True)
            if decoded is None:
                decoded = await self._decode_off_loop(body, mime, encoding, share)
        if isinstance(decoded, IngestResult):
            return decoded
        assert decoded is not None
        return await self._index_async(mime, decoded)

    async def _decode_off_loop(
        self, body: bytes, mime: str, encoding: str | None, share: _Share
    ) -> Decoded | IngestResult:
        self._count("decoding")
        try:
            out = await asyncio.to_thread(
                self._decode, body, mime, encoding, self.max_body_bytes, share=share
            )
        finally:
            self._count("decoding", -1)
        assert out is not None
        return out

    def _throttle(self, reply: str) -> IngestResult:
        self._count("throttled")
        return _failure(
            503,
            "the receiver is busy: the request bodies it is reading and decoding fill its "
            f"budget of {self.max_inflight_bytes} bytes; retry after {_RETRY_AFTER_S}s",
            reply,
            retry_after=_RETRY_AFTER_S,
        )

    def _too_large(self, size: int) -> str:
        return f"body of {size} bytes is larger than {self.max_body_bytes} bytes"

    # --- ingest ---

    def ingest(
        self, body: bytes, content_type: str | None, content_encoding: str | None = None
    ) -> IngestResult:
        """Decode one OTLP/HTTP request body and index its spans, on the calling thread.
        Never raises."""
        reply = _reply_type(content_type)
        try:
            self._count("requests")
            refused = _check_type(content_type, reply)
            if refused is not None:
                self._count("bad_requests")
                return refused
            decoded = self._decode(body, reply, content_encoding, self.max_body_bytes)
            if isinstance(decoded, IngestResult):
                return decoded
            assert decoded is not None
            return self._index(reply, decoded)
        except Exception as e:  # a bug of ours must not take the receiver down
            log.exception("trace collector failed on a request")
            self._count("bad_requests")
            return _failure(500, f"internal error: {type(e).__name__}: {e}", reply)

    def _decode(
        self,
        body: bytes,
        mime: str,
        encoding: str | None,
        limit: int,
        *,
        share: _Share | None = None,
        small: bool = False,
    ) -> Decoded | IngestResult | None:
        """The body's spans, or the answer refusing it. With ``small``, None when the body
        inflates past ``limit`` (decode it off the loop instead). The inflated copy is added
        to the request's ``share`` of the in-flight budget."""
        try:
            raw = _decompress(body, encoding, limit)
        except _BodyTooLarge as e:
            if small:
                return None
            self._count("bad_requests")
            return _failure(413, str(e), mime)
        except _UnsupportedEncoding as e:
            self._count("bad_requests")
            return _failure(415, str(e), mime)
        except ValueError as e:
            self._count("bad_requests")
            return _failure(400, str(e), mime, bad=("", str(e)))
        if share is not None and raw is not body and not share.grow(len(body) + len(raw)):
            return self._throttle(mime)
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
            return _failure(
                400, f"malformed ExportTraceServiceRequest: {e}", mime, bad=(e.path, e.reason)
            )
        except RecursionError:
            self._count("bad_requests")
            return _failure(
                400,
                "malformed ExportTraceServiceRequest: nested too deeply",
                mime,
                bad=("", "nested too deeply"),
            )
        return decoded

    def _index(self, mime: str, decoded: Decoded) -> IngestResult:
        if decoded.rejected:
            self._count("spans_rejected", len(decoded.rejected))
        over: Counter[str] = Counter()
        self._add(decoded.spans, over)
        return self._answer(mime, decoded, over)

    async def _index_async(self, mime: str, decoded: Decoded) -> IngestResult:
        """:meth:`_index`, letting other requests in every 10 ms."""
        if decoded.rejected:
            self._count("spans_rejected", len(decoded.rejected))
        over: Counter[str] = Counter()
        spans = decoded.spans
        since = time.perf_counter()
        for i in range(0, len(spans), _INDEX_STEP):
            self._add(spans[i : i + _INDEX_STEP], over)
            if time.perf_counter() - since > _INDEX_SLICE_S:
                await asyncio.sleep(0)
                since = time.perf_counter()
        return self._answer(mime, decoded, over)

    def _answer(self, mime: str, decoded: Decoded, over: Counter[str]) -> IngestResult:
        reasons = decoded.rejected[:5]
        if over:
            n = sum(over.values())
            calls = ", ".join(f"{cid}: {k}" for cid, k in over.most_common(3))
            more = f", ... {len(over) - 3} more" if len(over) > 3 else ""
            reasons = [
                f"{n} span{'s' if n != 1 else ''} over the cap of {self.max_spans_per_call} "
                f"spans per call dropped (conversation {calls}{more}); set {SPAN_CAP_ENV} "
                "on the receiver to raise it",
                *reasons,
            ]
        return _success(mime, decoded, sum(over.values()), "; ".join(reasons))

    def add_spans(self, spans: Iterable[Span]) -> int:
        """Index already decoded spans (what a request does after decoding); returns how
        many were dropped over the cap of spans per call."""
        over: Counter[str] = Counter()
        self._add(spans, over)
        return sum(over.values())

    def _add(self, spans: Iterable[Span], over: Counter[str]) -> None:
        touched: set[str] = set()
        now = time.monotonic()
        with self._lock:
            for s in spans:
                self._counts["spans_accepted"] += 1
                for cid, joined in self._joiner.add(s, now):
                    if self._put(cid, joined, now, over):
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

    def _put(self, cid: str, s: Span, now: float, over: Counter[str] | None = None) -> bool:
        if cid in self._closed:
            self._closed[cid] += 1
            self._counts["late"] += 1
            return False
        bucket = self._buckets.get(cid)
        if bucket is None:
            bucket = self._buckets[cid] = _Bucket()
        old = bucket.spans.get(s.key)
        if old is not None:
            self._counts["duplicates"] += 1
            bucket.spans[s.key] = prefer(old, s)
        elif len(bucket.spans) >= self.max_spans_per_call:
            self._drop_over_cap(cid, bucket, s)
            if over is not None:
                over[cid] += 1
            return False  # neither news nor activity: a runaway call still goes quiet
        else:
            bucket.spans[s.key] = s
        self._buckets.move_to_end(cid)
        bucket.last_seen = now
        return True

    def _drop_over_cap(self, cid: str, bucket: _Bucket, s: Span) -> None:
        if bucket.over_cap is None:
            bucket.over_cap = Counter()
            self._counts["calls_over_cap"] += 1
            log.warning(
                "trace receiver: conversation %r reached the cap of %d spans per call; "
                "further spans are dropped and counted (set %s to raise it)",
                cid,
                self.max_spans_per_call,
                SPAN_CAP_ENV,
            )
        count_service(bucket.over_cap, s.service_name)
        count_service(self._over_cap, s.service_name)
        self._counts["spans_over_cap"] += 1

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

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self._counts[what] += n

    # --- reading ---

    def spans(self, conversation_id: str) -> tuple[Span, ...]:
        """The spans received so far for one conversation, by start time."""
        return self.instance(conversation_id).spans

    def instance(self, conversation_id: str) -> Instance:
        """A snapshot of one conversation (empty when nothing has arrived); marked
        incomplete, with the reason, if spans were dropped over the cap of spans per call."""
        over: Counter[str] | None = None
        with self._lock:
            bucket = self._buckets.get(conversation_id)
            spans = tuple(bucket.spans.values()) if bucket is not None else ()
            if bucket is not None and bucket.over_cap:
                over = Counter(bucket.over_cap)
        inst = Instance(conversation_id=conversation_id, spans=spans)
        if over:
            n = sum(over.values())
            inst = inst.marked_incomplete(
                over_cap_reason(n, self.max_spans_per_call, _most_first(over))
            )
        return inst

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

    def spans_over_cap(self, conversation_id: str) -> int:
        """Spans of ``conversation_id`` dropped over the cap of spans per call (while the
        receiver holds it)."""
        with self._lock:
            bucket = self._buckets.get(conversation_id)
            return sum(bucket.over_cap.values()) if bucket and bucket.over_cap else 0

    def trace_report(self) -> SessionTraceReport:
        """What this receiver got that is in no call's Instance: spans that matched no
        call, spans that came after their call was scored, spans over the cap."""
        with self._lock:
            return SessionTraceReport(
                self._joiner.unmatched(),
                self._counts["late"],
                over_cap=_most_first(self._over_cap),
                over_cap_calls=self._counts["calls_over_cap"],
                span_cap=self.max_spans_per_call,
            )

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
                spans_over_cap=k["spans_over_cap"],
                calls_over_cap=k["calls_over_cap"],
                throttled=k["throttled"],
                timed_out=k["timed_out"],
                inflight_bytes=self._budget.held,
                decoding=k["decoding"],
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
                    self._events.pop(cid, None)  # a wait that timed out leaves none behind

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
            return _also_incomplete(inst, "; ".join(parts))

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
            return _also_incomplete(inst, f"condition not met within {_fmt_s(timeout)}")

        return await self._wait(conversation_id, check, timeout, on_timeout)


class CollectorThread:
    """A :class:`Collector` serving from its own event loop thread.

    Its methods block the calling thread; use it where no event loop is shared (the CLI,
    synchronous pytest fixtures).
    """

    def __init__(self, collector: Collector, *, start_timeout: float = 10.0) -> None:
        self.collector = collector
        self._thread = LoopThread(
            "trace collector",
            setup=collector.start,
            teardown=collector.stop,
            start_timeout=start_timeout,
        )

    @property
    def endpoint(self) -> str:
        return self.collector.endpoint

    @property
    def traces_url(self) -> str:
        return self.collector.traces_url

    def _call(self, coro: Any, timeout: float | None) -> Any:
        return self._thread.run(coro, timeout)

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

    def trace_report(self) -> SessionTraceReport:
        return self.collector.trace_report()

    def stop(self, timeout: float = 5.0) -> None:
        self._thread.stop(timeout)

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
    """The body inflated (``body`` itself when not compressed), at most ``limit`` bytes."""
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity"):
        if len(body) > limit:
            raise _BodyTooLarge(f"body of {len(body)} bytes is larger than {limit} bytes")
        return body
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise _UnsupportedEncoding(
            f"unsupported content encoding {encoding!r}: send gzip, deflate or no compression"
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


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _reply_type(content_type: str | None) -> str:
    """The encoding of the answer: the request's, protobuf when it is neither of ours."""
    return _JSON if _mime(content_type) == _JSON else _PROTOBUF


def _check_type(content_type: str | None, reply: str) -> IngestResult | None:
    if _mime(content_type) in (_PROTOBUF, _JSON):
        return None
    return _failure(
        415, f"unsupported content type {content_type!r}: send {_PROTOBUF} or {_JSON}", reply
    )


def _encode(message: Any, mime: str) -> bytes:
    if mime == _JSON:
        return json.dumps(json_format.MessageToDict(message)).encode()
    return message.SerializeToString()


def _failure(
    status: int,
    message: str,
    mime: str,
    *,
    bad: tuple[str, str] | None = None,
    retry_after: int | None = None,
) -> IngestResult:
    """An OTLP/HTTP failure: a ``google.rpc.Status`` in ``mime``; ``bad`` (field path,
    description) adds a ``google.rpc.BadRequest`` to its details."""
    st = status_pb2.Status(code=_RPC_CODES.get(status, code_pb2.UNKNOWN), message=message)
    if bad is not None:
        detail = error_details_pb2.BadRequest()
        detail.field_violations.add(field=bad[0], description=bad[1])
        st.details.add().Pack(detail)
    return IngestResult(status, _encode(st, mime), mime, message=message, retry_after=retry_after)


def _success(mime: str, decoded: Decoded, over_cap: int, message: str) -> IngestResult:
    """An ``ExportTraceServiceResponse``; a partial success when spans were rejected (bad
    ids) or dropped over the cap (``over_cap``), with ``message`` saying why."""
    rejected = len(decoded.rejected) + over_cap
    resp = ExportTraceServiceResponse()
    if rejected:
        resp.partial_success.rejected_spans = rejected
        resp.partial_success.error_message = message
    return IngestResult(
        status=200,
        body=_encode(resp, mime),
        content_type=mime,
        accepted=len(decoded.spans) - over_cap,
        rejected=rejected,
        message=message if rejected else "",
    )
