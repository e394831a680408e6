"""A whole directory at once: ``staged_directory`` leaves the old directory or the whole new
one, whatever fails and wherever, and nothing else beside it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.files import atomic_write, made_parents, staged_directory

Content = dict[str, bytes]


def content(d: Path) -> Content | None:
    """A flat directory's files, or None when it is not there."""
    if not d.exists():
        return None
    return {p.name: p.read_bytes() for p in d.iterdir()}


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def fill(d: Path, files: Content) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (d / name).write_bytes(data)


def test_the_new_directory_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "audio" / "INC-1"
    fill(target, {"turn-1.wav": b"old 1", "turn-2.wav": b"old 2"})
    with staged_directory(target) as stage:
        assert stage.path.parent == target.parent and stage.path.name.startswith(".INC-1.")
        (stage.path / "turn-1.wav").write_bytes(b"new 1")
        assert content(target) == {"turn-1.wav": b"old 1", "turn-2.wav": b"old 2"}
    assert content(target) == {"turn-1.wav": b"new 1"}  # turn-2 does not survive
    assert [p.name for p in target.parent.iterdir()] == ["INC-1"]


def test_a_failure_in_the_block_keeps_the_old_directory_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "INC-1"
    fill(target, {"a": b"old"})
    with pytest.raises(RuntimeError), staged_directory(target) as stage:
        (stage.path / "a").write_bytes(b"half of the new")
        raise RuntimeError("crash while writing")
    assert content(target) == {"a": b"old"}
    assert [p.name for p in tmp_path.iterdir()] == ["INC-1"]


def test_a_failure_after_the_commit_puts_the_old_directory_back(tmp_path):
    target, index = tmp_path / "audio", tmp_path / "index.yaml"
    fill(target, {"a": b"old"})
    with pytest.raises(OSError, match="disk full"), staged_directory(target) as stage:
        (stage.path / "b").write_bytes(b"new")
        stage.commit()
        assert content(target) == {"b": b"new"}  # swapped in: the file naming it may follow
        raise OSError(28, "disk full")
    assert content(target) == {"a": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio"]
    assert not index.exists()


def test_an_existing_target_is_refused_unless_replace(tmp_path):
    target = tmp_path / "INC-1"
    fill(target, {"a": b"old"})
    with pytest.raises(FileExistsError), staged_directory(target, replace=False) as stage:
        (stage.path / "a").write_bytes(b"new")
    assert content(target) == {"a": b"old"}
    assert [p.name for p in tmp_path.iterdir()] == ["INC-1"]


def test_drop_empty_removes_the_target_and_leaves_no_folders(tmp_path):
    target = tmp_path / "INC-1"
    fill(target, {"a": b"old"})
    with staged_directory(target, drop_empty=True):
        pass
    assert list(tmp_path.iterdir()) == []
    absent = tmp_path / "new" / "deep" / "INC-2"
    with staged_directory(absent, drop_empty=True):
        pass
    assert list(tmp_path.iterdir()) == []  # the parents it made are gone again
    with staged_directory(absent):  # without drop_empty: an empty directory
        pass
    assert content(absent) == {}


def test_parents_it_made_are_removed_on_failure_but_not_others(tmp_path):
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError), staged_directory(tmp_path / "kept" / "a" / "b" / "t"):
        raise RuntimeError
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []
    with pytest.raises(RuntimeError), made_parents(tmp_path / "x" / "y" / "f.yaml") as f:
        atomic_write(f, "text")
        raise RuntimeError
    assert f.read_text() == "text"  # a folder holding a file is never removed


def test_made_parents_removes_only_empty_folders_it_made(tmp_path):
    with pytest.raises(RuntimeError), made_parents(tmp_path / "x" / "y" / "f.yaml"):
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []
    with made_parents(tmp_path / "x" / "y" / "f.yaml") as f:
        atomic_write(f, "text")
    assert f.read_text() == "text"


# --- any failure, anywhere ---------------------------------------------------------------------

files = st.dictionaries(
    st.sampled_from(["a", "b", "turn-1.wav"]), st.binary(max_size=8), max_size=3
)


class Injected(OSError):
    pass


@settings(max_examples=200, deadline=None)
@given(
    old=st.none() | files,
    new=files,
    drop_empty=st.booleans(),
    deep=st.booleans(),
    fail_at=st.integers(0, 25),
    then=st.booleans(),
)
def test_after_any_failure_the_target_is_the_old_or_the_whole_new(
    old, new, drop_empty, deep, fail_at, then
):
    """Fail the ``fail_at``-th directory operation, fsync or file write (once): the target is
    the old content or the new one, and nothing is left beside it. ``then``: after the
    commit, a file that names the directory is written too (it may fail as well)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        target = root / "a" / "b" / "INC-1" if deep else root / "INC-1"
        if old is not None:
            fill(target, old)
        before = tree(root)
        calls = 0
        real = {name: getattr(os, name) for name in ("replace", "mkdir", "fsync")}

        def step() -> None:
            nonlocal calls
            calls += 1
            if calls == fail_at + 1:
                raise Injected(5, "injected failure")

        def wrap(name):
            def call(*args, **kwargs):
                step()
                return real[name](*args, **kwargs)

            return call

        patches = [mock.patch.object(os, n, wrap(n)) for n in real]
        failed = False
        try:
            for p in patches:
                p.start()
            with staged_directory(target, drop_empty=drop_empty) as stage:
                for name, data in new.items():
                    step()
                    (stage.path / name).write_bytes(data)
                if then:
                    stage.commit()
                    step()  # the file that names the directory
        except Injected:
            failed = True
        finally:
            for p in patches:
                p.stop()
        expected_new = None if drop_empty and not new else new
        now = content(target)
        if failed:
            assert now == old
            assert tree(root) == before  # no temporary, no folder
        else:
            assert now == expected_new
            # the target and its files, and the folders that held it before: nothing else
            wanted = {p for p in before if not p.startswith("INC-1") and "/INC-1" not in p}
            if now is not None:
                rel = target.relative_to(root)
                wanted |= {str(a) for a in rel.parents if str(a) != "."} | {str(rel)}
                wanted |= {str(rel / name) for name in now}
            assert tree(root) == sorted(wanted)
