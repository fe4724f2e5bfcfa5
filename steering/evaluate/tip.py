"""Thought-switching penalty (TIP, arXiv 2501.18585) and the underthinking score."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

SWITCH_WORDS = ("Alternatively", " Alternatively", "Wait", " Wait")


class ThoughtSwitchPenalty:
    """A ``transformers`` logits processor: subtract ``alpha`` from the logits of thought-switch
    tokens during the first ``beta`` tokens of every thought (the paper's best: alpha=3, beta=600).

    A thought starts where generation starts and at every switch token. Switch words given as
    strings are penalised through the first token of their encoding.

    Examples:
        >>> import torch
        >>> tip = ThoughtSwitchPenalty([7], alpha=3.0, beta=2)
        >>> tip(torch.tensor([[1, 2]]), torch.zeros(1, 10))[0, 7].item()
        -3.0
    """

    def __init__(
        self, switch: Sequence[int | str] = SWITCH_WORDS, alpha: float = 3.0, beta: int = 600, tokenizer: Any = None
    ) -> None:
        ids = set()
        for s in switch:
            if isinstance(s, int):
                ids.add(s)
            else:
                if tokenizer is None:
                    raise ValueError(f"switch word {s!r} is a string: pass tokenizer=... (or token ids).")
                enc = tokenizer(s, add_special_tokens=False)["input_ids"]
                if enc:
                    ids.add(int(enc[0]))
        if not ids:
            raise ValueError("ThoughtSwitchPenalty needs at least one switch token.")
        self.ids = torch.tensor(sorted(ids))
        self.alpha, self.beta = float(alpha), int(beta)
        self.prompt_len: int | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.prompt_len is None or input_ids.shape[1] < self.prompt_len:
            self.prompt_len = input_ids.shape[1]  # the first call of a generation sees the prompt alone
        gen = input_ids[:, self.prompt_len :]  # (B, G)
        ids = self.ids.to(input_ids.device)
        is_switch = torch.isin(gen, ids)
        pos = torch.arange(gen.shape[1], device=gen.device).expand_as(gen)
        if gen.shape[1] == 0:
            start = torch.zeros(gen.shape[0], dtype=torch.long, device=gen.device)
        else:  # the current thought starts at the last switch token (or where generation started)
            start = torch.where(is_switch, pos, -1).max(dim=1).values.clamp(min=0)  # (B,)
        in_window = (gen.shape[1] - start) < self.beta
        penalty = torch.zeros(scores.shape[-1], dtype=scores.dtype, device=scores.device)
        penalty[ids] = self.alpha
        return scores - in_window[:, None].to(scores.dtype) * penalty  # (B, V)


def underthinking_score(
    responses: Sequence[Sequence[str]],
    correct: Sequence[bool],
    is_correct_thought: Callable[[str], bool],
    count_tokens: Callable[[str], int],
) -> float:
    """Mean over incorrect responses of ``1 - T_first / T``: the share of tokens spent after the
    first thought that already held a correct result (0 when no thought was correct).

    ``responses`` are lists of thoughts; ``correct`` says which final answers were right.
    """
    scores = []
    for thoughts, ok in zip(responses, correct):
        if ok:
            continue
        lengths = [count_tokens(t) for t in thoughts]
        total = sum(lengths)
        first = next((i for i, t in enumerate(thoughts) if is_correct_thought(t)), None)
        scores.append(0.0 if first is None or total == 0 else 1 - sum(lengths[: first + 1]) / total)
    return sum(scores) / len(scores) if scores else 0.0
