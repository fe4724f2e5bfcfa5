"""Grade-school word problems with a verifier: reasoning-gym's ``gsm_symbolic`` (the GSM-Symbolic templates).

Splits come from different generator seeds and are kept disjoint by question text. A reply is
right when its last ``\\boxed{}`` holds the answer, as reasoning-gym's own ``score_answer`` decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError
from ..evaluate import parse_boxed

ASK = " Reason step by step, and put the final answer in \\boxed{}."
TASK = "gsm_symbolic"
SPLIT_SEEDS = {"pairs": 101, "validation": 202, "test": 303, "extra": 404}


@dataclass(frozen=True)
class Problem:
    question: str
    answer: str
    entry: dict[str, Any]

    def chat(self, ask: str = ASK) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.question + ask}]


def _dataset(task: str, size: int, seed: int) -> Any:
    try:
        import reasoning_gym
    except ImportError as e:  # pragma: no cover - installed by scripts/env.sh
        raise ImportError("The reasoning job needs reasoning-gym: pip install 'reasoning-gym==0.1.25'.") from e
    return reasoning_gym.create_dataset(task, size=size, seed=seed)


def problems(split: str, n: int, task: str = TASK, exclude: set[str] | None = None) -> list[Problem]:
    """``n`` problems of ``split`` ('pairs', 'validation', 'test', 'extra'), none whose question is in ``exclude``."""
    if split not in SPLIT_SEEDS:
        raise InvalidArgumentError(f"Unknown split {split!r}; expected one of {sorted(SPLIT_SEEDS)}.")
    data = _dataset(task, 2 * n + 20, SPLIT_SEEDS[split])
    out: list[Problem] = []
    seen = set(exclude or ())
    for entry in data:
        q = str(entry["question"])
        if q in seen:
            continue
        try:
            float(str(entry["answer"]))
        except ValueError:
            raise InvalidArgumentError(
                f"{task} problem {entry.get('metadata', {}).get('source_index')!r} has answer {entry['answer']!r}, "
                "which the verifier cannot read as a number; pick another task or seed."
            ) from None
        seen.add(q)
        out.append(Problem(q, str(entry["answer"]), dict(entry)))
        if len(out) == n:
            return out
    raise InvalidArgumentError(f"Only {len(out)} distinct {task} problems for split {split!r}; asked for {n}.")


def splits(n_pairs: int, n_val: int, n_test: int) -> tuple[list[Problem], list[Problem], list[Problem]]:
    """Disjoint pair, validation and test problems."""
    pairs = problems("pairs", n_pairs)
    val = problems("validation", n_val, exclude={p.question for p in pairs})
    test = problems("test", n_test, exclude={p.question for p in pairs + val})
    return pairs, val, test


def right(reply: str, problem: Problem) -> bool:
    """Is the last boxed answer of ``reply`` the problem's answer (reasoning-gym's verifier)?"""
    answer = parse_boxed(reply)
    if answer is None:
        return False
    return bool(_verifier(problem).score_answer(answer, problem.entry) == 1.0)


_VERIFIERS: dict[str, Any] = {}


def _verifier(problem: Problem) -> Any:
    task = str(problem.entry.get("metadata", {}).get("source_dataset", TASK))
    if task not in _VERIFIERS:
        _VERIFIERS[task] = _dataset(task, 1, 0)
    return _VERIFIERS[task]
