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

Fault knobs (environment, or per request in the body's ``"faults"`` object):

- ``CLINIC_SKIP_APPROVAL=1`` (``skip_approval``): write without checking; the action is
  recorded with approval ``skipped``.
- ``CLINIC_TOOL_FAILURE_RATE=0.3`` (``tool_failure_rate``): that share of requests (both
  routes, in arrival order) fail with 503 and an error span; the draws come from
  ``random.Random(CLINIC_SEED)``, so a run is repeatable.
"""

from __future__ import annotations

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
from .faults import FaultConfigError

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
    db_path: Path
    skip_approval: bool = False
    tool_failure_rate: float = 0.0
    seed: int = 0
    now: WeekTime | None = None
    calendar: str = "per_call"

    def __post_init__(self) -> None:
        if not 0.0 <= self.tool_failure_rate <= 1.0:
            raise FaultConfigError(
                f"tool_failure_rate must be between 0 and 1, got {self.tool_failure_rate!r}"
            )
        if self.calendar not in CALENDAR_MODES:
            raise FaultConfigError(
                f"{deploy.ENV_CALENDAR} must be one of {', '.join(CALENDAR_MODES)}, "
                f"got {self.calendar!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BackendConfig:
        env = os.environ if environ is None else environ
        now = env.get(deploy.ENV_NOW, "").strip()
        return cls(
            db_path=deploy.db_path(env, SERVICE_NAME),
            skip_approval=deploy.env_flag(env, deploy.ENV_SKIP_APPROVAL),
            tool_failure_rate=deploy.env_share(env, deploy.ENV_TOOL_FAILURE_RATE),
            seed=deploy.env_int(env, deploy.ENV_SEED, 0),
            now=WeekTime.parse(now) if now else None,
            calendar=env.get(deploy.ENV_CALENDAR, "").strip() or "per_call",
        )

    @property
    def policy(self) -> ApprovalPolicy:
        return ApprovalPolicy(now=self.now)


def _request_faults(body: Any, config: BackendConfig) -> tuple[bool, float]:
    """Per-request overrides from the body's ``"faults"`` object (ValueError when bad)."""
    skip, rate = config.skip_approval, config.tool_failure_rate
    faults = body.get("faults") if isinstance(body, Mapping) else None
    if faults is None:
        return skip, rate
    if not isinstance(faults, Mapping):
        raise ValueError("faults must be a JSON object")
    for key, value in faults.items():
        if key == "skip_approval":
            if not isinstance(value, bool):
                raise ValueError("faults.skip_approval must be true or false")
            skip = value
        elif key == "tool_failure_rate":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError("faults.tool_failure_rate must be a number between 0 and 1")
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError("faults.tool_failure_rate must be a number between 0 and 1")
            rate = float(value)
        else:
            raise ValueError(
                f"faults.{key}: unknown knob; known knobs are skip_approval, tool_failure_rate"
            )
    return skip, rate


# --- the service --------------------------------------------------------------------------


class _Failures:
    """One draw per request, in arrival order, from ``random.Random(seed)``."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> float:
        with self._lock:
            return self._rng.random()


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


def _maybe_fail(request: web.Request, span: Any, rate: float) -> None:
    draw = request.app[_KEY_FAILURES].draw()
    if draw < rate:
        span.set_attribute(ATTR_FAULT, "tool_failure")
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
        skip, rate = _request_faults(body, config)
    except ValueError as e:
        raise _error(400, str(e)) from None
    _maybe_fail(request, span, rate)
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
        with instrument.action("create_booking", mutating=True, approval=approval) as act:
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
    if refusal is not None:
        log.info("refused %s %s: %s", req.day, req.time, refusal)
        raise refusal
    log.info(
        "booked %s %s (%s), approval %s", req.day, req.time, booking["confirmation_id"], approval
    )
    return 201, booking


async def _get_availability(request: web.Request, span: Any) -> tuple[int, dict[str, Any]]:
    config = request.app[_KEY_CONFIG]
    _maybe_fail(request, span, config.tool_failure_rate)
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = BackendConfig.from_env()
        port = deploy.env_int(os.environ, deploy.ENV_BACKEND_PORT, 0, minimum=0)
    except FaultConfigError as e:
        raise SystemExit(f"{SERVICE_NAME}: {e}") from None
    instrument.init_tracing(SERVICE_NAME, layer=c.LAYER_BACKGROUND, livekit=False)
    log.info(
        "database %s; skip_approval=%s tool_failure_rate=%s seed=%s now=%s calendar=%s",
        config.db_path,
        config.skip_approval,
        config.tool_failure_rate,
        config.seed,
        config.now,
        config.calendar,
    )
    try:
        deploy.run_service(create_app(config), service=SERVICE_NAME, port=port)
    finally:
        instrument.shutdown_tracing(timeout_s=3.0)


if __name__ == "__main__":
    main()
