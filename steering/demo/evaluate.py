"""The demo task's view of a measurement: :func:`steering.evaluate.measure` plus the task's own shares
(well-formed chains, reasoning modes)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..evaluate import Measurement
from ..evaluate import measure as measure_replies
from .task import Problem, classify, parse_answer, well_formed

# How reasoning models are run (DeepSeek-R1's recommended temperature 0.6, top-p 0.95); 0.7 here.
SAMPLING: dict[str, Any] = {"do_sample": True, "temperature": 0.7, "top_p": 0.95, "top_k": 0}


@dataclass(frozen=True)
class Report:
    measurement: Measurement  # accuracy (bootstrap CI), tokens, seconds, texts, per-reply correctness
    well_formed: float
    direct_share: float
    modes: dict[str, float]

    @property
    def n(self) -> int:
        return self.measurement.n

    @property
    def accuracy(self) -> float:
        return self.measurement.accuracy or 0.0

    @property
    def accuracy_ci(self) -> tuple[float, float]:
        return self.measurement.accuracy_ci or (0.0, 1.0)

    @property
    def chain_tokens(self) -> float:
        return self.measurement.tokens

    @property
    def seconds(self) -> float:
        return self.measurement.seconds

    @property
    def correct(self) -> list[bool]:
        return self.measurement.correct or []


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
    m = measure_replies(
        model,
        tokenizer,
        [p.prompt for p in problems],
        gold=[p.answer for p in problems],
        parse=parse_answer,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=False,
        **kwargs,
    )
    n = m.n
    modes = Counter(classify(t) for t in m.texts)
    return Report(
        measurement=m,
        well_formed=sum(well_formed(t, p) for t, p in zip(m.texts, problems)) / n,
        direct_share=modes["direct"] / n,
        modes={k: v / n for k, v in sorted(modes.items())},
    ), m.texts
