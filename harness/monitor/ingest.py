"""Production scoring: OTLP in, one scored Instance per finished conversation out.

Production services (or an OpenTelemetry Collector's ``otlphttp`` exporter) post their
spans to the receiver (:class:`~harness.trace.collector.Collector`, the one CI uses). Spans
join conversations by ``conversation.id`` and the other join keys; a span that only carries
``gen_ai.conversation.id`` or the room's id (a stock livekit-agents agent) is given a
conversation of its own after one tick, so spans that do carry ``conversation.id`` claim
their keys first.

A conversation is finished when its conversational layer's root span has arrived and then
either the after-call workflow's root has arrived too or ``grace_s`` has passed (late
workflow spans are the rule: the workflow runs after the call), and no span has arrived for
``settle_s``. A conversation that never finishes its conversational layer is scored,
incomplete, once it has been quiet for ``abandon_s``. Finished conversations are scored by
the same evaluators as CI (:func:`harness.gates.scoring.score_instance`), stored with
``source="production"``, and a call that fails a per-call condition
(:mod:`harness.gates.conditions`) is saved as an incident candidate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.gates.conditions import call_failures
from harness.gates.scoring import score_instance
from harness.monitor.model import CallRecord, Candidate
from harness.trace import conventions as c
from harness.trace.collector import Collector, CollectorThread
from harness.trace.instance import Instance
from harness.trace.otlp import save_instance

__all__ = ["IngestStats", "ProductionIngest", "instance_labels", "is_synthetic"]

log = logging.getLogger(__name__)

VERSION_KEYS = ("agent.version", "service.version")
ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")


def _first(instance: Instance, keys: tuple[str, ...]) -> str | None:
    for s in instance.spans:
        if s.layer not in (None, c.LAYER_CONVERSATIONAL):
            continue
        for key in keys:
            for where in (s.attributes, s.resource):
                v = where.get(key)
                if isinstance(v, str) and v:
                    return v
    return None


def instance_labels(instance: Instance) -> tuple[str | None, str | None]:
    """(agent version, environment) of a production call, from its conversational spans'
    ``agent.version``/``service.version`` and ``deployment.environment(.name)``."""
    return _first(instance, VERSION_KEYS), _first(instance, ENVIRONMENT_KEYS)


def is_synthetic(instance: Instance) -> bool:
    """Whether a conversation is one of the harness's own calls (its room is named by the
    harness), which production figures must leave out."""
    from harness.livekit.rooms import is_harness_room

    for s in instance.spans:
        for key in (c.LK_ROOM_NAME, c.LK_PII_ROOM_NAME):
            for where in (s.attributes, s.resource):
                if is_harness_room(where.get(key)):
                    return True
    return False


@dataclass
class IngestStats:
    synthetic_skipped: int = 0
    """Conversations of synthetic calls whose session was gone (a monitor restarted
    mid-call): never scored as production."""
    scored: int = 0
    candidates: int = 0
    incomplete: int = 0
    errors: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class ProductionIngest:
    """The receiver plus the finishing and scoring of conversations.

    ``store`` is a :class:`~harness.monitor.store.MonitorStore`; ``on_call(record)`` is
    called for each stored call (the monitor feeds its metrics from it). Use
    :meth:`start`/:meth:`stop` for a served receiver, or :meth:`feed` plus :meth:`poll`
    to drive it without a socket (the benchmark does).
    """

    def __init__(
        self,
        store: object,
        state_dir: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 4318,
        grace_s: float = 30.0,
        settle_s: float = 1.0,
        abandon_s: float = 600.0,
        max_open: int = 10_000,
        tick_s: float = 0.5,
        on_call: Callable[[CallRecord], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        collector: Collector | None = None,
    ) -> None:
        """``collector``: score the production conversations of a receiver that is already
        serving (the monitor's, which also takes its synthetic calls' spans); by default
        the ingest runs a receiver of its own on ``host:port``."""
        if grace_s < 0 or settle_s < 0 or abandon_s <= 0:
            raise ValueError("grace_s and settle_s must be >= 0 and abandon_s > 0")
        self.store = store
        self.state_dir = Path(state_dir)
        self.grace_s = grace_s
        self.settle_s = settle_s
        self.abandon_s = abandon_s
        self.tick_s = tick_s
        self.on_call = on_call
        self._clock = clock
        self._own_collector = collector is None
        self.collector = collector or Collector(
            host=host, port=port, retention_s=abandon_s * 2, max_instances=max_open
        )
        self._conv_done: dict[str, float] = {}
        self._thread: CollectorThread | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self.stats = IngestStats()

    # --- serving ---

    def start(self) -> ProductionIngest:
        if self._own_collector:
            self._thread = CollectorThread(self.collector)
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_loop, name="harness-ingest", daemon=True)
        self._poller.start()
        return self

    @property
    def endpoint(self) -> str:
        return self.collector.endpoint

    def stop(self, *, drain: bool = True) -> None:
        """Stop receiving; with ``drain``, score what has finished first."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(10)
        if drain:
            self.poll()
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.poll()
            except Exception:  # never let one bad conversation stop the ingest
                log.exception("production ingest: polling failed")
                self.stats.errors += 1

    # --- driving ---

    def feed(self, body: bytes, content_type: str = "application/x-protobuf") -> int:
        """Ingest one OTLP/HTTP body without the socket; returns the HTTP status."""
        return self.collector.ingest(body, content_type).status

    def poll(self, *, flush: bool = False) -> list[CallRecord]:
        """Score every finished conversation; with ``flush``, every open one (shutdown)."""
        self.collector.adopt_parked()
        now = self._clock()
        out: list[CallRecord] = []
        for cid in self.collector.conversation_ids():
            if self.collector.registered(cid):
                continue  # a synthetic call: its session scores it
            ready = self._ready(cid, now, flush=flush)
            if ready is None:
                continue
            rec = self._score(ready)
            if rec is not None:
                out.append(rec)
        return out

    def _ready(self, cid: str, now: float, *, flush: bool) -> Instance | None:
        last = self.collector.last_seen(cid)
        if last is None:
            return None
        quiet = now - last
        inst = self.collector.instance(cid)
        if not inst.layer_finished(c.LAYER_CONVERSATIONAL):
            if flush or quiet >= self.abandon_s:
                why = f"the conversational layer did not finish (quiet for {quiet:.0f}s)"
                if inst.incomplete_reason:  # e.g. the span cap: keep the first cause
                    why = f"{inst.incomplete_reason}; {why}"
                return inst.marked_incomplete(why)
            return None
        done_at = self._conv_done.setdefault(cid, now)
        if quiet < self.settle_s and not flush:
            return None
        workflow_spans = inst.layers.get(c.LAYER_WORKFLOW, ())
        if inst.layer_finished(c.LAYER_WORKFLOW):
            return inst
        if flush or now - done_at >= self.grace_s:
            if workflow_spans:  # some steps came, the root did not: it crashed
                why = f"after-call workflow did not complete within {self.grace_s:g}s"
                if inst.incomplete_reason:
                    why = f"{inst.incomplete_reason}; {why}"
                return inst.marked_incomplete(why)
            return inst
        return None

    def _score(self, inst: Instance) -> CallRecord | None:
        cid = inst.conversation_id
        self.collector.discard(cid)  # later spans are counted as late
        self._conv_done.pop(cid, None)
        if is_synthetic(inst):
            self.stats.synthetic_skipped += 1
            log.info("production ingest: %s is a synthetic call without its session", cid)
            return None
        try:
            scores = tuple(score_instance(inst))
        except Exception as e:
            log.exception("production ingest: scoring %s failed", cid)
            self.stats.errors += 1
            self.stats.by_reason[f"scoring failed: {type(e).__name__}"] = (
                self.stats.by_reason.get(f"scoring failed: {type(e).__name__}", 0) + 1
            )
            return None
        failures = call_failures(scores, None if inst.complete else inst.incomplete_reason)
        version, environment = instance_labels(inst)
        ends = [s.end_ns for s in inst.spans]
        ended = max(ends) / 1e9 if ends else time.time()
        rec = CallRecord(
            conversation_id=cid,
            source="production",
            ended_at=min(ended, time.time()),
            scores=scores,
            passed=not failures,
            agent_version=version,
            environment=environment,
            failures=failures,
            data_errors=inst.data_errors,
        )
        if failures:
            rec = self._keep_candidate(inst, rec)
        if self.store.add_call(rec):  # type: ignore[attr-defined]
            self.stats.scored += 1
            if not inst.complete:
                self.stats.incomplete += 1
            if self.on_call is not None:
                self.on_call(rec)
        return rec

    def _keep_candidate(self, inst: Instance, rec: CallRecord) -> CallRecord:
        from dataclasses import replace

        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in inst.conversation_id)
        out_dir = self.state_dir / "candidates" / safe
        trace = save_instance(inst, out_dir)
        self.store.add_candidate(  # type: ignore[attr-defined]
            Candidate(rec.conversation_id, rec.ended_at, rec.failures, str(trace))
        )
        self.stats.candidates += 1
        return replace(rec, artifacts=str(out_dir))
