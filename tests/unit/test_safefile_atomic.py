"""One atomic write for every file the harness writes: a reader sees the old file or the
whole new one, never a part, and a failure leaves no temporary file behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.files import atomic_write, atomic_writer


@settings(max_examples=50, deadline=2000)
@given(data=st.binary(max_size=4096) | st.text(max_size=1024))
def test_the_file_holds_exactly_what_was_written(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("w") / "sub" / "out.bin"
    atomic_write(path, data)
    expected = data.encode("utf-8") if isinstance(data, str) else data
    assert path.read_bytes() == expected
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in path.parent.iterdir()] == ["out.bin"]


def test_a_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path):
    path = tmp_path / "scores.json"
    atomic_write(path, "old")
    with pytest.raises(RuntimeError), atomic_writer(path) as f:
        f.write(b"half of the new")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]


def test_the_temporary_is_a_unique_hidden_sibling_synced_before_the_rename(
    tmp_path: Path, monkeypatch
):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", "")), real_fsync(fd)))
    monkeypatch.setattr(
        os, "replace", lambda a, b: (events.append(("replace", str(a))), real_replace(a, b))
    )
    with atomic_writer(tmp_path / "a.wav") as f1, atomic_writer(tmp_path / "a.wav") as f2:
        assert f1.name != f2.name  # two writers of one file never share a temporary
        f1.write(b"1")
        f2.write(b"2")
    kinds = [k for k, _ in events]
    assert kinds == ["fsync", "replace", "fsync", "replace"]
    tmp = events[1][1]
    assert Path(tmp).parent == tmp_path and Path(tmp).name.startswith(".a.wav.")
