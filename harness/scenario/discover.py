"""Which files are scenario files, and how to name them in messages.

A file is a scenario when its path relative to pytest's rootdir matches one of the
``harness_scenarios`` glob patterns. ``**`` matches any number of directories, none
included; ``*``, ``?`` and ``[...]`` stay within one path segment; names starting with a
dot are matched like any other (pytest's ``norecursedirs`` already keeps it out of
hidden directories). Matching is done by wcmatch's ``globmatch`` with ``GLOBSTAR``.

The default, :data:`DEFAULT_SCENARIO_GLOBS`, follows tavern's ``test_*.tavern.yaml``: only
files that say what they are (``*.scenario.yaml``), so the plugin never picks up another
project's YAML by accident.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePath

DEFAULT_SCENARIO_GLOBS: tuple[str, ...] = ("**/*.scenario.yaml", "**/*.scenario.yml")


def glob_matches(relpath: str | PurePath, patterns: Sequence[str]) -> bool:
    """Whether ``relpath`` (``/``-separated, relative) matches any of ``patterns``."""
    from wcmatch import glob  # imported on the first YAML file, not in every pytest run

    path = relpath.as_posix() if isinstance(relpath, PurePath) else relpath
    cleaned = [p.strip().removeprefix("./") for p in patterns if p.strip()]
    return bool(cleaned) and glob.globmatch(
        path, cleaned, flags=glob.GLOBSTAR | glob.DOTGLOB | glob.FORCEUNIX
    )


def is_scenario_file(path: Path, rootdir: Path, patterns: Sequence[str]) -> bool:
    """Whether ``path`` is a scenario file: a ``.yaml``/``.yml`` file whose path relative
    to ``rootdir`` matches one of ``patterns``. A file outside ``rootdir`` is matched by
    its absolute path (where only patterns starting with ``**/`` can match it)."""
    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        rel: PurePath = path.relative_to(rootdir)
    except ValueError:
        rel = path
    return glob_matches(rel, patterns)


def shown_path(path: Path, *, cwd: Path, rootdir: Path) -> Path:
    """``path`` as messages show it: relative to ``cwd`` (climbing with ``..`` if need be)
    or relative to ``rootdir`` (pytest's node ids), whichever is shorter; absolute when
    neither is. Every form names the same file: ``path`` must be absolute."""
    candidates: list[Path] = []
    try:
        candidates.append(Path(os.path.relpath(path, cwd)))
    except ValueError:  # another drive, on Windows
        pass
    try:
        candidates.append(path.relative_to(rootdir))
    except ValueError:
        pass
    candidates.append(path)
    return min(candidates, key=lambda p: len(str(p)))  # min keeps the first of equals
