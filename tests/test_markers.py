"""Token markers: encoding strings and ids, and where a multi-token marker ends."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tokenizer

from steering import Tokens
from steering.errors import UnknownOptionError
from steering.markers import encode_markers, match_ends


def test_match_ends_marks_the_last_token_of_each_occurrence_per_row():
    tokens = torch.tensor([[5, 6, 7, 5, 6], [6, 5, 6, 0, 0]])
    hit = match_ends(tokens, [(5, 6), (7,)])
    assert hit.tolist() == [[False, True, True, False, True], [False, False, True, False, False]]


def test_a_pattern_longer_than_the_chunk_matches_nothing():
    assert not match_ends(torch.tensor([[1, 2]]), [(1, 2, 3)]).any()


def test_strings_are_encoded_without_special_tokens_and_ids_pass_through():
    tok = make_tokenizer()
    want = tuple(tok("</think>", add_special_tokens=False)["input_ids"])
    assert encode_markers(("</think>", 7, (1, 2)), tok, "test") == [want, (7,), (1, 2)]


@pytest.mark.parametrize(
    "markers, match", [((True,), "bool"), (("x",), "tokenizer"), ((), "at least one"), ((1.5,), "not")]
)
def test_bad_markers_are_refused_with_the_reason(markers, match):
    with pytest.raises(UnknownOptionError, match=match):
        encode_markers(markers, None, "test")


def test_tokens_is_a_value():
    assert Tokens(". ", 13) == Tokens(". ", 13) and Tokens(". ") != Tokens(13)
