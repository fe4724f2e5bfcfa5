"""The seed's experiment on the bundled model: does final-answer fine-tuning make reasoning ornamental?

    python experiments/quality.py --out docs/figures

Compares, on the same held-out problems: the base model, a copy fine-tuned toward final answers
(its own sampled chains with the gold answer appended, loss on the answer tokens only), and the
base model steered with the compression vector. Reports accuracy, chain tokens, early-answering
AOC, filler and mistake sensitivity and information gain, with 95% intervals.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
from pathlib import Path
from typing import Any

import torch

from steering import Registry, steer
from steering.demo import MODEL_ID
from steering.demo.evaluate import measure, wilson
from steering.demo.main import load
from steering.demo.task import Problem, classify, parse_answer, problems
from steering.evaluate import add_mistake, early_answering, filler, generate, information_gain, substitution

VECTORS = Path(__file__).resolve().parent.parent / "vectors"  # the checkout's registry (this script runs from one)


def steps(text: str) -> list[str]:
    """A chain's steps: its sentences, without the final answer sentence."""
    parts = [s for s in re.split(r"(?<=\.)(?= )", text) if s]
    return parts[:-1] if len(parts) > 1 else parts


def cue_for(text: str) -> str:
    return " Answer:" if classify(text) in ("concise", "direct") else " So the answer is"


def finetune_on_answers(model: Any, tok: Any, n_steps: int, seed: int, lr: float = 1e-4) -> Any:
    """A copy trained on its own sampled addsub chains + the gold answer, loss on the answer only."""
    ft = copy.deepcopy(model)
    pool = problems(1500, "addsub", seed=9000 + seed, split="train")
    gens, _ = generate(
        model, tok, [p.prompt for p in pool], max_new_tokens=110, batch_size=150, do_sample=True, seed=seed
    )
    rows = []
    for p, g in zip(pool, gens):
        if classify(g.text) != "verbose":
            continue
        chain = g.text[: g.text.rfind(" So the answer is")]
        prompt = tok(p.prompt + chain)["input_ids"]
        answer = tok(f" So the answer is {p.answer}.", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows.append((prompt, answer))
    opt = torch.optim.AdamW(ft.parameters(), lr=lr)
    rng = random.Random(seed)
    ft.train()
    for _ in range(n_steps):
        batch = [rows[rng.randrange(len(rows))] for _ in range(32)]
        width = max(len(a) + len(b) for a, b in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros_like(ids)
        for i, (a, b) in enumerate(batch):
            ids[i, : len(a) + len(b)] = torch.tensor(a + b)
            labels[i, len(a) : len(a) + len(b)] = torch.tensor(b)  # the answer tokens only
            mask[i, : len(a) + len(b)] = 1
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
    ig = information_gain(model, tok, prompts[:40], chains[:40], [f" {probs[i].answer}" for i in keep[:40]], cue=cue)
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
        "information_gain_per_step": ig.gain_per_step,
        "information_curve": ig.mean_curve,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("demo-out"))
    ap.add_argument("--n-problems", type=int, default=150)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--registry", type=Path, default=VECTORS, help="registry holding concise-cot (default: vectors/)")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    a.out.mkdir(parents=True, exist_ok=True)
    model, tok = load()
    probs = problems(a.n_problems, "addsub", seed=5000 + a.seed)
    reg = Registry(a.registry)
    entry = next(e for e in reg.list(model=MODEL_ID) if e["name"] == "concise-cot")
    vec = reg.load("concise-cot", model=MODEL_ID)
    print("fine-tuning a copy toward final answers ...", flush=True)
    ft = finetune_on_answers(model, tok, a.steps, a.seed, a.lr)
    results = {"base": quality(model, tok, probs, a.seed), "fine-tuned": quality(ft, tok, probs, a.seed)}
    with steer(model, vec, entry["metadata"]["recommended_strength"], scope="prompt_last"):
        results["base + concise-cot"] = quality(model, tok, probs, a.seed)
    (a.out / "reasoning_quality.json").write_text(json.dumps(results, indent=2) + "\n")
    _plot(results, a.out / "reasoning_quality.png")
    print(f"{'model':<22} {'acc':>6} {'tokens':>7} {'AOC':>6} {'filler=':>8} {'mistake=':>9} {'IG/step':>8}")
    for name, r in results.items():
        print(
            f"{name:<22} {r['accuracy']:>6.3f} {r['chain_tokens']:>7.1f} {r['early_answering']['aoc']:>6.3f} "
            f"{r['filler_unchanged']:>8.3f} {r['mistake_unchanged']:>9.3f} {r['information_gain_per_step']:>8.2f}"
        )


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, r in results.items():
        ea = r["early_answering"]
        ax.plot(ea["fractions"], ea["same_answer"], marker="o", label=f"{name} (AOC {ea['aoc']:.2f})")
    ax.set_xlabel("share of the chain kept")
    ax.set_ylabel("same answer as the full chain")
    ax.set_title("Early answering (held-out addsub)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
