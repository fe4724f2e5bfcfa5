"""Information gain per reasoning step: how much each step raises the gold answer's log-probability."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..prompts import Prompt
from .continuation import answer_log_prob


@dataclass(frozen=True)
class InformationGain:
    log_probs: list[list[float]] = field(repr=False)  # per problem: log p(answer | prompt + k steps), k = 0..n
    gain_per_step: float  # mean over problems and steps of the increase per step (nats)

    @property
    def mean_curve(self) -> list[float]:
        width = max(map(len, self.log_probs))
        cols = [[lp[k] for lp in self.log_probs if k < len(lp)] for k in range(width)]
        return [sum(c) / len(c) for c in cols]


def information_gain(
    scorer: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    chains: Sequence[Sequence[str]],
    answers: Sequence[str],
    *,
    cue: str,
) -> InformationGain:
    """Score ``log p(answer | prompt + first k steps + cue)`` for every k with ``scorer``.

    The gain of step k is the difference between k and k-1 steps; the informativeness is its mean.
    """
    curves, gains = [], []
    for prompt, chain, answer in zip(prompts, chains, answers):
        lps = [
            answer_log_prob(scorer, tokenizer, prompt, "".join(chain[:k]) + cue, answer) for k in range(len(chain) + 1)
        ]
        curves.append(lps)
        gains += [lps[k] - lps[k - 1] for k in range(1, len(lps))]
    return InformationGain(curves, sum(gains) / len(gains) if gains else 0.0)
