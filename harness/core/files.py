"""One way to read the files people hand the harness (scenarios, gates, presets): regular
files only, a size cap, UTF-8, and every problem an error that names the file and the fix;
and one way to write a file: atomically (:func:`atomic_write`).

A FIFO named ``x.yaml`` would block a read for ever, a 50 MB scenario is a mistake, and a
file in another encoding deserves its name in the message, not a ``UnicodeDecodeError``.
The cap is ``HARNESS_MAX_CONFIG_BYTES`` (default 2 MB).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from harness.core.errors import ScenarioError

__all__ = [
    "DEFAULT_MAX_CONFIG_BYTES",
    "atomic_write",
    "atomic_writer",
    "max_config_bytes",
    "read_config_text",
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
