"""Atomic file writes: a temp file in the destination folder, then ``os.replace``.

A reader sees the old file or the new one, never half of one; a failure leaves no temp file. The
file gets the permissions a plain ``open()`` would give it (``0o666 & ~umask``), not the ``0o600``
of a temp file, so a registry folder stays readable by a web server or a colleague. Temp files are
named ``.<name>.<random>.tmp``; :func:`remove_stale_temps` clears the ones a killed process left.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

TEMP_SUFFIX = ".tmp"
STALE_SECONDS = 600.0  # a temp file this old belongs to no live writer
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read from ``/proc`` where possible: setting it to read it is not thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)

    return atomic_write(path, write)


def remove_stale_temps(folder: str | os.PathLike[str], older_than: float = STALE_SECONDS) -> list[Path]:
    """Delete the temp files and folders this library names ``.<name>.<random>.tmp`` under ``folder``.

    Only those older than ``older_than`` seconds go (registry and cache names never start with a dot).

    ``older_than=0`` removes every one: right for a folder whose writers all hold a lock you hold.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    now, removed = time.time(), []
    for p in sorted(root.rglob("*"), key=lambda q: -len(q.parts)):  # deepest first
        name = p.name
        temp = name.startswith(".") and name.endswith(TEMP_SUFFIX)
        try:
            if not temp or now - p.lstat().st_mtime < older_than:
                continue
            if p.is_dir() and not p.is_symlink():
                import shutil

                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
        except OSError:
            continue  # raced with another cleaner
    return removed
