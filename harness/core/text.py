"""Plain-text tables for the terminal: the one layout every table the harness prints uses."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["text_table"]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The header, a rule of dashes and one line per row, each column as wide as its widest
    cell and two spaces apart, trailing blanks dropped::

        gate  verdict
        ----  -------
        wer   PASS
    """
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
