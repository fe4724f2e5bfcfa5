"""What the demo's two experiments share: the job (model, settings, output folder), where a vector is
read and written (a recipe), steered runs, pairs from the model's own completions, validation splits."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import SteeringVector, build_pairs, steer
from ..evaluate.measure import bootstrap_ci
from .evaluate import Report, measure
from .report import short
from .task import Problem, classify, problems

FRACTIONS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)  # strength as a fraction of the layer's typical residual norm
SEEDS = (0, 1, 2)  # sampled evaluations


class Recipe:
    """Where a vector is read and written: e.g. read at the first completion token, add at the last prompt token."""

    def __init__(self, name: str, position: str, scope: Any) -> None:
        self.name, self.position, self.scope = name, position, scope


FIRST_TOKEN = Recipe("first-token", "first", "prompt_last")
ASC = Recipe("ASC (last token, every generated step)", "last", ("prompt_last", "generated"))


def steered(model: Any, vec: SteeringVector | None, strength: float, scope: Any, fn: Callable[[], Any]) -> Any:
    if vec is None:
        return fn()
    with steer(model, vec, strength, scope=scope):
        return fn()


def model_pairs(model: Any, tok: Any, pool: list[Problem], want: str, own: str, n: int) -> list[Any]:
    """Pairs whose positive is the task's ``want`` chain and whose negative is the model's own
    greedy completion, kept where that completion is in mode ``own``."""
    pairs = build_pairs(
        model,
        tok,
        [p.prompt for p in pool],
        [p.completion(want) for p in pool],
        max_new_tokens=110,
        batch_size=100,
        keep_if=lambda _, t: classify(t) == own,
        progress=False,
    )
    return pairs[:n]


def split_train(n_val: int, n_pairs: int, kind: str, seed: int) -> tuple[list[Problem], list[Problem]]:
    pool = problems(n_val + 3 * n_pairs, kind, seed, split="train")
    return pool[:n_val], pool[n_val:]


@dataclass
class Job:
    model: Any
    tok: Any
    args: Any
    out: Path

    def held_out(self, probs: list[Problem], sample: bool, seed: int = 0) -> Callable[[], tuple[Report, list[str]]]:
        return lambda: measure(self.model, self.tok, probs, sample=sample, seed=seed)

    def sampled(self, probs: list[Problem], vec: SteeringVector | None, s: float, scope: Any) -> dict[str, Any]:
        """Sampled runs over SEEDS: pooled accuracy and tokens, and each problem's share of right answers."""
        runs = [steered(self.model, vec, s, scope, self.held_out(probs, True, seed)) for seed in SEEDS]
        per_problem = [sum(c) / len(SEEDS) for c in zip(*(r.correct for r, _ in runs))]
        return {
            "accuracy": sum(per_problem) / len(per_problem),
            "accuracy_ci95": list(bootstrap_ci(per_problem)),
            "chain_tokens": statistics.mean(r.chain_tokens for r, _ in runs),
            "well_formed": statistics.mean(r.well_formed for r, _ in runs),
            "per_seed": [short(r) for r, _ in runs],
            "per_problem": per_problem,
        }
