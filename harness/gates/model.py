"""Gate definitions and the gates file.

One gates file serves CI (over the calls of a pytest session) and production (over a rolling
window in monitoring), and is exported as Prometheus alerting rules. It is read from, in
order of :func:`discover_gates`:

- ``harness.yaml`` (or ``harness.yml``): the ``gates:`` key; other top-level keys belong to
  other parts of the harness and are not read here;
- ``pyproject.toml``: ``[[tool.harness.gates]]`` (an array of tables) or
  ``[tool.harness.gates.<name>]`` tables;
- otherwise the defaults shipped in ``harness/gates/default_gates.yaml``.

``gates`` is a list of gates, or a mapping from gate name to gate. A gate::

    - name: llm_ttft_p99          # unique; letters, digits, _ . -
      metric: llm_ttft            # a Score name
      span: llm_node              # optional: only Scores read from this span type
      layer: conversational       # optional: only Scores of this agent layer
      statistic: p99              # p50 p90 p95 p99 mean rate min max
      direction: above            # the bad side: above (default) or below
      warn: 800                   # in the Score's unit; "5%" means 0.05
      fail: 1200
      min_samples: 50             # fewer samples: verdict "insufficient", a warning
      for: 5m                     # monitoring: how long the condition must hold
      runbook_url: https://wiki.example.com/runbooks/llm-latency   # optional, in alerts
      baseline:                   # optional: compare with a saved baseline run
        max_regression: 20%       # p99 must not worsen by more than 20 % of the baseline
        alpha: 0.05               # ... and a one-sided Mann-Whitney U test must agree
        severity: fail

A threshold is crossed when the statistic is strictly beyond it (``> warn`` for ``above``,
``< warn`` for ``below``). Unknown keys are errors, reported as ``file:line: field: reason``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.core.errors import ScenarioError
from harness.core.yamlfile import (
    clean_loc,
    line_of,
    load_with_lines,
    refuse_bool_numbers,
    render_loc,
    validation_problem,
)

__all__ = [
    "DEFAULT_GATES_PATH",
    "QUANTILES",
    "BaselineRule",
    "Gate",
    "GatesConfig",
    "GatesFileError",
    "default_gates",
    "discover_gates",
    "duration_seconds",
    "load_gates",
    "parse_gates",
]

DEFAULT_GATES_PATH = Path(__file__).resolve().parent / "default_gates.yaml"

Statistic = Literal["p50", "p90", "p95", "p99", "mean", "rate", "min", "max"]
Direction = Literal["above", "below"]
QUANTILES: dict[str, float] = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}

_DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class GatesFileError(ScenarioError):
    """A gates file (or section) that cannot be used: ``file:line: field: reason``."""


def _number_or_percent(value: Any) -> Any:
    """``"5%"`` → 0.05; numbers pass through; anything else is left for pydantic to reject."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                return float(text[:-1].strip()) / 100.0
            except ValueError:
                raise ValueError(f"{value!r} is not a percentage (write e.g. 5% or 0.05)") from None
    return value


Threshold = Annotated[float, BeforeValidator(_number_or_percent), Field(allow_inf_nan=False)]


def duration_seconds(text: str) -> float:
    """A Prometheus duration (``90s``, ``5m``, ``1h30m``) in seconds."""
    if not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration (write e.g. 30s, 5m, 1h30m)")
    return sum(int(n) * _SECONDS[u] for n, u in _DURATION_PART.findall(text))


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        duration_seconds(value.strip())
        return value.strip()
    return value


Duration = Annotated[str, BeforeValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _no_bool_numbers = field_validator("*", mode="before")(refuse_bool_numbers)


class BaselineRule(_Strict):
    """The statistic may worsen by at most ``max_regression`` (a fraction of the baseline
    value) — and a change counts only when a one-sided Mann–Whitney U test on the two
    runs' samples is significant at ``alpha``. ``statistic`` defaults to the gate's."""

    max_regression: Annotated[Threshold, Field(ge=0)]
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    severity: Literal["warn", "fail"] = "fail"
    statistic: Statistic | None = None


class Gate(_Strict):
    """One gate: a statistic of one metric (optionally on one span type or layer), with
    warn and fail thresholds on its bad ``direction``."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", max_length=100)]
    metric: Annotated[str, Field(min_length=1)]
    span: str | None = None
    layer: str | None = None
    statistic: Statistic
    direction: Direction = "above"
    warn: Threshold | None = None
    fail: Threshold | None = None
    min_samples: Annotated[int, Field(ge=1)] = 1
    for_: Duration | None = Field(default=None, alias="for")
    unit: str | None = None
    """The metric's unit, for Prometheus export; defaults to the built-in metric's unit."""
    baseline: BaselineRule | None = None
    description: str = ""
    runbook_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    """Where on-call reads what to do; monitoring alerts and exported rules carry it."""

    @model_validator(mode="after")
    def _check(self) -> Gate:
        if self.warn is None and self.fail is None and self.baseline is None:
            raise ValueError("give `warn`, `fail` or `baseline` (a gate with none checks nothing)")
        if self.warn is not None and self.fail is not None:
            if self.direction == "above" and self.warn > self.fail:
                raise ValueError(
                    f"warn: {self.warn:g} is above fail {self.fail:g}; with direction `above` "
                    "the warn threshold comes first (or set direction: below)"
                )
            if self.direction == "below" and self.warn < self.fail:
                raise ValueError(
                    f"warn: {self.warn:g} is below fail {self.fail:g}; with direction `below` "
                    "the warn threshold comes first (or set direction: above)"
                )
        if self.statistic == "rate":
            for field, v in (("warn", self.warn), ("fail", self.fail)):
                if v is not None and not 0.0 <= v <= 1.0:
                    raise ValueError(
                        f"{field}: a rate is between 0 and 1 (or 0% and 100%), got {v:g}"
                    )
        return self

    @property
    def baseline_only(self) -> bool:
        """A gate with a ``baseline:`` rule and no threshold: it says something only when a
        baseline is given, and is not evaluated otherwise."""
        return self.warn is None and self.fail is None and self.baseline is not None

    @property
    def quantile(self) -> float | None:
        """0.99 for p99, etc.; None for mean, rate, min and max."""
        return QUANTILES.get(self.statistic)

    @property
    def for_seconds(self) -> float | None:
        return duration_seconds(self.for_) if self.for_ else None

    @property
    def where(self) -> str:
        """``span=llm_node``, ``layer=background``, both, or ``all``."""
        parts = [
            f"span={self.span}" if self.span else "",
            f"layer={self.layer}" if self.layer else "",
        ]
        return " ".join(p for p in parts if p) or "all"

    def crossed(self, value: float, threshold: float | None) -> bool:
        if threshold is None:
            return False
        return value > threshold if self.direction == "above" else value < threshold


class GatesConfig(_Strict):
    """Every gate of one gates file, names unique."""

    gates: tuple[Gate, ...] = ()
    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _mapping_form(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("gates"), Mapping):
            items = []
            for name, body in data["gates"].items():
                if isinstance(body, Mapping):
                    if "name" in body and body["name"] != name:
                        raise ValueError(
                            f"gates.{name}: name {body['name']!r} differs from its key"
                        )
                    body = {"name": name, **body}
                items.append(body)
            data = {**data, "gates": items}
        return data

    @model_validator(mode="after")
    def _unique(self) -> GatesConfig:
        seen: set[str] = set()
        for g in self.gates:
            if g.name in seen:
                raise ValueError(f"gates: two gates are named {g.name!r}")
            seen.add(g.name)
        return self

    @property
    def source(self) -> str | None:
        """The file the gates came from (``<defaults>`` for the shipped ones)."""
        return self._source

    def __iter__(self) -> Iterator[Gate]:  # type: ignore[override]
        return iter(self.gates)

    def __len__(self) -> int:
        return len(self.gates)

    def get(self, name: str) -> Gate | None:
        return next((g for g in self.gates if g.name == name), None)


# --- loading ---------------------------------------------------------------------------------


def parse_gates(
    data: Any,
    *,
    source: str | Path | None = None,
    lines: Mapping[tuple, int] | None = None,
    prefix: tuple = ("gates",),
    check_metrics: bool = False,
) -> GatesConfig:
    """Validate ``{"gates": ...}``; errors become :class:`GatesFileError` with the file,
    the line (when ``lines`` maps locations to lines) and the field. ``check_metrics``
    (what every gates file gets) rejects a metric no evaluator produces
    (:func:`unknown_metric`)."""
    lines = lines or {}
    try:
        config = GatesConfig.model_validate(data)
    except ValidationError as exc:

        def in_file(err: dict[str, Any]) -> tuple:
            loc = clean_loc(err["loc"])
            return prefix + loc[1:] if loc and loc[0] == "gates" else loc

        msg, loc = validation_problem(exc, in_file)
        raise GatesFileError(
            msg, file=source, line=line_of(loc, lines), field=render_loc(loc) or None
        ) from None
    for i, gate in enumerate(config if check_metrics else ()):
        problem = unknown_metric(gate)
        if problem is not None:
            loc = (*prefix, i, "metric")
            line = line_of(loc, lines)
            raise GatesFileError(problem, file=source, line=line, field=render_loc(loc))
    config._source = str(source) if source is not None else None
    return config


def unknown_metric(gate: Gate) -> str | None:
    """Why a gate's metric is no metric any evaluator produces, or None. A misspelt metric
    would leave the gate "insufficient" for ever: off, silently. A metric of your own
    evaluator is known once it is registered; a gate on any other metric gives `unit:`."""
    if gate.unit is not None:
        return None
    from harness.evaluators import known_metrics

    known = known_metrics()
    if gate.metric in known:
        return None
    import difflib

    near = difflib.get_close_matches(gate.metric, known, n=1, cutoff=0.6)
    hint = f"did you mean {near[0]!r}? " if near else ""
    return (
        f"{gate.metric!r} is a metric no evaluator produces: {hint}known metrics are "
        f"{', '.join(sorted(known))} (for a metric of your own, register its evaluator or "
        "give the gate `unit:`)"
    )


def _load_yaml(path: Path, text: str) -> GatesConfig:
    data, lines = load_with_lines(text, path, GatesFileError)
    if not isinstance(data, dict):
        raise GatesFileError("expected a mapping with a `gates:` key", file=path, line=1)
    if "gates" not in data:
        near = [k for k in data if isinstance(k, str) and k.lower().startswith("gate")]
        hint = f" (found {near[0]!r}: did you mean `gates`?)" if near else ""
        raise GatesFileError(f"no `gates:` key{hint}", file=path, line=1)
    return parse_gates({"gates": data["gates"]}, source=path, lines=lines, check_metrics=True)


def _toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GatesFileError(f"invalid TOML: {exc}", file=path) from None
    except RecursionError:
        raise GatesFileError(
            "invalid TOML: arrays or tables nested too deeply", file=path
        ) from None


def _pyproject_gates(data: Mapping[str, Any]) -> Any:
    tool = data.get("tool")
    harness = tool.get("harness") if isinstance(tool, Mapping) else None
    return harness.get("gates") if isinstance(harness, Mapping) else None


def load_gates(path: str | Path) -> GatesConfig:
    """The gates of ``path``: a YAML file with a ``gates:`` key, or a ``pyproject.toml`` with
    ``tool.harness.gates``. Raises :class:`GatesFileError`."""
    from harness.core.files import read_config_text

    p = Path(path)
    text = read_config_text(p, what="gates file", error=GatesFileError)
    if p.suffix == ".toml":
        data = _toml(p, text)
        gates = _pyproject_gates(data)
        if gates is None:
            raise GatesFileError("no [tool.harness.gates] section", file=p)
        return parse_gates(
            {"gates": gates}, source=p, prefix=("tool", "harness", "gates"), check_metrics=True
        )
    return _load_yaml(p, text)


def default_gates() -> GatesConfig:
    """The gates shipped in ``harness/gates/default_gates.yaml``."""
    config = load_gates(DEFAULT_GATES_PATH)
    config._source = "<defaults>"
    return config


def discover_gates(root: str | Path = ".") -> GatesConfig:
    """The project's gates: ``harness.yaml``/``harness.yml`` with a ``gates:`` key in
    ``root``, else ``pyproject.toml`` with ``tool.harness.gates``, else the defaults."""
    base = Path(root)
    for name in ("harness.yaml", "harness.yml"):
        f = base / name
        if f.is_file():
            from harness.core.files import read_config_text

            text = read_config_text(f, what="gates file", error=GatesFileError)
            try:
                data = yaml.safe_load(text) if text.strip() else None
            except yaml.YAMLError:
                return _load_yaml(f, text)  # raises with the file and line
            if isinstance(data, dict) and "gates" in data:
                return _load_yaml(f, text)
    py = base / "pyproject.toml"
    if py.is_file():
        from harness.core.files import read_config_text

        data = _toml(py, read_config_text(py, what="pyproject.toml", error=GatesFileError))
        if _pyproject_gates(data) is not None:
            return load_gates(py)
    return default_gates()
