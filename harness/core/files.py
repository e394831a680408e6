"""One way to read the files people hand the harness (scenarios, gates, presets): regular
files only, a size cap, UTF-8, and every problem an error that names the file and the fix;
one way to write a file: atomically (:func:`atomic_write`); and one way to replace a whole
directory: staged beside it and swapped in with renames (:func:`staged_directory`).

A FIFO named ``x.yaml`` would block a read for ever, a 50 MB scenario is a mistake, and a
file in another encoding deserves its name in the message, not a ``UnicodeDecodeError``.
The cap is ``HARNESS_MAX_CONFIG_BYTES`` (default 2 MB).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from harness.core.errors import ScenarioError

__all__ = [
    "DEFAULT_MAX_CONFIG_BYTES",
    "StagedDirectory",
    "atomic_write",
    "atomic_writer",
    "made_parents",
    "max_config_bytes",
    "read_config_text",
    "staged_directory",
]

DEFAULT_MAX_CONFIG_BYTES = 2 * 1024 * 1024
ENV_MAX = "HARNESS_MAX_CONFIG_BYTES"


def max_config_bytes() -> int:
    raw = os.environ.get(ENV_MAX, "").strip()
    if not raw:
        return DEFAULT_MAX_CONFIG_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise ScenarioError(f"{ENV_MAX}={raw!r} is not a number of bytes") from None
    if value < 1:
        raise ScenarioError(f"{ENV_MAX}={raw!r} must be at least 1")
    return value


def read_config_text(
    path: str | Path,
    *,
    what: str,
    shown: str | Path | None = None,
    error: type[ScenarioError] = ScenarioError,
) -> str:
    """The text of a config file ``path`` (``what`` names it in errors: "scenario")."""
    p = Path(path)
    name = shown if shown is not None else p
    try:
        st = os.stat(p)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}", file=name) from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO?)"
        raise error(f"cannot read {what}: it is {kind}; give a regular file", file=name)
    limit = max_config_bytes()
    if st.st_size > limit:
        raise error(
            f"{what} is {st.st_size / 1e6:.1f} MB, over the {limit / 1e6:.1f} MB limit "
            f"(set {ENV_MAX} to raise it)",
            file=name,
        )
    try:
        with open(p, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror or exc}", file=name) from None
    if len(data) > limit:
        raise error(f"{what} grew past the {limit / 1e6:.1f} MB limit while read", file=name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
            "save the file as UTF-8",
            file=name,
            line=line,
        ) from None


@contextlib.contextmanager
def atomic_writer(path: str | Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only when the block ends without an error: a
    unique temporary name beside it, flushed and fsynced, then renamed over ``path``. A
    crash leaves the old file (or none), never half of the new one."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | Path, data: bytes | str, *, mode: int = 0o644) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically (:func:`atomic_writer`)."""
    with atomic_writer(path, mode=mode) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


# --- a whole directory at once ------------------------------------------------------------------


def _missing_parents(path: Path) -> list[Path]:
    """The parent directories of ``path`` that do not exist yet, deepest first."""
    missing = []
    d = path.parent
    while not d.exists():
        missing.append(d)
        d = d.parent
    return missing


def _remove_empty(dirs: list[Path]) -> None:
    """Remove each directory, deepest first, as long as it is empty (one never made, as
    when ``mkdir`` failed half-way, is skipped)."""
    for d in dirs:
        if not d.exists():
            continue
        try:
            d.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def made_parents(path: str | Path) -> Iterator[Path]:
    """``path``'s missing parent directories, created; if the block fails, those it created
    are removed again (as far as they are empty), so a failed write leaves no folders."""
    p = Path(path)
    missing = _missing_parents(p)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        yield p
    except BaseException:
        _remove_empty(missing)
        raise


def _fsync_tree(root: Path) -> None:
    """Flush every file under ``root`` and the directories holding them to the disk."""
    for here, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(here, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(here))


def _fsync_dir(path: Path) -> None:
    """Flush a directory's entries (renames in it); not every platform can."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class StagedDirectory:
    """The new content of :attr:`target`, built in :attr:`path`, a hidden directory beside
    it (same file system, so the swap is a rename). See :func:`staged_directory`."""

    def __init__(self, target: Path, path: Path, *, replace: bool, drop_empty: bool) -> None:
        self.target = target
        self.path = path
        """Write the new content here."""
        self._replace = replace
        self._drop_empty = drop_empty
        self._aside: Path | None = None
        self._placed = False
        self.committed = False

    def commit(self) -> None:
        """Swap the new content in now: the old :attr:`target` moves aside (removed when the
        block ends, put back if the block fails), then :attr:`path` becomes :attr:`target`.
        Call it to write something that must follow the directory (a file naming it); the
        block's end commits otherwise."""
        if self.committed:
            return
        _fsync_tree(self.path)
        if self.target.exists() or self.target.is_symlink():
            if not self._replace:
                raise FileExistsError(errno.EEXIST, "already exists", str(self.target))
            parent, name = self.path.parent, self.target.name
            aside = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=parent))
            try:
                os.replace(self.target, aside)  # onto the empty placeholder
            except BaseException:
                with contextlib.suppress(OSError):
                    aside.rmdir()
                raise
            self._aside = aside
        if self._drop_empty and not any(self.path.iterdir()):
            self.path.rmdir()
        else:
            os.replace(self.path, self.target)
            self._placed = True
        _fsync_dir(self.target.parent)
        self.committed = True

    def _roll_back(self) -> None:
        """Remove the new content and put the old one back (each step best effort: if the
        old content cannot be moved back, it stays under its hidden name, never deleted)."""
        if self._placed:
            shutil.rmtree(self.target, ignore_errors=True)
            self._placed = False
        shutil.rmtree(self.path, ignore_errors=True)
        if self._aside is not None:
            with contextlib.suppress(OSError):
                os.replace(self._aside, self.target)
                self._aside = None

    def _finish(self) -> None:
        if self._aside is not None:
            shutil.rmtree(self._aside, ignore_errors=True)
            self._aside = None


@contextlib.contextmanager
def staged_directory(
    target: str | Path, *, replace: bool = True, drop_empty: bool = False
) -> Iterator[StagedDirectory]:
    """A directory that replaces ``target`` whole, or not at all.

    Write the new content into the stage's :attr:`~StagedDirectory.path`. When the block
    ends without an error, the files are flushed, the old ``target`` is moved aside, the
    stage is renamed to ``target``, and the old content is removed. When anything fails
    (in the block or in the swap), the stage is removed, the old ``target`` is put back,
    and parent directories this call created are removed: ``target`` holds the old
    content or the whole new one, and no temporary is left beside it.

    ``replace=False`` refuses an existing ``target`` (:class:`FileExistsError`, raised when
    the swap starts). ``drop_empty=True``: an empty stage means "no directory", so
    ``target`` is removed instead of replaced by an empty one.

    A hard crash (power loss, ``kill -9``) between the two renames leaves the old content
    under a hidden ``.<name>.*.old`` beside ``target``: renames cannot swap two
    directories in one step everywhere.
    """
    t = Path(target)
    missing = _missing_parents(t)
    stage: StagedDirectory | None = None
    try:
        t.parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f".{t.name}.", suffix=".stage", dir=t.parent))
        stage = StagedDirectory(t, path, replace=replace, drop_empty=drop_empty)
        yield stage
        stage.commit()
    except BaseException:
        if stage is not None:
            stage._roll_back()
        _remove_empty(missing)
        raise
    assert stage is not None
    stage._finish()
    if not t.exists():
        _remove_empty(missing)
