"""Pulling under faults (docs/reliability.md): deadlines, stalls, caps, cache fallback — a real loopback server."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch
from servers import serve

from steering import Registry, SteeringVector
from steering.errors import DownloadError, OfflineError, RegistryError, VectorFileError
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


def test_a_server_trickling_its_headers_hits_the_total_deadline(remote):
    """The deadline covers the whole request: status line and headers too, not only the body."""
    server, _, _ = remote
    server.faults["index.json"] = "trickle_headers"  # ~1,800 header bytes, one every 50 ms: 90 s in all
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"deadline=2s"):
        pull("x", source=server.url, timeout=1, deadline=2.0, progress=False)
    assert time.monotonic() - start < 5


def test_the_index_cannot_lift_the_hard_cap_on_one_file(remote, monkeypatch):
    server, entry, _ = remote
    index = json.loads((server.root / "index.json").read_text())
    index["entries"][0]["files"]["1"]["size"] = 10**13  # the index asks for 10 TB (and a 4.8-year deadline)
    (server.root / "index.json").write_text(json.dumps(index))
    with pytest.raises(VectorFileError, match=r"over the 268435456-byte cap.*STEERING_MAX_FILE_BYTES"):
        pull("x", source=server.url, progress=False)
    assert entry.files["1"]["path"] not in server.requests  # refused before a byte was asked for
    monkeypatch.setenv("STEERING_MAX_FILE_BYTES", "100")
    index["entries"][0]["files"]["1"]["size"] = entry.files["1"]["size"]
    (server.root / "index.json").write_text(json.dumps(index))
    with pytest.raises(VectorFileError, match="over the 100-byte cap"):
        pull("x", source=server.url, progress=False)


@pytest.mark.parametrize("fault", [(500, 1, None), (503, 2, None), (429, 1, 1)])
def test_transient_server_errors_are_retried(remote, fault):
    server, _, _ = remote
    server.faults["index.json"] = fault
    start = time.monotonic()
    assert pull("x", source=server.url, progress=False).layers == [1, 2]
    assert server.requests.count("index.json") == fault[1] + 1
    if fault[2] is not None:
        assert time.monotonic() - start >= fault[2]  # Retry-After honoured


@pytest.mark.parametrize("code", [500, 429])
def test_a_server_that_keeps_failing_falls_back_to_the_cache(remote, code):
    server, _, _ = remote
    pull("x", source=server.url, progress=False)
    server.faults["index.json"] = (code, 99, None)
    with pytest.warns(StaleCacheWarning, match=f"HTTP {code}"):
        assert pull("x", source=server.url, progress=False).layers == [1, 2]


def test_a_retry_after_past_the_deadline_is_not_waited_for(remote):
    server, _, _ = remote
    server.faults["index.json"] = (429, 1, 3600)
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"HTTP 429.*Retry-After 3600s"):
        pull("x", source=server.url, deadline=5, progress=False)
    assert time.monotonic() - start < 3


def test_credentials_in_a_source_url_are_never_shown(remote):
    server, _, _ = remote
    url = server.url.replace("http://", "http://alice:hunter2@") + "/nowhere"
    with pytest.raises((DownloadError, RegistryError)) as info:
        pull("x", source=url, progress=False)
    assert "hunter2" not in str(info.value) and "alice" not in str(info.value) and "***@" in str(info.value)
    with pytest.raises(OfflineError) as info:  # a message built from the source's name, not a download
        pull("x", source=url, offline=True)
    assert "hunter2" not in str(info.value) and "***@" in str(info.value), info.value


def test_an_unwritable_cache_falls_back_to_an_uncached_pull(remote, monkeypatch, tmp_path):
    """A cache that cannot be written (read-only filesystem; here a path under a file, which fails even
    for root) does not fail the pull: it runs uncached, with a warning naming STEERING_CACHE."""
    server, _, _ = remote
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("STEERING_CACHE", str(tmp_path / "a-file" / "cache"))
    with pytest.warns(UserWarning, match="STEERING_CACHE"):
        assert pull("x", source=server.url, progress=False).layers == [1, 2]


def test_only_http_redirects_are_followed(remote):
    server, _, _ = remote
    server.faults["index.json"] = f"redirect:{server.url}/moved/index.json"  # http: followed
    (server.root / "moved").mkdir()
    (server.root / "moved" / "index.json").write_bytes((server.root / "index.json").read_bytes())
    assert pull("x", source=server.url, progress=False).layers == [1, 2]
    server.faults["index.json"] = "redirect:ftp://127.0.0.1:9/index.json"  # outside our deadline and caps
    with pytest.raises(DownloadError, match="only http"):
        pull("x", source=server.url, progress=False, offline=False, timeout=2)
