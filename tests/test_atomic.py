"""Atomic writes: the old file or the new one, never half of either; stale temps cleared."""

from __future__ import annotations

import os
import time

import pytest

from steering.atomic import atomic_write, atomic_write_bytes, remove_stale_temps


def test_a_write_replaces_the_file_whole_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a" / "f.bin"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two" and sorted(p.name for p in path.parent.iterdir()) == ["f.bin"]


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def broken(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_only_stale_temps_are_removed(tmp_path):
    old, fresh, data = tmp_path / ".x.1.tmp", tmp_path / ".y.2.tmp", tmp_path / "keep.bin"
    for p in (old, fresh, data):
        p.write_bytes(b"")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(data, (an_hour_ago, an_hour_ago))
    assert remove_stale_temps(tmp_path) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".y.2.tmp", "keep.bin"]
