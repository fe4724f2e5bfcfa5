"""Scopes: which absolute positions of a chunk get the vector, their checks, and their stored form."""

from __future__ import annotations

import pytest
import torch

from steering import Span, Tokens, Window
from steering.errors import InvalidArgumentError, UnknownOptionError
from steering.scope_json import scope_from_json, scope_to_json
from steering.scopes import Chunk, as_scope


def chunk(past: int, length: int, prompt_len: int = 4, batch: int = 2) -> Chunk:
    return Chunk(past, length, batch, prompt_len, torch.full((batch,), prompt_len - 1), None, torch.device("cpu"))


def positions(scope, c: Chunk) -> list[int]:
    m = as_scope(scope).mask(c)
    if m is True:
        return list(range(c.past, c.past + c.length))
    if m is False:
        return []
    return [c.past + i for i in m[0].nonzero().flatten().tolist()]


@pytest.mark.parametrize(
    "scope, prefill, step",
    [
        ("all", [0, 1, 2, 3], [5]),
        ("prompt", [0, 1, 2, 3], []),
        ("generated", [], [5]),
        ("prompt_last", [3], []),
        (Window(-1, 2), [3], [5]),
        (Window(0, 1), [], []),
        (("prompt_last", "generated"), [3], [5]),
    ],
)
def test_masks_on_a_prefill_and_on_a_cached_step(scope, prefill, step):
    assert positions(scope, chunk(0, 4)) == prefill  # the prompt: positions 0..3
    assert positions(scope, chunk(5, 1)) == step  # the second generated token, from the cache


@pytest.mark.parametrize("kwargs", [{"start": 1.5}, {"start": 0, "stop": "8"}, {"start": True}])
def test_a_window_of_non_ints_is_an_invalid_argument(kwargs):
    with pytest.raises(InvalidArgumentError, match="must be an int"):
        Window(**kwargs)


def test_an_empty_window_and_an_unknown_name_are_refused():
    with pytest.raises(InvalidArgumentError, match="empty"):
        Window(3, 3)
    with pytest.raises(UnknownOptionError, match="Unknown scope 'everywhere'"):
        as_scope("everywhere")


@pytest.mark.parametrize(
    "scope",
    ["all", ("prompt_last", Window(0, 8)), Tokens(". ", 13), Span("<think>", "</think>"), Window(-1, None)],
)
def test_every_storable_scope_round_trips_through_json(scope):
    assert scope_from_json(scope_to_json(scope)) == scope
