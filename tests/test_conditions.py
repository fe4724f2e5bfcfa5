"""Conditional steering: per-row decisions on the prompt, per step and at markers; rules; fitting."""

from __future__ import annotations

import pytest
import torch
from conftest import make_model, make_tokenizer

import steering
from steering import SteeringVector, Window
from steering.conditions import Condition
from steering.conditions.fit import best_threshold
from steering.errors import InvalidArgumentError, ShapeMismatchError, UnknownOptionError
from steering.hooks import count_hooks

PROMPTS = ["Q: 3 + 4 = ?", "Question: what is 12 + 7? Let me think"]
NEW = 10


@pytest.fixture
def setup():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    g = torch.Generator().manual_seed(3)
    behaviour = SteeringVector({2: 4.0 * torch.randn(32, generator=g)}, {"n_layers": 3})
    probe = torch.randn(32, generator=g)
    return tok, model, behaviour, probe


def generate(model, enc, **kw):
    with torch.no_grad():
        return model.generate(**enc, max_new_tokens=NEW, do_sample=False, pad_token_id=0, **kw)


def layer_output(model, enc, layer):
    with torch.no_grad():
        return model(**enc, output_hidden_states=True).hidden_states[layer + 1]


def test_prompt_condition_steers_exactly_the_rows_it_fires_on(setup):
    tok, model, behaviour, probe = setup
    enc = tok(PROMPTS, return_tensors="pt", padding=True)  # left padding
    h = layer_output(model, enc, 1)[:, -1]  # each row's last prompt token
    unit = probe / probe.norm()
    scores = h @ unit
    threshold = float(scores.mean())  # between the two rows
    cond = Condition(probe, layer=1, threshold=threshold, above=bool(scores[0] > scores[1]))
    plain = generate(model, enc)
    with steering.steer(model, behaviour, 1.0, scope="all"):
        steered = generate(model, enc)
    assert not torch.equal(plain[0], steered[0])
    with steering.steer(model, behaviour, 1.0, scope="all", when=cond):
        got = generate(model, enc)
        uncached = generate(model, enc, use_cache=False)
    assert torch.equal(got[0], steered[0]) and torch.equal(got[1], plain[1])
    assert torch.equal(got, uncached)
    with steering.steer(model, behaviour, 1.0, scope="all", when=cond | ~cond):
        assert torch.equal(generate(model, enc), steered)
    with steering.steer(model, behaviour, 1.0, scope="all", when=cond & ~cond):
        assert torch.equal(generate(model, enc), plain)


def test_step_condition_starts_steering_where_it_first_fires(setup):
    tok, model, behaviour, probe = setup
    enc = tok(PROMPTS[:1], return_tensors="pt")
    prompt_len = enc["input_ids"].shape[1]
    plain = generate(model, enc)
    full = {"input_ids": plain, "attention_mask": torch.ones_like(plain)}
    unit = probe / probe.norm()
    scores = (layer_output(model, full, 1)[0] @ unit)[prompt_len - 1 : prompt_len - 1 + NEW]
    # The first checked position (0 = the prompt's last token) that sets a new maximum, or minimum.
    highs = [k for k in range(1, NEW - 2) if scores[k] > scores[:k].max()]
    lows = [k for k in range(1, NEW - 2) if scores[k] < scores[:k].min()]
    above = bool(highs) and (not lows or highs[0] <= lows[0])
    k = highs[0] if above else lows[0]
    edge = scores[:k].max() if above else scores[:k].min()
    threshold = (float(edge) + float(scores[k])) / 2
    cond = Condition(probe, layer=1, threshold=threshold, check="step", above=above)
    with steering.steer(model, behaviour, 1.0, scope="all", when=cond):
        got = generate(model, enc)
    # Position prompt_len - 1 + k fires; layer 2 (after layer 1) steers from that position on.
    with steering.steer(model, behaviour, 1.0, scope=Window(k - 1, None)):
        want = generate(model, enc)
    assert torch.equal(got, want)
    assert not torch.equal(got, plain)


def test_marker_condition_checks_only_at_markers(setup):
    tok, model, behaviour, probe = setup
    enc = tok(PROMPTS[:1], return_tensors="pt")
    plain = generate(model, enc)
    never = Condition(probe, layer=1, threshold=-1e9, check=steering.Tokens(399))  # a token never generated
    assert 399 not in plain.tolist()[0]
    with steering.steer(model, behaviour, 1.0, scope="all", when=never, tokenizer=tok):
        assert torch.equal(generate(model, enc), plain)
    marker = plain[0, enc["input_ids"].shape[1] + 2].item()  # a token the model does write
    always = Condition(probe, layer=1, threshold=-1e9, check=steering.Tokens(marker))
    with steering.steer(model, behaviour, 1.0, scope="all", when=always, tokenizer=tok):
        assert not torch.equal(generate(model, enc), plain)


def test_prompt_mean_condition_and_round_trip_through_the_registry(setup, tmp_path):
    tok, model, behaviour, probe = setup
    cond = Condition(probe, layer=0, threshold=-1e9, position="prompt_mean", metadata={"model": "tiny"})
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    with steering.steer(model, behaviour, 1.0, scope="all"):
        steered = generate(model, enc)
    with steering.steer(model, behaviour, 1.0, scope="all", when=cond):
        assert torch.equal(generate(model, enc), steered)
    reg = steering.Registry(tmp_path)
    reg.save(cond.to_vector(), "always", model="tiny")
    back = Condition.from_vector(reg.load("always", model="tiny"))
    assert (back.layer, back.threshold, back.position, back.check) == (0, -1e9, "prompt_mean", "prompt")
    torch.testing.assert_close(back.direction, probe / probe.norm())


def test_hooks_are_removed_and_bad_conditions_refused(setup):
    tok, model, behaviour, probe = setup
    before = count_hooks(model)
    cond = Condition(probe, layer=1, threshold=0.0)
    with pytest.raises(RuntimeError, match="boom"), steering.steer(model, behaviour, 1.0, when=cond):
        assert count_hooks(model) > before
        raise RuntimeError("boom")
    assert count_hooks(model) == before
    with pytest.raises(ShapeMismatchError, match="width 8"):
        with steering.steer(model, behaviour, 1.0, when=Condition(torch.ones(8), layer=1, threshold=0.0)):
            pass
    with pytest.raises(InvalidArgumentError, match="Condition"):
        with steering.steer(model, behaviour, 1.0, when="hard"):
            pass
    with pytest.raises(UnknownOptionError, match="position"):
        Condition(probe, layer=1, threshold=0.0, position="last")
    with pytest.raises(ShapeMismatchError, match="zero"):
        Condition(torch.zeros(32), layer=1, threshold=0.0)
    with pytest.raises(UnknownOptionError, match="no condition"):
        Condition.from_vector(behaviour)
    assert count_hooks(model) == before


def test_best_threshold_maximises_f1():
    t, f1, precision, recall = best_threshold(torch.tensor([0.9, 2.0, 3.0]), torch.tensor([0.0, 1.0, 1.1]))
    assert (f1, precision, recall) == (pytest.approx(0.8), pytest.approx(1.0), pytest.approx(2 / 3))
    assert 1.1 < t < 2.0


def test_a_decision_never_leaks_into_the_next_batch(setup):
    """Behaviour at layer 0, condition at layer 2: the gate state is per sequence, reset on the next prompt."""
    tok, model, _, probe = setup
    g = torch.Generator().manual_seed(5)
    early = SteeringVector({0: 6.0 * torch.randn(32, generator=g)}, {"n_layers": 3})
    enc_a = tok(PROMPTS[:1], return_tensors="pt")
    enc_b = tok(PROMPTS[1:], return_tensors="pt")
    h_a = layer_output(model, enc_a, 2)[0, -1] @ (probe / probe.norm())
    h_b = layer_output(model, enc_b, 2)[0, -1] @ (probe / probe.norm())
    cond = Condition(probe, layer=2, threshold=float(h_a + h_b) / 2, above=bool(h_a > h_b))  # fires on A only
    with torch.no_grad():
        alone = model(**enc_b).logits
        with steering.steer(model, early, 1.0, scope="all", when=cond):
            model(**enc_a)  # fires
            after = model(**enc_b).logits
            fired_b = generate(model, enc_b)
    assert torch.equal(after, alone)  # max |Δ logits| was 17.97 when the state leaked
    assert torch.equal(fired_b, generate(model, enc_b))


def test_cast_score_is_the_cosine_with_the_projected_state():
    from steering.conditions import score

    g = torch.Generator().manual_seed(0)
    h, u = torch.randn(5, 16, generator=g) * 7, torch.randn(16, generator=g)
    u = u / u.norm()
    projected = torch.tanh(torch.outer(u, u) @ h.T).T  # CAST: tanh(P h), P = u uᵀ
    want = torch.nn.functional.cosine_similarity(h, projected, dim=-1)
    torch.testing.assert_close(score(h, u, "cast"), want)
    torch.testing.assert_close(score(3 * h, u, "cast"), score(h, u, "cast"), atol=0.15, rtol=0)  # ~norm-free
    torch.testing.assert_close(score(h, u, "projection"), h @ u)
    with pytest.raises(UnknownOptionError, match="score"):
        Condition(u, layer=0, threshold=0.0, score="cosine")


def test_cast_score_in_steering_and_the_registry(setup, tmp_path):
    tok, model, behaviour, probe = setup
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    h = layer_output(model, enc, 1)
    real = enc["attention_mask"].bool()
    mean = torch.stack([h[i][real[i]].mean(0) for i in range(2)])  # CAST's mean over the prompt's tokens
    s = Condition(probe, layer=1, threshold=0.0, position="prompt_mean", score="cast").scores(mean)
    cond = Condition(
        probe, layer=1, threshold=float(s.mean()), position="prompt_mean", score="cast", above=bool(s[0] > s[1])
    )
    with steering.steer(model, behaviour, 1.0, scope="all"):
        steered = generate(model, enc)
    plain = generate(model, enc)
    with steering.steer(model, behaviour, 1.0, scope="all", when=cond):
        got = generate(model, enc)
    assert torch.equal(got[0], steered[0]) and torch.equal(got[1], plain[1])
    reg = steering.Registry(tmp_path)
    reg.save(cond.to_vector(), "cast", model="tiny")
    assert Condition.from_vector(reg.load("cast", model="tiny")).score == "cast"
