"""Measure the demo task: accuracy, chain length, well-formedness and mode shares of generations."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..evaluate.generation import generate
from .task import Problem, classify, parse_answer, well_formed

# How reasoning models are run (DeepSeek-R1's recommended temperature 0.6, top-p 0.95); 0.7 here.
SAMPLING: dict[str, Any] = {"do_sample": True, "temperature": 0.7, "top_p": 0.95, "top_k": 0}


@dataclass(frozen=True)
class Report:
    n: int
    accuracy: float
    accuracy_ci: tuple[float, float]  # 95% Wilson interval
    chain_tokens: float
    seconds: float
    well_formed: float
    direct_share: float
    modes: dict[str, float]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion ``k / n``.

    Examples:
        >>> wilson(50, 100)
        (0.4038, 0.5962)
    """
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(centre - half, 4), round(centre + half, 4))


def measure(
    model: Any,
    tokenizer: Any,
    problems: list[Problem],
    *,
    sample: bool = False,
    seed: int = 0,
    max_new_tokens: int = 110,
    batch_size: int = 100,
) -> tuple[Report, list[str]]:
    """Generate for every problem (inside any active ``steer`` block) and score the completions."""
    kwargs: dict[str, Any] = {**SAMPLING, "seed": seed} if sample else {}
    gens, seconds = generate(
        model, tokenizer, [p.prompt for p in problems], max_new_tokens=max_new_tokens, batch_size=batch_size, **kwargs
    )
    texts = [g.text for g in gens]
    n = len(problems)
    right = sum(parse_answer(t) == p.answer for t, p in zip(texts, problems))
    modes = Counter(classify(t) for t in texts)
    return Report(
        n=n,
        accuracy=right / n,
        accuracy_ci=wilson(right, n),
        chain_tokens=sum(g.n_tokens for g in gens) / n,
        seconds=seconds,
        well_formed=sum(well_formed(t, p) for t, p in zip(texts, problems)) / n,
        direct_share=modes["direct"] / n,
        modes={k: v / n for k, v in sorted(modes.items())},
    ), texts


def correct(problems: list[Problem], texts: list[str]) -> list[bool]:
    return [parse_answer(t) == p.answer for t, p in zip(texts, problems)]
