"""The tracker follows one sequence across forward passes: absolute offsets, prompt width, last prompt token."""

from __future__ import annotations

import pytest
import torch
from conftest import make_model, make_tokenizer

from steering.backends import backend_for
from steering.errors import ScopeError
from steering.hooks import Hook, attached
from steering.scopes import Window, as_scope
from steering.tracker import Tracker


def run_tracked(model, tracker, backend, fn):
    seen = []

    def record(module, args, kwargs):
        tracker.begin(module, args, kwargs)
        c = tracker.chunk
        seen.append((c.past, c.length, c.prompt_len, c.prompt_last.tolist(), tracker.sequence))

    owner = backend.inputs_module(model)
    with attached([Hook(owner, record, kind="pre", with_kwargs=True), Hook(owner, tracker.end)]), torch.no_grad():
        fn()
    return seen


@pytest.mark.parametrize("use_cache", [True, False])
def test_positions_are_absolute_across_cached_and_uncached_generation(use_cache):
    tok = make_tokenizer(padding_side="left")
    model = make_model("llama", tok)
    backend = backend_for(model)
    tracker = Tracker(as_scope("all"), backend)
    batch = tok(["a b c d", "a"], return_tensors="pt", padding=True)
    width = batch["input_ids"].shape[1]

    def gen():
        model.generate(**batch, max_new_tokens=3, do_sample=False, pad_token_id=0, use_cache=use_cache)

    seen = run_tracked(model, tracker, backend, gen)
    assert seen[0] == (0, width, width, [width - 1, width - 1], seen[0][4])  # left padding: both end at width-1
    for step, (past, length, prompt_len, last, sequence) in enumerate(seen[1:], start=1):
        assert past + length == width + step  # the chunk ends at the sequence's newest position
        assert (prompt_len, last, sequence) == (width, [width - 1, width - 1], seen[0][4])  # the same sequence


def test_a_new_prompt_starts_a_new_sequence_and_right_padding_finds_each_last_token():
    tok = make_tokenizer(padding_side="right")
    model = make_model("llama", tok)
    backend = backend_for(model)
    tracker = Tracker(as_scope("all"), backend)
    batch = tok(["a b c d", "a"], return_tensors="pt", padding=True)
    real = batch["attention_mask"].sum(1) - 1
    seen = run_tracked(model, tracker, backend, lambda: (model(**batch), model(**batch)))
    assert [s[3] for s in seen] == [real.tolist()] * 2 and seen[1][4] == seen[0][4] + 1


def test_a_scope_with_positions_refuses_to_guess_outside_a_forward_pass():
    tok = make_tokenizer()
    tracker = Tracker(as_scope(Window(0, 2)), backend_for(make_model("llama", tok)))
    with pytest.raises(ScopeError, match="outside a forward pass"):
        tracker.mask()
    assert Tracker(as_scope("all"), backend_for(make_model("llama", tok))).mask() is True
