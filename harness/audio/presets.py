"""Named presets (``presets.yaml``) and the condition spec parser.

A condition spec is one of:

* ``None`` or ``"clean"``: no effects;
* a preset name: ``"bad_cell"``;
* a mapping ``{preset: bad_cell}``, optionally with more ``effects:`` appended;
* a list of effects, each ``{name: {param: value, ...}}`` or a bare ``name`` for the
  defaults, or ``{preset: name}`` to splice a preset in::

      - narrowband: {codec: ulaw}
      - noise: {kind: street, snr_db: 10}

Parameters are checked against the effect factories' signatures (unknown keys and wrong
types are rejected) and then by the factories themselves (ranges). Every error is a
:class:`~harness.audio.effects.ConditionError` whose ``field`` names the value, e.g.
``conditions[1].noise.snr_db``.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from harness.audio.background import noise
from harness.audio.codecs import narrowband, opus
from harness.audio.effects import (
    AudioEffect,
    Chain,
    ConditionError,
    clipping,
    echo,
    gain,
    reverb,
    speed,
    time_warp,
)
from harness.audio.loss import packet_loss

__all__ = [
    "EFFECTS",
    "PRESETS_FILE",
    "ConditionSpec",
    "EffectSpec",
    "effect_params_model",
    "load_preset",
    "parse_conditions",
    "preset_description",
    "preset_names",
    "register_effect",
]

PRESETS_FILE = Path(__file__).with_name("presets.yaml")

EFFECTS: dict[str, Callable[..., AudioEffect]] = {
    "narrowband": narrowband,
    "opus": opus,
    "noise": noise,
    "packet_loss": packet_loss,
    "time_warp": time_warp,
    "jitter": time_warp,
    "clipping": clipping,
    "gain": gain,
    "speed": speed,
    "reverb": reverb,
    "echo": echo,
}
"""Effect names a spec may use, and their factories (``jitter`` is ``time_warp``)."""


def register_effect(name: str, factory: Callable[..., AudioEffect]) -> None:
    """Let condition specs use ``name`` for a custom effect factory.

    The factory's signature (with type hints) defines the accepted parameters, exactly as for
    the built-in effects; it should validate ranges and raise :class:`ConditionError`.
    """
    if not isinstance(name, str) or not name.isidentifier() or name == "preset":
        raise ConditionError(f"name={name!r} must be an identifier other than 'preset'")
    if name in EFFECTS and EFFECTS[name] is not factory:
        raise ConditionError(f"name={name!r} is already registered to {EFFECTS[name]!r}")
    EFFECTS[name] = factory
    effect_params_model.cache_clear()


Loc = tuple[str | int, ...]


def _render(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _suggest(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}known: {', '.join(sorted(options))}"


@cache
def effect_params_model(name: str) -> type[BaseModel]:
    """A strict pydantic model of an effect's parameters, built from its factory's signature."""
    factory = EFFECTS[name]
    hints = typing.get_type_hints(factory)
    fields: dict[str, Any] = {}
    for p in inspect.signature(factory).parameters.values():
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (hints.get(p.name, Any), default)
    config = ConfigDict(extra="forbid", strict=True, frozen=True)
    return create_model(f"{name}_params", __config__=config, **fields)


class EffectSpec(BaseModel):
    """One effect of a spec, in normal form."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effect: str
    params: dict[str, Any] = Field(default_factory=dict)

    def build(self) -> AudioEffect:
        return EFFECTS[self.effect](**self.params)


class ConditionSpec(BaseModel):
    """A condition spec in normal form: an optional preset, then more effects.

    Build one with :meth:`parse` from any accepted form; :meth:`to_chain` makes the
    :class:`~harness.audio.effects.Chain`. An effect named ``preset`` (``params={"name": ...}``)
    splices that preset in.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: str | None = None
    effects: tuple[EffectSpec, ...] = ()

    @classmethod
    def parse(
        cls, spec: Any, *, field: str = "conditions", file: str | Path | None = None
    ) -> ConditionSpec:
        """Validate any accepted form; raises :class:`ConditionError` naming the field."""
        ctx = _Ctx(field, str(file) if file is not None else None, None)
        return _parse(spec, ctx)

    def to_chain(self) -> Chain:
        return _build(self, ())


class _Ctx(typing.NamedTuple):
    field: str
    file: str | None
    known: Sequence[str] | None  # preset names; None means the loaded table

    def error(self, message: str, loc: Loc) -> ConditionError:
        return ConditionError(message, loc=loc, field=_render((self.field, *loc)), file=self.file)


def _parse(spec: Any, ctx: _Ctx) -> ConditionSpec:
    if spec is None:
        return ConditionSpec()
    if isinstance(spec, ConditionSpec):
        return spec
    if isinstance(spec, str):
        _check_preset(spec, ctx, ())
        return ConditionSpec(preset=spec)
    if isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in ("preset", "effects")]
        if unknown:
            raise ctx.error(
                f"unknown key {unknown[0]!r}; a conditions mapping takes `preset` and "
                "`effects` (or give a list of effects)",
                (str(unknown[0]),),
            )
        preset = spec.get("preset")
        if preset is not None:
            _check_preset(preset, ctx, ("preset",))
        items = _effect_list(spec.get("effects", []), ctx, ("effects",))
        return ConditionSpec(preset=preset, effects=items)
    if isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        return ConditionSpec(effects=_effect_list(spec, ctx, ()))
    raise ctx.error(
        f"conditions={spec!r} must be a preset name, a list of effects, or {{preset: name}}", ()
    )


def _check_preset(name: Any, ctx: _Ctx, loc: Loc) -> None:
    if not isinstance(name, str):
        raise ctx.error(f"preset={name!r} must be a preset name", loc)
    names = preset_names() if ctx.known is None else ctx.known
    if name not in names:
        raise ctx.error(f"unknown preset {name!r}; {_suggest(name, list(names))}", loc)


def _effect_list(items: Any, ctx: _Ctx, loc: Loc) -> tuple[EffectSpec, ...]:
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
        raise ctx.error(f"effects={items!r} must be a list of effects", loc)
    return tuple(_effect_item(item, ctx, (*loc, i)) for i, item in enumerate(items))


def _effect_item(item: Any, ctx: _Ctx, loc: Loc) -> EffectSpec:
    if isinstance(item, str):
        name, params = item, None
    elif isinstance(item, Mapping) and len(item) == 1:
        ((name, params),) = item.items()
    else:
        raise ctx.error(f"{item!r} must be one effect: `name` or `{{name: {{param: value}}}}`", loc)
    if name == "preset":
        _check_preset(params, ctx, (*loc, "preset"))
        return EffectSpec(effect="preset", params={"name": params})
    if not isinstance(name, str) or name not in EFFECTS:
        raise ctx.error(f"unknown effect {name!r}; {_suggest(str(name), list(EFFECTS))}", loc)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ctx.error(
            f"{name}: parameters must be a mapping like {{param: value}}, got {params!r}",
            (*loc, name),
        )
    model = effect_params_model(name)
    try:
        model.model_validate(dict(params))
    except ValidationError as e:
        # An unknown key is usually a misspelt known one: report it before "missing".
        errs = sorted(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
        first = errs[0]
        ploc = tuple(first["loc"])
        allowed = ", ".join(model.model_fields)
        if first["type"] == "extra_forbidden":
            msg = f"unknown parameter; {name} takes {allowed}"
        elif first["type"] == "missing":
            msg = f"field required; {name} takes {allowed}"
        else:
            msg = f"{ploc[0]}={first.get('input')!r}: {first['msg']}"
        if len(errs) > 1:
            msg += f" (and {len(errs) - 1} more)"
        raise ctx.error(msg, (*loc, name, *ploc)) from None
    spec = EffectSpec(effect=name, params=dict(params))
    try:
        spec.build()  # the factory checks ranges
    except ConditionError as e:
        raise ctx.error(e.reason, (*loc, name, *((e.param,) if e.param else ()))) from None
    return spec


def _build(spec: ConditionSpec, seen: tuple[str, ...]) -> Chain:
    out: list[AudioEffect] = []
    if spec.preset is not None:
        out.extend(_preset_chain(spec.preset, seen))
    for item in spec.effects:
        if item.effect == "preset":
            out.extend(_preset_chain(item.params["name"], seen))
        else:
            out.append(item.build())
    name = spec.preset if spec.preset is not None and not spec.effects else None
    return Chain(tuple(out), name=name)


@lru_cache(maxsize=1)
def _preset_table() -> dict[str, tuple[str, ConditionSpec]]:
    path = PRESETS_FILE
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    table: dict[str, tuple[str, ConditionSpec]] = {}
    for name, body in raw.items():
        if not isinstance(body, Mapping) or set(body) - {"description", "effects"}:
            raise ConditionError(
                "a preset is {description: ..., effects: [...]}", file=str(path), field=name
            )
        ctx = _Ctx(str(name), str(path), list(raw))
        items = _effect_list(body.get("effects") or [], ctx, ("effects",))
        description = " ".join(str(body.get("description", "")).split())
        table[str(name)] = (description, ConditionSpec(effects=items))
    return table


def _preset_chain(name: str, seen: tuple[str, ...]) -> tuple[AudioEffect, ...]:
    if name in seen:
        raise ConditionError(f"preset {name!r} includes itself: {' -> '.join((*seen, name))}")
    return _build(_preset_table()[name][1], (*seen, name)).effects


def preset_names() -> list[str]:
    """The names of the presets in ``presets.yaml``, in file order."""
    return list(_preset_table())


def preset_description(name: str) -> str:
    """A preset's description, on one line."""
    _check_preset(name, _Ctx("preset", None, None), ())
    return _preset_table()[name][0]


def load_preset(name: str) -> Chain:
    """The :class:`Chain` of a named preset; ``Chain.name`` is the preset's name."""
    _check_preset(name, _Ctx("preset", None, None), ())
    return Chain(_preset_chain(name, ()), name=name)


def parse_conditions(
    spec: Any, *, field: str = "conditions", file: str | Path | None = None
) -> Chain:
    """Turn a condition spec (see the module docstring) into a :class:`Chain`.

    A :class:`Chain` is returned as is and a single effect is wrapped in one. ``field`` and
    ``file`` only shape error messages, e.g. ``scenarios/x.yaml: turns[2].conditions[1]
    .noise.snr_db: ...``; ``ConditionError.loc`` holds the path inside ``spec``.
    """
    if isinstance(spec, Chain):
        return spec
    if not isinstance(spec, (str, Mapping, Sequence)) and isinstance(spec, AudioEffect):
        return Chain((spec,))
    return ConditionSpec.parse(spec, field=field, file=file).to_chain()
