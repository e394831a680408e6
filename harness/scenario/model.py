"""Scenario files: the caller's script, its timing and what the agent must do.

Loading reports every problem as ``scenarios/x.yaml:12: turns[2].say: field required``.
Unknown keys are errors, so a typo never silently disables an expectation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

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

if TYPE_CHECKING:
    from harness.plan.callplan import CallPlan


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    _no_bool_numbers = field_validator("*", mode="before")(refuse_bool_numbers)


class ToolExpectation(_Strict):
    """The agent called tool ``name``, with at least these ``args`` (case-insensitive values)."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class Expect(_Strict):
    """Expectations on the agent's reply to one caller turn (or to the greeting)."""

    reply_contains: list[str] = Field(default_factory=list)
    reply_matches: str | None = None
    tool_called: ToolExpectation | None = None

    @field_validator("reply_matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"not a regular expression ({e}): {value!r}") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("reply_contains"), str):
                data["reply_contains"] = [data["reply_contains"]]
            if isinstance(data.get("tool_called"), str):
                data["tool_called"] = {"name": data["tool_called"]}
        return data


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


def parse_duration(value: Any) -> float:
    """Seconds from ``15``, ``"15s"``, ``"500ms"`` or ``"2m"``."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower()
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * factor
            except ValueError:
                break
    raise ValueError(f"{value!r} is not a duration: write e.g. 15s, 500ms or 2m")


class ActionExpectation(_Strict):
    """The background layer performed ``action`` (with this approval, if given)."""

    action: str
    approval: Literal["approved", "denied", "skipped"] | None = None
    mutating: bool | None = None


class WorkflowExpectation(_Strict):
    """The after-call workflow ran ``step`` with ``status`` within ``within`` of hang-up."""

    step: str
    status: Literal["ok", "error"] = "ok"
    within: float = 15.0

    @field_validator("within", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return parse_duration(v)


class EndStateSpec(_Strict):
    """What must be true when the call is over: tools called and background actions done
    (the ``expected=`` of the task-completion evaluator)."""

    tool_called: list[str | dict[str, Any]] = Field(default_factory=list)
    action_done: list[str | dict[str, Any]] = Field(default_factory=list)

    @field_validator("tool_called", "action_done", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str | dict) else v


class CallExpect(_Strict):
    """Expectations on the whole call, across layers."""

    background: list[ActionExpectation] = Field(default_factory=list)
    after_call: list[WorkflowExpectation] = Field(default_factory=list)
    no_loop: bool | None = None  # the agent must not repeat itself (the loops evaluator)
    max_response_latency_ms: Annotated[int, Field(gt=0, le=120_000)] | None = None
    end_state: EndStateSpec | None = None

    @field_validator("background", "after_call", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return _as_list(v)


FailingLayer = Literal[
    "speech_recognition",
    "llm_dialog",
    "tool_action",
    "tts",
    "after_call_workflow",
    "telephony_transport",
]
"""The layers an incident's failure can be given."""


class IncidentInfo(_Strict):
    """Where an incident fixture came from (written by ``harness incident import``)."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    source_trace_id: str | None = None
    conversation_id: str | None = None
    imported_at: datetime | None = None
    occurred_at: datetime | None = None
    severity: Literal["SEV-1", "SEV-2", "SEV-3"]
    failing_layer: FailingLayer
    failed_evaluators: list[str] = Field(default_factory=list)


class Hesitation(_Strict):
    """Say ``filler`` and pause ``pause_ms`` after word ``after_word`` (default: mid-sentence)."""

    filler: str = "um"
    pause_ms: Annotated[int, Field(ge=0, le=10_000)] = 600
    after_word: Annotated[int, Field(ge=1)] | None = None


class Turn(_Strict):
    """One caller turn: something said, or a silence of ``silence_ms``.

    Behaviours: ``pause_before_ms`` waits that long after the agent finished before
    speaking; ``barge_in_ms`` starts speaking that many ms into the agent's reply to the
    previous turn instead of waiting for it to end; ``hesitate`` inserts a filler and a
    pause mid-sentence; ``self_correct`` first says the given words, then "no, sorry",
    then the sentence.
    """

    say: str | None = None
    silence_ms: Annotated[int, Field(ge=0, le=600_000)] | None = None
    expect: Expect | None = None
    voice: Any = None  # a voice spec, see harness.voices
    conditions: Any = None  # audio conditions, see harness.audio; replaces the call's
    pause_before_ms: Annotated[int, Field(ge=0, le=120_000)] = 0
    barge_in_ms: Annotated[int, Field(ge=0, le=60_000)] | None = None
    hesitate: Hesitation | None = None
    self_correct: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Turn:
        if self.say is None and self.silence_ms is None:
            raise ValueError("say: field required (or give `silence_ms` for a silent turn)")
        if self.say is not None and self.silence_ms is not None:
            raise ValueError("a turn has `say` or `silence_ms`, not both")
        if self.say is not None and not self.say.strip():
            raise ValueError("`say` is empty")
        if self.say is None and (self.hesitate or self.self_correct or self.barge_in_ms):
            raise ValueError("hesitate, self_correct and barge_in_ms need a `say`")
        return self

    @property
    def kind(self) -> str:
        return "say" if self.say is not None else "silence"


class Timeouts(_Strict):
    """Seconds. ``turn_s`` bounds each wait for the agent; ``call_s`` the whole call."""

    agent_join_s: Annotated[float, Field(gt=0, le=600)] = 20.0
    turn_s: Annotated[float, Field(gt=0, le=600)] = 20.0
    call_s: Annotated[float, Field(gt=0, le=3600)] = 180.0


class Scenario(_Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    description: str = ""
    agent: str | None = None  # the agent_name to dispatch; None: --agent-name must give it
    greeting: Expect | None = None
    agent_speaks_first: bool = True
    voice: Any = None
    conditions: Any = None
    seed: int = 0
    expect: CallExpect | None = None
    incident: IncidentInfo | None = None
    timeouts: Timeouts = Timeouts()
    turns: Annotated[list[Turn], Field(min_length=1)]

    _path: Path | None = PrivateAttr(default=None)
    _shown: Path | None = PrivateAttr(default=None)
    _lines: dict[tuple, int] = PrivateAttr(default_factory=dict)

    @property
    def path(self) -> Path | None:
        """The file it was read from, as opened (relative voice files resolve from here)."""
        return self._path

    @property
    def shown_path(self) -> Path | None:
        """The file as messages name it (see ``load_scenario(shown_as=...)``)."""
        return self._shown or self._path

    def line_of(self, *loc: str | int) -> int | None:
        """The source line of a field, e.g. ``line_of("turns", 2, "say")``."""
        for n in range(len(loc), -1, -1):
            if loc[:n] in self._lines:
                return self._lines[loc[:n]]
        return None

    def error(self, message: str, *loc: str | int) -> ScenarioError:
        return ScenarioError(
            message, file=self.shown_path, line=self.line_of(*loc), field=render_loc(loc) or None
        )


def resolve_agent_name(source: Scenario | CallPlan, override: str | None) -> str:
    """The agent_name to dispatch for a scenario (or its rendered plan): ``override``
    (``--agent-name``) if given, else the scenario's ``agent``. Neither is a ScenarioError
    that names the file and both fixes."""
    if override:
        return override
    if isinstance(source, Scenario):
        name, file = source.agent, source.shown_path or f"scenario {source.id}"
    else:
        name, file = source.agent_name, f"scenario {source.scenario_id}"
    if name:
        return name
    raise ScenarioError(
        "not set; add `agent: <your agent_name>` to the scenario or pass --agent-name",
        file=file,
        field="agent",
    )


_MARKERS = {"str", "int", "float", "bool", "list", "dict", "none", "is-instance"}


def _pydantic_loc(loc: tuple, lines: dict[tuple, int], missing: bool) -> tuple:
    """The error's location in the file's terms: keep what exists in the YAML (and a
    missing field's own name); drop pydantic's union and validator markers."""
    out: tuple = ()
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if (*out, part) in lines or isinstance(part, int) or (last and missing):
            out = (*out, part)
        elif "[" in str(part) or part in _MARKERS:
            continue
        else:
            out = (*out, part)
    return out


def parse_scenario(
    text: str, path: str | Path = "<string>", *, shown_as: str | Path | None = None
) -> Scenario:
    """The scenario in ``text``, read from ``path``. Errors name the file ``shown_as``
    (default: ``path``), e.g. a shorter path to the same file."""
    path = Path(path)
    shown = Path(shown_as) if shown_as is not None else path
    data, lines = load_with_lines(text, shown)
    if data is None:
        raise ScenarioError("empty scenario file", file=shown)
    if not isinstance(data, dict):
        raise ScenarioError("a scenario is a mapping with `id` and `turns`", file=shown, line=1)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        msg, loc = validation_problem(
            exc, lambda err: _pydantic_loc(err["loc"], lines, err["type"] == "missing")
        )
        raise ScenarioError(
            msg, file=shown, line=line_of(loc, lines), field=render_loc(loc)
        ) from None
    scenario._path = path
    scenario._shown = shown
    scenario._lines = lines
    return scenario


def load_scenario(path: str | Path, *, shown_as: str | Path | None = None) -> Scenario:
    """Read and validate a scenario file. Open it by a path that is right from the current
    directory (the pytest plugin passes an absolute one); ``shown_as`` is how errors name
    it (default: ``path``)."""
    path = Path(path)
    shown = shown_as if shown_as is not None else path
    from harness.core.files import read_config_text

    text = read_config_text(path, what="scenario", shown=shown)
    return parse_scenario(text, path, shown_as=shown)


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Scenario files under the given files or directories, sorted, each once."""
    found: dict[Path, None] = {}
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted([*p.rglob("*.yaml"), *p.rglob("*.yml")]):
                found[f] = None
        elif p.exists():
            found[p] = None
        else:
            raise ScenarioError("no such file or directory", file=p)
    return list(found)


def load_scenarios(paths: Iterable[str | Path]) -> list[Scenario]:
    scenarios = [load_scenario(p) for p in discover(paths)]
    seen: dict[str, Path | None] = {}
    for s in scenarios:
        if s.id in seen:
            raise s.error(f"duplicate scenario id {s.id!r} (also in {seen[s.id]})", "id")
        seen[s.id] = s.path
    return scenarios
