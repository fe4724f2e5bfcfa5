"""The how-to's sampled-validation recipe on the real model: SmolLM2-135M-Instruct, answers sampled.

    python experiments/sampled_real.py --out docs/results/smollm2_sampled.json

The registry's ``concise-answers`` vector (layer 9, scope "all") at strengths 0.1-0.4 of the typical
residual norm, each measured greedy and sampled (temperature 0.7, top-p 0.95, seed 0) on the 40
validation questions of ``steering demo --model smollm2``. Two picks with ``steering.evaluate.best``:
fewest greedy tokens within the greedy bounds, and fewest sampled tokens within greedy *and* sampled
bounds (accuracy within 5 points, degeneration within 0.02 of the baseline). Each pick is then run
sampled with three seeds on the 114 held-out questions against the sampled baseline (and ``--also``
fractions; default 0.15). About 25 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from steering import Registry, steer
from steering.calibrate import strength_for_norm
from steering.demo.questions import split
from steering.demo.real import MAX_NEW, N_VAL, chat
from steering.evaluate import Measurement, best, measure
from steering.evaluate.measure import bootstrap_ci
from steering.models import SMOLLM2_ID, smollm2

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
SAMPLED = {"do_sample": True, "temperature": 0.7, "top_p": 0.95, "top_k": 0}
SEEDS = (0, 1, 2)
ACCURACY_SLACK, DEGENERATION_SLACK = 0.05, 0.02


def run(model: Any, tok: Any, qs: list, vec: Any, s: float, batch: int, **kwargs: Any) -> Measurement:
    def go() -> Measurement:
        prompts = [chat(q) for q in qs]
        gold = [q.answers for q in qs]
        return measure(model, tok, prompts, gold=gold, max_new_tokens=MAX_NEW, batch_size=batch, **kwargs)

    if vec is None:
        return go()
    with steer(model, vec, s, scope="all"):
        return go()


def row(model: Any, tok: Any, val: list, vec: Any, s: float, batch: int) -> dict[str, float]:
    g = run(model, tok, val, vec, s, batch)
    smp = run(model, tok, val, vec, s, batch, seed=0, **SAMPLED)
    out = {}
    for mode, m in (("greedy", g), ("sampled", smp)):
        out |= {f"{mode}_tokens": m.tokens, f"{mode}_accuracy": m.accuracy, f"{mode}_degeneration": m.degeneration}
    return out


def held_out(model: Any, tok: Any, test: list, vec: Any, s: float, batch: int) -> dict[str, Any]:
    runs = [run(model, tok, test, vec, s, batch, seed=seed, **SAMPLED) for seed in SEEDS]
    per_question = [statistics.mean(float(c) for c in cs) for cs in zip(*(m.correct for m in runs))]
    return {
        "accuracy": statistics.mean(per_question),
        "tokens": statistics.mean(m.tokens for m in runs),
        "degeneration": statistics.mean(m.degeneration for m in runs),
        "per_question": per_question,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--also", type=float, nargs="*", default=[0.15], help="more fractions to run held out")
    args = ap.parse_args()
    start = time.time()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model, tok = smollm2()
    _, val, test = split(0, n_pairs=50, n_val=N_VAL)
    test = test[:114]
    vec = Registry(ROOT / "vectors").load("concise-answers", model=SMOLLM2_ID)
    base = row(model, tok, val, None, 0.0, args.batch_size)
    rows = [{"layer": 9, "strength": 0.0, **base}]
    for f in FRACTIONS:
        measured = row(model, tok, val, vec, strength_for_norm(vec, f), args.batch_size)
        rows.append({"layer": 9, "strength": f, **measured})
        print({k: round(v, 3) for k, v in rows[-1].items()}, flush=True)
    bounds = {f"{m}_accuracy": base[f"{m}_accuracy"] - ACCURACY_SLACK for m in ("greedy", "sampled")}
    caps = {f"{m}_degeneration": base[f"{m}_degeneration"] + DEGENERATION_SLACK for m in ("greedy", "sampled")}
    picks = {
        "greedy validation": best(
            rows,
            "greedy_tokens",
            at_least={"greedy_accuracy": bounds["greedy_accuracy"]},
            at_most={"greedy_degeneration": caps["greedy_degeneration"]},
        )["strength"],
        "greedy and sampled validation": best(rows, "sampled_tokens", at_least=bounds, at_most=caps)["strength"],
    }
    print("picks", picks, flush=True)
    runs = {**picks, **{f"fraction {f}": f for f in args.also}}
    baseline = held_out(model, tok, test, None, 0.0, args.batch_size)
    results: dict[str, Any] = {"baseline": baseline}
    for name, f in runs.items():
        if f in [r.get("fraction") for r in results.values()]:
            results[name] = next(r for r in results.values() if r.get("fraction") == f)
            continue
        r = held_out(model, tok, test, vec, strength_for_norm(vec, f), args.batch_size)
        d = [s - b for b, s in zip(baseline["per_question"], r["per_question"])]
        r |= {
            "fraction": f,
            "reduction": 1 - r["tokens"] / baseline["tokens"],
            "accuracy_diff": statistics.mean(d),
            "accuracy_diff_ci95": list(bootstrap_ci(d)),
        }
        results[name] = r
        print(name, {k: v for k, v in r.items() if k != "per_question"}, flush=True)
    summary = {
        "model": SMOLLM2_ID,
        "vector": "concise-answers (layer 9, scope all)",
        "sampling": {**SAMPLED, "seeds": list(SEEDS)},
        "validation_questions": len(val),
        "held_out_questions": len(test),
        "validation_rows": rows,
        "picks": picks,
        "held_out": {k: {x: y for x, y in v.items() if x != "per_question"} for k, v in results.items()},
        "seconds": round(time.time() - start, 1),
    }
    print(json.dumps(summary["held_out"], indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
