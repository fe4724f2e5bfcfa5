"""Which positions ``extract`` reads in one ``prompt + completion`` sequence."""

from __future__ import annotations

import pytest
from conftest import make_tokenizer

from steering import Tokens
from steering.errors import PairError, UnknownOptionError
from steering.positions import PositionResolver

IDS = [1, 2, 3, 10, 11, 12, 13]  # a 3-token prompt and a 4-token completion


@pytest.mark.parametrize(
    "position, want",
    [("last", [6]), ("first", [3]), ("prompt_last", [2]), ("mean", [3, 4, 5, 6]), (1, [4]), (-1, [6]), (-4, [3])],
)
def test_named_and_indexed_positions(position, want):
    assert PositionResolver(position, None)(3, IDS, "pair 0") == want


def test_an_index_outside_the_completion_is_refused_with_its_range():
    with pytest.raises(PairError, match=r"-4\.\.3"):
        PositionResolver(4, None)(3, IDS, "pair 0")


def test_token_markers_read_only_inside_the_completion():
    tok = make_tokenizer()
    ids = tok("a b a b", add_special_tokens=False)["input_ids"]
    marker = tok("b", add_special_tokens=False)["input_ids"][0]
    got = PositionResolver(Tokens(marker), tok)(2, ids, "pair 0")  # the prompt is "a b": its "b" is not read
    assert got == [i for i in range(2, len(ids)) if ids[i] == marker]
    with pytest.raises(PairError, match="none of the markers"):
        PositionResolver(Tokens(99999), tok)(2, ids, "pair 0")


def test_unknown_positions_fail_before_any_forward_pass():
    with pytest.raises(UnknownOptionError, match="Unknown position"):
        PositionResolver("middle", None)
