"""The clinic's dialog policy: a chat context in, one reply or one tool call out.

There is no hidden state. :func:`decide` replays the whole conversation (caller turns, the
agent's own turns, tool calls and their results) through the same rules every time, so
the same chat context always yields the same decision, and a test can build a chat context
by hand and check what comes out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import llm

from .domain import (
    CLINIC_NAME,
    DAYS,
    FIRST_NAMES,
    HOUR_WORDS,
    LAST_NAMES,
    MINUTE_WORDS,
    SERVICES,
    hours_sentence,
    spoken_list,
    spoken_time,
)

CALLER_SILENT = "The caller has said nothing for a while: check whether they are still there."
"""Instructions the agent passes to ``generate_reply`` when the caller has gone quiet."""

GREETING = f"Thank you for calling {CLINIC_NAME}. How can I help you today?"
STILL_THERE = "Are you still there?"
GOODBYE = f"Thank you for calling {CLINIC_NAME}. Goodbye!"
GOODBYE_SILENT = (
    f"I can't hear you, so I will end the call now. Thank you for calling {CLINIC_NAME}. Goodbye!"
)
OFFERED_DAYS = ("tuesday", "wednesday", "thursday")

# what the agent's last reply asked for; the next caller turn is read in that light
ASK_SERVICE = "service"
ASK_DAY = "day"
ASK_TIME = "time"
ASK_NAME = "name"
ASK_BOOK = "book"  # "Would you like to book an appointment?"
ASK_ANYTHING_ELSE = "anything_else"


@dataclass(frozen=True)
class Reply:
    """Say ``text``; ``asks`` names what the agent is now waiting for, if anything."""

    text: str
    asks: str | None = None


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


Decision = Reply | ToolCall


@dataclass(frozen=True)
class Utterance:
    """What one caller turn says, read without context."""

    text: str
    goodbye: bool = False
    greeting: bool = False
    hours_question: bool = False
    booking_cue: bool = False
    service: str | None = None
    day: str | None = None
    time: tuple[int, int, str | None] | str | None = None
    """(hour, minute, "am"/"pm"/None), or "first"/"last" for "the first one"."""
    name_tokens: tuple[str, ...] = ()
    name_cued: bool = False
    unsure: bool = False
    yes: bool = False
    no: bool = False
    still_here: bool = False


@dataclass
class State:
    """The booking as the conversation so far has shaped it."""

    booking: bool = False
    service: str | None = None
    day: str | None = None
    time_request: tuple[int, int, str | None] | str | None = None
    time: str | None = None
    suggested_time: str | None = None
    name: str | None = None
    availability: dict[str, tuple[str, ...]] = field(default_factory=dict)
    availability_failed: set[str] = field(default_factory=set)
    confirmation: dict[str, Any] | None = None
    booking_failed: bool = False
    asks: str | None = None
    silence_prompts: int = 0
    spoke: bool = False
    tool_calls: int = 0
    end_reason: str | None = None
    day_corrected: bool = False


# -- reading caller turns ----------------------------------------------------------------

_PUNCT = re.compile(r"[^a-z0-9' -]+")
_GREETING_WORDS = {"hello", "hi", "hey", "there", "good", "morning", "afternoon"}
_YES_WORDS = {"yes", "yeah", "yep", "sure", "okay", "ok", "correct", "perfect"}
_SERVICE_BY_WORD = {w: name for name, words in SERVICES.items() for w in words}
_NAME_WORDS = set(FIRST_NAMES) | set(LAST_NAMES)
_NAME_CUES = (("name", "is"), ("it's",), ("this", "is"), ("i'm",), ("name's",))


def normalize(text: str) -> list[str]:
    return _PUNCT.sub(" ", text.lower().replace("a.m.", "am").replace("p.m.", "pm")).split()


def _has(tokens: list[str], phrase: str) -> bool:
    words = phrase.split()
    n = len(words)
    return any(tokens[i : i + n] == words for i in range(len(tokens) - n + 1))


def _parse_time(tokens: list[str]) -> tuple[int, int, str | None] | str | None:
    found: tuple[int, int, str | None] | str | None = None
    for i, tok in enumerate(tokens):
        if tok == "noon":
            found = (12, 0, "pm")
            continue
        if tok in ("first", "earliest"):
            found = "first"
            continue
        if tok in ("last", "latest"):
            found = "last"
            continue
        if tok not in HOUR_WORDS:
            continue
        prev = tokens[i - 1] if i else ""
        if tok == "one" and prev in ("first", "last", "earliest", "latest", "the", "that", "this"):
            continue
        hour, minute, ampm = HOUR_WORDS[tok], 0, None
        rest = tokens[i + 1 : i + 5]
        if rest[:1] and rest[0] in MINUTE_WORDS:
            minute = MINUTE_WORDS[rest[0]]
        elif rest[:2] == ["forty", "five"]:
            minute = 45
        if "am" in rest[:3] or _has(rest, "in the morning"):
            ampm = "am"
        elif "pm" in rest[:3] or _has(rest, "in the afternoon") or "noon" in rest[:2]:
            ampm = "pm"
        found = (hour, minute, ampm)
    return found


def _parse_name(tokens: list[str]) -> tuple[tuple[str, ...], bool]:
    for cue in _NAME_CUES:
        n = len(cue)
        for i in range(len(tokens) - n + 1):
            if tuple(tokens[i : i + n]) == cue:
                after = []
                for tok in tokens[i + n :]:
                    if tok not in _NAME_WORDS:
                        break
                    after.append(tok)
                if after:
                    return tuple(after[:2]), True
    return tuple(t for t in tokens if t in _NAME_WORDS)[:2], False


def parse(text: str) -> Utterance:
    """Read one caller turn. Later mentions win, so "Tuesday, no wait, Thursday" is Thursday."""
    tokens = normalize(text)
    joined = " ".join(tokens)
    days = [t for t in tokens if t in DAYS]
    services = [_SERVICE_BY_WORD[t] for t in tokens if t in _SERVICE_BY_WORD]
    if _has(tokens, "check up"):
        services.append("checkup")
    name_tokens, name_cued = _parse_name(tokens)
    no = bool(tokens) and tokens[0] in ("no", "nope") and tokens[1:2] != ["wait"]
    return Utterance(
        text=text,
        goodbye=any(w in tokens for w in ("goodbye", "bye")) or "have a nice day" in joined,
        greeting=bool(tokens) and set(tokens) <= _GREETING_WORDS,
        hours_question=any(w in tokens for w in ("hours", "open", "close")),
        booking_cue=any(w in tokens for w in ("book", "appointment", "schedule", "dentist")),
        service=services[-1] if services else None,
        day=days[-1] if days else None,
        time=_parse_time(tokens),
        name_tokens=name_tokens,
        name_cued=name_cued,
        unsure=any(
            p in joined
            for p in (
                "don't know",
                "not sure",
                "don't mind",
                "any day",
                "any time",
                "whatever",
                "what do you have",
                "what days",
                "what times",
            )
        ),
        yes=bool(tokens)
        and (tokens[0] in _YES_WORDS or any(p in joined for p in ("that's right", "that works"))),
        no=no,
        still_here=any(p in joined for p in ("still here", "i'm here")),
    )


# -- choosing what to say ----------------------------------------------------------------


def _resolve_time(
    request: tuple[int, int, str | None] | str, slots: tuple[str, ...]
) -> tuple[str | None, str]:
    """The slot a request names (or None) and how to say what was asked for."""
    if request == "first":
        return slots[0], spoken_time(slots[0])
    if request == "last":
        return slots[-1], spoken_time(slots[-1])
    assert not isinstance(request, str)
    hour, minute, ampm = request
    if ampm == "pm" and hour < 12:
        hour += 12
    elif ampm is None and 1 <= hour <= 6:
        hour += 12
    hhmm = f"{hour:02d}:{minute:02d}"
    return (hhmm if hhmm in slots else None), spoken_time(hhmm)


def _slots_sentence(slots: tuple[str, ...]) -> str:
    return spoken_list([spoken_time(s) for s in slots])


def _booking_step(state: State, u: Utterance | None) -> Decision:
    """The next step of a booking, given everything known so far."""
    if state.confirmation is not None:
        return Reply("Is there anything else I can help you with?", ASK_ANYTHING_ELSE)
    if state.service is None:
        if u is not None and u.unsure:
            return Reply(
                "We offer cleanings, checkups, fillings and teeth whitening. Which would you like?",
                ASK_SERVICE,
            )
        return Reply(
            "Sure, I can book that for you. What would you like to come in for? "
            "We offer cleanings, checkups, fillings and whitening.",
            ASK_SERVICE,
        )
    if state.day is None:
        if u is not None and u.unsure:
            days = spoken_list([d.capitalize() for d in OFFERED_DAYS])
            return Reply(
                f"No problem. This week we have openings on {days}. Which day would you like?",
                ASK_DAY,
            )
        return Reply(f"Sure, a {state.service}. What day would you like to come in?", ASK_DAY)
    day = state.day
    if day not in state.availability:
        if day in state.availability_failed:
            return Reply(
                "Sorry, I could not check the schedule just now. Which day would you like?",
                ASK_DAY,
            )
        return ToolCall("check_availability", {"day": day})
    slots = state.availability[day]
    if not slots:
        days = spoken_list([d.capitalize() for d in OFFERED_DAYS])
        return Reply(
            f"Sorry, we have no openings on {day.capitalize()}. "
            f"We do have openings on {days}. Which day would you like?",
            ASK_DAY,
        )
    if state.time is None:
        if state.time_request is not None:
            slot, asked = _resolve_time(state.time_request, slots)
            if slot is None:
                return Reply(
                    f"Sorry, {asked} is not available on {day.capitalize()}. "
                    f"We have {_slots_sentence(slots)}. Which time would you like?",
                    ASK_TIME,
                )
            state.time = slot
        elif u is not None and u.unsure and state.asks == ASK_TIME:
            state.suggested_time = slots[0]
            return Reply(f"How about {spoken_time(slots[0])}?", ASK_TIME)
        elif u is not None and u.no and state.asks == ASK_TIME:
            return Reply(
                f"We also have {_slots_sentence(slots)}. Which time would you prefer?",
                ASK_TIME,
            )
        else:
            return Reply(
                f"On {day.capitalize()} we have openings at {_slots_sentence(slots)}. "
                "Which time works for you?",
                ASK_TIME,
            )
    if state.name is None:
        if u is not None and state.asks == ASK_NAME:
            return Reply("Sorry, I didn't catch your name. Could you say it again?", ASK_NAME)
        return Reply(
            f"Great, {day.capitalize()} at {spoken_time(state.time)}. "
            "May I have your name, please?",
            ASK_NAME,
        )
    if state.booking_failed:
        return Reply(
            "Sorry, I could not complete the booking just now. Please call us again later. "
            "Is there anything else I can help you with?",
            ASK_ANYTHING_ELSE,
        )
    return ToolCall(
        "request_booking",
        {"name": state.name, "day": day, "time": state.time, "service": state.service},
    )


def confirmation_text(name: str, service: str, day: str, time: str, confirmation_id: str) -> str:
    """How the agent confirms a booking: day, time and the confirmation number digit by
    digit."""
    number = " ".join(confirmation_id)
    return (
        f"You're all set, {name}. Your {service} is booked for {day.capitalize()} at "
        f"{spoken_time(time)}. Your confirmation number is {number}. "
        "Is there anything else I can help you with?"
    )


def _reprompt(state: State) -> Reply:
    """Ask again for whatever the agent was waiting for."""
    if state.booking:
        step = _booking_step(state, None)
        if isinstance(step, Reply):
            return step
    if state.asks == ASK_ANYTHING_ELSE:
        return Reply("Is there anything else I can help you with?", ASK_ANYTHING_ELSE)
    return Reply(
        "How can I help you today? I can book an appointment or tell you our opening hours."
    )


def _apply(state: State, u: Utterance) -> None:
    """Fold one caller turn into the state."""
    asks = state.asks
    if u.booking_cue or u.service is not None:
        state.booking = True
    if u.service is not None:
        state.service = u.service
    if u.day is not None and not u.hours_question:
        state.booking = True
        if u.day != state.day:
            state.day_corrected = state.day is not None
            state.day = u.day
            state.time = None
            state.suggested_time = None
    if u.time is not None and (state.booking or asks == ASK_TIME):
        state.booking = True
        state.time_request = u.time
        state.time = None
    if u.yes and asks == ASK_TIME and state.suggested_time is not None:
        state.time = state.suggested_time
    if u.yes and asks == ASK_BOOK:
        state.booking = True
    if u.name_tokens and (u.name_cued or asks == ASK_NAME):
        state.name = " ".join(t.capitalize() for t in u.name_tokens)


def _respond(state: State, u: Utterance, bugs: frozenset[str] = frozenset()) -> Decision:
    """The decision for a caller turn, after it has been folded into the state."""
    if u.goodbye:
        return ToolCall("end_call", {"reason": "caller_goodbye"})
    if "date_loop" in bugs and state.day_corrected and state.confirmation is None:
        # The bug: a corrected day sends the agent into a confirmation it never leaves.
        day = str(state.day).capitalize()
        return Reply(f"Just to confirm, you would like {day}, is that right?", ASK_DAY)
    if state.asks == ASK_ANYTHING_ELSE and u.no:
        return ToolCall("end_call", {"reason": "caller_done"})
    if u.hours_question and not u.booking_cue and u.service is None:
        day = u.day
        text = hours_sentence(day)
        if state.booking:
            follow = _reprompt(state)
            return Reply(f"{text} {follow.text}", follow.asks)
        return Reply(f"{text} Would you like to book an appointment?", ASK_BOOK)
    if state.asks == ASK_BOOK and u.no:
        return Reply("Okay. Is there anything else I can help you with?", ASK_ANYTHING_ELSE)
    if state.asks == ASK_ANYTHING_ELSE and u.yes and not _has_new_info(u):
        return Reply("Sure, what else can I help you with?")
    if state.booking and not (state.confirmation is not None and not _has_new_info(u)):
        return _booking_step(state, u)
    if state.confirmation is not None:
        return Reply("Is there anything else I can help you with?", ASK_ANYTHING_ELSE)
    if u.still_here:
        follow = _reprompt(state)
        return Reply(f"Okay, good. {follow.text}", follow.asks)
    if u.greeting:
        return Reply(
            "Hello! I can book an appointment for you or tell you our opening hours. "
            "What would you like to do?"
        )
    if state.spoke and state.asks is not None and not u.unsure:
        return Reply(f"Sorry, I didn't catch that. {_reprompt(state).text}", state.asks)
    return Reply(
        "Sorry, I didn't catch that. I can book an appointment or tell you our opening hours."
    )


def _has_new_info(u: Utterance) -> bool:
    return u.booking_cue or u.service is not None or u.day is not None


def _after_tool(state: State, name: str, arguments: dict[str, Any], output: str, error: bool):
    """Fold a tool result into the state and decide what to say about it."""
    try:
        result = json.loads(output) if output and not error else {}
    except json.JSONDecodeError:
        result = {}
        error = True
    if name == "check_availability":
        day = str(arguments.get("day", "")).lower()
        if error or "times" not in result:
            state.availability_failed.add(day)
        else:
            state.availability[day] = tuple(result["times"])
            state.availability_failed.discard(day)
        return _booking_step(state, None)
    if name == "request_booking":
        if error or "confirmation_id" not in result:
            state.booking_failed = True
            return _booking_step(state, None)
        state.confirmation = result
        return Reply(
            confirmation_text(
                str(result.get("name", state.name)),
                str(state.service),
                str(state.day),
                str(state.time),
                str(result["confirmation_id"]),
            ),
            ASK_ANYTHING_ELSE,
        )
    if name == "end_call":
        state.end_reason = str(arguments.get("reason", ""))
        return Reply(GOODBYE_SILENT if state.end_reason == "silence" else GOODBYE)
    return _reprompt(state)


def decide(chat_ctx: llm.ChatContext, bugs: frozenset[str] = frozenset()) -> Decision:
    """What the agent does next in this conversation. ``bugs`` switches on the deliberate
    faults of :mod:`examples.clinic.faults` (``date_loop``)."""
    state = State()
    decision: Decision | None = None
    calls: dict[str, llm.FunctionCall] = {}
    for item in chat_ctx.items:
        if isinstance(item, llm.ChatMessage):
            text = item.text_content or ""
            if item.role == "user":
                if not text.strip():
                    continue
                state.silence_prompts = 0
                u = parse(text)
                _apply(state, u)
                decision = _respond(state, u, bugs)
            elif item.role == "assistant":
                state.spoke = True
                if text.startswith(STILL_THERE):
                    state.silence_prompts += 1
                decision = None
            elif text.strip() == CALLER_SILENT:
                if state.silence_prompts == 0:
                    decision = Reply(STILL_THERE, state.asks)
                else:
                    decision = ToolCall("end_call", {"reason": "silence"})
        elif isinstance(item, llm.FunctionCall):
            calls[item.call_id] = item
            state.tool_calls += 1
            decision = None
        elif isinstance(item, llm.FunctionCallOutput):
            call = calls.get(item.call_id)
            arguments = _arguments(call.arguments) if call else {}
            name = call.name if call else item.name
            decision = _after_tool(state, name, arguments, item.output, item.is_error)
        else:
            continue
        if isinstance(decision, Reply) and decision.text != STILL_THERE:
            state.asks = decision.asks
    if decision is not None:
        return decision
    if not state.spoke:
        return Reply(GREETING)
    return _reprompt(state)


def _arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
