"""Continue a problem's prompt with given text, the way generation would have seen it.

The prompt goes in as its own forward pass, then the rest through the KV cache, so a ``steer``
block whose scope is tied to the prompt (``"prompt_last"``, ``"generated"``) acts exactly where it
acted when the chain was generated — not at the end of the forced-answer prefix.
"""

from __future__ import annotations

from typing import Any

import torch

from ..backends import hf


def _forward(model: Any, ids: list[int], cache: Any) -> Any:
    device = hf.device(model)
    kwargs = {hf.cache_kwarg(model): cache} if cache is not None else {}
    return model(input_ids=torch.tensor([ids], device=device), use_cache=True, **kwargs)


def prefill(model: Any, tokenizer: Any, prompt: str, rest: str) -> tuple[Any, Any, list[int]]:
    """Run ``prompt`` then ``rest``; returns the last output, the cache and ``rest``'s token ids."""
    p = tokenizer(prompt)["input_ids"]
    r = tokenizer(rest, add_special_tokens=False)["input_ids"] if rest else []
    out = _forward(model, p, None)
    if r:
        out = _forward(model, r, hf.output_cache(out))
    return out, hf.output_cache(out), r


def continue_greedy(model: Any, tokenizer: Any, prompt: str, rest: str, max_new_tokens: int) -> str:
    """Greedy continuation of ``prompt + rest`` (stops at end of sequence)."""
    eos = tokenizer.eos_token_id
    with torch.no_grad():
        out, cache, _ = prefill(model, tokenizer, prompt, rest)
        new: list[int] = []
        for _ in range(max_new_tokens):
            tok = int(out.logits[0, -1].argmax())
            if tok == eos:
                break
            new.append(tok)
            out = _forward(model, [tok], cache)
            cache = hf.output_cache(out)
    return tokenizer.decode(new, skip_special_tokens=True)


def answer_log_prob(model: Any, tokenizer: Any, prompt: str, rest: str, answer: str) -> float:
    """``log p(answer | prompt + rest)`` summed over the answer's tokens only."""
    a = tokenizer(answer, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out, cache, r = prefill(model, tokenizer, prompt, rest)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)[a[0]]
        if len(a) == 1:
            return float(first)
        nxt = _forward(model, a[:-1], cache)
        logp = torch.log_softmax(nxt.logits[0].float(), dim=-1)
        return float(first + logp.gather(1, torch.tensor(a[1:], device=logp.device)[:, None]).sum())
