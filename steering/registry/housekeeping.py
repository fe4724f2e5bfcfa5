"""What a registry folder's writer may touch: never a path through a symbolic link below the root,
and, when collecting, only unlisted files named as this library names them."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import RegistryError

# The names this library gives the files it writes: <stem>.<sha256[:16]><suffix>. Only those are collected.
OURS = re.compile(r"[^/]+\.[0-9a-f]{16}(\.[A-Za-z0-9_-]+)?")


def no_links(root: Path, rel: str) -> Path:
    """``root / rel``, refused if any part of it below the root is a symbolic link (it could lead outside)."""
    path = root
    for part in Path(rel).parts:
        path = path / part
        if path.is_symlink():
            raise RegistryError(
                f"{path} is a symbolic link (to {os.readlink(path)!r}); the registry never writes or deletes "
                f"through one, since it could point outside {root}. Replace it with a real folder or file."
            )
    return path


def collect(root: Path, index: dict[str, Any]) -> list[Path]:
    """Delete the files of ours in ``<model>/<name>/`` folders that ``index`` does not list; returns them.

    A listed file, any other file (a README, a ``.git`` folder) and anything behind a link stay.
    """
    listed = {
        rec["path"] for e in index["entries"] for rec in [*e["files"].values(), *([e["card"]] if e.get("card") else [])]
    }
    removed = []
    for slug in sorted(root.iterdir()):
        if slug.is_symlink() or not slug.is_dir() or slug.name.startswith("."):
            continue
        for entry in sorted(slug.iterdir()):
            if entry.is_symlink() or not entry.is_dir():
                continue
            for p in sorted(entry.iterdir()):
                rel = f"{slug.name}/{entry.name}/{p.name}"
                if OURS.fullmatch(p.name) and not p.is_symlink() and p.is_file() and rel not in listed:
                    p.unlink(missing_ok=True)
                    removed.append(p)
            if not any(entry.iterdir()):
                entry.rmdir()
        if not any(slug.iterdir()):
            slug.rmdir()
    return removed
