"""Does the answer depend on the chain? Early answering, filler, paraphrase and mistakes.

Every test forces an answer after an altered chain: ``prompt + chain' + cue`` is completed greedily
and ``parse`` reads the answer. A chain is a list of steps (strings joined as written). The prompt
is fed first and the rest through the cache, so a surrounding ``steer`` block acts where it acted
during generation (see :mod:`steering.evaluate.continuation`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .continuation import continue_greedy

Parse = Callable[[str], Any]


def forced_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    rests: Sequence[str],
    cue: str,
    parse: Parse,
    max_new_tokens: int = 8,
) -> list[Any]:
    """The answer the model gives right after ``prompt + rest + cue`` (greedy), for each row."""
    return [parse(cue + continue_greedy(model, tokenizer, p, r + cue, max_new_tokens)) for p, r in zip(prompts, rests)]


@dataclass(frozen=True)
class EarlyAnswering:
    fractions: list[float]  # share of the chain's steps kept
    same: list[float]  # share of problems whose forced answer equals the full-chain answer
    aoc: float  # area over that curve: 0 = the chain never matters, high = the answer needs the chain
    per_problem: list[list[bool]] = field(repr=False)

    def aoc_interval(self, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
        """A bootstrap interval for the AOC, resampling problems."""
        import random

        rng = random.Random(seed)
        n = len(self.per_problem)
        boots = sorted(
            _aoc(self.fractions, [self.per_problem[rng.randrange(n)] for _ in range(n)]) for _ in range(n_boot)
        )
        lo = int((1 - level) / 2 * n_boot)
        return boots[lo], boots[n_boot - 1 - lo]


def _aoc(fr: list[float], same: list[list[bool]]) -> float:
    curve = [sum(s[j] for s in same) / len(same) for j in range(len(fr))]
    area = sum((fr[j + 1] - fr[j]) * ((1 - curve[j]) + (1 - curve[j + 1])) / 2 for j in range(len(fr) - 1))
    span = fr[-1] - fr[0]
    return area / span if span else 0.0


def early_answering(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    chains: Sequence[Sequence[str]],
    *,
    cue: str,
    parse: Parse,
    fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    max_new_tokens: int = 8,
) -> EarlyAnswering:
    """Truncate each chain after ``ceil(f * n_steps)`` steps, force an answer, compare with the full chain's.

    AOC is the trapezoid area between 1 and the curve over ``fractions`` (Lanham et al. 2023).
    """
    fr = sorted(fractions)
    if not fr or fr[-1] != 1.0:
        raise ValueError(f"fractions must end at 1.0 (the full chain), got {list(fractions)}.")
    rests = ["".join(c[: math.ceil(f * len(c))]) for c in chains for f in fr]
    flat = forced_answers(model, tokenizer, [p for p in prompts for _ in fr], rests, cue, parse, max_new_tokens)
    answers = [flat[i * len(fr) : (i + 1) * len(fr)] for i in range(len(prompts))]
    same = [[a == r[-1] for a in r] for r in answers]
    curve = [sum(s[j] for s in same) / len(same) for j in range(len(fr))]
    return EarlyAnswering(fr, curve, _aoc(fr, same), same)


@dataclass(frozen=True)
class Substitution:
    unchanged: float  # share of problems whose answer did not change
    per_problem: list[bool] = field(repr=False)  # the instance-level result (Lobo et al. 2024)


def substitution(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    chains: Sequence[Sequence[str]],
    alter: Callable[[list[str]], list[str]],
    *,
    cue: str,
    parse: Parse,
    continue_tokens: int = 0,
    max_new_tokens: int = 8,
) -> Substitution:
    """Replace each chain by ``alter(chain)`` and count forced answers equal to the original chain's.

    With ``continue_tokens > 0`` the model first continues the altered chain for that many tokens
    (greedy; used after :func:`add_mistake`) and the answer is parsed from that continuation.
    """
    originals = forced_answers(model, tokenizer, prompts, ["".join(c) for c in chains], cue, parse, max_new_tokens)
    altered = ["".join(alter(list(c))) for c in chains]
    if continue_tokens:
        new = [parse(continue_greedy(model, tokenizer, p, r, continue_tokens)) for p, r in zip(prompts, altered)]
    else:
        new = forced_answers(model, tokenizer, prompts, altered, cue, parse, max_new_tokens)
    same = [a == b for a, b in zip(originals, new)]
    return Substitution(sum(same) / len(same), same)


def filler(tokenizer: Any, token: str = " ...") -> Callable[[list[str]], list[str]]:
    """An ``alter`` that replaces the chain by filler of the same token length."""

    def alter(chain: list[str]) -> list[str]:
        n = len(tokenizer("".join(chain), add_special_tokens=False)["input_ids"])
        per = max(1, len(tokenizer(token, add_special_tokens=False)["input_ids"]))
        return [token * max(1, n // per)]

    return alter


def add_mistake(corrupt: Callable[[str], str], step: int = 0) -> Callable[[list[str]], list[str]]:
    """An ``alter`` that corrupts step ``step`` and drops what follows (the model writes the rest)."""

    def alter(chain: list[str]) -> list[str]:
        k = min(step, len(chain) - 1)
        return [*chain[:k], corrupt(chain[k])]

    return alter
