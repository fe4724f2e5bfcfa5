from __future__ import annotations

import pytest
import torch
from conftest import make_model, make_tokenizer, track_hooks
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


def test_accelerate_cpu_and_disk_offload(tmp_path, tokenizer):
    # Layers dispatched by accelerate (weights on disk, meta tensors in the module): the same
    # vector, the same fingerprint, the same steered tokens, and no hooks left behind.
    from transformers import AutoModelForCausalLM

    model = make_model("llama", tokenizer)
    model.save_pretrained(tmp_path / "m")
    device_map = {
        "model.embed_tokens": "cpu",
        "model.rotary_emb": "cpu",
        "model.layers.0": "cpu",
        "model.layers.1": "disk",
        "model.layers.2": "disk",
        "model.norm": "cpu",
        "lm_head": "cpu",
    }
    offloaded = AutoModelForCausalLM.from_pretrained(
        tmp_path / "m", device_map=device_map, offload_folder=str(tmp_path / "offload")
    ).eval()
    assert offloaded.model.layers[1].self_attn.q_proj.weight.device.type == "meta"
    track_hooks(offloaded)
    pairs = arithmetic_pairs(6)
    want = steering.extract(model, tokenizer, pairs, layers=[1, 2], position="mean")
    got = steering.extract(offloaded, tokenizer, pairs, layers=[1, 2], position="mean")
    for layer in (1, 2):
        torch.testing.assert_close(got.directions[layer], want.directions[layer], atol=1e-6, rtol=0)
    assert got.metadata["fingerprint"] == want.metadata["fingerprint"] is not None
    enc = tokenizer(["Q: 3 + 4 = ?", "Q: 12"], return_tensors="pt", padding=True)
    with steering.steer(model, want, 2.0, scope=("prompt_last", "generated")):
        a = model.generate(**enc, max_new_tokens=6, do_sample=False)
    with steering.steer(offloaded, want, 2.0, scope=("prompt_last", "generated")):
        b = offloaded.generate(**enc, max_new_tokens=6, do_sample=False)
    assert torch.equal(a, b)
