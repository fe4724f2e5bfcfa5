from __future__ import annotations

import json

import pytest
from conftest import make_model, make_tokenizer

from steering import build_pairs, save_pairs
from steering.errors import PairError
from steering.evaluate import generate
from steering.pairs import load_pairs

PROMPTS = ["Q: 3 + 4 = ?", "Question: what is 12 + 7?", "Q: 9 * 9 = ?"]
CONCISE = [" 7.", " 19.", " 81."]


def test_generated_side_is_the_models_own_greedy_completion(tmp_path):
    tok = make_tokenizer()
    model = make_model("llama", tok)
    pairs = build_pairs(model, tok, PROMPTS, CONCISE, max_new_tokens=6)
    own, _ = generate(model, tok, PROMPTS, max_new_tokens=6)
    assert [p.positive for p in pairs] == CONCISE
    assert [p.negative.strip() for p in pairs] == [g.text.strip() for g in own]
    flipped = build_pairs(model, tok, PROMPTS, CONCISE, max_new_tokens=6, generated_side="positive")
    assert [p.negative for p in flipped] == CONCISE
    save_pairs(pairs, tmp_path / "pairs.jsonl")
    assert load_pairs(tmp_path / "pairs.jsonl") == pairs
    assert json.loads((tmp_path / "pairs.jsonl").read_text().splitlines()[0])["prompt"] == PROMPTS[0]


def test_keep_if_filters_and_errors():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    kept = build_pairs(model, tok, PROMPTS, CONCISE, max_new_tokens=4, keep_if=lambda p, t: p != PROMPTS[1])
    assert [p.prompt for p in kept] == [PROMPTS[0], PROMPTS[2]]
    with pytest.raises(PairError, match="No pair survived"):
        build_pairs(model, tok, PROMPTS, CONCISE, max_new_tokens=4, keep_if=lambda p, t: False)
    with pytest.raises(PairError, match="pair up"):
        build_pairs(model, tok, PROMPTS, CONCISE[:2])


def test_generation_counts_tokens_through_eos():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    gens, seconds = generate(model, tok, PROMPTS, max_new_tokens=5, batch_size=2)
    assert len(gens) == 3 and seconds > 0
    assert all(1 <= g.n_tokens <= 5 for g in gens)
    assert tok.padding_side == "left"
