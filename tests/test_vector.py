from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from steering import SteeringVector
from steering.errors import (
    DegenerateVectorError,
    InvalidArgumentError,
    ShapeMismatchError,
    VectorFileError,
)


def reliability_vec(seed: int = 0, layers=(1, 2), model="org/tiny", **meta) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    return SteeringVector({la: torch.randn(64, generator=g) for la in layers}, {"model": model, **meta})


def vec(**meta):
    return SteeringVector({1: torch.arange(4.0), 3: torch.ones(4)}, {"hidden_size": 4, "method": "mean_diff", **meta})


def test_arithmetic_returns_new_values():
    a, b = vec(), SteeringVector({3: torch.full((4,), 2.0), 5: torch.ones(4)}, {"method": "pca"})
    s = a + b
    assert s.layers == [1, 3, 5]
    assert torch.equal(s.directions[3], torch.full((4,), 3.0))
    assert torch.equal((a - b).directions[5], -torch.ones(4))
    assert torch.equal((2 * a).directions[1], torch.arange(4.0) * 2)
    assert torch.equal((a * 2).directions[1], (2 * a).directions[1])
    assert torch.equal((-a).directions[3], -torch.ones(4))
    assert torch.equal(a.directions[1], torch.arange(4.0))  # unchanged


def test_normalized_to_select():
    a = vec()
    n = a.normalized()
    assert all(abs(float(d.norm()) - 1) < 1e-6 for d in n.directions.values())
    assert a.to(dtype=torch.float64).directions[1].dtype == torch.float64
    assert a.select([3]).layers == [3]
    with pytest.raises(ShapeMismatchError, match="not in this vector"):
        a.select([2])


@pytest.mark.parametrize(
    "directions, meta, match",
    [
        ({}, {}, "non-empty"),
        ({0: torch.ones(2, 2)}, {}, "1-D"),
        ({0: torch.tensor([1.0, float("nan")])}, {}, "NaN or inf"),
        ({0: torch.tensor([1.0, float("inf")])}, {}, "NaN or inf"),
        ({0: torch.ones(3), 1: torch.ones(4)}, {}, "one width"),
        ({-1: torch.ones(3)}, {}, "non-negative"),
        ({0: torch.ones(3, dtype=torch.long)}, {}, "floating"),
        ({0: torch.ones(3)}, {"hidden_size": 4}, "hidden_size=4"),
    ],
)
def test_invalid_vectors_are_refused(directions, meta, match):
    with pytest.raises(ShapeMismatchError, match=match):
        SteeringVector(directions, meta)


def test_mismatched_arithmetic_is_refused():
    with pytest.raises(ShapeMismatchError, match="width"):
        vec() + SteeringVector({0: torch.ones(5)})
    with pytest.raises(ShapeMismatchError, match="different models"):
        vec(model="a") + vec(model="b")


def test_save_load_round_trip(tmp_path):
    a = vec(model="org/tiny", diagnostics={"1": {"norm": 1.5}})
    path = a.save(tmp_path / "sub" / "v.safetensors")
    b = SteeringVector.load(path)
    assert b.metadata == a.metadata and b.layers == a.layers
    for layer in a.layers:
        assert torch.equal(a.directions[layer], b.directions[layer])
    assert [p.name for p in path.parent.iterdir()] == ["v.safetensors"]  # no temp file left


def test_file_format_golden_bytes(tmp_path):
    """The on-disk format: safetensors, tensors named by site, metadata as JSON in the header."""
    path = SteeringVector({2: torch.tensor([1.0, -2.0])}, {"hidden_size": 2}).save(tmp_path / "v.safetensors")
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert header == {
        "__metadata__": {"format": "steering.vector", "format_version": "1", "metadata": '{"hidden_size": 2}'},
        "blocks.2.hook_resid_post": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
    }
    assert raw[8 + n :] == struct.pack("<2f", 1.0, -2.0)


def test_load_refuses_pickle_and_garbage(tmp_path):
    for name in ("v.pt", "v.bin", "v.pkl"):
        (tmp_path / name).write_bytes(b"\x80\x04")
        with pytest.raises(VectorFileError, match="safetensors only"):
            SteeringVector.load(tmp_path / name)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(VectorFileError, match="not a readable safetensors"):
        SteeringVector.load(tmp_path / "junk.safetensors")
    with pytest.raises(VectorFileError, match="No vector file"):
        SteeringVector.load(tmp_path / "missing.safetensors")


def test_load_refuses_safetensors_without_metadata(tmp_path):
    save_file({"blocks.0.hook_resid_post": torch.ones(3)}, tmp_path / "bare.safetensors")
    with pytest.raises(VectorFileError, match=r"without steering\.vector metadata"):
        SteeringVector.load(tmp_path / "bare.safetensors")
    save_file(
        {"w": torch.ones(3)},
        tmp_path / "odd.safetensors",
        metadata={"format": "steering.vector", "format_version": "1", "metadata": "{}"},
    )
    with pytest.raises(VectorFileError, match="not a site name"):
        SteeringVector.load(tmp_path / "odd.safetensors")


def test_save_refuses_non_json_metadata(tmp_path):
    with pytest.raises(VectorFileError, match="JSON"):
        SteeringVector({0: torch.ones(2)}, {"bad": object()}).save(tmp_path / "v.safetensors")
    assert not list(tmp_path.iterdir())


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
        reliability_vec().save(tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_vector_arithmetic_keeps_the_pinning_and_blames_the_right_operand():
    pinned = reliability_vec(model="org/tiny", fingerprint="aaaa", n_layers=4)
    bare = SteeringVector({1: torch.ones(64)})
    assert (bare + pinned).metadata["fingerprint"] == "aaaa" and (bare + pinned).metadata["model"] == "org/tiny"
    with pytest.raises(ShapeMismatchError, match="fingerprint"):
        pinned + reliability_vec(1, model="org/tiny", fingerprint="bbbb")
    with pytest.raises(InvalidArgumentError, match="nan"):
        pinned * float("nan")
    withdiag = pinned.with_metadata(diagnostics={"1": {"norm": 1.0, "typical_resid_norm": 9.0}, "2": {"norm": 1.0}})
    doubled = 2 * withdiag
    assert doubled.metadata["diagnostics"]["1"]["norm"] == pytest.approx(2 * float(withdiag.directions[1].norm()))
    assert doubled.metadata["diagnostics"]["1"]["typical_resid_norm"] == 9.0
