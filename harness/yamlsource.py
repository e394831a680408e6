"""YAML with line numbers, for loaders that report ``file:line: field: reason``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ScenarioError

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


def render_loc(loc: Iterable[str | int]) -> str:
    """``("turns", 2, "say")`` -> ``turns[2].say``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load_with_lines(
    text: str, path: str | Path, error: type[ScenarioError] = ScenarioError
) -> tuple[Any, Lines]:
    """The document and its line index; invalid YAML raises ``error`` with file and line."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise error(
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            file=path,
            line=mark.line + 1 if mark else None,
        ) from None
    return data, (dict(index_lines(node)) if node is not None else {})
