"""The clinic's after-call workflow: a worker fed by a job queue.

    .venv/bin/python -m examples.clinic.after_call    # CLINIC_WORKFLOW_PORT, CLINIC_DB, ...

It prints ``clinic-workflow listening on http://127.0.0.1:PORT`` once it serves.

``POST /jobs`` takes the job the conversational agent queues when a call ends::

    {"conversation_id": "c-1",
     "transcript": [{"role": "assistant", "text": "Bright Smile Dental, ..."},
                    {"role": "user", "text": "I would like to book a cleaning"}],
     "bookings": [{"confirmation_id": "1001", "name": "John Miller", "day": "tuesday",
                   "time": "09:00", "service": "cleaning"}],
     "trace": {"traceparent": "00-...", "baggage": "conversation.id=c-1"}}

writes it to the ``jobs`` table and answers 202 with its ``job_id`` before doing anything
else; a worker task then runs the jobs one at a time. ``GET /jobs/{id}`` tells a job's
state; ``GET /healthz`` answers 200. Bad input gets 400 with the reason.

Each job is one trace, linked (not parented) to the call's span in ``trace``, since the
call's trace has usually ended by then:

- ``after_call`` (the root, ``agent.layer=workflow``, ``conversation.id`` from the job), with
- ``summarize``: a deterministic extractive summary of the transcript (kept on the job), and
- ``send_confirmation``: a confirmation per booking in the ``outbox`` table, or a
  "no booking" note.

Each step ends ``ok`` or ``error``. The spans are flushed after every job. Receiving a job
makes no span: a workflow span continuing the call's trace would count as the workflow's
root and hide a crash from the collector.

Fault knob ``CLINIC_WORKFLOW_CRASH`` (a share of jobs, drawn per conversation id; 1: every
job), or ``"faults": {"workflow_crash": true}`` in a job, which decides for that job (the
conversational agent draws the call's share and sends its decision): the process dies
(``os._exit(1)``) after ``summarize`` has ended and been exported, before ``after_call``
ends, so the root never reaches the collector. The job stays
``running`` in the table; a restarted worker marks it ``abandoned`` and resumes the jobs
still ``queued``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness_instrument as instrument
from aiohttp import web
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import Status, StatusCode

from harness.trace import conventions as c

from . import deploy, store
from .domain import CLINIC_NAME, DAYS, SERVICES
from .faults import Faults

__all__ = ["Job", "WorkflowConfig", "confirmation_messages", "create_app", "main", "summarize"]

log = logging.getLogger("clinic.after_call")

SERVICE_NAME = "clinic-workflow"
SPAN_ROOT = "after_call"
SPAN_SUMMARIZE = "summarize"
SPAN_SEND_CONFIRMATION = "send_confirmation"

ATTR_JOB_ID = "clinic.job.id"
ATTR_SUMMARY_SENTENCES = "clinic.summary.sentences"
ATTR_OUTBOX_KIND = "clinic.outbox.kind"
ATTR_OUTBOX_MESSAGES = "clinic.outbox.messages"

MAX_TRANSCRIPT_ITEMS = 5000
MAX_TEXT = 20_000
MAX_SUMMARY_SENTENCES = 4
STOP_WAIT_S = 10.0

ROLE_LABELS = {"user": "Caller", "caller": "Caller", "assistant": "Agent", "agent": "Agent"}
_TRACE_KEYS = ("traceparent", "tracestate", "baggage")
_BOOKING_FIELDS = ("name", "day", "time", "service")


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowConfig:
    db_path: Path
    crash: float = 0.0
    """Share of jobs without a ``workflow_crash`` decision of their own that crash."""
    seed: int = 0

    def __post_init__(self) -> None:
        faults = Faults(workflow_crash=self.crash, seed=self.seed)  # the one validation
        object.__setattr__(self, "crash", faults.workflow_crash)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkflowConfig:
        env = os.environ if environ is None else environ
        faults = Faults.from_env(env)
        return cls(
            db_path=deploy.db_path(env, SERVICE_NAME),
            crash=faults.workflow_crash,
            seed=faults.seed,
        )

    def crashes(self, job: Job) -> bool:
        """Whether ``job`` crashes the worker: its own decision, else the configured share
        drawn for its conversation (the same draw the agent makes)."""
        if job.crash is not None:
            return job.crash
        faults = Faults(workflow_crash=self.crash, seed=self.seed)
        return faults.plan(job.conversation_id).hit("workflow_crash")


# --- the job ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    conversation_id: str
    transcript: tuple[tuple[str, str], ...]
    bookings: tuple[dict[str, str], ...]
    trace: dict[str, str]
    crash: bool | None = None

    @classmethod
    def from_json(cls, body: Any) -> Job:
        """The job in a request body; ValueError with the reason when it is malformed."""
        if not isinstance(body, Mapping):
            raise ValueError("the body must be a JSON object")
        unknown = set(body) - {"conversation_id", "transcript", "bookings", "trace", "faults"}
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        cid = body.get("conversation_id")
        if not isinstance(cid, str) or not cid.strip() or len(cid) > 256:
            raise ValueError("conversation_id must be a non-empty string")
        return cls(
            conversation_id=cid.strip(),
            transcript=_transcript(body.get("transcript", [])),
            bookings=_bookings(body.get("bookings", [])),
            trace=_trace(body.get("trace", {})),
            crash=_crash(body.get("faults")),
        )

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "conversation_id": self.conversation_id,
            "transcript": [{"role": r, "text": t} for r, t in self.transcript],
            "bookings": [dict(b) for b in self.bookings],
            "trace": dict(self.trace),
        }
        if self.crash is not None:
            out["faults"] = {"workflow_crash": self.crash}
        return out


def _transcript(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        raise ValueError("transcript must be a list of {role, text} objects")
    if len(value) > MAX_TRANSCRIPT_ITEMS:
        raise ValueError(f"transcript has more than {MAX_TRANSCRIPT_ITEMS} items")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ValueError(f"transcript[{i}] must be an object with role and text")
        role, text = item.get("role"), item.get("text")
        if not isinstance(role, str) or not isinstance(text, str):
            raise ValueError(f"transcript[{i}] needs a string role and a string text")
        out.append((role.strip().lower(), text[:MAX_TEXT]))
    return tuple(out)


def _bookings(value: Any) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list):
        raise ValueError("bookings must be a list of objects")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ValueError(f"bookings[{i}] must be an object")
        b: dict[str, str] = {}
        for f in _BOOKING_FIELDS:
            v = item.get(f)
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"bookings[{i}].{f} must be a non-empty string")
            b[f] = v.strip()
        conf = item.get("confirmation_id")
        if conf is not None:
            if isinstance(conf, bool) or not isinstance(conf, (str, int)):
                raise ValueError(f"bookings[{i}].confirmation_id must be a string")
            b["confirmation_id"] = str(conf)
        out.append(b)
    return tuple(out)


def _trace(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("trace must be an object of strings (traceparent, baggage)")
    return {k.lower(): v for k, v in value.items() if k.lower() in _TRACE_KEYS}


def _crash(value: Any) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError("faults must be a JSON object")
    unknown = set(value) - {"workflow_crash"}
    if unknown:
        raise ValueError(f"faults: unknown knob(s) {', '.join(sorted(unknown))}")
    crash = value.get("workflow_crash")
    if crash is not None and not isinstance(crash, bool):
        raise ValueError("faults.workflow_crash must be true or false")
    return crash


# --- the steps ----------------------------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|\d{1,2}(?::\d{2})?")
_KEYWORDS = frozenset(
    {w for words in SERVICES.values() for w in words}
    | set(DAYS)
    | {"book", "booked", "booking", "appointment", "confirm", "confirmed", "confirmation"}
    | {"cancel", "reschedule", "available", "availability", "name", "am", "pm", "noon"}
)


def summarize(transcript: Sequence[tuple[str, str]]) -> list[str]:
    """An extractive summary: the transcript's most informative sentences, in order.

    Sentences of the caller and the agent (other roles are left out) are scored by the
    booking words they contain (services, days, times, "book", "confirmation", ...); the
    best :data:`MAX_SUMMARY_SENTENCES` are kept, ties going to the earlier one, and each is
    labelled with who said it. The same transcript always gives the same summary.
    """
    candidates: list[tuple[int, int, str]] = []  # (score, position, labelled sentence)
    for role, text in transcript:
        label = ROLE_LABELS.get(role)
        if label is None:
            continue
        for sentence in _SENTENCE.split(" ".join(text.split())):
            if not sentence:
                continue
            words = _WORD.findall(sentence.lower())
            score = sum(w in _KEYWORDS for w in words) + sum(w[0].isdigit() for w in words)
            candidates.append((score, len(candidates), f"{label}: {sentence}"))
    if not candidates:
        return []
    scored = [x for x in candidates if x[0] > 0] or candidates[:2]
    best = sorted(scored, key=lambda x: (-x[0], x[1]))[:MAX_SUMMARY_SENTENCES]
    return [s for _, _, s in sorted(best, key=lambda x: x[1])]


def confirmation_messages(
    conversation_id: str, bookings: Sequence[Mapping[str, str]]
) -> list[tuple[str, str | None, str]]:
    """``(kind, recipient, body)`` per message: a confirmation per booking, else a note."""
    if not bookings:
        return [("no_booking", None, f"No booking was made in conversation {conversation_id}.")]
    out = []
    for b in bookings:
        number = b.get("confirmation_id")
        body = (
            f"{CLINIC_NAME}: hello {b['name']}, your {b['service']} appointment is booked "
            f"for {b['day'].capitalize()} at {b['time']}."
            + (f" Your confirmation number is {number}." if number else "")
        )
        out.append(("confirmation", b["name"], body))
    return out


@contextlib.contextmanager
def _step(name: str) -> Iterator[trace.Span]:
    """A workflow step: ``ok`` when the block returns, ``error`` when it raises."""
    tracer = instrument.get_tracer(SERVICE_NAME)
    with tracer.start_as_current_span(name) as span:
        yield span
        span.set_status(Status(StatusCode.OK))


def _job_context(job: Job) -> otel_context.Context:
    """The call's context from the job, with the job's conversation id in baggage."""
    ctx = instrument.extract(job.trace)
    if baggage.get_baggage(c.BAGGAGE_CONVERSATION_ID, ctx) != job.conversation_id:
        ctx = baggage.set_baggage(c.BAGGAGE_CONVERSATION_ID, job.conversation_id, ctx)
    return ctx


def run_job(config: WorkflowConfig, job_id: int) -> str | None:
    """Run one queued job (blocking); returns its final state, None if it was not queued."""
    with store.opened(config.db_path) as db:
        payload = store.claim_job(db, job_id)
        if payload is None:
            return None
        job = Job.from_json(payload)
        crash = config.crashes(job)
        state, error = store.JOB_DONE, None
        try:
            with instrument.linked_span(
                SPAN_ROOT,
                _job_context(job),
                attributes={c.CONVERSATION_ID: job.conversation_id, ATTR_JOB_ID: job_id},
            ) as root:
                with _step(SPAN_SUMMARIZE) as span:
                    sentences = summarize(job.transcript)
                    store.set_summary(db, job_id, " ".join(sentences))
                    span.set_attribute(ATTR_SUMMARY_SENTENCES, len(sentences))
                if crash:
                    _crash_now(job_id)
                with _step(SPAN_SEND_CONFIRMATION) as span:
                    messages = confirmation_messages(job.conversation_id, job.bookings)
                    for position, (kind, recipient, body) in enumerate(messages):
                        store.write_outbox(
                            db,
                            job_id=job_id,
                            position=position,
                            conversation_id=job.conversation_id,
                            kind=kind,
                            recipient=recipient,
                            body=body,
                        )
                    span.set_attribute(ATTR_OUTBOX_KIND, messages[0][0])
                    span.set_attribute(ATTR_OUTBOX_MESSAGES, len(messages))
                root.set_status(Status(StatusCode.OK))
        except Exception as e:
            log.exception("job %d (conversation %s) failed", job_id, job.conversation_id)
            state, error = store.JOB_FAILED, f"{type(e).__name__}: {e}"
        finally:
            instrument.flush(3.0)
        store.finish_job(db, job_id, state, error=error)
    log.info("job %d (conversation %s): %s", job_id, job.conversation_id, state)
    return state


def _crash_now(job_id: int) -> None:
    log.error("%s: crashing in the middle of job %d on purpose", deploy.ENV_WORKFLOW_CRASH, job_id)
    instrument.flush(2.0)  # the finished steps arrive; the root never will
    logging.shutdown()
    os._exit(1)


# --- the service --------------------------------------------------------------------------


class Worker:
    """Runs queued jobs one at a time, off the event loop."""

    def __init__(self, config: WorkflowConfig) -> None:
        self.config = config
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._current: asyncio.Future[Any] | None = None

    async def start(self, app: web.Application) -> None:
        with store.opened(self.config.db_path) as db:
            abandoned = store.abandon_running(db)
            queued = store.queued_jobs(db)
        if abandoned:
            log.warning("%d job(s) were interrupted by an earlier crash: abandoned", abandoned)
        if queued:
            log.info("resuming %d queued job(s)", len(queued))
        for job_id in queued:
            self.queue.put_nowait(job_id)
        self._task = asyncio.create_task(self._run(), name="after-call-worker")

    async def _run(self) -> None:
        while True:
            job_id = await self.queue.get()
            self._current = asyncio.ensure_future(asyncio.to_thread(run_job, self.config, job_id))
            try:
                await asyncio.shield(self._current)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job %d could not be run", job_id)
            finally:
                self._current = None

    async def stop(self, app: web.Application) -> None:
        """Let the job in progress finish (bounded); queued jobs stay queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._current is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._current), STOP_WAIT_S)
            except Exception:
                log.warning("the job in progress did not finish before the stop")


_KEY_CONFIG = web.AppKey("config", WorkflowConfig)
_KEY_WORKER = web.AppKey("worker", Worker)


def create_app(config: WorkflowConfig) -> web.Application:
    """The aiohttp application; tracing must already be set up (see :func:`main`)."""
    store.init(config.db_path)
    app = web.Application(client_max_size=4 * 1024 * 1024)
    worker = Worker(config)
    app[_KEY_CONFIG] = config
    app[_KEY_WORKER] = worker
    app.on_startup.append(worker.start)
    app.on_cleanup.append(worker.stop)
    app.router.add_get("/healthz", _healthz)
    app.router.add_post("/jobs", _post_job)
    app.router.add_get("/jobs/{job_id}", _get_job)
    return app


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "service": SERVICE_NAME})


def _bad(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def _post_job(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.read() or b"null")
    except web.HTTPRequestEntityTooLarge:
        return _bad(413, "the job is too large")
    except (UnicodeDecodeError, ValueError) as e:
        return _bad(400, f"the body is not valid JSON: {e}")
    try:
        job = Job.from_json(body)
    except ValueError as e:
        return _bad(400, str(e))
    try:
        with store.opened(request.app[_KEY_CONFIG].db_path) as db:
            job_id = store.enqueue_job(db, job.conversation_id, job.payload())
    except Exception as e:
        log.exception("cannot queue a job")
        return _bad(503, f"cannot queue the job: {type(e).__name__}")
    request.app[_KEY_WORKER].queue.put_nowait(job_id)
    log.info("queued job %d for conversation %s", job_id, job.conversation_id)
    return web.json_response({"job_id": job_id, "state": store.JOB_QUEUED}, status=202)


async def _get_job(request: web.Request) -> web.Response:
    raw = request.match_info["job_id"]
    if not raw.isdigit():
        return _bad(400, f"job id must be a number, got {raw!r}")
    with store.opened(request.app[_KEY_CONFIG].db_path) as db:
        row = store.job(db, int(raw))
    if row is None:
        return _bad(404, f"no job {raw}")
    return web.json_response(row)


def main() -> None:
    deploy.service_main(
        service=SERVICE_NAME,
        layer=c.LAYER_WORKFLOW,
        port_env=deploy.ENV_WORKFLOW_PORT,
        load_config=WorkflowConfig.from_env,
        create_app=create_app,
        describe=lambda cfg: f"database {cfg.db_path}; workflow_crash={cfg.crash:g}",
    )


if __name__ == "__main__":
    main()
