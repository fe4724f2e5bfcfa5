"""The package's shape: public names, aliases of moved modules, what the wheel holds, no private imports."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import steering

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "notebooks").glob("*.ipynb"))]


def documented_names() -> set[str]:
    """Every ``steering.x.y`` and ``from steering.x import a, b`` the README, docs and notebooks use."""
    names: set[str] = set()
    for page in PAGES:
        text = page.read_text()
        for m in re.finditer(r"from (steering(?:\.\w+)*) import ([\w, ()\\n]+)", text):
            for name in re.findall(r"\w+", m[2].replace("\\n", " ")):
                names.add(f"{m[1]}.{name}")
        names.update(re.findall(r"(?<![\w.])steering(?:\.[A-Za-z_]\w*)+", text))
    return {n for n in names if not n.startswith("steering.metadata")}  # a GGUF key, not a module


def resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def test_every_name_the_docs_use_imports():
    names = documented_names()
    assert len(names) > 40, names
    missing = []
    for name in sorted(names):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            missing.append(name)
    assert not missing, missing


@pytest.mark.parametrize(
    "old, names",
    [
        ("steering.hub", ["pull", "fetch_index", "pull_card", "cache_dir", "is_offline"]),
        ("steering.publish", ["push"]),
        ("steering.builder", ["build_pairs", "save_pairs"]),
        ("steering.generation", ["generate", "Generation"]),
        ("steering.sweep", ["sweep", "plot_sweep"]),
        ("steering.projection", ["project", "plot_projection"]),
        ("steering.remote", ["generate", "SCOPES"]),
        ("steering.condition_fit", ["fit_condition", "best_threshold"]),
        ("steering.conditions", ["Condition", "fit_condition"]),
        ("steering.registry", ["Registry", "pull", "push", "model_slug", "safe_relpath", "sha256_file"]),
        ("steering.softcot", ["SoftThoughts", "soft_thoughts", "train_soft_thoughts", "save_soft_thoughts"]),
    ],
)
def test_moved_modules_keep_their_old_import_paths(old, names):
    module = importlib.import_module(old)
    for name in names:
        assert getattr(module, name) is not None


def test_public_api_is_small_and_declared():
    assert len(steering.__all__) <= 25
    for name in steering.__all__:
        assert getattr(steering, name) is not None
    assert steering.push is steering.registry.push and steering.save_pairs is steering.pairs.save_pairs
    importlib.import_module("steering.sweep")  # the alias module must not shadow the function
    assert callable(steering.sweep) and callable(steering.build_pairs) and callable(steering.extract)


def test_no_private_name_is_imported_across_modules():
    offenders = []
    for path in [*(ROOT / "steering").rglob("*.py"), *(ROOT / "tests").glob("*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            ours = isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("steering"))
            if ours:
                offenders += [
                    f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_") and a.name != "__version__"
                ]
    assert offenders == []


def test_the_library_reads_no_file_outside_the_package():
    """Installed, a module cannot reach the checkout: no ``parents[n]`` paths out of ``steering/``."""
    hits = [
        f"{p.relative_to(ROOT)}"
        for p in (ROOT / "steering").rglob("*.py")
        if re.search(r"__file__.*(parents\[[1-9]\]|parent\.parent)", p.read_text())
    ]
    assert hits == []


def test_wheel_holds_the_library_and_the_demo_not_the_experiments(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), ROOT],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("steering-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "steering/demo/model/model.safetensors" in names and "steering/registry/pull.py" in names
    assert not [n for n in names if n.startswith(("experiments/", "tests/")) or "quality.py" in n]
    # Installed away from the checkout, the demo's job and report import and find their model.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "import steering.demo.main as m, steering.demo.report; print(m.MODEL_DIR.is_dir())"
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.stdout.strip() == "True", run.stderr[-2000:]


def test_lock_files_are_not_tracked():
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT).stdout.split()
    assert not [t for t in tracked if t.endswith(".index.lock")]


def test_importing_the_lens_adapter_does_not_patch_transformer_lens():
    code = (
        "import steering.backends.lens as l; "
        "from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge as A; "
        "print(getattr(A._update_kv_cache, '_steering_cache_fix', False))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_every_backend_module_implements_the_protocol():
    from steering.backends import base, hf, lens, nnsight

    wanted = [n for n in dir(base.Backend) if not n.startswith("_")] + ["NAME"]
    for module in (hf, lens, nnsight):
        missing = [n for n in wanted if not hasattr(module, n)]
        assert not missing, (module.__name__, missing)


def test_an_optional_dependency_that_is_missing_names_its_extra():
    """scikit-learn (probe) and gguf are extras; without them the feature says what to install."""
    code = (
        "import sys; sys.modules['sklearn'] = None; sys.modules['gguf'] = None\n"
        "import torch, steering\n"
        "from steering.aggregate import probe\n"
        "from steering.errors import MissingDependencyError\n"
        "from steering.interop import export_gguf\n"
        "for f in (lambda: probe()(torch.ones(2, 3), torch.zeros(2, 3)),\n"
        "          lambda: export_gguf(steering.SteeringVector({1: torch.ones(3)}), 'x.gguf')):\n"
        "    try:\n"
        "        f()\n"
        "    except MissingDependencyError as e:\n"
        "        print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "pip install 'steering[probe]'" in out.stdout and "pip install 'steering[gguf]'" in out.stdout, out
