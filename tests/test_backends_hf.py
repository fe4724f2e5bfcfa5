from __future__ import annotations

import pytest
import torch
from conftest import make_model, make_tokenizer
from helpers import arithmetic_pairs

import steering
from steering.backends import backend_for, hf
from steering.errors import LayerNotFoundError, SteeringError


class Wrapped(torch.nn.Module):
    """A model whose layers sit at a path no template knows."""

    def __init__(self, inner):
        super().__init__()
        self.core = torch.nn.Module()
        self.core.stack = inner.model.layers
        self.config = inner.config


def test_layer_override_and_generic_fallback():
    model = make_model("llama", make_tokenizer())
    assert hf.layer_path(model) == "model.layers"
    assert hf.layer_path(model, "model.layers") == "model.layers"
    wrapped = Wrapped(model)
    assert hf.layer_path(wrapped) == "core.stack"  # found as the ModuleList of num_hidden_layers
    with pytest.raises(LayerNotFoundError, match="layer_path="):
        hf.layer_path(model, "model.norm")


def test_error_names_the_override_when_nothing_is_found():
    m = torch.nn.Linear(2, 2)
    with pytest.raises(LayerNotFoundError, match="layer_path="):
        hf.layers(m)


def test_extract_with_explicit_layer_path_equals_automatic():
    tok = make_tokenizer()
    model = make_model("gpt2", tok)
    pairs = arithmetic_pairs(4)
    a = steering.extract(model, tok, pairs, layers=[1])
    b = steering.extract(model, tok, pairs, layers=[1], layer_path="transformer.h")
    assert torch.equal(a.directions[1], b.directions[1])


def test_unknown_model_type_is_refused():
    with pytest.raises(SteeringError, match="No backend"):
        backend_for(object())
