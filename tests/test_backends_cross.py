"""TransformerLens and nnsight backends: the same vectors and the same steered tokens as Hugging Face."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
from conftest import make_model, make_tokenizer, track_hooks
from helpers import arithmetic_pairs
from nnsight.modeling.transformers import TransformersModel
from transformer_lens.model_bridge import TransformerBridge
from transformers import AutoTokenizer

import steering
import steering.interop.nnsight_remote as remote_gen
from steering.errors import ShapeMismatchError, UnsupportedModelError
from steering.hooks import count_hooks

ARCHS = ["gpt2", "llama", "qwen2"]
PROMPTS = ["Question: what is 12 + 7? Let me", "Q: 3 * 4"]  # different lengths: left padding
NEW = 8


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    # TransformerLens re-loads the tokenizer by its name_or_path, so it has to come from a folder.
    folder = tmp_path_factory.mktemp("tok")
    make_tokenizer().save_pretrained(folder)
    t = AutoTokenizer.from_pretrained(folder)
    t.padding_side = "left"
    return t


def three(arch: str, tok) -> dict:
    """The same weights as a plain HF model, a TransformerBridge and an nnsight TransformersModel."""
    hf = make_model(arch, tok)
    bridge = TransformerBridge.boot_transformers(f"tiny-{arch}", hf_model=copy.deepcopy(hf), tokenizer=tok)
    bridge.eval()
    with torch.no_grad():  # TransformerLens attaches some hooks of its own on the first forward
        bridge(torch.tensor([[tok.bos_token_id, 5, 6]]))
    nn_model = TransformersModel(copy.deepcopy(hf), task="text-generation", tokenizer=tok)
    track_hooks(bridge)
    track_hooks(nn_model._module)
    return {"hf": hf, "transformer_lens": bridge, "nnsight": nn_model}


def generate(name: str, model, enc, tok) -> list[list[int]]:
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if name == "transformer_lens":
        out = model.generate(
            ids, attention_mask=mask, max_new_tokens=NEW, do_sample=False, verbose=False, stop_at_eos=False
        )
    elif name == "nnsight":
        with model.generate(ids, attention_mask=mask, max_new_tokens=NEW, do_sample=False) as tracer:
            result = tracer.result.save()
        out = result
    else:
        out = model.generate(ids, attention_mask=mask, max_new_tokens=NEW, do_sample=False)
    return out[:, ids.shape[1] :].tolist()


@pytest.mark.parametrize("arch", ARCHS)
def test_vectors_agree_across_backends(arch, tok):
    models = three(arch, tok)
    vectors = {
        name: steering.extract(m, tok, arithmetic_pairs(8), layers=[0, 1], position="mean")
        for name, m in models.items()
    }
    ref = vectors["hf"]
    for name, v in vectors.items():
        assert v.metadata["backend"] == name
        assert v.metadata["fingerprint"] == ref.metadata["fingerprint"]  # one artefact across backends
        assert v.metadata["architecture"] == ref.metadata["architecture"]
        assert v.metadata["basis"] == "hf"
        for layer in (0, 1):
            torch.testing.assert_close(v.directions[layer], ref.directions[layer], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_steered_generation_is_token_identical_across_backends(arch, tok):
    models = three(arch, tok)
    hf = models["hf"]
    vector = steering.extract(hf, tok, arithmetic_pairs(8), layers=[0, 1], position="mean")
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    assert enc["attention_mask"][1, 0] == 0  # the second row is left-padded
    plain = {name: generate(name, m, enc, tok) for name, m in models.items()}
    # Unsteered decoding already agrees (TL's cached decoding needs steering's cache fix for this).
    assert plain["transformer_lens"] == plain["hf"] and plain["nnsight"] == plain["hf"]
    for scope in ("all", "generated"):
        steered = {}
        for name, m in models.items():
            with steering.steer(m, vector, 2.0, scope=scope):
                steered[name] = generate(name, m, enc, tok)
        assert steered["hf"] != plain["hf"], scope  # the vector does something
        assert steered["transformer_lens"] == steered["hf"], scope
        assert steered["nnsight"] == steered["hf"], scope
    for name, m in models.items():
        with steering.steer(m, vector, 0.0, scope="all"):
            assert generate(name, m, enc, tok) == plain[name], name


def test_transformer_lens_cached_decoding_matches_hf_greedy(tok):
    # Fails if TransformerLens and transformers disagree on the KV-cache argument again.
    models = three("llama", tok)
    enc = tok(PROMPTS[:1], return_tensors="pt")
    ids = enc["input_ids"]
    hf_out = models["hf"].generate(ids, attention_mask=enc["attention_mask"], max_new_tokens=12, do_sample=False)
    tl = models["transformer_lens"]
    cached = tl.generate(ids, max_new_tokens=12, do_sample=False, verbose=False, stop_at_eos=False)
    uncached = tl.generate(
        ids, max_new_tokens=12, do_sample=False, verbose=False, stop_at_eos=False, use_past_kv_cache=False
    )
    assert cached.tolist() == hf_out.tolist() == uncached.tolist()


@pytest.mark.parametrize("name", ["transformer_lens", "nnsight"])
def test_hooks_are_removed_on_errors_and_nesting(name, tok):
    models = three("llama", tok)
    model = models[name]
    inner = model if name == "transformer_lens" else model._module
    before = count_hooks(inner)
    vector = steering.extract(models["hf"], tok, arithmetic_pairs(4), layers=[0, 2])
    with pytest.raises(RuntimeError, match="boom"):
        with steering.steer(model, vector, 1.0):
            with steering.steer(model, vector, 1.0, scope="generated"):
                assert count_hooks(inner) > before
                raise RuntimeError("boom")
    assert count_hooks(inner) == before
    with pytest.raises(steering.SteeringError):
        steering.extract(model, tok, arithmetic_pairs(4), layers=[7])
    assert count_hooks(inner) == before


def test_processed_transformer_lens_weights_are_another_basis(tok):
    models = three("llama", tok)
    bridge = models["transformer_lens"]
    vector = steering.extract(models["hf"], tok, arithmetic_pairs(4), layers=[1])
    bridge.enable_compatibility_mode(disable_warnings=True)  # folds and centres the weights
    with torch.no_grad():
        bridge(torch.tensor([[tok.bos_token_id, 5, 6]]))
    track_hooks(bridge)
    processed = steering.extract(bridge, tok, arithmetic_pairs(4), layers=[1])
    assert processed.metadata["basis"] == "transformer_lens-processed"
    with pytest.raises(ShapeMismatchError, match="basis"):
        with steering.steer(bridge, vector, 1.0):
            pass
    with pytest.raises(ShapeMismatchError, match="basis"):
        with steering.steer(models["hf"], processed, 1.0):
            pass


def test_nnsight_remote_path_matches_local(tok):
    # remote="local" serialises each trace and runs it as an NDIF server would.
    models = three("llama", tok)
    hf, nn_model = models["hf"], models["nnsight"]
    local = steering.extract(hf, tok, arithmetic_pairs(8), layers=[2, 0], position="mean")
    remote = steering.extract(nn_model, tok, arithmetic_pairs(8), layers=[2, 0], position="mean", remote="local")
    for layer in (0, 2):
        torch.testing.assert_close(remote.directions[layer], local.directions[layer], atol=1e-5, rtol=0)
    assert remote.metadata["fingerprint"] is None  # remote weights are not read here
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    for scope in remote_gen.SCOPES:
        with steering.steer(hf, local, 2.0, scope=scope):
            want = hf.generate(**enc, max_new_tokens=NEW, do_sample=False)
        got = remote_gen.generate(
            nn_model, local, 2.0, **enc, max_new_tokens=NEW, scope=scope, remote="local", do_sample=False
        )
        assert got.tolist() == want.tolist(), scope


def test_remote_needs_an_nnsight_model(tok):
    hf = make_model("llama", tok)
    with pytest.raises(UnsupportedModelError, match="nnsight"):
        steering.extract(hf, tok, arithmetic_pairs(2), layers=[0], remote=True)
    vector = steering.extract(hf, tok, arithmetic_pairs(2), layers=[0])
    with pytest.raises(UnsupportedModelError, match="nnsight model"):
        remote_gen.generate(hf, vector, input_ids=torch.tensor([[1, 2]]))


def test_runtimes_are_imported_only_when_used():
    code = (
        "import sys, steering, steering.interop.nnsight_remote; "
        "print({'transformer_lens', 'nnsight'} & set(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "set()"
