"""The clinic's background agent: an HTTP service that books appointments behind an approval
gate and writes them to SQLite.

    .venv/bin/python -m examples.clinic.backend      # CLINIC_BACKEND_PORT, CLINIC_DB, ...

It prints ``clinic-backend listening on http://127.0.0.1:PORT`` once it serves.

``POST /bookings`` takes ``{"name", "day", "time", "service"}`` with the caller's trace
context in its headers (W3C ``traceparent`` and ``baggage`` with ``conversation.id``), so
its spans continue the conversational agent's ``function_tool`` span:

- ``POST /bookings`` (server span; error status on a 5xx), with under it
- ``intent approve_booking`` (outcome ``approved`` or ``denied``, and the reason), then
- ``action create_booking`` (mutating; approval ``approved``, ``denied`` or ``skipped``).
  A denied booking is not written and answers 409 with the reason; an approved one is
  written and answers 201 with the booking and its ``confirmation_id``.

``GET /bookings?day=tuesday`` answers the free times (``action check_availability``, not
mutating). ``GET /healthz`` answers 200. Bad input gets 400 with the reason, never a crash.

The approval policy (:class:`ApprovalPolicy`) is data: the openings and services of
:mod:`.domain`, a maximum name length, and "now". The clinic's calendar is one week that
repeats (there are no dates): ``CLINIC_NOW="wednesday 12:00"`` makes every slot from Monday
up to Wednesday 12:00 the past, so it is refused; unset, nothing is in the past.

Each call books into its own calendar (the conversation id), so the same scenario can run
many times, or concurrently, against one deployment and get the same answers, confirmation
number 1001 first. ``CLINIC_CALENDAR=shared`` gives the whole deployment one calendar.

Fault knobs (:mod:`examples.clinic.faults`; from the environment, overridden per request
by the ``X-Clinic-Faults`` header, a JSON object, or by the body's ``"faults"`` object):

- ``CLINIC_SKIP_APPROVAL`` (``skip_approval``, a share; 1: every booking): write without
  checking; the action is recorded with approval ``skipped``.
- ``CLINIC_TOOL_FAILURE_RATE=0.3`` (``tool_failure_rate``): that share of requests (both
  routes, in arrival order) fail with 503 and an error span; the draws come from
  ``random.Random(CLINIC_SEED)``, so a run is repeatable.
- ``CLINIC_TOOL_LATENCY_MS`` / ``CLINIC_TOOL_LATENCY_SHARE``: that share of requests wait
  that long before they are handled.
- ``CLINIC_TOOL_TIMEOUT_SHARE``: that share of requests wait past the agent's 5 s timeout
  (:data:`TIMEOUT_HOLD_S`); the agent gives up on them, and the web server drops a request
  whose client has gone (nothing is written).
- ``CLINIC_DUPLICATE_ACTION_SHARE``: that share of written bookings are written a second
  time, as a retried, non-idempotent write would: a second ``create_booking`` action with
  the same ``action.key``, which the database refuses (the slot is taken).

Each knob other than the failure rate draws from its own stream,
``random.Random(f"{seed}:{knob}")``, so switching one on leaves the others' draws as they
were. A request a fault touched carries ``clinic.fault`` on its server span.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness_instrument as instrument
from aiohttp import web
from opentelemetry.semconv.attributes import http_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode

from harness.trace import conventions as c

from . import deploy, store
from .domain import DAYS, OPENINGS, SERVICES
from .faults import BACKEND_KNOBS, FaultConfigError, Faults

__all__ = [
    "ApprovalPolicy",
    "BackendConfig",
    "BookingRequest",
    "Decision",
    "WeekTime",
    "create_app",
    "main",
]

log = logging.getLogger("clinic.backend")

SERVICE_NAME = "clinic-backend"
SHARED_CALENDAR = "clinic"
CALENDAR_MODES = ("per_call", "shared")

# this service's own span attributes (no caller data: the name stays out of traces)
ATTR_BOOKING_DAY = "clinic.booking.day"
ATTR_BOOKING_TIME = "clinic.booking.time"
ATTR_BOOKING_SERVICE = "clinic.booking.service"
ATTR_CONFIRMATION_ID = "clinic.booking.confirmation_id"
ATTR_APPROVAL_RULE = "clinic.approval.rule"
ATTR_APPROVAL_REASON = "clinic.approval.reason"
ATTR_FAULT = "clinic.fault"
FAULTS_HEADER = "X-Clinic-Faults"
TIMEOUT_HOLD_S = 6.0
"""How long a request hit by the timeout fault is held: past the agent's 5 s timeout."""

_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
_NAME = re.compile(r"^[^\W\d_]+(?:[ '\-.]{1,2}[^\W\d_]+)*\.?$")
_FIELDS = ("name", "day", "time", "service")

Rule = tuple[str, str]  # (rule, reason)


# --- the clinic's week --------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class WeekTime:
    """A moment in the clinic's repeating week: a weekday index (Monday 0) and ``HH:MM``."""

    day_index: int
    time: str = "00:00"

    @classmethod
    def parse(cls, text: str, *, where: str = "CLINIC_NOW") -> WeekTime:
        """``"wednesday 12:00"`` or ``"wednesday"`` (its start)."""
        parts = text.strip().lower().split()
        if not parts or len(parts) > 2 or parts[0] not in DAYS:
            raise FaultConfigError(
                f"{where} must be a weekday and an optional HH:MM, "
                f"e.g. 'wednesday 12:00', got {text!r}"
            )
        hhmm = normalize_time(parts[1]) if len(parts) == 2 else "00:00"
        if hhmm is None:
            raise FaultConfigError(f"{where} has a bad time {parts[1]!r}; write HH:MM")
        return cls(DAYS.index(parts[0]), hhmm)

    @classmethod
    def of(cls, day: str, time: str) -> WeekTime:
        return cls(DAYS.index(day), time)

    def __str__(self) -> str:
        return f"{DAYS[self.day_index]} {self.time}"


def normalize_time(text: str) -> str | None:
    """``"9:00"`` -> ``"09:00"``; None when it is not a time of day."""
    m = _TIME.match(text)
    if not m:
        return None
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 23 or minute > 59:
        return None
    return f"{hour:02d}:{minute:02d}"


# --- the approval policy ------------------------------------------------------------------


@dataclass(frozen=True)
class BookingRequest:
    """A booking request as received, trimmed; ``day`` and ``service`` in lower case."""

    name: str
    day: str
    time: str
    service: str

    @classmethod
    def from_json(cls, body: Any) -> BookingRequest:
        """Checks the shape only (ValueError with the reason); the policy judges the values."""
        if not isinstance(body, Mapping):
            raise ValueError("the body must be a JSON object with name, day, time and service")
        missing = [f for f in _FIELDS if f not in body]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        values = {}
        for f in _FIELDS:
            v = body[f]
            if not isinstance(v, str):
                raise ValueError(f"{f} must be a string, got {type(v).__name__}")
            if len(v) > 200:
                raise ValueError(f"{f} is longer than 200 characters")
            values[f] = v.strip()
        time_ = normalize_time(values["time"]) or values["time"]
        return cls(
            name=" ".join(values["name"].split()),
            day=values["day"].lower(),
            time=time_,
            service=values["service"].lower(),
        )


@dataclass(frozen=True)
class Decision:
    approved: bool
    rule: str
    reason: str

    @property
    def outcome(self) -> str:
        return c.APPROVAL_APPROVED if self.approved else c.APPROVAL_DENIED


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which bookings are approved. Every reason is safe to tell the caller.

    Rules, in order: ``name`` (present, letters, at most ``max_name_length``), ``service``
    (one of ``services``), ``day`` (a weekday with openings), ``time`` (one of that day's
    openings), ``past`` (not before ``now`` in the clinic's week), ``free`` (not taken).
    """

    openings: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(OPENINGS))
    services: tuple[str, ...] = tuple(SERVICES)
    now: WeekTime | None = None
    max_name_length: int = 80

    def check(self, req: BookingRequest, taken: set[str] | frozenset[str]) -> Decision:
        failure = next(self._failures(req, taken), None)
        if failure is not None:
            return Decision(False, *failure)
        return Decision(True, "ok", f"{req.day} at {req.time} is free")

    def _failures(self, req: BookingRequest, taken: set[str] | frozenset[str]) -> Iterator[Rule]:
        # lazy: check() takes the first failure only, so a rule may rely on those before it
        if not req.name:
            yield "name", "a booking needs the caller's name"
        if len(req.name) > self.max_name_length:
            yield "name", f"the name is longer than {self.max_name_length} characters"
        if not _NAME.match(req.name):
            yield "name", f"{req.name!r} does not look like a name"
        if req.service not in self.services:
            yield (
                "service",
                (
                    f"we do not offer {req.service!r}; we offer "
                    + ", ".join(self.services[:-1])
                    + f" and {self.services[-1]}"
                ),
            )
        if req.day not in self.openings:
            yield "day", f"unknown day {req.day!r}; expected one of {', '.join(self.openings)}"
        if not self.openings[req.day]:
            yield "day", f"the clinic is closed on {req.day}"
        if req.time not in self.openings[req.day]:
            yield (
                "time",
                (
                    f"{req.time} is not an opening on {req.day}; "
                    f"the openings are {', '.join(self.openings[req.day])}"
                ),
            )
        if self.in_past(req.day, req.time):
            yield "past", f"{req.day} at {req.time} is already in the past (it is now {self.now})"
        if req.time in taken:
            yield "free", f"{req.time} on {req.day} is already taken"

    def in_past(self, day: str, time: str) -> bool:
        return self.now is not None and day in DAYS and WeekTime.of(day, time) <= self.now

    def free_times(self, day: str, taken: set[str]) -> list[str]:
        return [
            t for t in self.openings.get(day, ()) if t not in taken and not self.in_past(day, t)
        ]


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendConfig:
    """The service's settings; the fault knobs are those of :data:`faults.BACKEND_KNOBS`."""

    db_path: Path
    skip_approval: float = 0.0
    tool_failure_rate: float = 0.0
    seed: int = 0
    now: WeekTime | None = None
    calendar: str = "per_call"
    tool_latency_ms: int = 0
    tool_latency_share: float = 1.0
    tool_timeout_share: float = 0.0
    duplicate_action_share: float = 0.0

    def __post_init__(self) -> None:
        # the same checks as everywhere else (True is a share of 1.0)
        faults = Faults(**{k: getattr(self, k) for k in BACKEND_KNOBS})
        for k in BACKEND_KNOBS:
            object.__setattr__(self, k, getattr(faults, k))
        if self.calendar not in CALENDAR_MODES:
            raise FaultConfigError(
                f"{deploy.ENV_CALENDAR} must be one of {', '.join(CALENDAR_MODES)}, "
                f"got {self.calendar!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BackendConfig:
        env = os.environ if environ is None else environ
        now = env.get(deploy.ENV_NOW, "").strip()
        faults = Faults.from_env(env)
        return cls(
            db_path=deploy.db_path(env, SERVICE_NAME),
            now=WeekTime.parse(now) if now else None,
            calendar=env.get(deploy.ENV_CALENDAR, "").strip() or "per_call",
            **{k: getattr(faults, k) for k in BACKEND_KNOBS},
        )

    @property
    def policy(self) -> ApprovalPolicy:
        return ApprovalPolicy(now=self.now)

    @property
    def faults(self) -> Faults:
        return Faults(**{k: getattr(self, k) for k in BACKEND_KNOBS})


def _request_faults(request: web.Request, body: Any, config: BackendConfig) -> Faults:
    """The service's knobs overridden by the ``X-Clinic-Faults`` header, then by the body's
    ``"faults"`` object (ValueError naming the bad one)."""
    faults = config.faults
    try:
        header = request.headers.get(FAULTS_HEADER)
        if header:
            try:
                given = json.loads(header)
            except ValueError:
                raise ValueError(f"the {FAULTS_HEADER} header is not a JSON object") from None
            if not isinstance(given, Mapping):
                raise ValueError(f"the {FAULTS_HEADER} header is not a JSON object")
            faults = faults.overridden(given, where=FAULTS_HEADER, allowed=BACKEND_KNOBS)
        given = body.get("faults") if isinstance(body, Mapping) else None
        if given is not None:
            if not isinstance(given, Mapping):
                raise ValueError("faults must be a JSON object")
            faults = faults.overridden(given, where="faults", allowed=BACKEND_KNOBS)
    except FaultConfigError as e:
        raise ValueError(str(e)) from None
    return faults


# --- the service --------------------------------------------------------------------------


class _Failures:
    """The failure draw: one per request, in arrival order, from ``random.Random(seed)``;
    every other knob: a draw per request it could touch, from ``Random(f"{seed}:{knob}")``."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._rng = random.Random(seed)
        self._streams: dict[str, random.Random] = {}
        self._lock = threading.Lock()

    def draw(self) -> float:
        with self._lock:
            return self._rng.random()

    def hit(self, knob: str, share: float) -> bool:
        if share <= 0.0:
            return False
        with self._lock:
            rng = self._streams.setdefault(knob, random.Random(f"{self._seed}:{knob}"))
            return rng.random() < share


class _Reply(Exception):
    """Ends a request with this status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error", ""))
        self.status = status
        self.body = body


def _error(status: int, reason: str, **extra: Any) -> _Reply:
    return _Reply(status, {"error": reason, **extra})


_KEY_CONFIG = web.AppKey("config", BackendConfig)
_KEY_FAILURES = web.AppKey("failures", _Failures)

Handler = Callable[[web.Request, Any], Awaitable[tuple[int, dict[str, Any]]]]


def create_app(config: BackendConfig) -> web.Application:
    """The aiohttp application; tracing must already be set up (see :func:`main`)."""
    store.init(config.db_path)
    app = web.Application(client_max_size=64 * 1024)
    app[_KEY_CONFIG] = config
    app[_KEY_FAILURES] = _Failures(config.seed)
    app.router.add_get("/healthz", _healthz)
    app.router.add_post("/bookings", _traced("/bookings", _post_booking))
    app.router.add_get("/bookings", _traced("/bookings", _get_availability))
    return app


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "service": SERVICE_NAME})


def _traced(route: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Continue the caller's trace with a server span; turn every outcome into a response."""

    async def wrapped(request: web.Request) -> web.Response:
        with instrument.remote_context(request.headers):
            tracer = instrument.get_tracer(SERVICE_NAME)
            with tracer.start_as_current_span(
                f"{request.method} {route}",
                kind=SpanKind.SERVER,
                attributes={
                    http_attributes.HTTP_REQUEST_METHOD: request.method,
                    http_attributes.HTTP_ROUTE: route,
                },
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    status, body = await handler(request, span)
                except _Reply as r:
                    status, body = r.status, r.body
                except Exception as e:  # a bug here must not take the service down
                    log.exception("%s %s failed", request.method, route)
                    span.record_exception(e)
                    status, body = 500, {"error": f"internal error: {type(e).__name__}"}
                span.set_attribute(http_attributes.HTTP_RESPONSE_STATUS_CODE, status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR, str(body.get("error", status))))
                return web.json_response(body, status=status)

    return wrapped


async def _maybe_fail(request: web.Request, span: Any, faults: Faults) -> None:
    """The request-level faults, in order: latency, timeout, failure."""
    draws = request.app[_KEY_FAILURES]
    touched: list[str] = []

    def mark(fault: str) -> None:  # before any wait: a client that gives up cancels it
        touched.append(fault)
        span.set_attribute(ATTR_FAULT, ",".join(touched))

    if faults.tool_latency_ms and draws.hit("tool_latency_share", faults.tool_latency_share):
        mark("tool_latency")
        await asyncio.sleep(faults.tool_latency_ms / 1000.0)
    if draws.hit("tool_timeout_share", faults.tool_timeout_share):
        mark("tool_timeout")
        await asyncio.sleep(TIMEOUT_HOLD_S)
    if draws.draw() < faults.tool_failure_rate:
        mark("tool_failure")
        raise _error(503, "the booking system is temporarily unavailable")


def _calendar(config: BackendConfig) -> tuple[str, str | None]:
    cid = instrument.current_conversation_id()
    if config.calendar == "shared" or not cid:
        return SHARED_CALENDAR, cid
    return cid, cid


async def _read_json(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _error(413, "the request body is too large") from None
    try:
        return json.loads(raw or b"null")
    except (UnicodeDecodeError, ValueError) as e:
        raise _error(400, f"the body is not valid JSON: {e}") from None


async def _post_booking(request: web.Request, span: Any) -> tuple[int, dict[str, Any]]:
    config = request.app[_KEY_CONFIG]
    body = await _read_json(request)
    try:
        faults = _request_faults(request, body, config)
    except ValueError as e:
        raise _error(400, str(e)) from None
    await _maybe_fail(request, span, faults)
    draws = request.app[_KEY_FAILURES]
    skip = draws.hit("skip_approval", faults.skip_approval)
    twice = draws.hit("duplicate_action_share", faults.duplicate_action_share)
    try:
        req = BookingRequest.from_json(body)
    except ValueError as e:
        raise _error(400, str(e)) from None
    span.set_attributes(
        {ATTR_BOOKING_DAY: req.day, ATTR_BOOKING_TIME: req.time, ATTR_BOOKING_SERVICE: req.service}
    )
    calendar, cid = _calendar(config)
    with store.opened(config.db_path) as db:
        if skip:
            approval, decision = c.APPROVAL_SKIPPED, None
        else:
            with instrument.intent("approve_booking") as check:
                decision = config.policy.check(req, store.taken_times(db, calendar, req.day))
                check.set_outcome(decision.outcome)
                check.set_attribute(ATTR_APPROVAL_RULE, decision.rule)
                check.set_attribute(ATTR_APPROVAL_REASON, decision.reason)
            approval = decision.outcome
        refusal: _Reply | None = None
        key = f"{calendar}:{req.day}:{req.time}:{req.service}"
        with instrument.action("create_booking", mutating=True, approval=approval, key=key) as act:
            if decision is not None and not decision.approved:
                # the gate did its job: recorded as denied (not an error), nothing written
                act.set_attribute(ATTR_APPROVAL_REASON, decision.reason)
                refusal = _error(409, decision.reason, rule=decision.rule)
            else:
                try:
                    booking = store.insert_booking(
                        db,
                        calendar=calendar,
                        name=req.name,
                        day=req.day,
                        time_=req.time,
                        service=req.service,
                        approval=approval,
                        conversation_id=cid,
                    )
                except store.SlotTaken as e:
                    # approved (or unchecked), then beaten to the slot: the write failed
                    act.span.set_status(Status(StatusCode.ERROR, str(e)))
                    refusal = _error(409, str(e), rule="free")
                else:
                    act.set_attribute(ATTR_CONFIRMATION_ID, booking["confirmation_id"])
        if twice and refusal is None:
            _write_again(db, config, req, calendar, cid, approval, key, span)
    if refusal is not None:
        log.info("refused %s %s: %s", req.day, req.time, refusal)
        raise refusal
    log.info(
        "booked %s %s (%s), approval %s", req.day, req.time, booking["confirmation_id"], approval
    )
    return 201, booking


def _write_again(
    db: Any,
    config: BackendConfig,
    req: BookingRequest,
    calendar: str,
    cid: str | None,
    approval: str,
    key: str,
    span: Any,
) -> None:
    """The duplicate-action fault: the same write again, as a retry would send it."""
    span.set_attribute(ATTR_FAULT, "duplicate_action")
    with instrument.action("create_booking", mutating=True, approval=approval, key=key) as act:
        try:
            store.insert_booking(
                db,
                calendar=calendar,
                name=req.name,
                day=req.day,
                time_=req.time,
                service=req.service,
                approval=approval,
                conversation_id=cid,
            )
        except store.SlotTaken as e:
            act.span.set_status(Status(StatusCode.ERROR, f"written twice: {e}"))
    log.info("fault: wrote %s %s a second time", req.day, req.time)


async def _get_availability(request: web.Request, span: Any) -> tuple[int, dict[str, Any]]:
    config = request.app[_KEY_CONFIG]
    try:
        faults = _request_faults(request, None, config)
    except ValueError as e:
        raise _error(400, str(e)) from None
    await _maybe_fail(request, span, faults)
    day = request.query.get("day", "").strip().lower()
    if not day:
        raise _error(400, "missing query parameter day, e.g. /bookings?day=tuesday")
    if day not in DAYS:
        raise _error(400, f"unknown day {day!r}; expected one of {', '.join(DAYS)}")
    span.set_attribute(ATTR_BOOKING_DAY, day)
    calendar, _ = _calendar(config)
    with instrument.action("check_availability", mutating=False):
        with store.opened(config.db_path) as db:
            taken = store.taken_times(db, calendar, day)
        times = config.policy.free_times(day, taken)
    return 200, {"day": day, "open": bool(OPENINGS[day]), "times": times}


def main() -> None:
    deploy.service_main(
        service=SERVICE_NAME,
        layer=c.LAYER_BACKGROUND,
        port_env=deploy.ENV_BACKEND_PORT,
        load_config=BackendConfig.from_env,
        create_app=create_app,
        describe=lambda cfg: (
            f"database {cfg.db_path}; now={cfg.now} calendar={cfg.calendar}; faults "
            + " ".join(f"{k}={getattr(cfg, k)}" for k in BACKEND_KNOBS)
        ),
    )


if __name__ == "__main__":
    main()
