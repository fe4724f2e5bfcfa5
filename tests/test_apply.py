from __future__ import annotations

import warnings

import pytest
import torch
from conftest import ARCHS, make_model, make_tokenizer

import steering
from steering import Span, SteeringVector, Tokens, Window
from steering.errors import InvalidArgumentError, ScopeError, ShapeMismatchError, UnknownOptionError

PROMPTS = ["Q: 3 + 4 = ?", "Question: what is 12 + 7? Let me think"]


def random_vector(model, layers=(1,), scale=3.0, seed=1) -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    d, n = model.config.get_text_config().hidden_size, model.config.get_text_config().num_hidden_layers
    return SteeringVector({la: scale * torch.randn(d, generator=g) for la in layers}, {"n_layers": n})


def batch(tok, prompts=PROMPTS):
    return tok(prompts, return_tensors="pt", padding=True)


def greedy(model, inputs, **kw):
    with torch.no_grad():
        return model.generate(**inputs, max_new_tokens=10, do_sample=False, pad_token_id=0, **kw)


@pytest.mark.parametrize("arch", ARCHS)
def test_strength_zero_is_bit_identical(arch):
    tok = make_tokenizer()
    model = make_model(arch, tok)
    vec, inputs = random_vector(model, layers=(0, 1, 2)), batch(tok)
    with torch.no_grad():
        base = model(**inputs).logits
        with steering.steer(model, vec, 0.0, scope="all"):
            zero = model(**inputs).logits
    assert torch.equal(base, zero)
    with steering.steer(model, vec, 0.0, scope="generated"):
        assert torch.equal(greedy(model, inputs), greedy(model, inputs.copy()))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("scope", ["generated", "all", ("prompt_last", "generated")])
def test_cached_and_uncached_generation_agree(arch, scope):
    tok = make_tokenizer()
    model = make_model(arch, tok)
    vec, inputs = random_vector(model, layers=(1,), scale=4.0), batch(tok)
    base = greedy(model, inputs)
    with steering.steer(model, vec, 1.0, scope=scope):
        cached = greedy(model, inputs, use_cache=True)
        uncached = greedy(model, inputs, use_cache=False)
    assert torch.equal(cached, uncached)
    assert not torch.equal(cached, base)  # the vector does something


def layer_outputs_in_chunks(model, ids, mask, layer, chunks):
    """Hidden states after ``layer`` for ``ids`` fed as ``chunks`` (lengths) through the KV cache."""
    outs, cache, start = [], None, 0
    with torch.no_grad():
        for n in chunks:
            out = model(
                input_ids=ids[:, start : start + n],
                attention_mask=mask[:, : start + n],
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0)[:, start : start + n],
                cache=cache,
                use_cache=True,
                output_hidden_states=True,
            )
            cache = out.cache if hasattr(out, "cache") else out.past_key_values
            outs.append(out.hidden_states[layer + 1])
            start += n
    return torch.cat(outs, dim=1)


def left_padded_sequences(tok):
    """Two rows of different prompt lengths, left padded, followed by 5 'generated' tokens each."""
    think, end = tok.convert_tokens_to_ids("<think>"), tok.convert_tokens_to_ids("</think>")
    dot = tok(".", add_special_tokens=False).input_ids[0]
    prompts = [tok("Q: 3 + 4 = ?").input_ids, tok("Question: what is 12 + 7?").input_ids]
    gen = [[think, 40, dot, end, 41], [42, think, dot, 43, end]]
    width = max(map(len, prompts))
    rows = [[0] * (width - len(p)) + p + g for p, g in zip(prompts, gen)]
    mask = [[0] * (width - len(p)) + [1] * (len(p) + len(g)) for p, g in zip(prompts, gen)]
    return torch.tensor(rows), torch.tensor(mask), width


def expected_mask(scope, ids, mask, width, tok):
    """Which absolute positions a scope covers, computed by hand for left_padded_sequences."""
    B, T = ids.shape
    pos = torch.arange(T).expand(B, T)
    real = mask.bool()
    think, end = tok.convert_tokens_to_ids("<think>"), tok.convert_tokens_to_ids("</think>")
    dot = tok(".", add_special_tokens=False).input_ids[0]
    if scope == "all":
        m = torch.ones(B, T, dtype=torch.bool)
    elif scope == "prompt":
        m = pos < width
    elif scope == "generated":
        m = pos >= width
    elif scope == "prompt_last":
        m = pos == width - 1
    elif scope == "window":
        m = (pos >= width + 1) & (pos < width + 3)
    elif scope == "tokens":
        m = ids == dot
    elif scope == "span":
        m = torch.zeros(B, T, dtype=torch.bool)
        for b in range(B):
            inside = False
            for t in range(T):
                if ids[b, t] == end:
                    inside = False
                elif ids[b, t] == think:
                    inside = True
                m[b, t] = inside
    return m & real


SCOPES = {
    "all": "all",
    "prompt": "prompt",
    "generated": "generated",
    "prompt_last": "prompt_last",
    "window": Window(1, 3),
    "tokens": Tokens("."),
    "span": Span("<think>", "</think>"),
}


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma3"])
@pytest.mark.parametrize("name", list(SCOPES))
@pytest.mark.parametrize("chunks", ["full", "cached"])
def test_layer_output_is_base_plus_strength_v_exactly_where_scope_says(arch, name, chunks):
    tok = make_tokenizer()
    model = make_model(arch, tok)
    vec = random_vector(model, layers=(1,))
    ids, mask, width = left_padded_sequences(tok)
    # "full": one pass, whose prompt is everything; "cached": the prompt, then one token at a time.
    plan = [ids.shape[1]] if chunks == "full" else [width] + [1] * (ids.shape[1] - width)
    prompt_width = ids.shape[1] if chunks == "full" else width
    base = layer_outputs_in_chunks(model, ids, mask, 1, plan)
    with steering.steer(model, vec, 2.5, scope=SCOPES[name], tokenizer=tok):
        steered = layer_outputs_in_chunks(model, ids, mask, 1, plan)
    where = expected_mask(name, ids, mask, prompt_width, tok)
    assert where.any() or name in ("generated", "window")
    expected = torch.where(where[..., None], base + 2.5 * vec.directions[1], base)
    assert torch.equal(steered, expected)


def test_batched_steering_matches_each_row_alone():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    vec = random_vector(model, layers=(0, 1), scale=3.0)
    inputs = batch(tok)
    scope = ("prompt_last", "generated")
    with steering.steer(model, vec, 1.0, scope=scope):
        together = greedy(model, inputs)
        for row, prompt in enumerate(PROMPTS):
            alone = greedy(model, batch(tok, [prompt]))
            assert torch.equal(together[row, -10:], alone[0, -10:])


def test_operators_ablate_and_clamp():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    vec = random_vector(model, layers=(1,))
    unit = vec.directions[1] / vec.directions[1].norm()
    inputs = batch(tok)

    def layer1():
        with torch.no_grad():
            return model(**inputs, output_hidden_states=True).hidden_states[2]

    real = inputs["attention_mask"].bool()
    with steering.steer(model, vec, 1.0, operator="ablate"):
        proj = layer1() @ unit
    assert proj[real].abs().max() < 1e-4
    with steering.steer(model, vec, 0.5, operator="clamp"):
        proj = layer1() @ unit
    torch.testing.assert_close(proj[real], torch.full_like(proj[real], 0.5 * float(vec.directions[1].norm())))


def test_nested_blocks_compose_and_unwind_in_order():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    a, b = random_vector(model, seed=1), random_vector(model, seed=2)
    inputs = tok(["Q: 3 + 4 = ?"], return_tensors="pt")

    def layer1():
        with torch.no_grad():
            return model(**inputs, output_hidden_states=True).hidden_states[2]

    base = layer1()
    with steering.steer(model, a, 1.0):
        with steering.steer(model, b, 2.0):
            both = layer1()
        only_a = layer1()
    torch.testing.assert_close(both, base + a.directions[1] + 2 * b.directions[1])
    torch.testing.assert_close(only_a, base + a.directions[1])
    assert torch.equal(layer1(), base)


def test_vector_moves_to_model_dtype_lazily():
    tok = make_tokenizer()
    model = make_model("llama", tok).to(torch.bfloat16)
    vec = random_vector(model)
    with steering.steer(model, vec, 1.0, scope="generated"):
        out = greedy(model, batch(tok))
    assert out.shape[1] == batch(tok)["input_ids"].shape[1] + 10
    assert vec.directions[1].dtype == torch.float32  # the user's vector is untouched


@pytest.mark.parametrize(
    "vector_kwargs, kwargs, error, match",
    [
        (dict(d=16), {}, ShapeMismatchError, "hidden size"),
        (dict(n_layers=12), {}, ShapeMismatchError, "12 layers"),
        (dict(layers=(5,), n_layers=None), {}, ShapeMismatchError, "only 0..2"),
        (dict(basis="lens-folded"), {}, ShapeMismatchError, "basis"),
        ({}, dict(scope="thoughts"), UnknownOptionError, "Unknown scope"),
        ({}, dict(operator="multiply"), UnknownOptionError, "Unknown operator"),
        ({}, dict(strength=float("nan")), InvalidArgumentError, "finite"),
        ({}, dict(strength=1e308), InvalidArgumentError, "overflows"),
        ({}, dict(scope=Tokens(".")), UnknownOptionError, "tokenizer"),
    ],
)
def test_bad_input_is_refused_clearly(vector_kwargs, kwargs, error, match):
    tok = make_tokenizer()
    model = make_model("llama", tok)
    d = vector_kwargs.get("d", 32)
    meta = {"n_layers": vector_kwargs.get("n_layers", 3)}
    if "basis" in vector_kwargs:
        meta["basis"] = vector_kwargs["basis"]
    meta = {k: v for k, v in meta.items() if v is not None}
    vec = SteeringVector({la: torch.ones(d) for la in vector_kwargs.get("layers", (1,))}, meta)
    strength = kwargs.pop("strength", 1.0)
    with pytest.raises(error, match=match):
        with steering.steer(model, vec, strength, **kwargs):
            pass


def test_token_scope_without_input_ids_raises_and_cleans_up():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    vec = random_vector(model)
    embeds = model.get_input_embeddings()(batch(tok)["input_ids"])
    with pytest.raises(ScopeError, match="input_ids"):
        with steering.steer(model, vec, 1.0, scope=Tokens("."), tokenizer=tok), torch.no_grad():
            model(inputs_embeds=embeds)


def test_fingerprint_mismatch_warns_and_strict_false_overrides():

    from steering.apply import FingerprintWarning

    tok = make_tokenizer()
    a, b = make_model("llama", tok, seed=0), make_model("llama", tok, seed=1)  # same config, other weights
    from helpers import arithmetic_pairs

    vec = steering.extract(a, tok, arithmetic_pairs(3), layers=[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with steering.steer(a, vec, 1.0):  # its own model: silent
            pass
    with pytest.warns(FingerprintWarning, match="other weights"):
        with steering.steer(b, vec, 1.0):
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with steering.steer(b, vec, 1.0, strict=False):
            pass
        with steering.steer(a.to(torch.bfloat16), vec, 1.0):  # a dtype change keeps the fingerprint
            pass
    bigger = SteeringVector(vec.directions, {**vec.metadata, "n_layers": 5})
    with steering.steer(b, bigger, 1.0, strict=False):  # the layer-count check is overridable
        pass


def test_projection_matches_hidden_states_on_every_token(tokenizer):
    from helpers import hidden_states

    from steering.evaluate import plot_projection, project

    model = make_model("llama", tokenizer)
    torch.manual_seed(1)
    vec = steering.SteeringVector({1: torch.randn(32)})
    text = "Q: 3 + 4 = ? Let me think."
    proj = project(model, tokenizer, text, vec)
    ids = tokenizer(text).input_ids
    want = hidden_states(model, ids)[2][0] @ (vec.directions[1] / vec.directions[1].norm())
    torch.testing.assert_close(proj.scores, want, atol=1e-5, rtol=0)
    assert "".join(proj.tokens) == tokenizer.decode(ids)
    assert plot_projection(proj).axes  # renders
    with pytest.raises(steering.SteeringError, match="layers"):
        project(model, tokenizer, text, vec, layer=0)


def test_strength_overflow_is_refused_not_silently_nan():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    v = SteeringVector({1: torch.ones(32)})
    with pytest.raises(InvalidArgumentError, match="overflows"):
        with steering.steer(model, v, 1e308):
            pass
    half = model.to(torch.float16)
    with pytest.raises(InvalidArgumentError, match=r"overflows torch\.float16"), torch.no_grad():
        with steering.steer(half, v, 1e6):
            half(torch.tensor([[1, 5, 6]]))


def test_a_strength_whose_stream_overflows_the_next_norm_is_refused():
    """At 1e20 the sum is finite, but the next RMSNorm's mean of x**2 overflows float32: every logit
    became 0 and generate emitted pad tokens, silently. Now the first steered pass refuses."""
    tok = make_tokenizer()
    model = make_model("llama", tok)
    v = SteeringVector({1: torch.ones(32)})
    x = torch.tensor([[1, 5, 6, 7]])
    with pytest.raises(InvalidArgumentError, match="overflows float32 in the next normalisation"):
        with steering.steer(model, v, 1e20), torch.no_grad():
            model.generate(x, max_new_tokens=3, do_sample=False, pad_token_id=0)
    with torch.no_grad(), steering.steer(model, v, 1e3):  # large but representable: allowed
        assert torch.isfinite(model(x).logits).all()
