from __future__ import annotations

import json

import pytest
import torch

from steering import SteeringVector
from steering.errors import RegistryError, VectorNotFoundError
from steering.registry import Registry, model_slug
from steering.registry.index import safe_relpath


def vec(model="org/tiny", layers=(1, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    return SteeringVector(
        {la: torch.randn(8, generator=g) for la in layers},
        {"model": model, "hidden_size": 8, "n_layers": 4, "method": "mean_diff", "position": "last"},
    )


def test_save_writes_layout_index_and_card(tmp_path):
    reg = Registry(tmp_path)
    entry = reg.save(vec(), name="concise-cot", card="# concise\n", recommended_strength=4.0)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files[:2] == [".index.lock", "index.json"] and len(files) == 5
    # Content-addressed names: the file's own sha256 (first 16 hex digits) is in its name.
    for key, stem in (("1", "layer-1"), ("3", "layer-3")):
        rec = entry.files[key]
        assert rec["path"] == f"org--tiny/concise-cot/{stem}.{rec['sha256'][:16]}.safetensors"
    assert entry.card["path"] == f"org--tiny/concise-cot/card.{entry.card['sha256'][:16]}.md"
    assert sorted([*(r["path"] for r in entry.files.values()), entry.card["path"]]) == files[2:]
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["schema"] == "steering.registry" and index["version"] == 1
    assert index["entries"] == [entry.to_json()]
    assert entry.layers == [1, 3] and entry.metadata["recommended_strength"] == 4.0
    one = SteeringVector.load(tmp_path / entry.files["3"]["path"])
    assert one.layers == [3] and one.metadata["name"] == "concise-cot" and one.metadata["model"] == "org/tiny"
    assert reg.card("concise-cot") == "# concise\n"


def test_load_round_trip_and_layer_selection(tmp_path):
    reg, v = Registry(tmp_path), vec()
    reg.save(v, name="a")
    got = reg.load("a", model="org/tiny")
    assert got.layers == [1, 3]
    for la in got.layers:
        assert torch.equal(got.directions[la], v.directions[la])
    assert reg.load("a", layers=[3]).layers == [3]
    with pytest.raises(VectorNotFoundError, match=r"has layers \[1, 3\]"):
        reg.load("a", layers=[2])


def test_list_filters_by_model_and_refuses_silent_overwrite(tmp_path):
    reg = Registry(tmp_path)
    reg.save(vec("org/a"), name="x")
    reg.save(vec("org/b"), name="x")
    reg.save(vec("org/b"), name="y")
    assert [(e.model, e.name) for e in reg.entries()] == [("org/a", "x"), ("org/b", "x"), ("org/b", "y")]
    assert [e.name for e in reg.entries(model="org/b")] == ["x", "y"]
    with pytest.raises(RegistryError, match="overwrite=True"):
        reg.save(vec("org/a", seed=1), name="x")
    reg.save(vec("org/a", seed=1), name="x", overwrite=True)
    assert len(reg.entries(model="org/a")) == 1
    with pytest.raises(VectorNotFoundError, match="several models"):
        reg.load("x")


def test_unknown_name_lists_nearest(tmp_path):
    reg = Registry(tmp_path)
    reg.save(vec(), name="concise-cot")
    with pytest.raises(VectorNotFoundError, match="concise-cot"):
        reg.load("concise-cott")


def test_tampered_file_is_refused(tmp_path):
    reg = Registry(tmp_path)
    reg.save(vec(), name="a")
    path = tmp_path / reg.entries()[0].files["1"]["path"]
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(RegistryError, match="sha256"):
        reg.load("a")


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs/path", "a/../../b", "a\\b", "a/b c", "", "a//b"])
def test_path_traversal_and_odd_names_are_refused(bad):
    with pytest.raises(RegistryError):
        safe_relpath(bad)


@pytest.mark.parametrize("bad", ["../x", "a/b/c", "", "x" * 200, ".hidden"])
def test_bad_model_ids_are_refused(bad):
    with pytest.raises(RegistryError):
        model_slug(bad)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"{not json", "not valid JSON"),
        (b'{"schema": "other", "version": 1, "entries": []}', "not a steering registry"),
        (b'{"schema": "steering.registry", "version": 99, "entries": []}', "version 99"),
        (b'{"schema": "steering.registry", "version": 1, "entries": {}}', "must be a list"),
        (b'{"schema": "steering.registry", "version": 1, "entries": [{"model": "m", "name": "n"}]}', "lacks"),
    ],
)
def test_malformed_index_is_refused(tmp_path, content, match):
    (tmp_path / "index.json").write_bytes(content)
    with pytest.raises(RegistryError, match=match):
        Registry(tmp_path).entries()


def test_index_with_traversal_entry_is_refused(tmp_path):
    reg = Registry(tmp_path)
    reg.save(vec(), name="a")
    index = json.loads((tmp_path / "index.json").read_text())
    index["entries"][0]["files"]["1"]["path"] = "../../outside.safetensors"
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(RegistryError, match=r"Refusing|Invalid"):
        reg.load("a")


def test_save_needs_a_model_id(tmp_path):
    with pytest.raises(RegistryError, match="model="):
        Registry(tmp_path).save(SteeringVector({0: torch.ones(2)}), name="a")
    with pytest.raises(RegistryError, match="Invalid vector name"):
        Registry(tmp_path).save(vec(), name="../a")


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda e: e["files"].update({"01": e["files"].pop("1")}), "no leading zeros"),
        (lambda e: e.update(layers=[1, 1]), "no duplicates"),
        (lambda e: e["metadata"].update(recommended_strength="abc"), "must be a number"),
    ],
)
def test_an_index_that_lies_about_its_files_is_refused_at_parse(tmp_path, change, match):
    reg = Registry(tmp_path)
    reg.save(SteeringVector({1: torch.ones(4)}, {"model": "org/tiny"}), "x", recommended_strength=2.0)
    index = json.loads((tmp_path / "index.json").read_text())
    change(index["entries"][0])
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(RegistryError, match=match):
        reg.entries()


def test_nan_and_duplicate_entries_are_refused(tmp_path):
    reg = Registry(tmp_path)
    reg.save(SteeringVector({1: torch.ones(4)}, {"model": "org/tiny"}), "x", recommended_strength=2.0)
    text = (tmp_path / "index.json").read_text()
    (tmp_path / "index.json").write_text(text.replace('"recommended_strength": 2.0', '"recommended_strength": NaN'))
    with pytest.raises(RegistryError, match="NaN is not a JSON number"):
        reg.entries()
    index = json.loads(text)
    index["entries"].append(index["entries"][0])
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(RegistryError, match="both org/tiny/x"):
        reg.entries()
