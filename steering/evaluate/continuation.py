"""Continue a problem's prompt with given text, the way generation would have seen it.

The prompt goes in as its own forward pass, then the rest through the KV cache, so a ``steer``
block whose scope is tied to the prompt (``"prompt_last"``, ``"generated"``) acts exactly where it
acted when the chain was generated — not at the end of the forced-answer prefix.
"""

from __future__ import annotations

from typing import Any

import torch

from ..backends import backend_for
from ..prompts import Prompt, encode, encode_completion
from .generation import stop_ids


def _forward(model: Any, ids: list[int], cache: Any) -> tuple[torch.Tensor, Any]:
    backend = backend_for(model)
    return backend.forward(model, torch.tensor([ids], device=backend.device(model)), cache=cache)


def prefill(model: Any, tokenizer: Any, prompt: Prompt, rest: str) -> tuple[torch.Tensor, Any, list[int]]:
    """Run ``prompt`` then ``rest``; returns the last logits ``(1, T, V)``, the cache and ``rest``'s token ids."""
    r = encode_completion(tokenizer, rest) if rest else []
    logits, cache = _forward(model, encode(tokenizer, prompt), None)
    if r:
        logits, cache = _forward(model, r, cache)
    return logits, cache, r


def continue_greedy(model: Any, tokenizer: Any, prompt: Prompt, rest: str, max_new_tokens: int) -> str:
    """Greedy continuation of ``prompt + rest`` (stops at end of sequence)."""
    stops = stop_ids(backend_for(model).unwrap(model), tokenizer)
    with torch.no_grad():
        logits, cache, _ = prefill(model, tokenizer, prompt, rest)
        new: list[int] = []
        for _ in range(max_new_tokens):
            tok = int(logits[0, -1].argmax())
            if tok in stops:
                break
            new.append(tok)
            logits, cache = _forward(model, [tok], cache)
    return tokenizer.decode(new, skip_special_tokens=True)


def answer_log_prob(model: Any, tokenizer: Any, prompt: Prompt, rest: str, answer: str) -> float:
    """``log p(answer | prompt + rest)`` summed over the answer's tokens only."""
    a = encode_completion(tokenizer, answer)
    with torch.no_grad():
        logits, cache, _ = prefill(model, tokenizer, prompt, rest)
        first = torch.log_softmax(logits[0, -1].float(), dim=-1)[a[0]]
        if len(a) == 1:
            return float(first)
        nxt, _ = _forward(model, a[:-1], cache)
        logp = torch.log_softmax(nxt[0].float(), dim=-1)
        return float(first + logp.gather(1, torch.tensor(a[1:], device=logp.device)[:, None]).sum())
