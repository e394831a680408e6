"""The clinic's schedule and bookings, behind two small functions.

The conversational agent only reads (``check_availability``) and asks
(``request_booking``). Today the request is fulfilled in memory, in the agent's own
process; the reference deployment will move it to a separate background service, and
only :func:`request_booking` needs to change for that.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from . import clients
from .domain import DAYS, OPENINGS


class BookingError(Exception):
    """The booking cannot be made; the message is safe to tell the caller's agent."""


def check_availability(day: str) -> dict[str, Any]:
    """Free slots on a weekday: ``{"day": "tuesday", "open": true, "times": ["09:00", ...]}``."""
    key = day.strip().lower()
    if key not in DAYS:
        raise BookingError(f"unknown day {day!r}; expected one of {', '.join(DAYS)}")
    taken = _store.taken(key)
    times = [t for t in OPENINGS[key] if t not in taken]
    return {"day": key, "open": bool(OPENINGS[key]), "times": times}


@dataclass
class BookingStore:
    """Bookings kept in memory; confirmation ids count up from 1001."""

    bookings: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1001))

    def taken(self, day: str) -> set[str]:
        return {b["time"] for b in self.bookings if b["day"] == day}

    def book(self, *, name: str, day: str, time: str, service: str) -> dict[str, Any]:
        key = day.strip().lower()
        if key not in DAYS:
            raise BookingError(f"unknown day {day!r}")
        if time not in OPENINGS[key]:
            raise BookingError(f"{time} is not an opening on {key}")
        if time in self.taken(key):
            raise BookingError(f"{time} on {key} is already taken")
        if not name.strip():
            raise BookingError("a booking needs the caller's name")
        booking = {
            "confirmation_id": str(next(self._ids)),
            "name": name.strip(),
            "day": key,
            "time": time,
            "service": service,
        }
        self.bookings.append(booking)
        return booking


_store = BookingStore()


async def availability(day: str, *, faults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Free slots on a weekday, from the background service when the deployment runs one
    (``faults``: the background agent's fault knobs for this request)."""
    if clients.backend_url():
        try:
            return await clients.availability_remote(day, faults=faults)
        except clients.BackendError as e:
            raise BookingError(str(e)) from None
    return check_availability(day)


async def request_booking(
    *, name: str, day: str, time: str, service: str, faults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Ask for a booking; returns it with its ``confirmation_id`` or raises BookingError.

    With a background service (``CLINIC_BACKEND_URL``), the request goes there, with the
    call's trace context and ``faults`` (the background agent's fault knobs), and the
    service approves and writes it; otherwise it is kept in memory, in this process."""
    if clients.backend_url():
        try:
            return await clients.request_booking_remote(name, day, time, service, faults=faults)
        except clients.BackendError as e:
            raise BookingError(str(e)) from None
    return _store.book(name=name, day=day, time=time, service=service)
