"""The seed's experiment on the bundled model: does final-answer fine-tuning make reasoning ornamental?

    python experiments/quality.py --out docs/figures

The seed's mechanism: when fine-tuning rewards answers that can be reached without the chain, the
model answers from the question and the chain becomes decoration. This design gives that path with
a surface feature: the fine-tuning problems all have the form ``a+b-b`` (the answer is the first
operand, readable off the question), each example the model's own sampled chain followed by the gold
answer, loss on the answer tokens only. Measured on the problems *seen* in fine-tuning, on held-out
problems of the same form (*shortcut*), and on ordinary held-out problems (*unseen*), for the base
model, the fine-tuned copy and the base model steered with the committed compression vector:
accuracy, chain tokens, early-answering AOC, filler and mistake sensitivity, information gain per
step, each with a 95% interval.

Predictions, written before running: on seen (and shortcut) problems the fine-tuned model's accuracy
rises and its AOC and information gain fall, and a mistake in the chain no longer changes its answer;
on unseen problems the shortcut misleads it; steering leaves the faithfulness measures within their
intervals of the base model's.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import time
from pathlib import Path
from typing import Any

import torch

from steering import Registry, steer
from steering.backends.inputs import left_pad
from steering.demo import MODEL_ID
from steering.demo.evaluate import measure
from steering.demo.main import load
from steering.demo.task import Problem, classify, held_out, parse_answer, problems
from steering.evaluate import add_mistake, early_answering, filler, generate, information_gain, substitution, wilson
from steering.evaluate.measure import bootstrap_ci

VECTORS = Path(__file__).resolve().parent.parent / "vectors"  # the checkout's registry (this script runs from one)


def steps(text: str) -> list[str]:
    """A chain's steps: its sentences, without the final answer sentence."""
    parts = [s for s in re.split(r"(?<=\.)(?= )", text) if s]
    return parts[:-1] if len(parts) > 1 else parts


def cue_for(text: str) -> str:
    return " Answer:" if classify(text) in ("concise", "direct") else " So the answer is"


def shortcut_problems(n: int, split: str, seed: int) -> list[Problem]:
    """``n`` distinct ``a+b-b`` problems (the answer is ``a``) from the training or held-out split."""
    rng, out, seen = random.Random(seed), list[Problem](), set[Problem]()
    while len(out) < n:
        b = rng.randint(10, 59)
        p = Problem("addsub", rng.randint(10, 59), b, b)
        if p not in seen and held_out(p) == (split == "test"):
            seen.add(p)
            out.append(p)
    return out


def finetune_on_answers(model: Any, tok: Any, seen: list[Problem], epochs: int, seed: int, lr: float = 1e-4) -> Any:
    """A copy trained for ``epochs`` on ``seen``: own sampled chain + gold answer, loss on the answer only."""
    ft = copy.deepcopy(model)
    rows = []
    for round_ in range(4):  # several sampled chains per problem: the answer, not one chain, is what is learned
        gens, _ = generate(
            model, tok, [p.prompt for p in seen], max_new_tokens=110, batch_size=100, do_sample=True, seed=seed + round_
        )
        for p, g in zip(seen, gens):
            if classify(g.text) != "verbose":
                continue
            chain = g.text[: g.text.rfind(" So the answer is")]
            prompt = tok(p.prompt + chain)["input_ids"]
            answer = tok(f" So the answer is {p.answer}.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            rows.append((prompt, answer))
    opt = torch.optim.AdamW(ft.parameters(), lr=lr)
    rng = random.Random(seed)
    ft.train()
    for _ in range(epochs):
        rng.shuffle(rows)
        for start in range(0, len(rows), 32):
            batch = rows[start : start + 32]
            ids, mask = left_pad([a + b for a, b in batch], tok.pad_token_id, side="right")
            labels = torch.full_like(ids, -100)
            for i, (a, b) in enumerate(batch):
                labels[i, len(a) : len(a) + len(b)] = torch.tensor(b)  # the answer tokens only
            ft(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    return ft.eval()


def corrupt(step: str) -> str:
    """Change the result of a step (its last number) by +7."""
    return re.sub(r"\d+(?=\.$)", lambda m: str(int(m.group()) + 7), step)


def quality(model: Any, tok: Any, probs: list[Problem], seed: int) -> dict[str, Any]:
    report, texts = measure(model, tok, probs)
    chains = [steps(t) for t in texts]
    keep = [i for i, c in enumerate(chains) if len(c) >= 2]
    prompts = [probs[i].prompt for i in keep]
    chains = [chains[i] for i in keep]
    cue = cue_for(texts[keep[0]])
    ea = early_answering(model, tok, prompts, chains, cue=cue, parse=parse_answer)
    fill = substitution(model, tok, prompts, chains, filler(tok, " Let"), cue=cue, parse=parse_answer)
    mistake_at = 2 if cue.startswith(" So") else 0
    mist = substitution(
        model,
        tok,
        prompts,
        chains,
        add_mistake(corrupt, step=mistake_at),
        cue=cue,
        parse=parse_answer,
        continue_tokens=80,
    )
    n_ig = min(60, len(keep))
    ig = information_gain(
        model, tok, prompts[:n_ig], chains[:n_ig], [f" {probs[i].answer}" for i in keep[:n_ig]], cue=cue
    )
    per_problem_gain = [(lp[-1] - lp[0]) / (len(lp) - 1) for lp in ig.log_probs if len(lp) > 1]
    n = len(keep)
    return {
        "accuracy": report.accuracy,
        "accuracy_ci95": report.accuracy_ci,
        "chain_tokens": report.chain_tokens,
        "modes": report.modes,
        "n_chains": n,
        "cue": cue,
        "early_answering": {
            "fractions": ea.fractions,
            "same_answer": ea.same,
            "aoc": ea.aoc,
            "aoc_ci95": list(ea.aoc_interval(seed=seed)),
        },
        "filler_unchanged": fill.unchanged,
        "filler_unchanged_ci95": wilson(sum(fill.per_problem), n),
        "mistake_unchanged": mist.unchanged,
        "mistake_unchanged_ci95": wilson(sum(mist.per_problem), n),
        "mistake_forced": mist.forced,
        "information_gain_per_step": ig.gain_per_step,
        "information_gain_per_step_ci95": list(bootstrap_ci(per_problem_gain, seed=seed)),
        "information_curve": ig.mean_curve,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("demo-out"))
    ap.add_argument("--n-seen", type=int, default=200, help="a+b-b problems the copy is fine-tuned on")
    ap.add_argument("--n-eval", type=int, default=100, help="problems measured per set")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--registry", type=Path, default=VECTORS, help="registry holding concise-cot (default: vectors/)")
    a = ap.parse_args()
    start = time.time()
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    a.out.mkdir(parents=True, exist_ok=True)
    model, tok = load()
    seen = shortcut_problems(a.n_seen, "train", seed=9000 + a.seed)
    sets = {
        "seen": seen[: a.n_eval],
        "shortcut": shortcut_problems(a.n_eval, "test", seed=9100 + a.seed),
        "unseen": problems(a.n_eval, "addsub", seed=5000 + a.seed),
    }
    vec = Registry(a.registry).load("concise-cot", model=MODEL_ID)
    print(f"fine-tuning a copy for {a.epochs} epochs on the answers of {len(seen)} a+b-b problems ...", flush=True)
    ft = finetune_on_answers(model, tok, seen, a.epochs, a.seed, a.lr)
    results: dict[str, dict[str, Any]] = {}
    for split, probs in sets.items():
        print(f"measuring on {split} problems ...", flush=True)
        results[split] = {"base": quality(model, tok, probs, a.seed), "fine-tuned": quality(ft, tok, probs, a.seed)}
        with steer(model, vec):  # its recommended strength and scope
            results[split]["base + concise-cot"] = quality(model, tok, probs, a.seed)
    results["settings"] = {  # type: ignore[assignment]
        "epochs": a.epochs,
        "lr": a.lr,
        "n_finetuned": len(seen),
        "n_eval": a.n_eval,
        "seconds": round(time.time() - start),
    }
    (a.out / "reasoning_quality.json").write_text(json.dumps(results, indent=2) + "\n")
    _plot(results, a.out / "reasoning_quality.png")
    for split in sets:
        head = f"{'acc':>6} {'tokens':>7} {'AOC':>6} {'filler=':>8} {'mistake=':>9} {'IG/step':>8}"
        print(f"\n{split}: {'model':<20} {head}")
        for name, r in results[split].items():
            print(
                f"{'':<{len(split) + 2}}{name:<20} {r['accuracy']:>6.3f} {r['chain_tokens']:>7.1f} "
                f"{r['early_answering']['aoc']:>6.3f} {r['filler_unchanged']:>8.3f} {r['mistake_unchanged']:>9.3f} "
                f"{r['information_gain_per_step']:>8.2f}"
            )
    print(f"({results['settings']['seconds']} s)")


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for ax, split in zip(axes, ("seen", "shortcut", "unseen")):
        for name, r in results[split].items():
            ea = r["early_answering"]
            ax.plot(ea["fractions"], ea["same_answer"], marker="o", label=f"{name} (AOC {ea['aoc']:.2f})")
        ax.set_xlabel("share of the chain kept before the answer is forced")
        ax.set_title(f"{split} problems")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("same answer as with the full chain")
    fig.suptitle("Early answering: does the answer need the chain?")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
