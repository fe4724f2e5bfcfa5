"""Downloads against a real server on loopback; faults injected server-side, nothing mocked."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from servers import serve

from steering import SteeringVector, pull
from steering.errors import DownloadError, OfflineError, RegistryError, VectorNotFoundError
from steering.registry import Registry, sha256_file

LAYER1 = ""  # the path of layer 1's file (content-addressed), set by the fixture


@pytest.fixture
def published(tmp_path, monkeypatch):
    global LAYER1
    monkeypatch.setenv("STEERING_CACHE", str(tmp_path / "cache"))
    for var in ("STEERING_OFFLINE", "HF_HUB_OFFLINE", "STEERING_REGISTRY"):
        monkeypatch.delenv(var, raising=False)
    vec = SteeringVector({1: torch.arange(8.0), 2: torch.ones(8)}, {"model": "org/tiny", "hidden_size": 8})
    entry = Registry(tmp_path / "remote").save(vec, name="concise", card="card")
    LAYER1 = entry.files["1"]["path"]
    with serve(tmp_path / "remote") as server:
        yield server, vec, tmp_path / "cache"


def blobs(cache):
    d = cache / "blobs"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_pull_over_http_then_offline_from_cache(published):
    server, vec, cache = published
    got = pull("concise", model="org/tiny", source=f"{server.url}/index.json", progress=False)
    assert got.layers == [1, 2] and torch.equal(got.directions[1], vec.directions[1])
    assert len(blobs(cache)) == 2
    n = len(server.requests)
    again = pull("concise", source=server.url, progress=False)  # folder URL works too
    assert torch.equal(again.directions[2], vec.directions[2])
    assert len(server.requests) == n + 1  # only the index was fetched; files came from the cache
    server.shutdown()  # no network at all now
    off = pull("concise", source=server.url, offline=True)
    assert torch.equal(off.directions[1], vec.directions[1])


def test_offline_env_var_and_missing_cache_entry(published, monkeypatch):
    server, _, cache = published
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="no index"):
        pull("concise", source=server.url)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    pull("concise", source=server.url, layers=[1], progress=False)
    with pytest.raises(OfflineError, match="layer 2"):
        pull("concise", source=server.url, layers=[2], offline=True)
    assert server.requests.count("index.json") == 1


@pytest.mark.parametrize(
    "fault, error, match",
    [
        (404, DownloadError, "HTTP 404"),
        (500, DownloadError, "HTTP 500"),
        ("wrong", RegistryError, "sha256"),
        ("drop", DownloadError, "bytes|broke"),
        ("big", DownloadError, "more than"),
    ],
)
def test_faulty_file_downloads_fail_cleanly(published, fault, error, match):
    server, _, cache = published
    server.faults[LAYER1] = fault
    with pytest.raises(error, match=match):
        pull("concise", source=server.url, progress=False)
    assert all(not name.startswith(".") for name in blobs(cache))  # no temp files
    for name in blobs(cache):  # whatever is cached is good
        assert sha256_file(cache / "blobs" / name) == name.split(".")[0]
    server.faults.clear()
    assert pull("concise", source=server.url, progress=False).layers == [1, 2]


def test_slow_server_times_out(published):
    server, _, cache = published
    server.faults[LAYER1] = "slow"
    server.slow_seconds = 2.0
    with pytest.raises(DownloadError, match=r"stopped sending for timeout=0\.3s"):
        pull("concise", source=server.url, timeout=0.3, progress=False)
    assert len(blobs(cache)) <= 1  # layer 2 may be cached; layer 1 is not, and no temp file is left


def test_index_faults(published):
    server, _, _ = published
    server.faults["index.json"] = 500
    with pytest.raises(DownloadError, match="500"):
        pull("concise", source=server.url)
    server.faults["index.json"] = "wrong"
    with pytest.raises(RegistryError, match="index"):
        pull("concise", source=server.url)
    server.faults.clear()
    with pytest.raises(VectorNotFoundError, match="concise"):
        pull("consice", source=server.url)


def test_connection_refused(published):
    server, _, _ = published
    url = server.url
    server.shutdown()
    server.server_close()
    with pytest.raises(DownloadError, match="could not connect"):
        pull("concise", source=url, timeout=2)


def test_corrupted_cache_entry_is_replaced(published):
    server, vec, cache = published
    pull("concise", source=server.url, progress=False)
    for name in blobs(cache):
        (cache / "blobs" / name).write_bytes(b"garbage")
    got = pull("concise", source=server.url, progress=False)
    assert torch.equal(got.directions[1], vec.directions[1])


def test_two_processes_pulling_at_once_both_get_a_good_file(published):
    server, vec, cache = published
    code = (
        "import steering, sys; v = steering.pull('concise', source=sys.argv[1], progress=False);"
        "print(float(v.directions[1].sum()))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, server.url], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == [str(float(vec.directions[1].sum()))] * 2
    assert len(blobs(cache)) == 2


def test_hub_source_through_huggingface_hub(published, tmp_path, monkeypatch):
    server, vec, _ = published
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    got = pull("concise", source="hf://org/vectors@main", progress=False)
    assert torch.equal(got.directions[1], vec.directions[1])
    assert any(r.endswith(LAYER1) for r in server.requests)
    server.faults[LAYER1] = "wrong"  # the Hub path is verified too
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache-2"))
    with pytest.raises(RegistryError, match="sha256"):
        pull("concise", source="hf://org/vectors", progress=False)


def test_local_folder_source_and_missing_source(published, tmp_path, monkeypatch):
    _, vec, _ = published
    got = pull("concise", source=tmp_path / "remote")
    assert torch.equal(got.directions[2], vec.directions[2])
    with pytest.raises(RegistryError, match="STEERING_REGISTRY"):
        pull("concise")
    monkeypatch.setenv("STEERING_REGISTRY", str(tmp_path / "remote"))
    assert pull("concise").layers == [1, 2]


def test_push_to_a_hub_repository_then_pull_it_back(tmp_path, monkeypatch):
    from steering.registry import push

    monkeypatch.setenv("STEERING_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_for_loopback")
    (tmp_path / "repo").mkdir()
    a = SteeringVector({1: torch.arange(8.0)}, {"model": "org/tiny", "hidden_size": 8})
    b = SteeringVector({2: torch.ones(8)}, {"model": "org/tiny", "hidden_size": 8})
    with serve(tmp_path / "repo") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        push(a, "first", "hf://org/vectors", card="# first")  # creates the registry
        push(b, "second", "hf://org/vectors")  # keeps the first entry
        assert server.commits == 2
        assert [e.name for e in Registry(tmp_path / "repo").entries()] == ["first", "second"]
        got = pull("first", source="hf://org/vectors", progress=False)
        assert torch.equal(got.directions[1], a.directions[1])
        with pytest.raises(RegistryError, match="overwrite"):
            push(a, "first", "hf://org/vectors")
        server.faults["commit"] = 403
        with pytest.raises(DownloadError, match="refused"):
            push(a, "third", "hf://org/vectors")
