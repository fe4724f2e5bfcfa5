"""Registry reliability (docs/reliability.md): kills, concurrent readers, permissions, tampering, names."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from steering import Registry, SteeringVector
from steering.errors import (
    InvalidArgumentError,
    RegistryError,
)

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


# --- nothing outside the root is written or deleted; orphans are collected --------------------------


@pytest.mark.parametrize("link", ["entry", "model"])
def test_a_symlinked_folder_is_never_written_or_swept_through(tmp_path, link):
    """A cloned registry can carry a symlink: a save used to sweep the link's target (data loss)."""
    reg = Registry(tmp_path / "reg")
    reg.save(vec(), "x")
    outside = tmp_path / "home"
    outside.mkdir()
    (outside / "important.txt").write_text("keep me")
    (outside / "id_rsa").write_text("secret")
    target = tmp_path / "reg" / "org--tiny" / "x" if link == "entry" else tmp_path / "reg" / "org--tiny"
    shutil.rmtree(target)
    target.symlink_to(outside, target_is_directory=True)
    with pytest.raises(RegistryError, match="symbolic link"):
        reg.save(vec(1), "x", overwrite=True)
    if link == "model":  # every entry of that model is behind the link
        with pytest.raises(RegistryError, match="symbolic link"):
            reg.save(vec(1), "y")
    else:  # another entry beside the link saves, and its sweep leaves the link alone
        reg.save(vec(1), "y")
    assert sorted(p.name for p in outside.iterdir()) == ["id_rsa", "important.txt"]
    assert reg.gc() == [] and sorted(p.name for p in outside.iterdir()) == ["id_rsa", "important.txt"]


def test_a_symlinked_lock_or_index_is_refused(tmp_path):
    reg = Registry(tmp_path / "reg")
    reg.save(vec(), "x")
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours")
    (tmp_path / "reg" / ".index.lock").unlink(missing_ok=True)
    (tmp_path / "reg" / ".index.lock").symlink_to(victim)
    with pytest.raises(RegistryError, match="symbolic link"):
        reg.save(vec(1), "y")
    assert victim.read_text() == "not yours"


def test_orphans_of_killed_new_name_saves_are_collected(tmp_path):
    """New-name saves killed mid-way left their layer files behind; the next save collects them."""
    root = tmp_path / "reg"
    Registry(root).save(vec(), "keep")
    writer = """
        import sys, torch
        from steering import Registry, SteeringVector
        reg, i = Registry(sys.argv[1]), 0
        print("ready", flush=True)
        while True:
            i += 1
            v = SteeringVector({la: torch.randn(64) for la in range(1, 9)}, {"model": "org/tiny"})
            reg.save(v, f"n{i}")
    """
    for trial in range(5):
        proc = python(writer, str(root), stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2 + 0.1 * trial)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (root / "org--tiny" / "keep" / "README.md").write_text("a file this library did not write")
    Registry(root).save(vec(2), "last")
    index = json.loads((root / "index.json").read_text())
    listed = {r["path"] for e in index["entries"] for r in [*e["files"].values(), e.get("card") or {"path": ""}]}
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert on_disk - listed == {"index.json", "org--tiny/keep/README.md"}
    assert all(Registry(root).load(e["name"]).layers for e in index["entries"])


def test_a_save_that_fails_on_a_full_disk_leaves_no_file(tmp_path):
    """A real write failure (the file-size limit of the process: EFBIG, as ENOSPC would be) on the card,
    after the layer files were written: the save fails and leaves nothing; listed files stay."""
    reg = Registry(tmp_path / "reg")
    reg.save(vec(), "keep")
    code = """
        import resource, signal, sys, torch
        from steering import Registry, SteeringVector
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        v = SteeringVector({1: torch.ones(4096), 2: torch.ones(4096)}, {"model": "org/tiny"})
        try:
            Registry(sys.argv[1]).save(v, "new", card="x" * 30000)
        except OSError as e:
            print("failed", e.errno)
    """
    out = python(code, str(tmp_path / "reg"), stdout=subprocess.PIPE, text=True).communicate()[0]
    assert out.startswith("failed"), out
    assert not (tmp_path / "reg" / "org--tiny" / "new").exists()
    assert [e.name for e in reg.entries()] == ["keep"] and reg.gc() == [] and reg.load("keep").layers == [1, 2]


def test_a_deeply_nested_index_is_a_registry_error(tmp_path):
    (tmp_path / "index.json").write_text("[" * 100000)
    with pytest.raises(RegistryError, match="nests too deeply"):
        Registry(tmp_path).entries()
