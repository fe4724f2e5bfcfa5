"""Contrastive pairs: values, JSONL files, chat-message prompts, the hash that pins them."""

from __future__ import annotations

import json

import pytest

from steering import Pair, load_pairs, save_pairs
from steering.errors import PairError
from steering.pairs import pairs_hash


def test_jsonl_round_trip_with_text_and_chat_prompts(tmp_path):
    pairs = [Pair("Q: 1+1?", " 2", " Let me think."), Pair([{"role": "user", "content": "Hi"}], "Hello.", "Well...")]
    path = save_pairs(pairs, tmp_path / "p.jsonl")
    again = load_pairs(path)
    assert again == pairs and pairs_hash(again) == pairs_hash(pairs)
    assert pairs_hash(pairs[:1]) != pairs_hash(pairs)


def test_a_bad_row_is_named_by_its_line(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"prompt": "a", "positive": "b", "negative": "c"}, {"prompt": "a", "positive": "b"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(PairError, match="2"):
        load_pairs(path)


def test_dicts_and_pairs_are_both_accepted():
    assert load_pairs([{"prompt": "a", "positive": "b", "negative": "c"}]) == [Pair("a", "b", "c")]
