"""Hook hygiene: every way out of a block leaves the model with exactly the hooks it had."""

from __future__ import annotations

import threading
import warnings

import pytest
import torch
from conftest import make_model, make_tokenizer
from helpers import arithmetic_pairs

import steering
from steering import SteeringVector
from steering.errors import ScopeError
from steering.hooks import Hook, attached, count_hooks


def setup():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    vec = SteeringVector({0: torch.ones(32), 2: torch.ones(32)}, {"n_layers": 3})
    return tok, model, vec, count_hooks(model)


def test_hooks_present_inside_and_gone_after():
    tok, model, vec, before = setup()
    with steering.steer(model, vec, 1.0):
        assert count_hooks(model) == before + 2 + 2  # two layers + the tracker's pre/post hooks
    assert count_hooks(model) == before


def test_exception_in_body_removes_hooks():
    tok, model, vec, before = setup()
    with pytest.raises(RuntimeError, match="boom"):
        with steering.steer(model, vec, 1.0):
            raise RuntimeError("boom")
    assert count_hooks(model) == before


def test_exception_raised_by_a_hook_removes_hooks():
    tok, model, vec, before = setup()
    with pytest.raises(ScopeError):
        with steering.steer(model, vec, 1.0, scope=steering.Tokens(5)):
            model(inputs_embeds=torch.zeros(1, 3, 32))  # token scope, no ids: the pre-hook raises
    assert count_hooks(model) == before


def test_failure_partway_through_registration_removes_the_registered_ones():
    tok, model, vec, before = setup()
    layers = model.model.layers
    specs = [Hook(layers[0], lambda *a: None), Hook(layers[1], lambda *a: None), Hook(layers[2], print, kind="x")]
    with pytest.raises(ValueError, match="kind"):
        with attached(specs):
            pass
    assert count_hooks(model) == before


def test_nested_blocks_remove_only_their_own():
    tok, model, vec, before = setup()
    with steering.steer(model, vec, 1.0):
        outer = count_hooks(model)
        with pytest.raises(KeyError):
            with steering.steer(model, vec, 2.0, scope="generated"):
                assert count_hooks(model) == outer + 4
                raise KeyError
        assert count_hooks(model) == outer
    assert count_hooks(model) == before


def test_exception_during_extraction_removes_hooks():
    tok, model, vec, before = setup()
    pairs = [*arithmetic_pairs(3), steering.Pair("Q", " no marker", " none")]
    with pytest.raises(steering.SteeringError):
        steering.extract(model, tok, pairs, layers=[0, 1], position=steering.Tokens("."))
    # A forward that fails mid-pass: the reader hooks must still go.
    model.model.layers[1].register_forward_pre_hook(lambda *a: (_ for _ in ()).throw(RuntimeError("mid-pass")))
    with pytest.raises(RuntimeError, match="mid-pass"):
        steering.extract(model, tok, arithmetic_pairs(3), layers=[0, 2])
    assert count_hooks(model) == before + 1  # only the test's own failing hook
    model.model.layers[1]._forward_pre_hooks.clear()


def test_handles_are_idempotent_under_double_exit():
    tok, model, vec, before = setup()
    ctx = steering.steer(model, vec, 1.0)
    ctx.__enter__()
    ctx.__exit__(None, None, None)
    assert count_hooks(model) == before


def test_steering_acts_only_in_the_thread_that_entered_the_block():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    v = SteeringVector({1: 5 * torch.ones(32)}, {"n_layers": 3})
    x = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        plain = model(x).logits
        with steering.steer(model, v, 1.0):
            steered = model(x).logits
    other: list[torch.Tensor] = []
    inside, release = threading.Event(), threading.Event()

    def elsewhere() -> None:
        inside.wait(10)
        with torch.no_grad():
            other.append(model(x).logits)
        release.set()

    t = threading.Thread(target=elsewhere)
    t.start()
    with torch.no_grad(), steering.steer(model, v, 1.0):
        inside.set()
        release.wait(10)
        mine = model(x).logits
    t.join()
    assert not torch.equal(plain, steered)
    assert torch.equal(other[0], plain) and torch.equal(mine, steered)
    # attach() is for servers: it steers every thread until removed.
    handle = steering.attach(model, v, 1.0)
    try:
        out: list[torch.Tensor] = []
        worker = threading.Thread(target=lambda: out.append(model(x).logits.detach()))
        worker.start()
        worker.join()
        assert torch.equal(out[0], steered)
    finally:
        handle.remove()
    with torch.no_grad():
        assert torch.equal(model(x).logits, plain)
    warnings.simplefilter("default")


def test_a_context_copied_inside_an_ended_block_is_never_steered_by_a_later_one():
    """Block keys are never reused. They were id(object()), which CPython hands out again at once: a
    context copied inside an ended block (an asyncio task that outlives it) ran the next block's hooks
    (100 leaks in 100 tries before the fix)."""
    import contextvars

    module = torch.nn.Linear(2, 2)
    fired: list[int] = []
    hooks = [Hook(module, lambda *a: fired.append(1))]
    x = torch.ones(1, 2)
    leaks = 0
    for _ in range(100):
        with attached([]):
            stale = contextvars.copy_context()  # e.g. a task created inside the block
        with attached(hooks):
            before = len(fired)
            stale.run(module, x)
            leaks += len(fired) > before
            module(x)  # the block's own context is steered
    assert leaks == 0 and len(fired) == 100


def test_detach_all_removes_the_hooks_of_a_dropped_handle_and_warns():
    import gc

    tok = make_tokenizer()
    model = make_model("llama", tok)
    before = count_hooks(model)
    v = SteeringVector({1: torch.ones(32)}, {"n_layers": 3})
    with pytest.warns(steering.handle.DroppedHandleWarning, match="detach_all"):
        steering.attach(model, v, 1.0)  # the handle is dropped at once
        gc.collect()
    assert count_hooks(model) > before  # its hooks stayed
    kept = steering.attach(model, v, 2.0)
    assert steering.detach_all(model) == 2 and count_hooks(model) == before and not kept.active
    assert steering.detach_all(model) == 0
