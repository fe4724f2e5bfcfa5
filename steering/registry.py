"""A vector registry is a folder: ``index.json`` plus one safetensors file per model, vector and layer.

```
index.json
<model-slug>/<name>/layer-<L>.safetensors   # a one-layer SteeringVector file each
<model-slug>/<name>/card.md                 # how it was made, what it does, recommended strength
```
The format is specified in ``docs/registry-format.md``. Names and paths read from an index are
untrusted: :func:`safe_relpath` refuses anything that could leave the registry folder.
"""

from __future__ import annotations

import builtins
import difflib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._version import __version__
from .atomic import atomic_write_bytes
from .errors import RegistryError, VectorNotFoundError
from .vector import SteeringVector

SCHEMA = "steering.registry"
SCHEMA_VERSION = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SUMMARY_KEYS = (
    "method",
    "position",
    "site",
    "layer_convention",
    "hidden_size",
    "n_layers",
    "n_pairs",
    "basis",
    "fingerprint",
    "revision",
    "recommended_strength",
    "recommended_scope",
    "library_version",
)


def check_name(value: Any, what: str) -> str:
    """A registry name or path part: letters, digits, ``.``, ``_``, ``-``; no ``..``."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise RegistryError(
            f"Invalid {what} {value!r}: use letters, digits, '.', '_' and '-' only (no '/', no '..', "
            "at most 128 characters, starting with a letter or digit)."
        )
    return value


def model_slug(model: str) -> str:
    """``"org/model"`` -> ``"org--model"`` (the Hub cache's convention), checked for safety."""
    if not isinstance(model, str) or not model or model.count("/") > 1:
        raise RegistryError(
            f"A registry entry needs a model id such as 'org/model', got {model!r} (a local path? pass model=...)."
        )
    return check_name(model.replace("/", "--"), "model id")


def safe_relpath(path: Any) -> str:
    """A relative path from an index, refused if absolute, escaping, or oddly named."""
    if not isinstance(path, str) or not path or path.startswith(("/", "\\")) or "\\" in path:
        raise RegistryError(f"Refusing file path {path!r} from the index: it must be a relative POSIX path.")
    for part in path.split("/"):
        check_name(part, "path component")
    return path


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_file(rec: Any, where: str) -> None:
    if not isinstance(rec, dict):
        raise RegistryError(f"{where}: a file record must be an object with path, sha256 and size.")
    safe_relpath(rec.get("path"))
    if not re.fullmatch(r"[0-9a-f]{64}", str(rec.get("sha256", ""))):
        raise RegistryError(f"{where}: no valid sha256.")
    if isinstance(rec.get("size"), bool) or not isinstance(rec.get("size"), int) or rec["size"] < 0:
        raise RegistryError(f"{where}: no valid size.")


def _check_entry(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: each entry must be an object, got {type(entry).__name__}.")
    for key in ("model", "name", "files"):
        if key not in entry:
            raise RegistryError(f"{where}: entry lacks {key!r} (has {sorted(entry)}).")
    check_name(entry["name"], "vector name")
    model_slug(entry["model"])
    files = entry["files"]
    kind = entry.get("kind", "vector")
    if not isinstance(files, dict) or not files:
        raise RegistryError(f"{where}: 'files' must map layer numbers (or, for other kinds, names) to file records.")
    for key, rec in files.items():
        if kind == "vector" and not str(key).isdigit():
            raise RegistryError(f"{where}: file keys must be layer numbers, got {key!r}.")
        if kind != "vector":
            check_name(key, "file key")
        _check_file(rec, f"{where} file {key}")
    if entry.get("card") is not None:
        _check_file(entry["card"], f"{where} card")
    return entry


def parse_index(raw: bytes, source: str) -> dict[str, Any]:
    """Validate an ``index.json`` (untrusted input) and return it."""
    try:
        index = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RegistryError(f"{source}: index.json is not valid JSON ({e}).") from None
    if not isinstance(index, dict) or index.get("schema") != SCHEMA:
        raise RegistryError(f"{source}: not a steering registry index (expected schema {SCHEMA!r}).")
    if index.get("version") != SCHEMA_VERSION:
        raise RegistryError(
            f"{source}: index version {index.get('version')!r}; this library reads {SCHEMA_VERSION}. Upgrade steering."
        )
    entries = index.get("entries")
    if not isinstance(entries, list):
        raise RegistryError(f"{source}: 'entries' must be a list.")
    for i, entry in enumerate(entries):
        _check_entry(entry, f"{source} entry {i}")
    return index


def find_entry(index: dict[str, Any], name: str, model: str | None, source: str) -> dict[str, Any]:
    """The entry for ``name`` (and ``model``, needed when several models share the name)."""
    hits = [e for e in index["entries"] if e["name"] == name and (model is None or e["model"] == model)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        models = sorted(e["model"] for e in hits)
        raise VectorNotFoundError(f"{name!r} exists for several models in {source} ({models}); pass model=...")
    names = sorted({e["name"] for e in index["entries"] if model is None or e["model"] == model})
    near = difflib.get_close_matches(name, names, n=3) or names[:5]
    for_model = f" for model {model!r}" if model else ""
    raise VectorNotFoundError(f"No vector {name!r}{for_model} in {source}. Nearest names: {near}.")


def select_layers(entry: dict[str, Any], layers: list[int] | None) -> list[int]:
    have = sorted(int(k) for k in entry["files"])
    if layers is None:
        return have
    missing = [la for la in layers if la not in have]
    if missing:
        raise VectorNotFoundError(f"{entry['name']!r} has layers {have}, not {missing}.")
    return list(layers)


def merge_layers(parts: list[SteeringVector]) -> SteeringVector:
    directions = {la: d for p in parts for la, d in p.directions.items()}
    return SteeringVector(directions, parts[0].metadata)


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

    @property
    def index_path(self) -> Path:
        return self.root / "index.json"

    def index(self) -> dict[str, Any]:
        if not self.index_path.exists():
            return {"schema": SCHEMA, "version": SCHEMA_VERSION, "entries": []}
        return parse_index(self.index_path.read_bytes(), str(self.index_path))

    def list(self, model: str | None = None) -> builtins.list[dict[str, Any]]:
        """Entries (as dicts), optionally only those for ``model``."""
        return [e for e in self.index()["entries"] if model is None or e["model"] == model]

    def save(
        self,
        vector: SteeringVector,
        name: str,
        *,
        model: str | None = None,
        card: str | None = None,
        recommended_strength: float | None = None,
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Write one file per layer (+ ``card.md``) and update ``index.json``, all atomically."""
        check_name(name, "vector name")
        model = model or vector.metadata.get("model")
        if not model:
            raise RegistryError("The vector's metadata names no model; pass model='org/model' to save it.")
        slug = model_slug(model)
        meta = {
            **vector.metadata,
            "model": model,
            "name": name,
            "registry_schema": SCHEMA_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        meta.setdefault("library_version", __version__)
        if recommended_strength is not None:
            meta["recommended_strength"] = float(recommended_strength)

        def write() -> dict[str, Any]:
            files = {}
            for layer in vector.layers:
                rel = f"{slug}/{name}/layer-{layer}.safetensors"
                path = SteeringVector({layer: vector.directions[layer]}, meta).save(self.root / rel)
                files[str(layer)] = {"path": rel, "sha256": sha256_file(path), "size": path.stat().st_size}
            summary = {k: meta[k] for k in _SUMMARY_KEYS if k in meta}
            return {"model": model, "name": name, "layers": vector.layers, "files": files, "metadata": summary}

        return self._put(model, name, card, overwrite, write)

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
    ) -> dict[str, Any]:
        """Add another kind of artefact (e.g. ``kind="softcot"``: a soft-thoughts projection) as one file.

        The entry has ``kind``, one file under ``files["file"]`` (sha256-checked like layers) and
        ``metadata``; :meth:`load` refuses it, :meth:`file` returns its verified path.
        """
        check_name(name, "artefact name")
        check_name(kind, "artefact kind")
        if kind == "vector":
            raise RegistryError("Save vectors with Registry.save(vector, name).")
        src = Path(file)
        rel = f"{model_slug(model)}/{name}/{check_name(src.name, 'file name')}"

        def write() -> dict[str, Any]:
            rec = self._write(rel, src.read_bytes())
            meta = dict(metadata or {})
            return {"model": model, "name": name, "kind": kind, "layers": [], "files": {"file": rec}, "metadata": meta}

        return self._put(model, name, card, overwrite, write)

    def _write(self, rel: str, data: bytes) -> dict[str, Any]:
        atomic_write_bytes(self.root / rel, data)
        return {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    def _put(
        self, model: str, name: str, card: str | None, overwrite: bool, write: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """Under the index lock: refuse a duplicate, ``write()`` the files (returning the entry), add the card,
        update the index."""
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / ".index.lock")):
            index = self.index()
            existing = [e for e in index["entries"] if e["model"] == model and e["name"] == name]
            if existing and not overwrite:
                raise RegistryError(f"{model}/{name} is already in {self.root}; pass overwrite=True to replace it.")
            entry = write()
            if card is not None:
                entry["card"] = self._write(f"{model_slug(model)}/{name}/card.md", card.encode())
            index["entries"] = [e for e in index["entries"] if e not in existing] + [entry]
            index["entries"].sort(key=lambda e: (e["model"], e["name"]))
            atomic_write_bytes(self.index_path, (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())
        return entry

    def _verified(self, rec: dict[str, Any]) -> Path:
        path = self.root / safe_relpath(rec["path"])
        if not path.is_file():
            raise VectorNotFoundError(f"{path} is listed in the index but missing.")
        if sha256_file(path) != rec["sha256"]:
            raise RegistryError(f"{path}: sha256 does not match the index; the file was changed or corrupted.")
        return path

    def file(self, name: str, model: str | None = None) -> Path:
        """The verified path of a non-vector artefact saved with :meth:`save_file`."""
        entry = find_entry(self.index(), name, model, str(self.root))
        if entry.get("kind", "vector") == "vector":
            raise RegistryError(f"{entry['model']}/{name} is a vector; load it with Registry.load.")
        return self._verified(entry["files"]["file"])

    def load(self, name: str, model: str | None = None, layers: builtins.list[int] | None = None) -> SteeringVector:
        """Load a vector (all its layers, or ``layers``), checking each file's sha256 against the index."""
        entry = find_entry(self.index(), name, model, str(self.root))
        if entry.get("kind", "vector") != "vector":
            raise RegistryError(
                f"{entry['model']}/{name} is a {entry['kind']!r} artefact, not a vector; use Registry.file(...)."
            )
        paths = [self._verified(entry["files"][str(layer)]) for layer in select_layers(entry, layers)]
        return merge_layers([SteeringVector.load(path) for path in paths])

    def card(self, name: str, model: str | None = None) -> str | None:
        entry = find_entry(self.index(), name, model, str(self.root))
        if not entry.get("card"):
            return None
        return (self.root / safe_relpath(entry["card"]["path"])).read_text(encoding="utf-8")
