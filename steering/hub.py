"""Pull shared vectors by name from remote registries, verified and cached for offline use.

Sources: a local registry folder, a static HTTPS registry (any server with the ``vectors/``
layout; give the folder URL or its ``index.json``), or ``hf://org/repo[@revision]`` on the
Hugging Face Hub (through ``huggingface_hub``: its cache, ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE``).
Every file's sha256 is checked against the index before it is used; nothing is unpickled.

Cache: ``$STEERING_CACHE``, default ``$HF_HOME/steering`` (``~/.cache/huggingface/steering``):
``blobs/<sha256>.safetensors`` and ``indexes/<source hash>.json`` (the last index fetched from
each source). Offline (``offline=True``, ``STEERING_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) serves the
cache with no network access, or fails naming what is missing.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .atomic import atomic_write, atomic_write_bytes
from .errors import DownloadError, OfflineError, RegistryError
from .registry import Registry, find_entry, merge_layers, parse_index, safe_relpath, select_layers, sha256_file
from .vector import SteeringVector

MAX_INDEX_BYTES = 16 << 20
_TRUE = {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    if os.environ.get("STEERING_CACHE"):
        return Path(os.environ["STEERING_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "steering"


def is_offline() -> bool:
    return any(os.environ.get(k, "").lower() in _TRUE for k in ("STEERING_OFFLINE", "HF_HUB_OFFLINE"))


def _index_url(source: str) -> str:
    return source if source.endswith(".json") else source.rstrip("/") + "/index.json"


def _download(
    url: str,
    max_bytes: int,
    timeout: float,
    dest: Path | None = None,
    expected_size: int | None = None,
    progress: bool = False,
) -> bytes | None:
    """GET ``url`` into memory, or atomically into ``dest``; refuse more than ``max_bytes``."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{url}: the server answered HTTP {e.code} {e.reason}.") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(
            f"{url}: could not connect ({reason}). Check the source URL, or use offline=True."
        ) from None
    with response:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise DownloadError(f"{url}: the server offers {length} bytes, more than the {max_bytes} expected.")

        def read_into(write: Any) -> int:
            from tqdm.auto import tqdm

            total = 0
            with tqdm(
                total=expected_size,
                unit="B",
                unit_scale=True,
                desc=url.rsplit("/", 1)[-1],
                disable=not progress,
                leave=False,
            ) as bar:
                while True:
                    try:
                        block = response.read(1 << 16)
                    except TimeoutError:
                        raise DownloadError(f"{url}: timed out after {timeout}s mid-download.") from None
                    except OSError as e:  # connection reset, incomplete read
                        raise DownloadError(f"{url}: the connection broke mid-download ({e}).") from None
                    if not block:
                        return total
                    total += len(block)
                    if total > max_bytes:
                        raise DownloadError(f"{url}: more than the {max_bytes} bytes the index lists; refused.")
                    write(block)
                    bar.update(len(block))

        if dest is None:
            chunks: list[bytes] = []
            read_into(chunks.append)
            return b"".join(chunks)

        def write_file(tmp: str) -> None:
            with open(tmp, "wb") as f:
                n = read_into(f.write)
            if expected_size is not None and n != expected_size:
                raise DownloadError(f"{url}: got {n} bytes, the index lists {expected_size} (truncated?).")

        atomic_write(dest, write_file)
        return None


class _HttpSource:
    def __init__(self, url: str, timeout: float, progress: bool) -> None:
        if not url.startswith(("https://", "http://")):
            raise RegistryError(f"Unsupported source {url!r}.")
        self.url, self.timeout, self.progress = _index_url(url), timeout, progress
        self.base = self.url.rsplit("/", 1)[0]

    def index(self) -> bytes:
        data = _download(self.url, MAX_INDEX_BYTES, self.timeout)
        return data or b""

    def fetch(self, rel: str, size: int, dest: Path) -> Path:
        _download(f"{self.base}/{rel}", size, self.timeout, dest=dest, expected_size=size, progress=self.progress)
        return dest


class _HubSource:
    def __init__(self, spec: str, offline: bool) -> None:
        repo, _, revision = spec[len("hf://") :].partition("@")
        if repo.count("/") != 1:
            raise RegistryError(f"Hub sources look like 'hf://org/repo[@revision]', got {spec!r}.")
        self.repo, self.revision, self.offline = repo, revision or None, offline

    def _get(self, filename: str) -> Path:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            # HF_ENDPOINT / HF_HUB_CACHE are read now, not when huggingface_hub was first imported.
            return Path(
                hf_hub_download(
                    self.repo,
                    filename,
                    revision=self.revision,
                    local_files_only=self.offline,
                    endpoint=os.environ.get("HF_ENDPOINT") or None,
                    cache_dir=os.environ.get("HF_HUB_CACHE") or None,
                )
            )
        except LocalEntryNotFoundError as e:
            if self.offline:
                raise OfflineError(
                    f"hf://{self.repo}: {filename} is not in the Hub cache and offline mode is on."
                ) from None
            raise DownloadError(f"hf://{self.repo}: could not download {filename} ({e}).") from None
        except HfHubHTTPError as e:
            raise DownloadError(f"hf://{self.repo}: could not download {filename} ({e}).") from None

    def index(self) -> bytes:
        return self._get("index.json").read_bytes()

    def fetch(self, rel: str, size: int, dest: Path) -> Path:
        return self._get(rel)


def _source(source: str | os.PathLike[str] | None) -> str:
    source = source if source is not None else os.environ.get("STEERING_REGISTRY")
    if source is None:
        raise RegistryError(
            "No source given: pass source='https://.../index.json', 'hf://org/repo' or a folder, "
            "or set STEERING_REGISTRY."
        )
    return str(source)


def _is_remote(source: str) -> bool:
    return source.startswith(("http://", "https://", "hf://"))


def _remote(source: str, offline: bool, timeout: float, progress: bool) -> Any:
    return _HubSource(source, offline) if source.startswith("hf://") else _HttpSource(source, timeout, progress)


def fetch_index(
    source: str | os.PathLike[str] | None = None, *, offline: bool | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """The validated ``index.json`` of ``source`` (from the cache when offline)."""
    source = _source(source)
    offline = is_offline() if offline is None else offline
    if not _is_remote(source):
        return Registry(source).index()
    if source.startswith("hf://"):
        return parse_index(_remote(source, offline, timeout, False).index(), source)
    cached = cache_dir() / "indexes" / f"{hashlib.sha256(source.encode()).hexdigest()[:24]}.json"
    if offline:
        if not cached.is_file():
            raise OfflineError(
                f"Offline, and no index from {source} is cached (looked in {cached}). Pull once online first."
            )
        return parse_index(cached.read_bytes(), f"cached index of {source}")
    raw = _remote(source, offline, timeout, False).index()
    index = parse_index(raw, source)
    atomic_write_bytes(cached, raw)
    return index


def _verified(remote: Any, source: str, rec: dict[str, Any], suffix: str, offline: bool, what: str) -> Path:
    """A local path to the file ``rec`` names, whose sha256 matches the index (cached by content)."""
    rel, want = safe_relpath(rec["path"]), rec["sha256"]
    blob = cache_dir() / "blobs" / f"{want}{suffix}"
    if blob.is_file() and sha256_file(blob) == want:
        return blob
    if offline and not source.startswith("hf://"):
        raise OfflineError(f"Offline, and {what} ({rel}, sha256 {want[:12]}…) is not cached.")
    blob.unlink(missing_ok=True)  # a stale or corrupted cache entry
    path = remote.fetch(rel, rec["size"], blob)
    got = sha256_file(path)
    if got != want:
        if path == blob:
            blob.unlink(missing_ok=True)
        raise RegistryError(f"{source}: {rel} has sha256 {got[:12]}…, the index lists {want[:12]}…; refused.")
    return Path(path)


def pull(
    name: str,
    model: str | None = None,
    source: str | os.PathLike[str] | None = None,
    layers: list[int] | None = None,
    *,
    offline: bool | None = None,
    timeout: float = 30.0,
    progress: bool = True,
) -> SteeringVector:
    """Download (or serve from the cache) the vector ``name`` for ``model`` from ``source``.

    ``source`` defaults to ``$STEERING_REGISTRY``. Files are verified against the index's sha256.
    """
    source = _source(source)
    offline = is_offline() if offline is None else offline
    if not _is_remote(source):
        return Registry(source).load(name, model=model, layers=layers)
    entry = find_entry(fetch_index(source, offline=offline, timeout=timeout), name, model, source)
    if entry.get("kind", "vector") != "vector":
        raise RegistryError(f"{source}: {name!r} is a {entry['kind']!r} artefact, not a vector (pull fetches vectors).")
    remote = _remote(source, offline, timeout, progress)
    parts = []
    for layer in select_layers(entry, layers):
        what = f"layer {layer} of {name!r}"
        parts.append(
            SteeringVector.load(_verified(remote, source, entry["files"][str(layer)], ".safetensors", offline, what))
        )
    return merge_layers(parts)


def pull_card(
    name: str,
    model: str | None = None,
    source: str | os.PathLike[str] | None = None,
    *,
    offline: bool | None = None,
    timeout: float = 30.0,
) -> str | None:
    """The card (markdown) of a published vector, verified like its files; ``None`` if it has none."""
    source = _source(source)
    offline = is_offline() if offline is None else offline
    if not _is_remote(source):
        return Registry(source).card(name, model=model)
    entry = find_entry(fetch_index(source, offline=offline, timeout=timeout), name, model, source)
    if not entry.get("card"):
        return None
    remote = _remote(source, offline, timeout, False)
    return _verified(remote, source, entry["card"], ".md", offline, f"the card of {name!r}").read_text(encoding="utf-8")
