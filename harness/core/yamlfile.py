"""YAML with line numbers, for loaders that report ``file:line: field: reason``."""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.core.errors import ScenarioError

Lines = dict[tuple, int]


def index_lines(node: yaml.Node, prefix: tuple = ()) -> Iterator[tuple[tuple, int]]:
    """(path, line) for every key and item, e.g. ``(("turns", 2, "say"), 12)``."""
    yield prefix, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            yield (*prefix, k), key.start_mark.line + 1
            for sub, line in index_lines(value, (*prefix, k)):
                if sub != (*prefix, k):
                    yield sub, line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from index_lines(item, (*prefix, i))


@functools.cache
def _kinds(annotation: Any) -> frozenset[type]:
    """The plain types an annotation admits at its top level (through Optional, unions and
    Annotated): ``int | None`` -> {int, NoneType}."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kinds(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return frozenset().union(*(_kinds(a) for a in typing.get_args(annotation)))
    return frozenset({annotation}) if isinstance(annotation, type) else frozenset()


def refuse_bool_numbers(cls: Any, value: Any, info: Any) -> Any:
    """A pydantic ``field_validator("*", mode="before")``: a YAML ``true`` given for a
    number is an error, not the number 1 (pydantic's lax mode would take it)."""
    if isinstance(value, bool) and info.field_name is not None:
        kinds = _kinds(cls.model_fields[info.field_name].annotation)
        if bool not in kinds and kinds & {int, float}:
            raise ValueError(f"{value!r} is not a number")
    return value


def render_loc(loc: Iterable[str | int]) -> str:
    """``("turns", 2, "say")`` -> ``turns[2].say``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


MAX_NODES = 200_000
"""Nodes a document may expand to, aliases counted each time they are used: a "billion
laughs" document is a few lines that expand past any memory."""
MAX_DEPTH = 100


def check_node(node: yaml.Node, path: str | Path, error: type[ScenarioError]) -> None:
    """Reject what a safe loader would still choke on, walking iteratively: aliases that
    expand past :data:`MAX_NODES`, nesting deeper than :data:`MAX_DEPTH`, and a mapping
    with the same key twice (YAML forbids it; PyYAML keeps the last one silently)."""
    seen = 0
    stack: list[tuple[yaml.Node, int]] = [(node, 0)]
    while stack:
        n, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise error(
                f"the document expands to more than {MAX_NODES:,} nodes "
                "(aliases reused many times?): write it out plainly",
                file=path,
                line=n.start_mark.line + 1,
            )
        if depth > MAX_DEPTH:
            raise error(
                f"nested more than {MAX_DEPTH} levels deep", file=path, line=n.start_mark.line + 1
            )
        if isinstance(n, yaml.MappingNode):
            keys: dict[object, int] = {}
            for key, value in n.value:
                k = key.value if isinstance(key, yaml.ScalarNode) else id(key)
                if k in keys and k != "<<":
                    raise error(
                        f"duplicate key {k!r} (first on line {keys[k]})",
                        file=path,
                        line=key.start_mark.line + 1,
                    )
                keys[k] = key.start_mark.line + 1
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in n.value)


def load_with_lines(
    text: str, path: str | Path, error: type[ScenarioError] = ScenarioError
) -> tuple[Any, Lines]:
    """The document and its line index; invalid YAML raises ``error`` with file and line.
    Parsed once: the checked node is what is constructed (see :func:`check_node`)."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None, {}
        check_node(node, path, error)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise error(
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            file=path,
            line=mark.line + 1 if mark else None,
        ) from None
    except RecursionError:
        raise error("nested too deeply to read", file=path) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, dict(index_lines(node))


def clean_loc(loc: Iterable[str | int]) -> tuple:
    """A pydantic error location without its validator markers (``function-after[...]``)."""
    return tuple(p for p in loc if isinstance(p, int) or "[" not in str(p))


def line_of(loc: tuple, lines: Mapping[tuple, int]) -> int | None:
    """The line of ``loc`` in the file, else of its nearest ancestor that has one."""
    return next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), None)


def validation_problem(
    exc: ValidationError, loc_of: Callable[[dict[str, Any]], tuple] | None = None
) -> tuple[str, tuple]:
    """The first problem of a pydantic validation as (message, location), in words a person
    reads next to ``file:line: field``: "field required", "unknown key (check its
    spelling)"; a validator's ``"sub.field: reason"`` moves ``sub.field`` into the location.
    ``loc_of`` maps an error to its location in the file's terms (default: its cleaned
    ``loc``). Several problems say ``(and N more)``."""
    errors = exc.errors()
    err = errors[0]
    loc = loc_of(err) if loc_of is not None else clean_loc(err["loc"])
    msg = err["msg"]
    if err["type"] == "missing":
        msg = "field required"
    elif err["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling)"
    elif err["type"] == "literal_error":
        msg = f"{err.get('input')!r}: {msg.lower()}"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
        field, sep, rest = msg.partition(": ")
        if sep and field.isidentifier():  # the validator names a sub-field
            loc, msg = (*loc, field), rest
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return msg + more, loc
