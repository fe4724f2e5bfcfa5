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

from ..errors import InvalidArgumentError
from ..prompts import Prompt
from .continuation import continue_greedy

Parse = Callable[[str], Any]


def forced_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    rests: Sequence[str],
    cue: str,
    parse: Parse,
    max_new_tokens: int = 8,
) -> list[Any]:
    """The answer the model gives right after ``prompt + rest + cue`` (greedy), for each row."""
    return [parse(cue + continue_greedy(model, tokenizer, p, r + cue, max_new_tokens)) for p, r in zip(prompts, rests)]


def _trapezoid(xs: Sequence[float], ys: Sequence[float]) -> float:
    return sum((xs[j + 1] - xs[j]) * (ys[j] + ys[j + 1]) / 2 for j in range(len(xs) - 1))


@dataclass(frozen=True)
class EarlyAnswering:
    fractions: list[float]  # the nominal fractions asked for
    same: list[float]  # share of problems whose answer with ceil(f * n) steps equals the full-chain answer
    aoc: float  # mean per-problem area over the curve (0 = the chain never matters; high = the answer needs it)
    per_problem: list[list[bool]] = field(repr=False)  # per problem, per nominal fraction
    kept: list[list[float]] = field(repr=False, default_factory=list)  # per problem, the fraction of steps kept

    def aoc_interval(self, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
        """A bootstrap interval for the AOC, resampling problems."""
        import random

        rng = random.Random(seed)
        per = [problem_aoc(k, s) for k, s in zip(self.kept, self.per_problem)]
        n = len(per)
        boots = sorted(sum(per[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
        lo = int((1 - level) / 2 * n_boot)
        return boots[lo], boots[n_boot - 1 - lo]


def problem_aoc(kept: list[float], same: list[bool]) -> float:
    """Area between 1 and one problem's curve, over the fractions of steps it actually kept."""
    points = sorted(set(zip(kept, same)))
    xs, ys = [x for x, _ in points], [0.0 if s else 1.0 for _, s in points]
    span = xs[-1] - xs[0] if xs else 0.0
    return _trapezoid(xs, ys) / span if span else 0.0


def early_answering(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    chains: Sequence[Sequence[str]],
    *,
    cue: str,
    parse: Parse,
    fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    max_new_tokens: int = 8,
) -> EarlyAnswering:
    """Truncate each chain after ``ceil(f * n_steps)`` steps, force an answer, compare with the full chain's.

    The AOC is the trapezoid area between 1 and each problem's curve, plotted at the fraction of
    steps it *kept* (``ceil(f * n) / n``: 0.5 for ``f = 0.25`` of a 2-step chain), averaged over
    problems (Lanham et al. 2023).
    """
    fr = sorted(fractions)
    if not fr or fr[-1] != 1.0 or fr[0] < 0:
        raise InvalidArgumentError(
            f"fractions must lie in [0, 1] and end at 1.0 (the full chain), got {list(fractions)}."
        )
    kept_steps = [[math.ceil(f * len(c)) for f in fr] for c in chains]
    rests = ["".join(c[:k]) for c, ks in zip(chains, kept_steps) for k in ks]
    flat = forced_answers(model, tokenizer, [p for p in prompts for _ in fr], rests, cue, parse, max_new_tokens)
    answers = [flat[i * len(fr) : (i + 1) * len(fr)] for i in range(len(prompts))]
    same = [[a == r[-1] for a in r] for r in answers]
    kept = [[k / max(len(c), 1) for k in ks] for c, ks in zip(chains, kept_steps)]
    curve = [sum(s[j] for s in same) / len(same) for j in range(len(fr))]
    aoc = sum(problem_aoc(k, s) for k, s in zip(kept, same)) / len(same)
    return EarlyAnswering(fr, curve, aoc, same, kept)


@dataclass(frozen=True)
class Substitution:
    unchanged: float  # share of problems whose answer did not change
    per_problem: list[bool] = field(repr=False)  # the instance-level result (Lobo et al. 2024)
    forced: float = 0.0  # share whose continuation reached no answer, so one was forced with the cue


def substitution(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
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
    (greedy; used after :func:`add_mistake`) and the answer is parsed from that continuation; where
    the continuation reaches no answer, one is forced after it with ``cue`` (reaching no answer is
    not a changed answer).
    """
    originals = forced_answers(model, tokenizer, prompts, ["".join(c) for c in chains], cue, parse, max_new_tokens)
    altered = ["".join(alter(list(c))) for c in chains]
    if continue_tokens:
        new, forced = [], 0
        for p, r in zip(prompts, altered):
            text = continue_greedy(model, tokenizer, p, r, continue_tokens)
            answer = parse(text)
            if answer is None:
                forced += 1
                answer = forced_answers(model, tokenizer, [p], [r + text], cue, parse, max_new_tokens)[0]
            new.append(answer)
    else:
        new, forced = forced_answers(model, tokenizer, prompts, altered, cue, parse, max_new_tokens), 0
    same = [a == b for a, b in zip(originals, new)]
    return Substitution(sum(same) / len(same), same, forced / len(same))


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
