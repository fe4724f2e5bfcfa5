"""Pull shared vectors by name from a registry source, verified and cached for offline use.

Every file's sha256 is checked against the index before it is used; nothing is unpickled. HTTP
sources cache under :func:`~steering.cache.cache_dir`: ``blobs/<sha256><suffix>`` and
``indexes/<source hash>.json`` (the last index fetched from each source). When an HTTP source cannot
be reached, a cached index and cached files stand in, with a :class:`StaleCacheWarning` — as
``huggingface_hub`` does for ``hf://`` sources. Offline mode serves the caches only, or fails naming
what is missing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes, remove_stale_temps
from ..cache import cache_dir
from ..errors import OfflineError, RegistryError, UnreachableError
from ..fileformat import check_file_size
from ..vector import SteeringVector
from .download import DEFAULT_TIMEOUT
from .index import VECTOR, find_entry, layer_vector, merge_layers, parse_index, safe_relpath, select_layers
from .local import Registry
from .sources import Source, is_offline, is_remote, open_source, resolve


class StaleCacheWarning(UserWarning):
    """A registry could not be reached, so a copy cached earlier was used."""


class UncachedWarning(UserWarning):
    """The cache folder cannot be written (a read-only filesystem), so a pull ran without caching."""


def _writable(folder: Path) -> bool:
    """Can files be written in ``folder`` (created if needed)? Warns, naming the setting, when not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return True
        reason = "not writable"
    except OSError as e:
        reason = e.strerror or str(e)
    warnings.warn(
        f"The steering cache {folder} cannot be written ({reason}); pulling without caching, so nothing is kept "
        "for offline use. Point STEERING_CACHE at a writable folder.",
        UncachedWarning,
        stacklevel=4,
    )
    return False


def fetch_index(
    source: str | os.PathLike[str] | None = None,
    *,
    offline: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
) -> dict[str, Any]:
    """The validated ``index.json`` of ``source`` (from the cache when offline or unreachable)."""
    source = resolve(source)
    offline = is_offline() if offline is None else offline
    if not is_remote(source):
        return Registry(source).index()
    remote = open_source(source, offline=offline, timeout=timeout, deadline=deadline)
    if remote.caches_itself:
        return parse_index(remote.index(), source)
    cached = cache_dir() / "indexes" / f"{remote.cache_key()}.json"
    if offline:
        if not cached.is_file():
            raise OfflineError(
                f"Offline, and no index from {remote.name} is cached (looked in {cached}). Pull once online first."
            )
        return parse_index(cached.read_bytes(), f"cached index of {remote.name}")
    try:
        raw = remote.index()
    except UnreachableError as e:
        if not cached.is_file():
            raise
        age = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(cached.stat().st_mtime))
        warnings.warn(f"{e} Using the index cached on {age} ({cached}).", StaleCacheWarning, stacklevel=3)
        return parse_index(cached.read_bytes(), f"cached index of {remote.name}")
    index = parse_index(raw, source)
    if _writable(cached.parent):
        atomic_write_bytes(cached, raw)
    return index


def cached_file(remote: Source, rec: dict[str, Any], suffix: str, offline: bool, what: str) -> bytes:
    """The bytes of the file ``rec`` names, whose sha256 matches the index (cached by content)."""
    rel, want = safe_relpath(rec["path"]), rec["sha256"]
    check_file_size(rec["size"], f"{remote.name}: {rel} (as the index lists it)")  # before any byte moves
    blob = cache_dir() / "blobs" / f"{want}{suffix}"
    corrupt = False
    if blob.is_file():
        data = blob.read_bytes()
        if hashlib.sha256(data).hexdigest() == want:
            return data
        corrupt = True
    if offline and not remote.caches_itself:
        state = f"is in the cache but corrupt (sha256 mismatch at {blob})" if corrupt else "is not cached"
        raise OfflineError(f"Offline, and {what} ({rel}, sha256 {want[:12]}…) {state}. Pull it once online.")
    with tempfile.TemporaryDirectory() as spare:
        if _writable(blob.parent):
            remove_stale_temps(blob.parent)  # what killed downloads left behind
            blob.unlink(missing_ok=True)  # a corrupted cache entry: replaced below
        else:
            blob = Path(spare) / blob.name
        try:
            path = remote.fetch(rel, rec["size"], blob)
        except UnreachableError as e:
            raise UnreachableError(f"{e} {what} is not in the cache either, so it cannot stand in.") from None
        data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        if Path(path) == blob:
            blob.unlink(missing_ok=True)
        raise RegistryError(f"{remote.name}: {rel} has sha256 {got[:12]}…, the index lists {want[:12]}…; refused.")
    return data


def pull(
    name: str,
    model: str | None = None,
    source: str | os.PathLike[str] | None = None,
    layers: list[int] | None = None,
    *,
    offline: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
    progress: bool = True,
) -> SteeringVector:
    """Download (or serve from the cache) the vector ``name`` for ``model`` from ``source``.

    ``source`` defaults to ``$STEERING_REGISTRY``. Files are verified against the index's sha256.
    ``timeout`` bounds each socket operation; ``deadline`` each file's total time (default: 60 s, or
    more for files over 3.75 MiB at 64 KiB/s).
    """
    source = resolve(source)
    offline = is_offline() if offline is None else offline
    if not is_remote(source):
        return Registry(source).load(name, model=model, layers=layers)
    entry = find_entry(fetch_index(source, offline=offline, timeout=timeout, deadline=deadline), name, model, source)
    remote = open_source(source, offline=offline, timeout=timeout, deadline=deadline, progress=progress)
    parts = []
    for layer in select_layers(entry, layers):
        what = f"layer {layer} of {name!r}"
        data = cached_file(remote, entry["files"][str(layer)], ".safetensors", offline, what)
        parts.append(layer_vector(data, layer, f"{source}: {what}"))
    return merge_layers(parts)


def pull_card(
    name: str,
    model: str | None = None,
    source: str | os.PathLike[str] | None = None,
    *,
    offline: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> str | None:
    """The card (markdown) of a published entry, verified like its files; ``None`` if it has none."""
    source = resolve(source)
    offline = is_offline() if offline is None else offline
    if not is_remote(source):
        return Registry(source).card(name, model=model)
    entry = find_entry(fetch_index(source, offline=offline, timeout=timeout), name, model, source, kind=None)
    if not entry.get("card"):
        return None
    remote = open_source(source, offline=offline, timeout=timeout)
    data = cached_file(remote, entry["card"], ".md", offline, f"the card of {name!r}")
    return data.decode("utf-8", errors="replace")


__all__ = ["VECTOR", "StaleCacheWarning", "cached_file", "fetch_index", "pull", "pull_card"]
