"""The package's shape: public names, removed paths, the import graph, what the wheel holds, no private imports."""

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


REMOVED = [
    "steering.hub",
    "steering.publish",
    "steering.builder",
    "steering.generation",
    "steering.sweep",
    "steering.projection",
    "steering.remote",
    "steering.condition_fit",
    "steering.backends.nnsight_remote",
]


@pytest.mark.parametrize("old", REMOVED)
def test_removed_alias_modules_are_gone(old):
    """0.2 deleted the alias modules (CHANGELOG.md lists where each name lives now)."""
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


# Layers of the package, lowest first: a module imports only from its own layer or below, so the
# write side never stands on the read side's fitting code and no adapter reaches up into apply.
LAYERS = [
    [
        "_version",
        "errors",
        "atomic",
        "cache",
        "hooks",
        "markers",
        "sites",
        "fileformat",
        "backends.base",
        "backends.inputs",
    ],
    ["backends", "vector", "aggregate", "positions", "models"],
    ["prompts", "pairs", "provenance", "scopes", "scope_json", "tracker", "handle"],
    ["extract", "evaluate", "conditions"],
    ["apply", "build_pairs", "conditions.fit", "registry"],
    ["calibrate", "interop", "softcot"],
    ["cli", "demo", ""],
]


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}`` inside ``steering`` (any import statement, at any depth;
    importing ``a.b.c`` also runs ``a.b``)."""
    files = {}
    for path in (ROOT / "steering").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                name = ".".join(base + ([node.module] if node.module else []))
                found |= {f"{name}.{a.name}" if f"{name}.{a.name}" in files else name for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[mod] = set()
        for target in found & set(files):
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep in files and dep != mod and not mod.startswith(dep + "."):
                    graph[mod].add(dep)
    return graph


def layer_of(module: str) -> int:
    """The layer of a module: its longest listed prefix (``""`` is the package itself); unlisted fails."""
    name = module.removeprefix("steering").removeprefix(".")
    found = [p for row in LAYERS for p in row if name == p or (p and name.startswith(p + "."))]
    assert found, f"{module} is in no layer of LAYERS: add it where it belongs"
    best = max(found, key=len)
    return next(i for i, row in enumerate(LAYERS) if best in row)


def test_the_import_graph_has_no_cycle():
    graph, state, cycles = import_graph(), {}, []

    def visit(mod: str, stack: list[str]) -> None:
        state[mod] = "open"
        for dep in sorted(graph[mod]):
            if state.get(dep) == "open":
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[mod] = "done"

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert cycles == []


def test_the_write_side_does_not_stand_on_the_read_side():
    graph, seen, todo = import_graph(), set(), ["steering.apply"]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    assert not seen & {"steering.extract", "steering.conditions.fit", "steering.evaluate", "steering.registry"}


def test_no_import_runs_back_up_the_layers():
    graph = import_graph()
    upward = [f"{m} -> {d}" for m, deps in graph.items() for d in deps if layer_of(d) > layer_of(m)]
    assert upward == []


def test_public_api_is_small_and_declared():
    assert len(steering.__all__) <= 26
    for name in steering.__all__:
        assert getattr(steering, name) is not None
    assert steering.push is steering.registry.push and steering.save_pairs is steering.pairs.save_pairs
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

    wanted = [n for n in dir(base.Backend) if not n.startswith("_")] + ["NAME", "REMOTE"]
    remote = [n for n in dir(base.RemoteBackend) if not n.startswith("_")]
    for module in (hf, lens, nnsight):
        missing = [n for n in (remote if module.REMOTE else wanted) if not hasattr(module, n)]
        assert not missing, (module.__name__, missing)
    assert [m.NAME for m in (hf, lens, nnsight) if m.REMOTE] == ["nnsight"]


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
