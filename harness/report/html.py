"""A few lines of HTML building: every text is escaped unless it is already :class:`Markup`.

The report needs no template engine: pages are small functions that return Markup, and
anything that came from a run (a transcript, an attribute) goes through :func:`esc`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

__all__ = ["Markup", "el", "esc", "join"]


class Markup(str):
    """Text that is already HTML."""

    __slots__ = ()


def esc(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def _flatten(children: Iterable[Any], out: list[str]) -> None:
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, str):
            out.append(esc(child))
        elif isinstance(child, Iterable):
            _flatten(child, out)
        else:
            out.append(esc(child))


def join(*children: Any) -> Markup:
    out: list[str] = []
    _flatten(children, out)
    return Markup("".join(out))


_VOID = frozenset({"br", "hr", "img", "input", "link", "meta", "source", "col", "wbr"})


def _attr_name(name: str) -> str:
    name = name.rstrip("_")
    return name.replace("_", "-")


def el(tag: str, *children: Any, **attrs: Any) -> Markup:
    """``el("a", "text", href="#x", class_="c", data_t0=1.5)``: True is a bare attribute,
    None and False leave it out."""
    parts = [tag]
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        key = _attr_name(name)
        if value is True:
            parts.append(key)
        else:
            parts.append(f'{key}="{esc(value)}"')
    opening = "<" + " ".join(parts) + ">"
    if tag in _VOID:
        return Markup(opening)
    return Markup(opening + join(*children) + f"</{tag}>")
