"""Each metric on constructed cases with a known answer, and on the bundled model."""

from __future__ import annotations

import pytest
import torch
from conftest import make_model, make_tokenizer

from steering.errors import InvalidArgumentError
from steering.evaluate import (
    ThoughtSwitchPenalty,
    add_mistake,
    best,
    early_answering,
    filler,
    information_gain,
    length_curve,
    substitution,
    sweep,
    underthinking_score,
)

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


def test_tip_resets_its_prompt_on_a_new_generate_call():
    tip = ThoughtSwitchPenalty([5], alpha=3.0, beta=2)
    scores = torch.zeros(1, 12)
    tip(torch.tensor([[1, 2]]), scores)  # a generation with a 2-token prompt
    tip(torch.tensor([[1, 2, 4]]), scores)
    # A new call with a longer, different prompt: 0 tokens generated, inside the window.
    assert tip(torch.tensor([[3, 3, 3, 3, 3, 3]]), scores)[0, 5] == -3.0
    # Same prompt continued by 3 tokens without a switch: outside the window (beta=2).
    assert tip(torch.tensor([[3, 3, 3, 3, 3, 3, 4]]), scores)[0, 5] == -3.0
    assert tip(torch.tensor([[3, 3, 3, 3, 3, 3, 4, 4, 4]]), scores)[0, 5] == 0.0


def test_tip_matches_switch_words_that_are_several_tokens():
    tok = make_tokenizer()
    ids = tok(" Alternatively", add_special_tokens=False)["input_ids"]  # ' ', 'A', 'lte', 'rnat', 'ive', 'ly'
    assert len(ids) > 1
    other = next(i for i in range(10, len(tok)) if i not in ids)
    prompt = [tok.bos_token_id, other, other]

    def penalty(generated: list[int]) -> torch.Tensor:
        """The penalty after ``prompt + generated``, for a fresh generate() call."""
        with pytest.warns(UserWarning, match="6 tokens"):
            tip = ThoughtSwitchPenalty([" Alternatively"], alpha=3.0, beta=5, tokenizer=tok)
        scores = torch.zeros(1, len(tok))
        tip(torch.tensor([prompt]), scores)
        return -tip(torch.tensor([[*prompt, *generated]]), scores)[0]

    assert penalty([])[ids[0]] == 0.0  # the first piece alone (a space) is never penalised
    assert penalty([ids[0]])[ids[1]] == 3.0 and penalty([ids[0]])[ids[2]] == 0.0  # continuing the word is
    assert penalty([*ids[:3]])[ids[3]] == 3.0
    # Seven tokens into a thought (beta=5): no penalty; the first piece alone does not restart the window ...
    assert penalty([*[other] * 6, ids[0]])[ids[1]] == 0.0
    # ... a whole switch word does.
    assert penalty([*[other] * 6, *ids, other, ids[0]])[ids[1]] == 3.0


def test_an_identity_mistake_leaves_every_answer_unchanged(deaf_model):
    """Reaching no answer within continue_tokens is not a changed answer: one is forced with the cue."""
    model, tok = deaf_model
    parse = lambda text: text.strip() or None  # noqa: E731  (this model writes nothing: no answer is reached)
    res = substitution(
        model, tok, PROMPTS, CHAINS, add_mistake(lambda s: s), cue=" Answer:", parse=parse, continue_tokens=5
    )
    assert res.unchanged == 1.0 and res.forced == 1.0  # before: 0.0, "no answer" counted as "changed"


def test_early_answering_plots_the_fraction_of_steps_kept():
    """A 2-step chain truncated at f=0.25 keeps ceil(0.5) = 1 step: half of it, not a quarter."""
    from steering.evaluate.faithfulness import problem_aoc

    aoc = problem_aoc([0.0, 0.5, 0.5, 1.0, 1.0], [False, True, True, True, True])
    assert aoc == pytest.approx(0.25)  # the curve rises from 0 to 1 between 0 and 0.5 of the chain


def test_length_curve_keeps_tied_lengths_together():
    c = length_curve([5, 5, 9, 9], [True, False, True, True], n_bins=4)
    assert [(b["lo"], b["hi"], b["accuracy"]) for b in c["bins"]] == [(5, 5, 0.5), (9, 9, 1.0)]


def test_measure_counts_accuracy_tokens_thinking_and_degeneration():
    from steering.evaluate import compare, degeneration, measure

    tok = make_tokenizer()
    model = make_model("llama", tok)
    prompts = ["Q: 3 + 4 = ?", "Q: 9 * 9 = ?", "Question: what is 12 + 7?"]
    m = measure(model, tok, prompts, max_new_tokens=12, batch_size=2, progress=False)
    assert m.n == 3 and len(m.texts) == 3 and m.accuracy is None
    assert m.tokens == sum(m.token_counts) / 3 and 1 <= m.tokens <= 12
    assert 0.0 <= m.degeneration <= 1.0 and m.unfinished in (0.0, 1 / 3, 2 / 3, 1.0)
    # Gold answers: the first reply's own text counts as right; an impossible string never does.
    first = m.texts[0].split()[0] if m.texts[0].split() else m.texts[0]
    g = measure(model, tok, prompts, gold=[first, "zzzz", "zzzz"], max_new_tokens=12, batch_size=2, progress=False)
    assert g.correct == [bool(first.strip()), False, False] and g.accuracy_ci is not None
    # Thinking up to a marker: with a marker the model never writes, everything is thinking and no answer is given.
    t = measure(model, tok, prompts, gold=["x"] * 3, end_marker="</think>", max_new_tokens=12, progress=False)
    assert t.thinking_tokens == t.tokens and t.answers == ["", "", ""] and t.accuracy == 0.0
    c = compare(g, g)
    assert c.accuracy_diff == 0.0 and c.token_reduction == 0.0 and c.token_reduction_ci == (0.0, 0.0)
    assert degeneration([7] * 20) > 0.8 and degeneration(list(range(20))) == 0.0


def test_best_picks_the_fewest_tokens_within_bounds_and_names_what_failed():
    rows = sweep(
        lambda strength, layer: {"tokens": 90 - 40 * min(strength, 1.0), "accuracy": 0.8 - strength / 10 - layer / 100},
        [0.0, 0.5, 1.0, 1.5],
        layers=[3, 2],
        progress=False,
    )
    picked = best(rows, "tokens", at_least={"accuracy": 0.725})  # layer 3 at 0.5 has 0.72: out
    assert (picked["layer"], picked["strength"], picked["tokens"]) == (2, 0.5, 70.0)
    tied = best(rows, "tokens", at_least={"accuracy": 0.6})  # 1.0 and 1.5 both give 50 tokens
    assert (tied["strength"], tied["layer"]) == (1.0, 2)
    assert best(rows, lambda r: -r["accuracy"], at_most={"tokens": 60})["strength"] == 1.0
    with pytest.raises(InvalidArgumentError, match=r"None of the 8 rows.*'accuracy': 0\.78"):
        best(rows, "tokens", at_least={"accuracy": 0.9})
    with pytest.raises(
        InvalidArgumentError, match=r"\['acc'\].*rows have \['accuracy', 'layer', 'strength', 'tokens'\]"
    ):
        best(rows, "tokens", at_least={"acc": 0.5})
    with pytest.raises(InvalidArgumentError, match="no rows"):
        best([], "tokens")
    broken = [{**rows[0], "tokens": float("nan")}, {**rows[1], "accuracy": float("nan")}, rows[2]]
    assert best(broken, "tokens", at_least={"accuracy": 0.6})["strength"] == 1.0  # NaN rows are never picked
