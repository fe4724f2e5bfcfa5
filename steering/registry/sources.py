"""Where registries live, and the environment that configures them — read in this one place.

A source is a local folder, a static HTTP(S) registry (any server with the ``vectors/`` layout: the
folder URL, with or without a trailing ``/`` or ``/index.json``, names the same registry), or
``hf://org/repo[@revision]`` on the Hugging Face Hub (through ``huggingface_hub``: its cache,
``HF_ENDPOINT``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE``).

Environment: ``STEERING_REGISTRY`` (the default source), ``STEERING_CACHE`` (default
``$HF_HOME/steering``: blobs and indexes pulled from HTTP sources), ``STEERING_OFFLINE`` /
``HF_HUB_OFFLINE`` (serve the caches only), ``STEERING_MAX_INDEX_BYTES`` (default 16 MiB).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import DownloadError, OfflineError, RegistryError, UnreachableError
from .download import DEFAULT_TIMEOUT, fetch_bytes, fetch_file, redact

MAX_INDEX_BYTES = 16 << 20
_TRUE = {"1", "true", "yes", "on"}
HUB_PREFIX = "hf://"


def is_offline() -> bool:
    return any(os.environ.get(k, "").lower() in _TRUE for k in ("STEERING_OFFLINE", "HF_HUB_OFFLINE"))


def max_index_bytes() -> int:
    raw = os.environ.get("STEERING_MAX_INDEX_BYTES")
    if raw is None:
        return MAX_INDEX_BYTES
    if not raw.isdigit() or int(raw) == 0:
        raise RegistryError(f"STEERING_MAX_INDEX_BYTES must be a positive number of bytes, got {raw!r}.")
    return int(raw)


def hub_kwargs() -> dict[str, Any]:
    """``HF_ENDPOINT`` / ``HF_HUB_CACHE`` read now, not when huggingface_hub was first imported."""
    return {"endpoint": os.environ.get("HF_ENDPOINT") or None, "cache_dir": os.environ.get("HF_HUB_CACHE") or None}


def resolve(source: str | os.PathLike[str] | None, default: str | None = None) -> str:
    """The source to use: ``source``, else ``$STEERING_REGISTRY``, else ``default``."""
    got = source if source is not None else os.environ.get("STEERING_REGISTRY") or default
    if got is None:
        raise RegistryError(
            "No source given: pass source='https://host/vectors/', 'hf://org/repo' or a folder, "
            "or set STEERING_REGISTRY."
        )
    return str(got)


def is_remote(source: str) -> bool:
    return source.startswith(("http://", "https://", HUB_PREFIX))


@dataclass(frozen=True)
class HubSpec:
    repo: str
    revision: str | None

    @classmethod
    def parse(cls, spec: str) -> HubSpec:
        """``hf://org/repo[@revision]``.

        Examples:
            >>> HubSpec.parse("hf://org/vectors@v1")
            HubSpec(repo='org/vectors', revision='v1')
        """
        repo, _, revision = spec.removeprefix(HUB_PREFIX).partition("@")
        if not spec.startswith(HUB_PREFIX) or repo.count("/") != 1 or not all(repo.split("/")):
            raise RegistryError(f"Hub sources look like 'hf://org/repo[@revision]', got {spec!r}.")
        return cls(repo, revision or None)


def http_base(url: str) -> str:
    """The canonical folder URL of an HTTP registry.

    Examples:
        >>> http_base("https://h/vectors/index.json") == http_base("https://h/vectors/") == "https://h/vectors"
        True
    """
    base = url.removesuffix("/index.json") if url.endswith("/index.json") else url
    return base.rstrip("/")


class Source(Protocol):
    """A remote registry: its index and files by relative path.

    ``caches_itself``: the source keeps its own offline cache (the Hub's); otherwise :mod:`.pull`
    caches the index under :meth:`cache_key` and the files by content.
    """

    name: str
    caches_itself: bool

    def cache_key(self) -> str: ...

    def index(self) -> bytes: ...

    def fetch(self, rel: str, size: int, dest: Path) -> Path: ...


class HttpSource:
    caches_itself = False

    def __init__(self, url: str, timeout: float, deadline: float | None, progress: bool) -> None:
        if not url.startswith(("https://", "http://")):
            raise RegistryError(f"Unsupported source {url!r}.")
        self.base = http_base(url)
        self.name = redact(self.base)  # for messages: never the credentials a URL may carry
        self.timeout, self.deadline, self.progress = timeout, deadline, progress

    def cache_key(self) -> str:
        return hashlib.sha256(self.base.encode()).hexdigest()[:24]

    def index(self) -> bytes:
        return fetch_bytes(
            f"{self.base}/index.json",
            limit=max_index_bytes(),
            limit_name="max_index_bytes (STEERING_MAX_INDEX_BYTES)",
            timeout=self.timeout,
            deadline=self.deadline,
        )

    def fetch(self, rel: str, size: int, dest: Path) -> Path:
        return fetch_file(
            f"{self.base}/{rel}", dest, size=size, timeout=self.timeout, deadline=self.deadline, progress=self.progress
        )


class HubSource:
    caches_itself = True  # huggingface_hub's cache, HF_HUB_OFFLINE

    def __init__(self, spec: str, offline: bool) -> None:
        hub = HubSpec.parse(spec)
        self.name, self.repo, self.revision, self.offline = spec, hub.repo, hub.revision, offline

    def cache_key(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()[:24]

    def _get(self, filename: str) -> Path:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            return Path(
                hf_hub_download(
                    self.repo, filename, revision=self.revision, local_files_only=self.offline, **hub_kwargs()
                )
            )
        except LocalEntryNotFoundError as e:
            if self.offline:
                raise OfflineError(
                    f"hf://{self.repo}: {filename} is not in the Hub cache and offline mode is on."
                ) from None
            raise UnreachableError(f"hf://{self.repo}: could not download {filename} ({e}).") from None
        except HfHubHTTPError as e:
            raise DownloadError(f"hf://{self.repo}: could not download {filename} ({e}).") from None

    def index(self) -> bytes:
        return self._get("index.json").read_bytes()

    def fetch(self, rel: str, size: int, dest: Path) -> Path:
        return self._get(rel)


def open_source(
    source: str,
    *,
    offline: bool,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float | None = None,
    progress: bool = False,
) -> Source:
    if source.startswith(HUB_PREFIX):
        return HubSource(source, offline)
    return HttpSource(source, timeout, deadline, progress)
