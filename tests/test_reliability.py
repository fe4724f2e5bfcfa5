"""The guarantees in docs/reliability.md, each against real processes, real files and a real loopback server."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch
from conftest import make_model, make_tokenizer
from servers import serve

import steering
from steering import Registry, SteeringVector
from steering.errors import (
    DegenerateVectorError,
    DownloadError,
    InvalidArgumentError,
    OfflineError,
    RegistryError,
    ShapeMismatchError,
    VectorFileError,
)
from steering.registry import StaleCacheWarning, pull

ROOT = Path(__file__).resolve().parents[1]


def vec(seed: int = 0, layers=(1, 2), model="org/tiny", **meta) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    return SteeringVector({la: torch.randn(64, generator=g) for la in layers}, {"model": model, **meta})


def python(code: str, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env, **kw)


WRITER = """
    import sys, torch
    from steering import Registry, SteeringVector
    reg, i = Registry(sys.argv[1]), 0
    print("ready", flush=True)
    while True:
        i += 1
        g = torch.Generator().manual_seed(i)
        v = SteeringVector({la: torch.randn(64, generator=g) for la in (1, 2)}, {"model": "org/tiny", "step": i})
        reg.save(v, "x", overwrite=True, card=f"version {i}")
"""


# --- atomicity -------------------------------------------------------------------------------------


def test_an_overwrite_survives_sigkill_at_any_instant(tmp_path):
    """A writer overwriting one entry in a loop is SIGKILLed at random instants: the entry always loads."""
    reg = Registry(tmp_path)
    reg.save(vec(), "x", card="version 0")
    rng = random.Random(0)
    unloadable = 0
    trials = 12
    for _ in range(trials):
        p = python(WRITER, str(tmp_path), stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        p.send_signal(signal.SIGKILL)
        p.wait()
        try:
            got = reg.load("x")
            assert got.layers == [1, 2] and reg.card("x").startswith("version")
        except Exception:
            unloadable += 1
    assert unloadable == 0, f"{unloadable} of {trials} kills left the entry unloadable"
    leftovers = [p.name for p in tmp_path.rglob(".*.tmp")]
    reg.save(vec(9), "y")  # the next write clears what killed writers left
    assert not list(tmp_path.rglob(".*.tmp")), leftovers
    listed = {r["path"] for e in reg.entries() for r in [*e.files.values(), e.card or {"path": ""}]}
    on_disk = {p.relative_to(tmp_path).as_posix() for p in (tmp_path / "org--tiny" / "y").iterdir()}
    assert on_disk <= listed


def test_readers_never_see_a_half_written_overwrite(tmp_path):
    """A reader process loads in a loop while a writer process overwrites: no load ever fails."""
    reg = Registry(tmp_path)
    reg.save(vec(), "x")
    writer = python(WRITER, str(tmp_path), stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    reader = python(
        """
        import sys, time
        from steering import Registry
        reg, ok, bad, end = Registry(sys.argv[1]), 0, 0, time.time() + 4
        while time.time() < end:
            try:
                assert reg.load("x").layers == [1, 2]
                ok += 1
            except Exception as e:
                bad += 1
                print(repr(e), file=sys.stderr)
        print(ok, bad)
        """,
        str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = reader.communicate(timeout=60)
    writer.kill()
    writer.wait()
    ok, bad = map(int, out.split())
    steps = reg.load("x").metadata["step"]
    assert bad == 0, err[-2000:]
    assert ok > 20 and steps > 5, (ok, steps)  # both really ran concurrently


# --- files -----------------------------------------------------------------------------------------


def test_files_get_the_permissions_open_would_give(tmp_path):
    """Under umask 022 every file the library writes is 0644 (temp files are created 0600)."""
    p = python(
        """
        import os, sys, torch
        os.umask(0o022)
        from steering import Registry, SteeringVector
        v = SteeringVector({1: torch.ones(4)}, {"model": "org/tiny"})
        v.save(sys.argv[1] + "/v.safetensors")
        Registry(sys.argv[1] + "/reg").save(v, "x", card="c")
        """,
        str(tmp_path),
    )
    assert p.wait(timeout=120) == 0
    files = [f for f in tmp_path.rglob("*") if f.is_file() and f.name != ".index.lock"]
    assert len(files) == 4
    modes = {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files}
    assert set(modes.values()) == {"0o644"}, modes


def test_a_listed_file_holding_another_layer_is_refused(tmp_path):
    reg = Registry(tmp_path)
    reg.save(vec(), "x")
    index = json.loads((tmp_path / "index.json").read_text())
    index["entries"][0]["files"]["2"] = index["entries"][0]["files"]["1"]  # sha256 and size still match
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(RegistryError, match=r"listed for layer 2 holds layer\(s\) \[1\]"):
        reg.load("x", layers=[2])


def test_a_card_tampered_on_disk_is_refused(tmp_path):
    reg = Registry(tmp_path)
    entry = reg.save(vec(), "x", card="# honest card")
    (tmp_path / entry.card["path"]).write_text("# tampered")
    with pytest.raises(RegistryError, match="sha256"):
        reg.card("x")
    from steering.cli import main

    assert main(["show", "x", "--registry", str(tmp_path)]) == 2


def test_registry_paths_and_names_are_checked(tmp_path):
    reg = Registry(tmp_path / "reg")
    for model in ("a/", "/a", "a//b", "a/b/c"):
        with pytest.raises(RegistryError, match="model id"):
            reg.save(vec(), "x", model=model)
    for name in ("CON", "nul", "com1.txt", "LPT9"):
        with pytest.raises(RegistryError, match="reserved"):
            reg.save(vec(), name)
    with pytest.raises(InvalidArgumentError, match="finite number"):
        reg.save(vec(), "x", recommended_strength="abc")  # type: ignore[arg-type]
    reg.save(vec(), "x")
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        reg.load("x", layers=[])
    with pytest.raises(RegistryError, match="does not exist"):
        Registry(tmp_path / "missing").entries()
    (tmp_path / "file").write_text("")
    with pytest.raises(RegistryError, match="is a file"):
        Registry(tmp_path / "file").entries()


# --- downloads -------------------------------------------------------------------------------------


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


# --- degenerate input -------------------------------------------------------------------------------


def test_degenerate_vectors_and_headers_are_refused(tmp_path):
    from safetensors.torch import save_file

    from steering.calibrate import strength_for_norm

    zero = SteeringVector({1: torch.zeros(8)}, {"diagnostics": {"1": {"typical_resid_norm": 5.0}}})
    with pytest.raises(DegenerateVectorError, match="no direction"):
        strength_for_norm(zero, 0.25)  # it used to recommend 1.1e13
    with pytest.raises(ShapeMismatchError, match="non-empty"):
        SteeringVector({1: torch.zeros(0)})
    save_file(
        {"blocks.1.hook_resid_post": torch.ones(3)},
        tmp_path / "list.safetensors",
        metadata={"format": "steering.vector", "format_version": "1", "metadata": "[1, 2]"},
    )
    with pytest.raises(VectorFileError, match="JSON list"):
        SteeringVector.load(tmp_path / "list.safetensors")
    with pytest.raises(VectorFileError, match="pickle"):
        vec().save(tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_strength_overflow_is_refused_not_silently_nan():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    v = SteeringVector({1: torch.ones(32)})
    with pytest.raises(InvalidArgumentError, match="overflows"):
        with steering.steer(model, v, 1e308):
            pass
    half = model.to(torch.float16)
    with pytest.raises(InvalidArgumentError, match=r"overflows torch\.float16"), torch.no_grad():
        with steering.steer(half, v, 1e6):
            half(torch.tensor([[1, 5, 6]]))


def test_vector_arithmetic_keeps_the_pinning_and_blames_the_right_operand():
    pinned = vec(model="org/tiny", fingerprint="aaaa", n_layers=4)
    bare = SteeringVector({1: torch.ones(64)})
    assert (bare + pinned).metadata["fingerprint"] == "aaaa" and (bare + pinned).metadata["model"] == "org/tiny"
    with pytest.raises(ShapeMismatchError, match="fingerprint"):
        pinned + vec(1, model="org/tiny", fingerprint="bbbb")
    with pytest.raises(InvalidArgumentError, match="nan"):
        pinned * float("nan")
    withdiag = pinned.with_metadata(diagnostics={"1": {"norm": 1.0, "typical_resid_norm": 9.0}, "2": {"norm": 1.0}})
    doubled = 2 * withdiag
    assert doubled.metadata["diagnostics"]["1"]["norm"] == pytest.approx(2 * float(withdiag.directions[1].norm()))
    assert doubled.metadata["diagnostics"]["1"]["typical_resid_norm"] == 9.0


# --- threads -------------------------------------------------------------------------------------------


def test_steering_acts_only_in_the_thread_that_entered_the_block():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    v = SteeringVector({1: 5 * torch.ones(32)}, {"n_layers": 3})
    x = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        plain = model(x).logits
        with steering.steer(model, v, 1.0):
            steered = model(x).logits
    other: list[torch.Tensor] = []
    inside, release = threading.Event(), threading.Event()

    def elsewhere() -> None:
        inside.wait(10)
        with torch.no_grad():
            other.append(model(x).logits)
        release.set()

    t = threading.Thread(target=elsewhere)
    t.start()
    with torch.no_grad(), steering.steer(model, v, 1.0):
        inside.set()
        release.wait(10)
        mine = model(x).logits
    t.join()
    assert not torch.equal(plain, steered)
    assert torch.equal(other[0], plain) and torch.equal(mine, steered)
    # attach() is for servers: it steers every thread until removed.
    handle = steering.attach(model, v, 1.0)
    try:
        out: list[torch.Tensor] = []
        worker = threading.Thread(target=lambda: out.append(model(x).logits.detach()))
        worker.start()
        worker.join()
        assert torch.equal(out[0], steered)
    finally:
        handle.remove()
    with torch.no_grad():
        assert torch.equal(model(x).logits, plain)
    warnings.simplefilter("default")
