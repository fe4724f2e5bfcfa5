"""Steering *when* to reason, on the bundled model: elicit reasoning only where direct answers fail.

    python experiments/conditional.py --out demo-out

On ``muladd`` problems the model answers directly (accuracy ~0.84, 7 tokens). A condition fitted on
the prompts whose direct answer it got wrong (validation split of training problems) gates the
reasoning vector; compared on held-out problems with: no steering, unconditional elicitation,
always reasoning (the chain forced by its opening words), and a structural condition (larger
operands). Accuracy with 95% Wilson intervals, paired-bootstrap gains, and mean tokens.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from steering import Pair, extract, fit_condition, steer
from steering.calibrate import strength_for_norm
from steering.demo.evaluate import measure
from steering.demo.main import load
from steering.demo.report import paired_gain
from steering.demo.task import Problem, parse_answer, problems
from steering.evaluate import generate, wilson

OPENING = " Let me think step by step."  # how the model's own verbose chains start


def _row(probs: list[Problem], texts: list[str], tokens: float, base_texts: list[str], seed: int) -> dict[str, Any]:
    right = sum(parse_answer(t) == p.answer for t, p in zip(texts, probs))
    gain, ci = paired_gain(probs, base_texts, texts, seed)
    return {
        "accuracy": right / len(probs),
        "accuracy_ci95": wilson(right, len(probs)),
        "tokens": tokens,
        "gain": gain,
        "gain_ci95": ci,
    }


def run(n: int, seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    model, tok = load()
    train = problems(600, "muladd", seed=21 + seed, split="train")
    _, train_texts = measure(model, tok, train)
    wrong = [p.prompt for p, t in zip(train, train_texts) if parse_answer(t) != p.answer]
    right = [p.prompt for p, t in zip(train, train_texts) if parse_answer(t) == p.answer]
    fails = fit_condition(model, tok, wrong, right, layers=[0, 1, 2, 3])
    big = [p.prompt for p in train if p.a * p.b >= 40]
    small = [p.prompt for p in train if p.a * p.b < 40]
    larger = fit_condition(model, tok, big, small, layers=[0, 1, 2, 3])

    pairs = [
        Pair(p.prompt, positive=p.completion("verbose"), negative=p.completion("direct"))
        for p in problems(50, "muladd", seed=8 + seed, split="train")
    ]
    vec = extract(model, tok, pairs, layers=[3], position="first")
    strength = strength_for_norm(vec, 1.0)

    test = problems(n, "muladd", seed=12 + seed)
    base, base_texts = measure(model, tok, test)
    rows: dict[str, Any] = {"no steering": _row(test, base_texts, base.chain_tokens, base_texts, seed)}
    with steer(model, vec, strength, scope="prompt_last"):
        r, texts = measure(model, tok, test)
    rows["elicit always"] = _row(test, texts, r.chain_tokens, base_texts, seed)
    for name, cond in (("elicit when direct fails", fails), ("elicit when operands are larger", larger)):
        with steer(model, vec, strength, scope="prompt_last", when=cond):
            r, texts = measure(model, tok, test)
        rows[name] = _row(test, texts, r.chain_tokens, base_texts, seed)
        rows[name]["fired"] = sum(not t.lstrip().startswith("Answer") for t in texts) / len(texts)
    forced, _ = generate(model, tok, [p.prompt + OPENING for p in test], max_new_tokens=110, batch_size=100)
    opening = len(tok(OPENING, add_special_tokens=False)["input_ids"])
    texts = [OPENING + g.text for g in forced]
    rows["always reason (forced opening)"] = _row(
        test, texts, sum(g.n_tokens for g in forced) / len(forced) + opening, base_texts, seed
    )
    conditions = {
        name: {k: c.metadata[k] for k in ("f1", "precision", "recall", "n_positive", "n_negative")}
        | {"layer": c.layer, "threshold": c.threshold}
        for name, c in (("direct fails", fails), ("larger operands", larger))
    }
    return {"n_problems": n, "strength": strength, "conditions": conditions, "results": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("demo-out"))
    ap.add_argument("--n-problems", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    a.out.mkdir(parents=True, exist_ok=True)
    res = run(a.n_problems, a.seed)
    (a.out / "conditional.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"{'':<34}{'accuracy':>9} {'95% CI':>15} {'gain':>7} {'tokens':>7}")
    for name, r in res["results"].items():
        lo, hi = r["accuracy_ci95"]
        print(f"{name:<34}{r['accuracy']:>9.3f} [{lo:.3f}, {hi:.3f}] {r['gain']:>+7.3f} {r['tokens']:>7.1f}")
    for name, c in res["conditions"].items():
        print(f"condition '{name}': layer {c['layer']}, F1 {c['f1']:.2f} (on its training prompts)")


if __name__ == "__main__":
    main()
