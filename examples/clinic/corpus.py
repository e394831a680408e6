"""Plausible caller utterances for the clinic line, generated from templates.

The corpus trains the recogniser's domain language model (see ``build_lm``). Each family
of templates is expanded over its slots (days, times, names, services), shuffled with a
fixed seed and capped at a size that reflects how often callers say such things, so the
model stays balanced: names do not drown out days just because there are more of them.
"""

from __future__ import annotations

import itertools
import random
import re

from .domain import DAYS, FIRST_NAMES, LAST_NAMES

SERVICE_PHRASES = (
    "a cleaning",
    "a dental cleaning",
    "a checkup",
    "a filling",
    "whitening",
    "teeth whitening",
    "an exam",
)
SERVICE_WORDS = ("cleaning", "checkup", "filling", "whitening")

_HOURS_AM = ("eight", "nine", "ten", "eleven")
_HOURS_PM = ("twelve", "one", "two", "three", "four")
TIME_PHRASES = tuple(
    [f"{h}" for h in _HOURS_AM + _HOURS_PM]
    + [f"{h} am" for h in _HOURS_AM]
    + [f"{h} pm" for h in _HOURS_PM]
    + [f"{h} o'clock" for h in _HOURS_AM + _HOURS_PM]
    + [f"{h} thirty" for h in _HOURS_AM + _HOURS_PM]
    + [f"{h} in the morning" for h in _HOURS_AM]
    + [f"{h} in the afternoon" for h in _HOURS_PM]
    + ["noon", "twelve noon"]
)

SLOTS: dict[str, tuple[str, ...]] = {
    "day": DAYS,
    "day2": DAYS,
    "service": SERVICE_PHRASES,
    "svc": SERVICE_WORDS,
    "time": TIME_PHRASES,
    "time2": TIME_PHRASES,
    "first": FIRST_NAMES,
    "last": LAST_NAMES,
}

# family -> (how many sentences to keep, templates)
FAMILIES: dict[str, tuple[int, tuple[str, ...]]] = {
    "greeting": (
        60,
        (
            "hello",
            "hi",
            "hi there",
            "hello there",
            "good morning",
            "good afternoon",
            "hello good morning",
            "hey",
        ),
    ),
    "hours": (
        220,
        (
            "what are your opening hours",
            "what are your opening hours please",
            "what are your hours",
            "when are you open",
            "what time do you open",
            "what time do you close",
            "what time do you open on {day}",
            "what time do you close on {day}",
            "are you open on {day}",
            "are you open on the weekend",
            "are you open today",
            "what are your hours on {day}",
            "when are you open on {day}",
            "how late are you open",
            "hi what are your opening hours",
            "hello when are you open",
            "can you tell me your opening hours",
            "i would like to know your opening hours",
            "what are your opening hours on {day}",
        ),
    ),
    "booking": (
        360,
        (
            "i would like to book an appointment",
            "i'd like to book an appointment",
            "i want to book an appointment",
            "i need an appointment",
            "i need to make an appointment",
            "can i make an appointment",
            "i would like to make an appointment",
            "i need to see the dentist",
            "i would like to book {service}",
            "i would like to book {service} appointment",
            "i'd like to book {service}",
            "i'd like to book {service} appointment",
            "i need {service}",
            "can i book {service}",
            "i want to schedule {service}",
            "i would like to come in for {service}",
            "i would like to book {service} for {day}",
            "can i book {service} on {day}",
            "i need {service} on {day}",
            "hi i would like to book {service}",
            "hello i need to book an appointment",
            "i would like to book an appointment for {service}",
            "i would like to book an appointment on {day}",
        ),
    ),
    "service": (
        160,
        (
            "{service}",
            "{service} please",
            "just {service}",
            "i need {service}",
            "i would like {service}",
            "{svc}",
            "{svc} please",
            "it's for {service}",
            "for {service}",
        ),
    ),
    "day": (
        360,
        (
            "{day}",
            "{day} please",
            "next {day}",
            "next {day} please",
            "this {day}",
            "on {day}",
            "on {day} please",
            "how about {day}",
            "can i come on {day}",
            "can i come in on {day}",
            "{day} would be great",
            "{day} works for me",
            "{day} is fine",
            "is {day} possible",
            "do you have anything on {day}",
            "what about {day}",
            "i would like {day}",
            "let's do {day}",
            "maybe {day}",
        ),
    ),
    "correction": (
        220,
        (
            "{day} no wait {day2}",
            "no wait {day}",
            "no wait make that {day}",
            "sorry i mean {day}",
            "actually {day} is better",
            "actually can we do {day}",
            "{day} sorry {day2}",
            "no wait i mean {day}",
            "next {day} no wait {day2}",
            "{time} no wait {time2}",
            "sorry i mean {time}",
            "actually {time} is better",
            "no wait make it {time}",
            "can we change it to {day}",
        ),
    ),
    "time": (
        340,
        (
            "{time}",
            "{time} please",
            "at {time}",
            "at {time} please",
            "{time} works",
            "{time} works for me",
            "{time} would be perfect",
            "{time} is fine",
            "can i come at {time}",
            "i'll take {time}",
            "let's do {time}",
            "the first one",
            "the first one please",
            "the earliest one",
            "the earliest please",
            "the last one",
            "i'll take the first one",
            "{day} at {time}",
            "{day} at {time} please",
            "{time} on {day}",
        ),
    ),
    "name": (
        320,
        (
            "my name is {first} {last}",
            "my name is {first}",
            "it's {first} {last}",
            "this is {first} {last}",
            "{first} {last}",
            "the name is {first} {last}",
            "i'm {first} {last}",
            "yes it's {first} {last}",
            "sure it's {first} {last}",
            "{first}",
        ),
    ),
    "unsure": (
        170,
        (
            "i don't know",
            "i'm not sure",
            "i don't know what day",
            "i don't know which day",
            "not sure",
            "i don't mind",
            "any day is fine",
            "whatever is available",
            "what do you have",
            "what days do you have",
            "what times do you have",
            "i don't know what time",
            "any time is fine",
            "um i don't know",
            "i'm not sure what day",
            "i don't know when",
        ),
    ),
    "yes_no": (
        220,
        (
            "yes",
            "yes please",
            "yeah",
            "yeah sure",
            "sure",
            "okay",
            "that's right",
            "correct",
            "yes that's right",
            "that works",
            "that sounds good",
            "perfect",
            "no",
            "no thanks",
            "no thank you",
            "no that's all",
            "no that's everything",
        ),
    ),
    "goodbye": (
        170,
        (
            "goodbye",
            "bye",
            "bye bye",
            "thank you goodbye",
            "thanks bye",
            "thank you bye",
            "that's all thank you",
            "thank you so much goodbye",
            "thanks have a nice day",
            "great thank you goodbye",
            "no that's all thank you goodbye",
            "perfect thank you bye",
            "okay thank you goodbye",
        ),
    ),
    "still_there": (
        70,
        (
            "yes i'm still here",
            "i'm still here",
            "sorry i'm here",
            "yes i'm here",
            "sorry yes",
            "hello are you there",
            "sorry can you repeat that",
            "can you say that again",
        ),
    ),
    "combined": (
        160,
        (
            "hi i would like to book {service} on {day} at {time}",
            "i would like to book {service} on {day}",
            "yes {day} at {time} please",
            "{day} at {time} would be great",
            "can i come in on {day} at {time}",
            "i would like {service} on {day} please",
        ),
    ),
}

_SLOT_RE = re.compile(r"\{(\w+)\}")


def expand(template: str) -> list[str]:
    """Every sentence a template can produce, in a fixed order."""
    names = _SLOT_RE.findall(template)
    if not names:
        return [template]
    out = []
    for values in itertools.product(*(SLOTS[n] for n in names)):
        fill = dict(zip(names, values, strict=True))
        if fill.get("day") is not None and fill.get("day") == fill.get("day2"):
            continue
        if fill.get("time") is not None and fill.get("time") == fill.get("time2"):
            continue
        out.append(_SLOT_RE.sub(lambda m, fill=fill: fill[m.group(1)], template))
    return out


def sentences(seed: int = 0) -> list[str]:
    """The corpus, one utterance per entry, lower case, deterministic for a seed.

    Each family keeps every template at least once, then fills up to its size by drawing
    templates round-robin and expansions at random.
    """
    rng = random.Random(seed)
    out: list[str] = []
    for family in sorted(FAMILIES):
        size, templates = FAMILIES[family]
        pools = []
        for template in templates:
            pool = expand(template)
            rng.shuffle(pool)
            pools.append(pool)
        picked: list[str] = []
        cursor = [0] * len(pools)
        i = 0
        while len(picked) < size:
            k = i % len(pools)
            pool = pools[k]
            picked.append(pool[cursor[k] % len(pool)])
            cursor[k] += 1
            i += 1
        out.extend(picked)
    return out


def vocabulary(corpus: list[str]) -> list[str]:
    return sorted({w for s in corpus for w in s.split()})
