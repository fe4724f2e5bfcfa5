"""One header for every safetensors file this library writes: ``format``, ``format_version``, ``metadata``.

``metadata`` is a JSON object; loaders check the format name and refuse versions they do not read.
Files are parsed from bytes (:func:`parse_safetensors`), so a reader can verify a checksum and parse
the very bytes it checked.

Examples:
    >>> import torch
    >>> data = to_bytes({"x": torch.ones(2)}, "steering.example", 1, {"k": 1})
    >>> tensors, meta = from_bytes(data, "steering.example", 1, "example")
    >>> tensors["x"].tolist(), meta
    ([1.0, 1.0], {'k': 1})
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from .errors import InvalidArgumentError, VectorFileError

HEADER_LIMIT = 100 << 20  # safetensors' own cap on the JSON header
MAX_FILE_BYTES = 256 << 20  # no vector, card or artefact file is larger; STEERING_MAX_FILE_BYTES changes it


def max_file_bytes() -> int:
    """The hard cap on any one file read or downloaded (``STEERING_MAX_FILE_BYTES``, default 256 MiB)."""
    raw = os.environ.get("STEERING_MAX_FILE_BYTES")
    if raw is None:
        return MAX_FILE_BYTES
    if not raw.isascii() or not raw.isdigit() or int(raw) == 0:
        raise InvalidArgumentError(f"STEERING_MAX_FILE_BYTES must be a positive number of bytes, got {raw!r}.")
    return int(raw)


def check_file_size(size: int, where: str) -> None:
    """Refuse a file over :func:`max_file_bytes` before reading or downloading it."""
    cap = max_file_bytes()
    if size > cap:
        raise VectorFileError(
            f"{where} is {size} bytes, over the {cap}-byte cap on one file (max_file_bytes, "
            "STEERING_MAX_FILE_BYTES); refused before reading. Raise the cap if the file is really this large."
        )


def load_json(
    text: str | bytes, where: str, error: type[Exception] = VectorFileError, *, allow_nan: bool = True
) -> Any:
    """Parse untrusted JSON, failing with ``error`` (never ``RecursionError``) and naming ``where``.

    ``allow_nan=False`` refuses ``NaN`` / ``Infinity``, which are not JSON (indexes must be portable).

    Examples:
        >>> load_json('{"a": [1]}', "example")
        {'a': [1]}
        >>> load_json("[" * 100000, "deep.json")
        Traceback (most recent call last):
        steering.errors.VectorFileError: deep.json: the JSON nests too deeply to parse; refused.
    """

    def refuse(constant: str) -> Any:
        raise error(f"{where}: {constant} is not a JSON number (numbers must be finite); refused.")

    try:
        return json.loads(text, parse_constant=None if allow_nan else refuse)
    except RecursionError:
        raise error(f"{where}: the JSON nests too deeply to parse; refused.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{where}: not valid JSON ({e}).") from None


def dump_metadata(metadata: Mapping[str, Any]) -> str:
    try:
        return json.dumps(metadata, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise VectorFileError(f"Metadata must be JSON-serialisable (finite numbers, str keys): {e}") from None


def header(format: str, version: int, metadata: Mapping[str, Any]) -> dict[str, str]:
    """The safetensors ``__metadata__`` for a file of ``format``."""
    return {"format": format, "format_version": str(version), "metadata": dump_metadata(metadata)}


def to_bytes(tensors: Mapping[str, Tensor], format: str, version: int, metadata: Mapping[str, Any]) -> bytes:
    from safetensors.torch import save

    clean = {k: t.detach().to("cpu").contiguous() for k, t in tensors.items()}
    return save(clean, metadata=header(format, version, metadata))


def read_header(raw: Mapping[str, str], format: str, version: int, where: str) -> dict[str, Any]:
    """The metadata of a header written by :func:`header`, after checking format and version."""
    if raw.get("format") != format or "metadata" not in raw:
        raise VectorFileError(
            f"{where} is a safetensors file without {format} metadata (header keys: {sorted(raw)}, format "
            f"{raw.get('format')!r}); expected format={format!r}. Was it written by this library?"
        )
    got = raw.get("format_version", "?")
    if got != str(version):
        raise VectorFileError(
            f"{where} has {format} format_version {got}; this library reads {version}. Upgrade steering."
        )
    meta = load_json(raw["metadata"], f"{where}: the metadata header")
    if not isinstance(meta, dict):
        raise VectorFileError(
            f"{where}: the metadata header is a JSON {type(meta).__name__}; expected an object ({{...}})."
        )
    return meta


def parse_safetensors(data: bytes, where: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """``(tensors, raw header metadata)`` of safetensors bytes; nothing is ever unpickled."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if len(data) < 8:
        raise VectorFileError(f"{where} is not a readable safetensors file (only {len(data)} bytes).")
    n = int.from_bytes(data[:8], "little")
    if n > min(HEADER_LIMIT, len(data) - 8):  # the length field is the file's own bytes: never echo it
        raise VectorFileError(
            f"{where} is not a readable safetensors file (its header length does not fit its {len(data)} bytes)."
        )
    header = load_json(data[8 : 8 + n], where)
    try:
        raw = header.get("__metadata__") or {}
        tensors = load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError, AttributeError) as e:
        raise VectorFileError(f"{where} is not a readable safetensors file ({e}).") from None
    if not isinstance(raw, dict):
        raise VectorFileError(f"{where}: the safetensors __metadata__ is not an object.")
    return tensors, raw


def from_bytes(data: bytes, format: str, version: int, where: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(tensors, metadata)`` of a file of ``format`` written by :func:`to_bytes`."""
    tensors, raw = parse_safetensors(data, where)
    return tensors, read_header(raw, format, version, where)
