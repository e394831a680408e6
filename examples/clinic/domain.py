"""What Bright Smile Dental knows: its days, hours, services, openings and how to say times.

Shared by the dialog policy (to understand and phrase), the booking backend (to answer
availability) and the language-model corpus (so the recogniser expects these words).
"""

from __future__ import annotations

CLINIC_NAME = "Bright Smile Dental"

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# canonical service -> words a caller may use for it
SERVICES: dict[str, tuple[str, ...]] = {
    "cleaning": ("cleaning", "clean"),
    "checkup": ("checkup", "check-up", "exam", "examination"),
    "filling": ("filling", "fillings", "cavity"),
    "whitening": ("whitening",),
}

OPENING_HOURS: dict[str, tuple[str, str] | None] = {
    "monday": ("08:00", "17:00"),
    "tuesday": ("08:00", "17:00"),
    "wednesday": ("08:00", "17:00"),
    "thursday": ("08:00", "17:00"),
    "friday": ("08:00", "17:00"),
    "saturday": ("09:00", "13:00"),
    "sunday": None,
}

# free appointment slots per weekday (the same every week: the example has no calendar)
OPENINGS: dict[str, tuple[str, ...]] = {
    "monday": ("09:00", "10:30", "15:00"),
    "tuesday": ("09:00", "11:00", "14:00"),
    "wednesday": ("10:00", "13:00", "16:00"),
    "thursday": ("09:30", "11:00", "15:30"),
    "friday": ("08:30", "12:00", "14:30"),
    "saturday": ("09:00", "10:00"),
    "sunday": (),
}

FIRST_NAMES = (
    "anna",
    "daniel",
    "david",
    "emma",
    "james",
    "john",
    "karen",
    "laura",
    "lisa",
    "maria",
    "michael",
    "peter",
    "robert",
    "sarah",
    "susan",
    "thomas",
)
LAST_NAMES = (
    "brown",
    "clark",
    "davis",
    "johnson",
    "lee",
    "miller",
    "parker",
    "smith",
    "taylor",
    "walker",
    "wilson",
    "young",
)

HOUR_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
MINUTE_WORDS = {"fifteen": 15, "thirty": 30}
_NUMBER_NAMES = {v: k for k, v in HOUR_WORDS.items()}


def spoken_time(hhmm: str) -> str:
    """``"14:30"`` -> ``"two thirty PM"``; ``"12:00"`` -> ``"twelve noon"``."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    if hour == 12 and minute == 0:
        return "twelve noon"
    suffix = "AM" if hour < 12 else "PM"
    h12 = hour - 12 if hour > 12 else hour
    words = _NUMBER_NAMES[h12]
    if minute:
        words += " " + {15: "fifteen", 30: "thirty", 45: "forty-five"}[minute]
    return f"{words} {suffix}"


def spoken_list(items: list[str] | tuple[str, ...], conjunction: str = "and") -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def hours_sentence(day: str | None = None) -> str:
    """The opening hours, for one day or the whole week."""
    if day is None:
        return (
            "We are open Monday to Friday from eight AM to five PM, "
            "and Saturday from nine AM to one PM. We are closed on Sunday."
        )
    hours = OPENING_HOURS[day]
    if hours is None:
        return f"We are closed on {day.capitalize()}."
    return (
        f"On {day.capitalize()} we are open from {spoken_time(hours[0])} "
        f"to {spoken_time(hours[1])}."
    )
