"""A local registry: a folder with ``index.json`` and content-addressed files per model, name and layer.

```
index.json
<model-slug>/<name>/layer-<L>.<sha256[:16]>.safetensors   # a one-layer SteeringVector file each
<model-slug>/<name>/card.<sha256[:16]>.md                 # how it was made, what it does, strength
```
Writes happen under a lock (``.index.lock``): new files first (their names carry their hash, so they
never overwrite a file the current index lists), then the index is swapped atomically, then the
files only the old entry used are removed. A process killed at any instant leaves the old entry or
the new one, never a mix; a reader that loses a race with a writer re-reads the index. Files no
index lists (what a killed or failed save left) are collected under the lock by every save and by
:meth:`Registry.gc`. Nothing is written or deleted through a symbolic link under the root: a cloned
registry can carry one that points anywhere. The format is specified in ``docs/registry-format.md``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._version import __version__
from ..atomic import atomic_write_bytes, remove_stale_temps
from ..errors import InvalidArgumentError, ListedFileMissingError, RegistryError
from ..scope_json import scope_to_json
from ..scopes import ScopeSpec
from ..vector import SteeringVector
from .housekeeping import collect, no_links
from .index import (
    SUMMARY_KEYS,
    VECTOR,
    Entry,
    check_name,
    empty_index,
    file_record,
    find_entry,
    layer_vector,
    merge_layers,
    model_slug,
    parse_index,
    safe_relpath,
    select_layers,
    verified_bytes,
)

LOCK = ".index.lock"
READ_ATTEMPTS = 5  # a reader racing writers re-reads the index this many times before giving up


def _hashed(stem: str, suffix: str, data: bytes) -> str:
    return f"{stem}.{file_record('', data)['sha256'][:16]}{suffix}"


def check_strength(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgumentError(f"recommended_strength must be a finite number, got {value!r}.")
    return float(value)


class Registry:
    """A local registry folder (created on first save).

    Examples:
        >>> import tempfile, torch
        >>> reg = Registry(tempfile.mkdtemp())
        >>> vec = SteeringVector({1: torch.ones(4)}, {"model": "org/tiny", "hidden_size": 4})
        >>> _ = reg.save(vec, name="demo")
        >>> reg.load(model="org/tiny", name="demo").layers
        [1]
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    @property
    def index_path(self) -> Path:
        return self.root / "index.json"

    def _check_root(self) -> None:
        if self.root.is_file():
            raise RegistryError(f"{self.root} is a file; a registry is a folder holding index.json.")
        if not self.root.is_dir():
            raise RegistryError(
                f"No registry at {self.root} (the folder does not exist). Check the path, or create it by "
                "saving a vector: Registry(path).save(vec, name=...)."
            )

    def index(self) -> dict[str, Any]:
        """The validated index (an empty one for a folder with no ``index.json`` yet)."""
        self._check_root()
        try:
            raw = self.index_path.read_bytes()
        except FileNotFoundError:
            return empty_index()
        except OSError as e:
            raise RegistryError(f"{self.index_path} could not be read ({e.strerror or e}).") from None
        return parse_index(raw, str(self.index_path))

    def entries(self, model: str | None = None) -> list[Entry]:
        """The index's entries, optionally only those for ``model``."""
        return [Entry.from_json(e) for e in self.index()["entries"] if model is None or e["model"] == model]

    # --- writing -------------------------------------------------------------------------------
    def save(
        self,
        vector: SteeringVector,
        name: str,
        *,
        model: str | None = None,
        card: str | None = None,
        recommended_strength: float | None = None,
        recommended_scope: ScopeSpec | None = None,
        overwrite: bool = False,
    ) -> Entry:
        """Add ``vector`` as ``name`` (one file per layer, + ``card.md``); atomic for readers and under kills.

        ``recommended_strength`` is in the unit :func:`steering.steer` takes (a raw multiplier of the
        direction); ``recommended_scope`` is any scope ``steer`` takes (``"prompt_last"``,
        ``Window(0, 8)``, ``Span(...)``, tuples), stored as JSON. ``steer(model, vec)`` without a
        strength or scope uses them.
        """
        if not isinstance(vector, SteeringVector):
            raise InvalidArgumentError(f"Registry.save needs a SteeringVector, got {type(vector).__name__}.")
        check_name(name, "vector name")
        model = model or vector.metadata.get("model")
        if not model:
            raise RegistryError("The vector's metadata names no model; pass model='org/model' to save it.")
        slug = model_slug(model)
        meta = {
            **vector.metadata,
            "model": model,
            "name": name,
            "registry_schema": 1,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        meta.setdefault("library_version", __version__)
        strength = check_strength(recommended_strength)
        if strength is not None:
            meta["recommended_strength"] = strength
        if recommended_scope is not None:
            meta["recommended_scope"] = scope_to_json(recommended_scope)

        def files() -> dict[str, Any]:
            out = {}
            for layer in vector.layers:
                data = SteeringVector({layer: vector.directions[layer]}, meta).to_bytes()
                out[str(layer)] = self._write(f"{slug}/{name}", _hashed(f"layer-{layer}", ".safetensors", data), data)
            summary = {k: meta[k] for k in SUMMARY_KEYS if k in meta}
            return {"model": model, "name": name, "layers": vector.layers, "files": out, "metadata": summary}

        return self._put(model, name, card, overwrite, files)

    def save_file(
        self,
        file: str | os.PathLike[str],
        name: str,
        *,
        model: str,
        kind: str,
        metadata: dict[str, Any] | None = None,
        card: str | None = None,
        overwrite: bool = False,
    ) -> Entry:
        """Add another kind of artefact (e.g. ``kind="softcot"``: a soft-thoughts projection) as one file.

        The entry has ``kind``, one file under ``files["file"]`` (sha256-checked like layers) and
        ``metadata``; :meth:`load` refuses it, :meth:`file` returns its verified path.
        """
        check_name(name, "artefact name")
        check_name(kind, "artefact kind")
        if kind == VECTOR:
            raise RegistryError("Save vectors with Registry.save(vector, name).")
        src = Path(file)
        check_name(src.name, "file name")
        slug = model_slug(model)
        try:
            data = src.read_bytes()
        except OSError as e:
            raise RegistryError(f"Could not read {src} ({e.strerror or e}).") from None

        def files() -> dict[str, Any]:
            rec = self._write(f"{slug}/{name}", _hashed(src.stem, src.suffix, data), data)
            meta = dict(metadata or {})
            return {"model": model, "name": name, "kind": kind, "layers": [], "files": {"file": rec}, "metadata": meta}

        return self._put(model, name, card, overwrite, files)

    def _write(self, folder: str, filename: str, data: bytes) -> dict[str, Any]:
        rel = f"{folder}/{filename}"
        atomic_write_bytes(no_links(self.root, rel), data)
        return file_record(rel, data)

    def _put(
        self, model: str, name: str, card: str | None, overwrite: bool, files: Callable[[], dict[str, Any]]
    ) -> Entry:
        """Under the lock: refuse a duplicate, write the new files, swap the index, remove what only the old used."""
        from filelock import FileLock

        if self.root.is_file():
            raise RegistryError(f"{self.root} is a file; a registry is a folder holding index.json.")
        self.root.mkdir(parents=True, exist_ok=True)
        folder = f"{model_slug(model)}/{name}"
        with FileLock(str(no_links(self.root, LOCK))):
            no_links(self.root, folder)
            no_links(self.root, self.index_path.name)
            remove_stale_temps(self.root, older_than=0)  # every writer holds this lock: none is alive
            index = self.index()
            existing = [e for e in index["entries"] if e["model"] == model and e["name"] == name]
            if existing and not overwrite:
                raise RegistryError(f"{model}/{name} is already in {self.root}; pass overwrite=True to replace it.")
            try:
                entry = files()
                if card is not None:
                    data = card.encode()
                    entry["card"] = self._write(folder, _hashed("card", ".md", data), data)
                index["entries"] = [e for e in index["entries"] if e not in existing] + [entry]
                index["entries"].sort(key=lambda e: (e["model"], e["name"]))
                atomic_write_bytes(self.index_path, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())
            finally:
                collect(self.root, self.index())  # the old version's files, or what a failed write left
        return Entry.from_json(entry)

    def gc(self) -> list[Path]:
        """Delete the files this library wrote that no entry of the index lists; returns what went.

        Saves do this too. Only names this library gives its files (``<stem>.<sha256[:16]><suffix>``)
        in ``<model>/<name>/`` folders are candidates; a listed file, any other file (a README, a
        ``.git`` folder) and anything behind a symbolic link are never touched.
        """
        from filelock import FileLock

        self._check_root()
        with FileLock(str(no_links(self.root, LOCK))):
            remove_stale_temps(self.root, older_than=0)
            return collect(self.root, self.index())

    # --- reading -------------------------------------------------------------------------------
    def _read(self, read: Callable[[dict[str, Any]], Any]) -> Any:
        """``read(index)``, re-run on a fresh index when a concurrent writer removed a file it listed."""
        for attempt in range(READ_ATTEMPTS):
            try:
                return read(self.index())
            except ListedFileMissingError:
                if attempt == READ_ATTEMPTS - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _bytes(self, rec: dict[str, Any]) -> bytes:
        return verified_bytes(self.root / safe_relpath(rec["path"]), rec, str(self.root))

    def file(self, name: str, model: str | None = None) -> Path:
        """The verified path of a non-vector artefact saved with :meth:`save_file`."""

        def read(index: dict[str, Any]) -> Path:
            entry = find_entry(index, name, model, str(self.root), kind=None)
            if entry.get("kind", VECTOR) == VECTOR:
                raise RegistryError(f"{entry['model']}/{name} is a vector; load it with Registry.load.")
            rec = entry["files"]["file"]
            self._bytes(rec)
            return self.root / rec["path"]

        return self._read(read)  # type: ignore[no-any-return]

    def load(self, name: str, model: str | None = None, layers: list[int] | None = None) -> SteeringVector:
        """Load a vector (all its layers, or ``layers``), checking each file's sha256 and layer against the index."""

        def read(index: dict[str, Any]) -> SteeringVector:
            entry = find_entry(index, name, model, str(self.root))
            parts = [
                layer_vector(self._bytes(entry["files"][str(la)]), la, f"{self.root}: {name} layer {la}")
                for la in select_layers(entry, layers)
            ]
            return merge_layers(parts)

        return self._read(read)  # type: ignore[no-any-return]

    def card(self, name: str, model: str | None = None) -> str | None:
        """The card (markdown) of an entry, verified against its sha256; ``None`` if it has none."""

        def read(index: dict[str, Any]) -> str | None:
            entry = find_entry(index, name, model, str(self.root), kind=None)
            if not entry.get("card"):
                return None
            return self._bytes(entry["card"]).decode("utf-8", errors="replace")

        return self._read(read)  # type: ignore[no-any-return]
