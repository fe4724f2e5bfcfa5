"""The registry index (``index.json``): its schema, the names it may hold, and checks of what it lists.

Everything read from an index is untrusted input: names and paths are checked before any file is
touched (:func:`safe_relpath` refuses anything that could leave the registry folder), and a file is
used only once its sha256 matches the index (:func:`verified_bytes`).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, ListedFileMissingError, RegistryError, VectorNotFoundError
from ..fileformat import check_file_size, load_json
from ..vector import SteeringVector

SCHEMA = "steering.registry"
SCHEMA_VERSION = 1
VECTOR = "vector"  # the default kind; others (e.g. "softcot") hold one file under files["file"]
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Names Windows refuses as file names, whatever the extension.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
SUMMARY_KEYS = (
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
    "recommended_strength_unit",
    "recommended_scope",
    "library_version",
)


@dataclass(frozen=True)
class Entry:
    """One entry of a registry index: a vector (one file per layer) or another artefact (``files["file"]``).

    ``files`` maps a layer (as a string) or ``"file"`` to ``{"path", "sha256", "size"}``; ``metadata`` is
    the summary the index keeps (method, site, recommended strength and scope, ...); ``card`` is the
    card's file record, if any.
    """

    model: str
    name: str
    kind: str
    layers: list[int]
    files: dict[str, dict[str, Any]]
    metadata: dict[str, Any]
    card: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> Entry:
        return cls(
            model=entry["model"],
            name=entry["name"],
            kind=entry.get("kind", VECTOR),
            layers=list(entry.get("layers", [])),
            files=dict(entry["files"]),
            metadata=dict(entry.get("metadata") or {}),
            card=entry.get("card") or None,
        )

    def to_json(self) -> dict[str, Any]:
        """The entry as ``index.json`` holds it."""
        out: dict[str, Any] = {"model": self.model, "name": self.name, "layers": self.layers, "files": self.files}
        out["metadata"] = self.metadata
        if self.kind != VECTOR:
            out["kind"] = self.kind
        if self.card:
            out["card"] = self.card
        return out

    @property
    def recommended_strength(self) -> float | None:
        value = self.metadata.get("recommended_strength")
        return float(value) if value is not None else None


def empty_index() -> dict[str, Any]:
    return {"schema": SCHEMA, "version": SCHEMA_VERSION, "entries": []}


def check_name(value: Any, what: str) -> str:
    """A registry name or path part: letters, digits, ``.``, ``_``, ``-``; no ``..``; no Windows device name.

    Examples:
        >>> check_name("concise-cot", "vector name")
        'concise-cot'
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value or value.endswith("."):
        raise RegistryError(
            f"Invalid {what} {value!r}: use letters, digits, '.', '_' and '-' only (no '/', no '..', "
            "at most 128 characters, starting with a letter or digit, not ending with '.')."
        )
    if value.split(".")[0].lower() in _RESERVED:
        raise RegistryError(f"Invalid {what} {value!r}: {value.split('.')[0]!r} is a reserved device name on Windows.")
    return value


def model_slug(model: Any) -> str:
    """``"org/model"`` -> ``"org--model"`` (the Hub cache's convention), checked for safety.

    Examples:
        >>> model_slug("HuggingFaceTB/SmolLM2-135M-Instruct")
        'HuggingFaceTB--SmolLM2-135M-Instruct'
    """
    parts = model.split("/") if isinstance(model, str) else []
    if not parts or len(parts) > 2 or any(not p for p in parts):
        raise RegistryError(
            f"A registry entry needs a model id such as 'org/model' or 'model', got {model!r} "
            "(a local path? pass model='org/model')."
        )
    for part in parts:
        check_name(part, "model id part")
    return "--".join(parts)


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


def file_record(rel: str, data: bytes) -> dict[str, Any]:
    return {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _check_file(rec: Any, where: str) -> None:
    if not isinstance(rec, dict):
        raise RegistryError(f"{where}: a file record must be an object with path, sha256 and size.")
    safe_relpath(rec.get("path"))
    if not re.fullmatch(r"[0-9a-f]{64}", str(rec.get("sha256", ""))):
        raise RegistryError(f"{where}: no valid sha256.")
    if isinstance(rec.get("size"), bool) or not isinstance(rec.get("size"), int) or rec["size"] < 0:
        raise RegistryError(f"{where}: no valid size.")


def kind_of(entry: dict[str, Any]) -> str:
    return str(entry.get("kind", VECTOR))


def _check_entry(entry: Any, where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: each entry must be an object, got {type(entry).__name__}.")
    for key in ("model", "name", "files"):
        if key not in entry:
            raise RegistryError(f"{where}: entry lacks {key!r} (has {sorted(entry)}).")
    check_name(entry["name"], "vector name")
    model_slug(entry["model"])
    check_name(kind_of(entry), "kind")
    if not isinstance(entry.get("metadata", {}), dict):
        raise RegistryError(
            f"{where}: 'metadata' must be an object, got {type(entry['metadata']).__name__}; the index is damaged."
        )
    files = entry["files"]
    if not isinstance(files, dict) or not files:
        raise RegistryError(f"{where}: 'files' must map layer numbers (or, for other kinds, names) to file records.")
    for key, rec in files.items():
        check_name(key, "file key")
        _check_file(rec, f"{where} file {key}")
    if kind_of(entry) == VECTOR:
        layers = entry.get("layers")
        if not isinstance(layers, list) or not all(type(la) is int and la >= 0 for la in layers):
            raise RegistryError(f"{where}: 'layers' must be a list of layer numbers, got {layers!r}.")
        want = {str(la) for la in layers}  # canonical: "1", never "01" or "+1"
        if set(files) != want or len(want) != len(layers):
            raise RegistryError(
                f"{where}: the file keys {sorted(files)} must be exactly the layers {layers} written as "
                "numbers (no duplicates, no leading zeros); the index is damaged."
            )
    strength = entry.get("metadata", {}).get("recommended_strength")
    if strength is not None and (isinstance(strength, bool) or not isinstance(strength, (int, float))):
        raise RegistryError(f"{where}: recommended_strength must be a number, got {strength!r}.")
    if entry.get("card") is not None:
        _check_file(entry["card"], f"{where} card")
    return entry


def parse_index(raw: bytes, source: str) -> dict[str, Any]:
    """Validate an ``index.json`` (untrusted input) and return it."""
    index = load_json(raw, f"{source}: index.json", RegistryError, allow_nan=False)
    if not isinstance(index, dict) or index.get("schema") != SCHEMA:
        raise RegistryError(f"{source}: not a steering registry index (expected schema {SCHEMA!r}).")
    if index.get("version") != SCHEMA_VERSION:
        raise RegistryError(
            f"{source}: index version {index.get('version')!r}; this library reads {SCHEMA_VERSION}. Upgrade steering."
        )
    entries = index.get("entries")
    if not isinstance(entries, list):
        raise RegistryError(f"{source}: 'entries' must be a list.")
    seen: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(entries):
        _check_entry(entry, f"{source} entry {i}")
        key = (entry["model"], entry["name"])
        if key in seen:
            raise RegistryError(
                f"{source}: entries {seen[key]} and {i} are both {key[0]}/{key[1]}; an index lists each name once "
                "per model. The index is damaged: remove one."
            )
        seen[key] = i
    return index


def find_entry(
    index: dict[str, Any], name: str, model: str | None, source: str, kind: str | None = VECTOR
) -> dict[str, Any]:
    """The entry for ``name`` (and ``model``, needed when several models share the name) of ``kind``.

    ``kind=None`` accepts any kind (listing, cards).
    """
    hits = [e for e in index["entries"] if e["name"] == name and (model is None or e["model"] == model)]
    if len(hits) > 1:
        models = sorted(e["model"] for e in hits)
        raise VectorNotFoundError(f"{name!r} exists for several models in {source} ({models}); pass model=...")
    if not hits:
        names = sorted({e["name"] for e in index["entries"] if model is None or e["model"] == model})
        near = difflib.get_close_matches(name, names, n=3) or names[:5]
        for_model = f" for model {model!r}" if model else ""
        raise VectorNotFoundError(f"No entry {name!r}{for_model} in {source}. Nearest names: {near}.")
    entry = hits[0]
    if kind is not None and kind_of(entry) != kind:
        how = "Registry.load / steering.pull" if kind_of(entry) == VECTOR else "Registry.file"
        raise RegistryError(
            f"{entry['model']}/{name} in {source} is a {kind_of(entry)!r} entry, not a {kind!r} one; "
            f"read it with {how}."
        )
    return entry


def select_layers(entry: dict[str, Any], layers: list[int] | None) -> list[int]:
    have = sorted(int(k) for k in entry["files"])
    if layers is None:
        return have
    if not isinstance(layers, (list, tuple)) or not layers:
        raise InvalidArgumentError(f"layers must be a non-empty list of layer numbers (this entry has {have}).")
    missing = [la for la in layers if la not in have]
    if missing:
        raise VectorNotFoundError(f"{entry['name']!r} has layers {have}, not {missing}.")
    return list(layers)


def verified_bytes(path: Path, rec: dict[str, Any], where: str) -> bytes:
    """The bytes of ``path`` if their sha256 is the one ``rec`` lists; the bytes checked are the bytes returned."""
    try:
        check_file_size(max(path.stat().st_size, int(rec["size"])), f"{where}: {rec['path']}")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ListedFileMissingError(f"{where}: {rec['path']} is listed in the index but missing.") from None
    except OSError as e:
        raise RegistryError(f"{where}: {rec['path']} could not be read ({e.strerror or e}).") from None
    got = hashlib.sha256(data).hexdigest()
    if got != rec["sha256"]:
        raise RegistryError(
            f"{where}: {rec['path']} has sha256 {got[:12]}…, the index lists {rec['sha256'][:12]}…: the file was "
            "changed or corrupted; refused."
        )
    return data


def layer_vector(data: bytes, layer: int, where: str) -> SteeringVector:
    """The one-layer vector file listed under ``layer``, refused if it holds another layer."""
    vec = SteeringVector.from_bytes(data, where)
    if vec.layers != [layer]:
        raise RegistryError(
            f"{where}: the file listed for layer {layer} holds layer(s) {vec.layers}; the index is inconsistent."
        )
    return vec


def merge_layers(parts: list[SteeringVector]) -> SteeringVector:
    directions = {la: d for p in parts for la, d in p.directions.items()}
    return SteeringVector(directions, parts[0].metadata)
