"""A catalogue of faults: what ``harness sensitivity`` injects, one suite run per fault.

A catalogue is a YAML file::

    catalogue: clinic                  # a name for reports (default: the file's stem)
    description: ...
    faults:
      - id: llm_ttft                   # unique: letters, digits, _ . -
        layer: llm                     # stt llm tts turn_taking tools background workflow
                                       # audio network caller
        description: ...
        agent:                         # the agent's own fault switches, sent per call as
          extra_llm_latency_ms: 1300   # dispatch metadata {"faults": {...}}
          extra_llm_latency_share: 0.5
        magnitude: [extra_llm_latency_ms]   # agent knobs --scale multiplies
        expect: [llm_ttft_p99]         # what should catch it (gates or "expectations")
      - id: noisy_line
        layer: audio
        conditions: noisy_street_5db   # faults the harness controls: audio conditions
                                       # (a preset or a list of effects: noise, packet
                                       # loss, codecs, ...) for every caller turn,
        caller: {barge_in_ms: 700}     # ... the caller's behaviour on every `say` turn
                                       # (barge_in_ms, pause_before_ms, hesitate, voice)

Each fault injects at least one of ``agent``, ``conditions`` and ``caller``. **The
dispatch-metadata contract**: for ``agent``, every call of the fault's run is dispatched
with the metadata ``{"conversation_id": ..., "faults": {<agent>}}``; the agent reads the
``faults`` object from its job's metadata (``ctx.job.metadata``, JSON) and switches the
named faults on for that call only. Keys and values are the agent's own; the harness sends
them as written (numbers scaled by ``--scale`` for the ``magnitude`` keys).

Every problem is a :class:`CatalogueError` naming ``file:line: field``, as the scenario and
gates loaders do; unknown keys are errors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.core.errors import ScenarioError
from harness.core.yamlfile import (
    line_of,
    load_with_lines,
    refuse_bool_numbers,
    render_loc,
    validation_problem,
)

__all__ = [
    "LAYERS",
    "CallerBehaviour",
    "Catalogue",
    "CatalogueError",
    "Fault",
    "load_catalogue",
    "parse_catalogue",
]

Layer = Literal[
    "stt",
    "llm",
    "tts",
    "turn_taking",
    "tools",
    "background",
    "workflow",
    "audio",
    "network",
    "caller",
]
LAYERS: tuple[str, ...] = Layer.__args__  # type: ignore[attr-defined]
MAX_FAULTS = 500


class CatalogueError(ScenarioError):
    """A fault catalogue that cannot be used: ``file:line: field: reason``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    _no_bool_numbers = field_validator("*", mode="before")(refuse_bool_numbers)


class Hesitate(_Strict):
    filler: str = "um"
    pause_ms: Annotated[int, Field(ge=0, le=10_000)] = 600


class CallerBehaviour(_Strict):
    """How the synthetic caller behaves on every ``say`` turn of the suite's scenarios."""

    barge_in_ms: Annotated[int, Field(ge=0, le=60_000)] | None = None
    """Start speaking this many ms into the agent's reply instead of waiting for its end."""
    pause_before_ms: Annotated[int, Field(ge=0, le=120_000)] | None = None
    """Wait this long after the agent finished before speaking."""
    hesitate: Hesitate | None = None
    """Say a filler and pause mid-sentence."""
    voice: str | None = None
    """Speak with this voice (an accent: ``espeak:en-gb-scotland``)."""

    @model_validator(mode="after")
    def _something(self) -> CallerBehaviour:
        if not self.model_dump(exclude_none=True):
            raise ValueError("give at least one of barge_in_ms, pause_before_ms, hesitate, voice")
        return self


AgentValue = str | int | float | bool | None


class Fault(_Strict):
    """One fault of the catalogue (see the module docstring)."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)]
    layer: Layer
    description: str = ""
    agent: dict[str, AgentValue] | None = None
    magnitude: list[str] = Field(default_factory=list)
    conditions: Any = None
    caller: CallerBehaviour | None = None
    expect: list[str] = Field(default_factory=list)

    @field_validator("agent")
    @classmethod
    def _agent(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("an empty `agent:` switches nothing on; give the agent's fault knobs")
        for k, v in value.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{k}: {v!r} is not a finite number")
        return value

    @model_validator(mode="after")
    def _check(self) -> Fault:
        if self.agent is None and self.conditions is None and self.caller is None:
            raise ValueError(
                "agent: field required (a fault injects `agent` knobs, `conditions` or "
                "`caller` behaviour)"
            )
        for name in self.magnitude:
            if self.agent is None or name not in self.agent:
                raise ValueError(
                    f"magnitude: {name!r} is not one of this fault's `agent` knobs "
                    f"({', '.join(self.agent or {}) or 'none'})"
                )
            v = self.agent[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"magnitude: {name!r} is {v!r}, not a number to scale")
        return self

    def metadata(self, scale: float = 1.0) -> dict[str, Any] | None:
        """The dispatch metadata of a call of this fault's run (None without ``agent``):
        ``{"faults": {...}}`` with the ``magnitude`` knobs multiplied by ``scale`` (an
        integer knob stays an integer)."""
        if self.agent is None:
            return None
        knobs = dict(self.agent)
        for name in self.magnitude:
            v = knobs[name]
            scaled = v * scale  # type: ignore[operator]
            knobs[name] = round(scaled) if isinstance(v, int) else scaled
        return {"faults": knobs}

    def injected(self, scale: float = 1.0) -> str:
        """One line saying what is injected."""
        parts = []
        meta = self.metadata(scale)
        if meta is not None:
            parts.extend(f"{k}={_short(v)}" for k, v in meta["faults"].items())
        if self.conditions is not None:
            parts.append(f"conditions={_short(self.conditions)}")
        if self.caller is not None:
            given = self.caller.model_dump(exclude_none=True)
            parts.extend(f"caller.{k}={_short(v)}" for k, v in given.items())
        return " ".join(parts)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (dict, list)):
        import json

        return json.dumps(v, separators=(",", ":"))
    return str(v)


class Catalogue(_Strict):
    catalogue: str | None = None
    description: str = ""
    faults: Annotated[list[Fault], Field(min_length=1, max_length=MAX_FAULTS)]

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        seen: set[str] = set()
        for f in self.faults:
            if f.id in seen:
                raise ValueError(f"faults: two faults have the id {f.id!r}")
            seen.add(f.id)
        return self

    @property
    def name(self) -> str:
        if self.catalogue:
            return self.catalogue
        return self._source.stem if self._source is not None else "catalogue"

    @property
    def source(self) -> Path | None:
        return self._source

    def select(self, ids: list[str]) -> Catalogue:
        """Only the faults named (in the catalogue's order); an unknown id is an error."""
        known = {f.id for f in self.faults}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise CatalogueError(
                f"--faults: no fault {', '.join(map(repr, unknown))} in the catalogue; "
                f"its faults are {', '.join(sorted(known))}",
                file=self._source,
            )
        out = self.model_copy(update={"faults": [f for f in self.faults if f.id in ids]})
        out._source = self._source
        return out


def parse_catalogue(
    data: Any, *, source: str | Path | None = None, lines: dict[tuple, int] | None = None
) -> Catalogue:
    """Validate a catalogue document; errors name ``file:line: field``."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise CatalogueError("a catalogue is a mapping with a `faults:` list", file=source, line=1)
    try:
        cat = Catalogue.model_validate(data)
    except ValidationError as exc:
        msg, loc = validation_problem(exc)
        raise CatalogueError(
            msg, file=source, line=line_of(loc, lines), field=render_loc(loc) or None
        ) from None
    for i, fault in enumerate(cat.faults):
        if fault.conditions is not None:
            _check_conditions(fault.conditions, source, lines, i)
    cat._source = Path(source) if source is not None else None
    return cat


def _check_conditions(spec: Any, source: Any, lines: dict[tuple, int], i: int) -> None:
    from harness.audio import parse_conditions
    from harness.audio.effects import ConditionError

    try:
        parse_conditions(spec, field=f"faults[{i}].conditions")
    except ConditionError as e:
        loc = ("faults", i, "conditions", *getattr(e, "loc", ()))
        line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
        raise CatalogueError(
            e.reason, file=source, line=line, field=e.field or render_loc(loc)
        ) from None


def load_catalogue(path: str | Path) -> Catalogue:
    """Read and validate a catalogue file; raises :class:`CatalogueError`."""
    from harness.core.files import read_config_text

    p = Path(path)
    text = read_config_text(p, what="fault catalogue", error=CatalogueError)
    data, lines = load_with_lines(text, p, CatalogueError)
    if data is None:
        raise CatalogueError("empty catalogue: give a `faults:` list", file=p)
    return parse_catalogue(data, source=p, lines=lines)
