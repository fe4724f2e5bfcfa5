"""What the reasoning job checks beside length and accuracy: does the chain still carry the answer
(early answering, filler; on Hugging Face, each run's chains under its own steering), and do llama.cpp
and Hugging Face write the same chains (parity)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from .. import SteeringVector, steer
from ..evaluate import Measurement, early_answering, filler, parse_boxed, substitution
from ..evaluate.generation import Generation, generate
from .gsm import Problem
from .report import say

EARLY_FRACTIONS = (0.0, 1 / 3, 2 / 3, 1.0)
CUE = "\n\nSo the final answer is \\boxed{"


def steps(text: str) -> list[str]:
    """A chain as steps: its lines, each keeping its newline, up to (not including) the final boxed answer."""
    cut = text.rfind("\\boxed{")
    body = text[:cut] if cut >= 0 else text
    lines = body.splitlines(keepends=True)
    # The sentence holding the box is the answer, not a step.
    if cut >= 0 and lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    return [line for line in lines if line.strip()] or [body]


def faithfulness(
    model: Any, tok: Any, probs: list[Problem], runs: dict[str, tuple[Measurement, SteeringVector | None, float]]
) -> dict[str, Any]:
    """Early answering (AOC) and filler substitution on each run's own chains, the run's steering active."""
    out: dict[str, Any] = {"n_problems": len(probs), "cue": CUE, "engine": "transformers"}
    prompts = [p.chat() for p in probs]

    def parse(text: str) -> str | None:
        return parse_boxed(text if text.rstrip().endswith("}") else text + "}")

    for name, (m, vec, s) in runs.items():
        chains = [steps(t) for t in m.texts[: len(probs)]]

        def under(fn: Callable[[], Any], vec: SteeringVector | None = vec, s: float = s) -> Any:
            if vec is None:
                return fn()
            with steer(model, vec, s, scope="all"):
                return fn()

        def early(chains: list[list[str]] = chains) -> Any:
            return early_answering(model, tok, prompts, chains, cue=CUE, parse=parse, fractions=EARLY_FRACTIONS)

        def fill_in(chains: list[list[str]] = chains) -> Any:
            return substitution(model, tok, prompts, chains, filler(tok), cue=CUE, parse=parse)

        ea, fill = under(early), under(fill_in)
        out[f"aoc_{name}"] = ea.aoc
        out[f"aoc_{name}_ci95"] = list(ea.aoc_interval())
        out[f"early_answer_curve_{name}"] = {"fractions": ea.fractions, "same": ea.same}
        out[f"filler_unchanged_{name}"] = fill.unchanged
        out[f"steps_{name}"] = statistics.mean(len(c) for c in chains)
        say(f"    {name}: AOC {ea.aoc:.3f}, filler leaves the answer unchanged in {fill.unchanged:.0%}")
    return out


def parity(
    model: Any,
    tok: Any,
    run: Callable[..., tuple[list[Generation], float]],
    probs: list[Problem],
    vec: SteeringVector,
    s: float,
    max_new: int,
) -> dict[str, Any]:
    """The same greedy chains from Hugging Face (steer, scope 'all') and ``run`` (llama.cpp, control vector)."""
    rows = {}
    for name, v in (("baseline", None), ("steered", vec)):
        prompts = [p.chat() for p in probs]
        fast, _ = run(prompts, v, s, max_new=max_new)
        if v is None:
            ref, _ = generate(model, tok, prompts, max_new_tokens=max_new, batch_size=len(prompts))
        else:
            with steer(model, v, s, scope="all"):
                ref, _ = generate(model, tok, prompts, max_new_tokens=max_new, batch_size=len(prompts))
        same_prefix = [_common(a.ids, b.ids) for a, b in zip(fast, ref)]
        rows[name] = {
            "identical": sum(a.ids == b.ids for a, b in zip(fast, ref)) / len(probs),
            "common_prefix_share": statistics.mean(
                p / max(len(a.ids), len(b.ids)) for p, a, b in zip(same_prefix, fast, ref)
            ),
            "same_answer": sum(parse_boxed(a.text) == parse_boxed(b.text) for a, b in zip(fast, ref)) / len(probs),
            "tokens_llama_cpp": statistics.mean(g.n_tokens for g in fast),
            "tokens_transformers": statistics.mean(g.n_tokens for g in ref),
        }
        say(f"    {name}: {rows[name]}")
    return {"n_problems": len(probs), **rows}


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
