"""The one safetensors header every artefact carries: format, version, JSON metadata."""

from __future__ import annotations

import pytest
import torch

from steering.errors import VectorFileError
from steering.fileformat import from_bytes, to_bytes


def test_round_trip_keeps_tensors_and_metadata():
    data = to_bytes({"x": torch.arange(3.0)}, "steering.test", 2, {"model": "org/tiny", "k": [1, 2]})
    tensors, meta = from_bytes(data, "steering.test", 2, "here")
    assert torch.equal(tensors["x"], torch.arange(3.0)) and meta == {"model": "org/tiny", "k": [1, 2]}


def test_another_format_or_version_is_named():
    data = to_bytes({"x": torch.ones(1)}, "steering.test", 2, {})
    with pytest.raises(VectorFileError, match=r"expected format='steering\.other'"):
        from_bytes(data, "steering.other", 2, "here")
    with pytest.raises(VectorFileError, match="format_version 2; this library reads 3"):
        from_bytes(data, "steering.test", 3, "here")


@pytest.mark.parametrize(
    "data, match",
    [
        (b"abc", "only 3 bytes"),
        ((10**9).to_bytes(8, "little") + b"{}", "header length does not fit"),
        (b"\x02" + b"\0" * 7 + b"{]", ""),
    ],
)
def test_bytes_that_are_not_safetensors_are_refused(data, match):
    with pytest.raises(VectorFileError, match=match):
        from_bytes(data, "steering.test", 1, "here")
