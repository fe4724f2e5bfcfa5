"""Each metric on constructed cases with a known answer, and on the bundled model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import make_model, make_tokenizer

from steering.demo.main import load
from steering.demo.task import parse_answer, problems
from steering.evaluate import (
    ThoughtSwitchPenalty,
    add_mistake,
    early_answering,
    filler,
    information_gain,
    length_curve,
    substitution,
    underthinking_score,
)
from steering.generation import generate

CHAINS = [[" step one.", " step two.", " step three."], [" a.", " b."]]
PROMPTS = ["Q: 3 + 4 = ?", "Q: 9 * 9 = ?"]


@pytest.fixture
def deaf_model():
    """A real model whose output provably ignores its input: the final norm's weight is zero, so every
    logit is 0 and greedy decoding always picks token 0."""
    tok = make_tokenizer()
    model = make_model("llama", tok)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    return model, tok


def test_chain_independent_model_scores_zero(deaf_model):
    model, tok = deaf_model
    parse = lambda text: text  # noqa: E731
    ea = early_answering(model, tok, PROMPTS, CHAINS, cue=" Answer:", parse=parse)
    assert ea.aoc == 0.0 and ea.same == [1.0] * 5 and ea.aoc_interval() == (0.0, 0.0)
    assert substitution(model, tok, PROMPTS, CHAINS, filler(tok), cue=" Answer:", parse=parse).unchanged == 1.0
    ig = information_gain(model, tok, PROMPTS, CHAINS, [" 7", " 81"], cue=" Answer:")
    assert ig.gain_per_step == pytest.approx(0.0, abs=1e-5)


def test_filler_and_mistake_alterations():
    tok = make_tokenizer()
    chain = [" First, 3 + 4 = 7.", " So 7."]
    alt = filler(tok, " ...")(chain)
    n = len(tok("".join(chain), add_special_tokens=False).input_ids)
    per = len(tok(" ...", add_special_tokens=False).input_ids)
    assert len(tok(alt[0], add_special_tokens=False).input_ids) == (n // per) * per
    assert add_mistake(lambda s: s.replace("7", "9"), step=0)(chain) == [" First, 3 + 4 = 9."]


def test_demo_model_answers_depend_on_its_chain():
    model, tok = load()
    ps = problems(24, "addsub", seed=31)
    gens, _ = generate(model, tok, [p.prompt for p in ps], max_new_tokens=110, batch_size=24)
    chains = [[s for s in re.split(r"(?<=\.)(?= )", g.text) if s][:-1] for g in gens]
    prompts = [p.prompt for p in ps]
    ea = early_answering(model, tok, prompts, chains, cue=" So the answer is", parse=parse_answer)
    assert ea.same[-1] == 1.0 and ea.aoc > 0.4  # truncating the chain changes the answer
    fill = substitution(model, tok, prompts, chains, filler(tok, " Let"), cue=" So the answer is", parse=parse_answer)
    assert fill.unchanged < 0.3
    ig = information_gain(
        model, tok, prompts[:8], chains[:8], [f" {p.answer}" for p in ps[:8]], cue=" So the answer is"
    )
    assert ig.gain_per_step > 0  # steps make the gold answer likelier


def test_tip_changes_exactly_the_configured_logits_within_the_window():
    tip = ThoughtSwitchPenalty([5, 9], alpha=3.0, beta=3)
    scores = torch.randn(2, 12)
    prompt = torch.tensor([[1, 2, 3], [1, 2, 3]])
    out = tip(prompt, scores)  # first call: the prompt; 0 generated tokens -> inside the window
    expected = scores.clone()
    expected[:, [5, 9]] -= 3.0
    assert torch.equal(out, expected)
    # row 0: 3 tokens generated, no switch -> outside; row 1: a switch (5) one token ago -> inside
    ids = torch.tensor([[1, 2, 3, 4, 4, 4], [1, 2, 3, 4, 4, 5]])
    out = tip(ids, scores)
    assert torch.equal(out[0], scores[0])
    assert torch.equal(out[1], expected[1])


def test_tip_in_generate_suppresses_a_switch_token():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    enc = tok(["Q: 3 + 4 = ?"], return_tensors="pt")
    plain = model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=0)
    banned = int(plain[0, enc["input_ids"].shape[1]])  # the token greedy decoding picks first
    tip = ThoughtSwitchPenalty([banned], alpha=1e4, beta=600)
    out = model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=0, logits_processor=[tip])
    assert banned not in out[0, enc["input_ids"].shape[1] :].tolist()


def test_underthinking_score():
    count = lambda t: len(t.split())  # noqa: E731
    responses = [["a b c d", "right x x x"], ["wrong w", "right r"], ["a", "b"]]
    correct = [False, False, True]
    score = underthinking_score(responses, correct, lambda t: t.startswith("right"), count)
    # response 0: first correct thought is the 2nd (all tokens) -> 0; response 1: 1 - 4/4 = 0
    assert score == 0.0
    score = underthinking_score([["right r", "more more more more more more"]], [False], lambda t: "right" in t, count)
    assert score == pytest.approx(1 - 2 / 8)


def test_length_curve_finds_the_inverted_u():
    lengths = list(range(1, 101))
    correct = [30 <= n < 60 for n in lengths]
    c = length_curve(lengths, correct, n_bins=10)
    assert 30 <= c["optimal_length"] < 60 and c["optimal_accuracy"] == 1.0
    assert c["accuracy_past_optimum"] < 0.5
    with pytest.raises(ValueError):
        length_curve([], [])


def test_forced_continuation_keeps_prompt_tied_steering_where_generation_had_it():
    """Inside steer(scope="prompt_last"), continuing prompt + part of the steered chain reproduces
    the rest of that chain: the vector acts at the problem's last token, not at the prefix's end."""
    import steering
    from steering.demo import MODEL_ID
    from steering.evaluate.continuation import continue_greedy

    model, tok = load()
    reg = steering.Registry(Path(__file__).resolve().parents[1] / "vectors")
    strength = next(e for e in reg.list(model=MODEL_ID) if e["name"] == "concise-cot")["metadata"][
        "recommended_strength"
    ]
    prompt = problems(1, "addsub", seed=41)[0].prompt
    with steering.steer(model, reg.load("concise-cot"), strength, scope="prompt_last"):
        (full,), _ = generate(model, tok, [prompt], max_new_tokens=40)
        cut = full.text.index(". ") + 1  # after the first step
        rest = continue_greedy(model, tok, prompt, full.text[:cut], 40)
    assert full.text.startswith(" ") and "Let me think" not in full.text  # steered: concise
    assert full.text[:cut] + rest == full.text
