from __future__ import annotations

import json

import pytest
import torch
from conftest import ARCHS, make_model, make_tokenizer
from helpers import arithmetic_pairs, encode_pair, hand_mean_diff, hidden_states

import steering
from steering.errors import (
    DegenerateVectorError,
    InvalidArgumentError,
    LayerNotFoundError,
    PairError,
    UnknownOptionError,
)

PAIRS = arithmetic_pairs(12)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_matches_hand_computation_from_hidden_states(arch, side):
    tok = make_tokenizer(padding_side=side)
    model = make_model(arch, tok)
    vec = steering.extract(model, tok, PAIRS, layers=[0, 1], position="last", batch_size=5)
    for layer in (0, 1):
        expected = hand_mean_diff(model, tok, PAIRS, layer, lambda hs, plen: hs[-1])
        torch.testing.assert_close(vec.directions[layer], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_batch_size_and_padding_side_do_not_change_the_vector(arch):
    tok = make_tokenizer()
    model = make_model(arch, tok)
    ref = steering.extract(model, tok, PAIRS, layers=[0, 2], batch_size=1)
    for bs, side in [(16, "left"), (16, "right"), (3, "right")]:
        vec = steering.extract(model, tok, PAIRS, layers=[0, 2], batch_size=bs, padding_side=side)
        for layer in (0, 2):
            torch.testing.assert_close(vec.directions[layer], ref.directions[layer], atol=1e-5, rtol=1e-5)


def test_sign_convention_points_towards_positive():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    vec = steering.extract(model, tok, PAIRS, layers=[1])
    flipped = [steering.Pair(p.prompt, p.negative, p.positive) for p in PAIRS]
    rev = steering.extract(model, tok, flipped, layers=[1])
    torch.testing.assert_close(rev.directions[1], -vec.directions[1])
    # Projection of positive activations onto the vector exceeds that of negative ones.
    ids_pos, _ = encode_pair(tok, PAIRS[0].prompt, PAIRS[0].positive)
    ids_neg, _ = encode_pair(tok, PAIRS[0].prompt, PAIRS[0].negative)
    v = vec.directions[1]
    assert hidden_states(model, ids_pos)[2][0, -1] @ v > hidden_states(model, ids_neg)[2][0, -1] @ v


@pytest.mark.parametrize(
    "position, pick",
    [
        ("first", lambda hs, plen: hs[plen]),
        ("mean", lambda hs, plen: hs[plen:].mean(0)),
        (0, lambda hs, plen: hs[plen]),
        (-2, lambda hs, plen: hs[-2]),
    ],
)
def test_positions_match_hand_computation(position, pick):
    tok = make_tokenizer()
    model = make_model("qwen2", tok)
    vec = steering.extract(model, tok, PAIRS, layers=[1], position=position, batch_size=7)
    torch.testing.assert_close(vec.directions[1], hand_mean_diff(model, tok, PAIRS, 1, pick), atol=1e-5, rtol=1e-5)


def test_degenerate_directions_are_refused():
    """Both sides read the same activations (the shared prompt; identical completions): no vector, a clear error."""
    tok = make_tokenizer()
    model = make_model("llama", tok)
    with pytest.raises(DegenerateVectorError, match="prompt_last"):
        steering.extract(model, tok, PAIRS, layers=[1], position="prompt_last")
    same = [steering.Pair(p.prompt, p.positive, p.positive) for p in PAIRS]
    for method in ("mean_diff", "pca", "probe"):
        with pytest.raises(DegenerateVectorError, match="same activations"):
            steering.extract(model, tok, same, layers=[1], method=method)


def test_token_matched_position_averages_marker_occurrences():
    tok = make_tokenizer()
    model = make_model("gpt2", tok)
    marker = tok(".", add_special_tokens=False).input_ids[0]

    vec = steering.extract(model, tok, PAIRS, layers=[1], position=steering.Tokens("."), batch_size=4)
    diffs = []
    for p in PAIRS:
        acts = []
        for completion in (p.positive, p.negative):
            ids, plen = encode_pair(tok, p.prompt, completion)
            where = [i for i in range(plen, len(ids)) if ids[i] == marker]
            acts.append(hidden_states(model, ids)[2][0, where].mean(0))
        diffs.append(acts[0] - acts[1])
    torch.testing.assert_close(vec.directions[1], torch.stack(diffs).mean(0), atol=1e-5, rtol=1e-5)


def test_several_layers_in_one_pass_equal_separate_extractions():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    both = steering.extract(model, tok, PAIRS, layers=[2, 0])
    for layer in (0, 2):
        alone = steering.extract(model, tok, PAIRS, layers=[layer])
        torch.testing.assert_close(both.directions[layer], alone.directions[layer])


def test_negative_layers_resolve_python_style():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    vec = steering.extract(model, tok, PAIRS[:3], layers=[-1])
    assert vec.layers == [2]
    last = steering.extract(model, tok, PAIRS[:3], layers=[2])
    torch.testing.assert_close(vec.directions[2], last.directions[2])


@pytest.mark.parametrize("method", ["pca", "probe"])
def test_pca_and_probe_are_sign_aligned_with_mean_diff(method):
    tok = make_tokenizer()
    model = make_model("llama", tok)
    md = steering.extract(model, tok, PAIRS, layers=[1])
    other = steering.extract(model, tok, PAIRS, layers=[1], method=method)
    cos = torch.nn.functional.cosine_similarity(md.directions[1], other.directions[1], dim=0)
    assert cos > 0.5
    assert other.metadata["method"] == method


def test_pca_recovers_planted_direction():
    from steering.aggregate import pca

    g = torch.Generator().manual_seed(0)
    true = torch.randn(16, generator=g)
    true /= true.norm()
    scale = 3 + torch.rand(40, generator=g)
    neg = torch.randn(40, 16, generator=g)
    pos = neg + scale[:, None] * true + 0.05 * torch.randn(40, 16, generator=g)
    v = pca()(pos, neg)
    assert torch.nn.functional.cosine_similarity(v, true, dim=0) > 0.99
    assert abs(v.norm() - scale.mean()) < 0.1


def test_metadata_and_diagnostics():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    vec = steering.extract(model, tok, PAIRS, layers=[0, 1], position="first")
    m = vec.metadata
    assert (m["hidden_size"], m["n_layers"], m["n_pairs"], m["position"]) == (32, 3, 12, "first")
    assert m["site"] == "hook_resid_post" and m["method"] == "mean_diff" and len(m["pairs_sha256"]) == 64
    for layer in ("0", "1"):
        d = m["diagnostics"][layer]
        assert d["norm"] == pytest.approx(float(vec.directions[int(layer)].norm()), rel=1e-5)
        assert 0 <= d["sign_agreement"] <= 1 and d["mean_resid_norm"] > 0
    json.dumps(m)  # JSON-able


def test_tokenizer_without_pad_token_works():
    tok = make_tokenizer(pad=False)
    assert tok.pad_token_id is None
    model = make_model("llama", tok)
    vec = steering.extract(model, tok, PAIRS, layers=[1], batch_size=4)
    ref = steering.extract(model, make_tokenizer(), PAIRS, layers=[1], batch_size=1)
    torch.testing.assert_close(vec.directions[1], ref.directions[1], atol=1e-5, rtol=1e-5)
    assert tok.pad_token_id is None  # not mutated


def test_model_training_mode_is_restored():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    model.train()
    steering.extract(model, tok, PAIRS[:2], layers=[0])
    assert model.training


def test_pairs_from_jsonl(tmp_path):
    tok = make_tokenizer()
    model = make_model("llama", tok)
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(p.__dict__) for p in PAIRS))
    a = steering.extract(model, tok, str(path), layers=[1])
    b = steering.extract(model, tok, PAIRS, layers=[1])
    torch.testing.assert_close(a.directions[1], b.directions[1])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(pairs=[]), PairError, "at least one pair"),
        (dict(layers=[3]), LayerNotFoundError, "out of range"),
        (dict(layers=[-4]), LayerNotFoundError, "out of range"),
        (dict(method="median"), UnknownOptionError, "Unknown method"),
        (dict(position="middle"), UnknownOptionError, "Unknown position"),
        (dict(position=40), PairError, "outside its completion"),
        (dict(position=steering.Tokens("<think>")), PairError, "occurs in the completion"),
        (dict(batch_size=0), InvalidArgumentError, "batch_size"),
        (dict(pairs=[{"prompt": "a", "positive": " b"}]), PairError, "missing key"),
    ],
)
def test_bad_input_is_refused_clearly(kwargs, error, match):
    tok = make_tokenizer()
    model = make_model("llama", tok)
    args = dict(pairs=PAIRS[:3], layers=[1]) | kwargs
    with pytest.raises(error, match=match):
        steering.extract(model, tok, args.pop("pairs"), **args)


def test_empty_completion_is_refused():
    with pytest.raises(PairError, match="positive is empty"):
        steering.Pair("Q", "", " b")
    with pytest.raises(PairError, match="empty"):
        steering.load_pairs([{"prompt": "Q", "positive": " a", "negative": ""}])


def test_prompts_longer_than_the_model_takes_are_refused_with_the_numbers():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    limit = model.config.max_position_embeddings
    long = steering.Pair("q " * (limit + 50), " a", " b")
    with pytest.raises(PairError, match=rf"pair 1 \((positive|negative)\) needs \d+ tokens.*at most {limit} \(2 of 4"):
        steering.extract(model, tok, [steering.Pair("q", " a", " b"), long], layers=[1])
    # reading the first completion token of a long completion stays fine: only what is read must fit
    ok = steering.Pair("q", " a" + " b" * (limit + 50), " b" + " a" * (limit + 50))
    assert steering.extract(model, tok, [ok], layers=[1], position="first").layers == [1]
