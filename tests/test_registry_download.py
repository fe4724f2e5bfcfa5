"""Pulling under faults (docs/reliability.md): deadlines, stalls, caps, cache fallback — a real loopback server."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch
from servers import serve

from steering import Registry, SteeringVector
from steering.errors import (
    DownloadError,
    OfflineError,
)
from steering.registry import StaleCacheWarning, pull

ROOT = Path(__file__).resolve().parents[1]


def vec(seed: int = 0, layers=(1, 2), model="org/tiny", **meta) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    return SteeringVector({la: torch.randn(64, generator=g) for la in layers}, {"model": model, **meta})


@pytest.fixture
def remote(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERING_CACHE", str(tmp_path / "cache"))
    for var in ("STEERING_OFFLINE", "HF_HUB_OFFLINE", "STEERING_REGISTRY", "STEERING_MAX_INDEX_BYTES"):
        monkeypatch.delenv(var, raising=False)
    entry = Registry(tmp_path / "remote").save(vec(), "x")
    with serve(tmp_path / "remote") as server:
        yield server, entry, tmp_path / "cache"


def test_a_trickling_server_hits_the_total_deadline(remote):
    server, entry, _ = remote
    server.faults[entry.files["1"]["path"]] = "trickle"  # a byte every 50 ms: never a read timeout
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"deadline=1s"):
        pull("x", source=server.url, timeout=5, deadline=1.0, progress=False)
    assert time.monotonic() - start < 4


def test_a_stall_before_the_headers_is_not_a_connection_failure(remote):
    server, _, _ = remote
    server.faults["index.json"] = "stall"
    with pytest.raises(DownloadError, match=r"connected, but the server sent no response within timeout=0\.3s"):
        pull("x", source=server.url, timeout=0.3, progress=False)


def test_an_unreachable_server_falls_back_to_the_cache_whatever_the_url_spelling(remote):
    server, _, _ = remote
    pull("x", source=f"{server.url}/", progress=False)
    url = server.url
    server.shutdown()
    server.server_close()
    for spelling in (url, f"{url}/", f"{url}/index.json"):
        with pytest.warns(StaleCacheWarning, match="could not connect"):
            assert pull("x", source=spelling, timeout=2, progress=False).layers == [1, 2]
        assert pull("x", source=spelling, offline=True).layers == [1, 2]


def test_the_index_cap_is_named_and_configurable(remote, monkeypatch):
    server, _, _ = remote
    monkeypatch.setenv("STEERING_MAX_INDEX_BYTES", "100")
    with pytest.raises(DownloadError, match="max_index_bytes"):
        pull("x", source=server.url, progress=False)
    monkeypatch.setenv("STEERING_MAX_INDEX_BYTES", str(1 << 20))
    assert pull("x", source=server.url, progress=False).layers == [1, 2]


def test_a_corrupt_cached_blob_is_named_as_such(remote):
    server, entry, cache = remote
    pull("x", source=server.url, progress=False)
    blob = cache / "blobs" / f"{entry.files['1']['sha256']}.safetensors"
    blob.write_bytes(b"rot")
    with pytest.raises(OfflineError, match="corrupt"):
        pull("x", source=server.url, offline=True)
    assert pull("x", source=server.url, progress=False).layers == [1, 2]  # online: replaced


def test_stale_download_temps_are_cleared_and_fresh_ones_kept(remote):
    server, _, cache = remote
    (cache / "blobs").mkdir(parents=True)
    old, fresh = cache / "blobs" / ".a.safetensors.1.tmp", cache / "blobs" / ".b.safetensors.2.tmp"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    pull("x", source=server.url, progress=False)
    assert not old.exists() and fresh.exists()  # a fresh one may belong to a concurrent pull
