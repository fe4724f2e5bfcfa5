"""Shared test data: small arithmetic pairs and hand computations of what the library should return."""

from __future__ import annotations

import torch

import steering


def arithmetic_pairs(n: int = 12) -> list[steering.Pair]:
    out = []
    for i in range(n):
        a, b = 3 + i, 2 + (i * 5) % 7
        # Varying completion lengths, so padding matters.
        out.append(
            steering.Pair(
                f"Q: {a} + {b} = ?",
                positive=f" {a + b}.",
                negative=f" Let me think step by step. {a} + {b} = {a + b}." + " Check." * (i % 3),
            )
        )
    return out


def hidden_states(model, ids: list[int]) -> tuple[torch.Tensor, ...]:
    """HF's own hidden states for one unpadded sequence (no hooks, no batching)."""
    with torch.no_grad():
        return model(torch.tensor([ids]), output_hidden_states=True).hidden_states


def encode_pair(tok, prompt: str, completion: str) -> tuple[list[int], int]:
    p = tok(prompt).input_ids
    return p + tok(completion, add_special_tokens=False).input_ids, len(p)


def hand_mean_diff(model, tok, pairs, layer: int, pick) -> torch.Tensor:
    """mean(pos - neg) from output_hidden_states[layer + 1]; ``pick(hs_row, prompt_len)`` -> (d,)."""
    diffs = []
    for p in pairs:
        acts = []
        for completion in (p.positive, p.negative):
            ids, plen = encode_pair(tok, p.prompt, completion)
            acts.append(pick(hidden_states(model, ids)[layer + 1][0], plen))
        diffs.append(acts[0] - acts[1])
    return torch.stack(diffs).mean(0)
