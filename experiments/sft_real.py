"""The seed's question on a real model: fine-tune on answers, or steer, and does the chain still carry the answer?

    python experiments/sft_real.py --out demo-out/sft-real      # writes sft_real.json, sft_real.md, a figure

Qwen2.5-Coder-0.5B-Instruct on reasoning-gym's GSM-Symbolic problems (the reasoning job's model, test
set and vector). Five arms, every one measured on the same held-out problems:

- **base**;
- **answer-only SFT**: a LoRA (peft) trained on ``extra``-split problems whose prompt asks for
  step-by-step reasoning and whose target is one line with the answer (``The final answer is
  \\boxed{A}.``): the fine-tuning on final answers the seed's claim is about;
- **own-chain SFT**: a LoRA trained on the model's own *verified* chains for the same problems
  (its greedy chain, kept when it reaches the answer: rejection sampling with one draw): fine-tuning
  on reasoning;
- **steered**: the committed ``concise-gsm`` vector (``vectors/``) at its recommended strength;
- **thought-switch penalty** (TIP): ``-alpha`` on the switch words' tokens (``Wait``, ``Alternatively``,
  each one token here) for the first ``beta`` tokens of every thought; with ``beta`` >= the token limit
  that is a constant logit bias, which is how llama.cpp applies it.

Generation runs on llama.cpp (the adapters exported with ``steering.interop.lora_gguf``, the vector as
a control vector, the penalty as ``logit_bias``); the chain measures run in transformers on the first
``--n-faith`` test problems, each arm's own chains under its own weights or steering: early-answering
AOC, filler and paraphrase substitution ("answer unchanged"), information gain per step on the gold
answer; all through ``steering.evaluate``. Answer-only SFT writes (almost) no chain, so it is also
measured on the *base* model's chains. A shifted set (reasoning-gym ``leg_counting``, another multi-step
word-problem generator) tells a general gain from a GSM-specific one. Nothing is chosen on the test
problems: the LoRA settings are fixed below, the vector and its strength came from validation problems.

Predictions, written before running (0.5B model, 200 training problems, 2 CPU cores; the full run then
used 100 training problems, greedy own chains only and 5 chain-measure problems, to fit one session's
time, set before any full-scale result existed):

1. Answer-only SFT stops the model writing chains (chain tokens fall by > 80%) and its accuracy
   *falls* (a 0.5B model cannot do these problems in its head): the seed's accuracy gain needs a model
   that can shortcut; here the shortcut is not there. Given the base model's chains it still follows
   them (AOC on base chains within 0.1 of base): the chain is unused because it is not written, not
   because it is ignored.
2. Own-chain SFT keeps chain length within 15% and accuracy within its interval of base's; AOC,
   filler and information gain stay within their intervals (training on reasoning keeps it).
3. Steering shortens chains by ~25% at a cost in accuracy (as the reasoning job measured); its chains
   stay load-bearing (AOC at or above base: a shorter chain has fewer steps to skip).
4. The thought-switch penalty changes nothing: the base chains hold no switch word, so under greedy
   decoding the penalty never moves the argmax (this model does not "underthink" in TIP's sense); its
   chains differ from base's only as much as base's differ from themselves rerun (llama-server's greedy
   tokens depend on how requests share a batch; the rerun, "base_again", is that floor; added after a
   4-problem smoke run showed the penalty arm differing from base).
5. On the shifted set, no arm gains over base by more than its interval.

Outcomes (the committed run, ``docs/results/sft_real.json``; discussion in ``docs/reasoning-quality.md``):
1 confirmed (tokens -96%, accuracy 0.205 -> 0.010; on base's chains AOC 0.84 vs base 0.78); 2 confirmed
(accuracy -0.010, tokens -3%); 3 confirmed (-25% tokens, -0.080 accuracy, AOC 0.86); 4 confirmed (no
switch word in base's chains; 48% of chains identical to base vs the rerun's 54%); 5 vacuous (base
solves 1 of 50 shifted problems).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import random
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from steering import Registry, steer
from steering.backends.inputs import left_pad
from steering.demo.gsm import Problem, problems, right, splits
from steering.demo.reasoning import N_VAL, PAIR_POOL, short
from steering.demo.reasoning_checks import CUE, EARLY_FRACTIONS, steps
from steering.demo.reasoning_engine import MAX_NEW, Engine
from steering.evaluate import (
    Measurement,
    ThoughtSwitchPenalty,
    early_answering,
    filler,
    information_gain,
    parse_boxed,
    substitution,
)
from steering.evaluate.measure import bootstrap_ci
from steering.interop.lora_gguf import export_lora_gguf
from steering.models import QWEN_CODER_ID, qwen_coder, qwen_coder_path
from steering.prompts import encode, encode_completion

VECTORS = Path(__file__).resolve().parent.parent / "vectors"  # the checkout's registry (this script runs from one)
N_PAIRS = 24  # the reasoning job's setting: the same pair, validation and test splits
LORA = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
TRAIN = {"epochs": 1, "lr": 2e-4, "batch": 8, "seed": 0}
TIP = {"alpha": 3.0, "beta": 600, "words": ["Wait", " Wait", "Alternatively", " Alternatively"]}
SHIFT_TASK = "leg_counting"
PARAPHRASE = (
    "Rewrite the following solution in different words. Keep every step and every number, in the same order; "
    "do not add steps and do not give the final answer.\n\n{chain}"
)


def answer_target(p: Problem) -> str:
    return f"The final answer is \\boxed{{{p.answer}}}."


def training_rows(tok: Any, examples: list[tuple[Problem, str]]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, target ids ending in the end-of-turn token) per example; the prompt asks for reasoning."""
    eos = int(tok.eos_token_id)
    return [(encode(tok, p.chat()), [*encode_completion(tok, target), eos]) for p, target in examples]


def train_lora(model: Any, rows: list[tuple[list[int], list[int]]], out: Path, tok: Any) -> list[float]:
    """A LoRA on a copy of ``model`` trained on ``rows`` (loss on the target tokens only), saved to ``out``."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(TRAIN["seed"])
    tuned = get_peft_model(copy.deepcopy(model), LoraConfig(**LORA))
    params = [p for p in tuned.parameters() if p.requires_grad]
    decoder, head = tuned.get_base_model().get_decoder(), tuned.get_base_model().get_output_embeddings()
    opt = torch.optim.AdamW(params, lr=TRAIN["lr"])
    rng = random.Random(TRAIN["seed"])
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))  # similar lengths together
    batches = [order[i : i + TRAIN["batch"]] for i in range(0, len(order), TRAIN["batch"])]
    losses = []
    tuned.train()
    for epoch in range(TRAIN["epochs"]):
        rng.shuffle(batches)
        for b in batches:
            seqs = [rows[i][0] + rows[i][1] for i in b]
            ids, mask = left_pad(seqs, tok.pad_token_id, side="right")
            labels = torch.full_like(ids, -100)
            for j, i in enumerate(b):
                a, t = rows[i]
                labels[j, len(a) : len(a) + len(t)] = torch.tensor(t)
            # The vocabulary projection only where a target token is predicted: a quarter of the model's
            # compute per token, and a (batch x length x 152k) logits tensor, saved on every prompt token.
            hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
            where = labels[:, 1:] != -100
            logits = head(hidden[where]).float()
            loss = torch.nn.functional.cross_entropy(logits, labels[:, 1:][where])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        print(f"      epoch {epoch + 1}: mean loss {statistics.mean(losses[-len(batches) :]):.3f}", flush=True)
    tuned.eval()
    tuned.save_pretrained(out)  # adapter_model.safetensors + adapter_config.json
    export_lora_gguf(tuned, out / "lora.gguf", base_gguf=qwen_coder_path())
    return losses


def merged(model: Any, adapter: Path) -> Any:
    """A copy of ``model`` with the adapter merged in (a plain transformers model: every library function works)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(copy.deepcopy(model), adapter).merge_and_unload().eval()


def paired(base: list[bool], arm: list[bool]) -> dict[str, Any]:
    diffs = [float(b) - float(a) for a, b in zip(base, arm)]
    return {"accuracy_diff": statistics.mean(diffs), "accuracy_diff_ci95": list(bootstrap_ci(diffs))}


def chain_measures(
    model: Any, tok: Any, probs: list[Problem], texts: list[str], paraphrases: dict[str, str], seed: int
) -> dict[str, Any]:
    """AOC, filler and paraphrase substitution, information gain on the chains of ``texts`` with >= 2 steps."""
    chains = [steps(t) for t in texts]
    keep = [i for i, c in enumerate(chains) if len(c) >= 2]
    if not keep:
        return {
            "n_chains": 0,
            "aoc": None,
            "filler_unchanged": None,
            "paraphrase_unchanged": None,
            "information_gain": None,
        }
    prompts = [probs[i].chat() for i in keep]
    chains = [chains[i] for i in keep]

    def parse(text: str) -> str | None:
        return parse_boxed(text if text.rstrip().endswith("}") else text + "}")

    ea = early_answering(model, tok, prompts, chains, cue=CUE, parse=parse, fractions=EARLY_FRACTIONS)
    fill = substitution(model, tok, prompts, chains, filler(tok), cue=CUE, parse=parse)
    para = substitution(
        model, tok, prompts, chains, lambda c: steps(paraphrases["".join(c)]) or c, cue=CUE, parse=parse
    )
    ig = information_gain(model, tok, prompts, chains, [probs[i].answer + "}" for i in keep], cue=CUE)
    per_problem = [(lp[-1] - lp[0]) / (len(lp) - 1) for lp in ig.log_probs if len(lp) > 1]
    n = len(keep)
    return {
        "n_chains": n,
        "steps": statistics.mean(len(c) for c in chains),
        "aoc": ea.aoc,
        "aoc_ci95": list(ea.aoc_interval(seed=seed)),
        "early_answer_curve": {"fractions": ea.fractions, "same": ea.same},
        "filler_unchanged": fill.unchanged,
        "paraphrase_unchanged": para.unchanged,
        "information_gain": ig.gain_per_step,
        "information_gain_ci95": list(bootstrap_ci(per_problem, seed=seed)),
        "information_curve": ig.mean_curve,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("demo-out/sft-real"))
    ap.add_argument("--n-problems", type=int, default=200, help="held-out GSM-Symbolic problems (default 200)")
    ap.add_argument("--n-train", type=int, default=100, help="training problems (default 100)")
    ap.add_argument("--n-faith", type=int, default=5, help="test problems for the chain measures (default 5)")
    ap.add_argument("--n-shift", type=int, default=50, help="shifted-set problems (default 50)")
    ap.add_argument("--n-again", type=int, default=100, help="test problems the base run repeats (default 100)")
    ap.add_argument("--parallel", type=int, default=16, help="llama-server slots (default 16)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--registry", type=Path, default=VECTORS, help="registry holding concise-gsm (default vectors/)")
    a = ap.parse_args()
    start = time.time()
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    print(f"[1/7] {QWEN_CODER_ID}, the committed concise-gsm vector, problems", flush=True)
    model, tok = qwen_coder()
    engine = Engine(qwen_coder_path(), tok, a.parallel, a.threads, a.out / "runs")
    pool, val, test = splits(int(N_PAIRS * PAIR_POOL) + 1, N_VAL, a.n_problems)
    train = problems("extra", a.n_train, exclude={p.question for p in pool + val + test})
    shifted = problems("test", a.n_shift, task=SHIFT_TASK)
    vec = Registry(a.registry).load("concise-gsm", model=QWEN_CODER_ID)
    strength = float(vec.metadata["recommended_strength"])
    tip = ThoughtSwitchPenalty(TIP["words"], alpha=TIP["alpha"], beta=TIP["beta"], tokenizer=tok)
    if TIP["beta"] < MAX_NEW or any(len(p) > 1 for p in tip.patterns):
        raise SystemExit(f"TIP as a logit bias needs beta >= {MAX_NEW} and one-token switch words: {tip.patterns}.")
    bias = [[p[0], -TIP["alpha"]] for p in tip.patterns]

    print(f"[2/7] training data: {len(train)} problems; the model's own greedy chains, kept where verified")
    greedy, _ = engine.run([p.chat() for p in train], None, 0.0)
    own = [(p, g.text) for p, g in zip(train, greedy) if right(g.text, p)]
    sets = {"answer-only SFT": [(p, answer_target(p)) for p in train], "own-chain SFT": own}
    print(f"      {len(own)} verified own chains; answer-only targets like {answer_target(train[0])!r}")

    print("[3/7] LoRA fine-tuning (peft), one adapter per training set")
    adapters: dict[str, Path] = {}
    training: dict[str, Any] = {}
    for name, examples in sets.items():
        rows = training_rows(tok, examples)
        key = hashlib.sha256(json.dumps([rows, LORA, TRAIN]).encode()).hexdigest()[:16]
        folder = a.out / "adapters" / f"{name.split()[0]}-{key}"
        if not (folder / "lora.gguf").is_file():
            t0 = time.time()
            losses = train_lora(model, rows, folder, tok)
            (folder / "training.json").write_text(json.dumps({"losses": losses, "seconds": time.time() - t0}))
        log = json.loads((folder / "training.json").read_text())
        training[name] = {
            "examples": len(rows),
            "target_tokens": statistics.mean(len(t) for _, t in rows),
            "first_loss": log["losses"][0],
            "last_loss": log["losses"][-1],
            "seconds": round(log["seconds"]),
        }
        adapters[name] = folder
        print(f"      {name}: {training[name]}", flush=True)

    arms: dict[str, dict[str, Any]] = {
        "base": {},
        "answer-only SFT": {"lora": adapters["answer-only SFT"] / "lora.gguf"},
        "own-chain SFT": {"lora": adapters["own-chain SFT"] / "lora.gguf"},
        "steered": {"vec": vec, "strength": strength},
        "thought-switch penalty": {"logit_bias": bias},
    }

    def gen(probs: list[Problem], arm: dict[str, Any]) -> Measurement:
        kw = {"lora": arm["lora"]} if "lora" in arm else {}
        kw |= {"logit_bias": arm["logit_bias"]} if "logit_bias" in arm else {}
        return engine.measure(probs, arm.get("vec"), arm.get("strength", 0.0), **kw)

    print(f"[4/7] {len(test)} held-out problems, every arm (llama.cpp, greedy, <= {MAX_NEW} tokens)")
    runs = {name: gen(test, arm) for name, arm in arms.items()}
    # llama-server's greedy tokens depend on how requests share a batch: the base run again (only the
    # request seed differs, which greedy decoding ignores) is the floor under every arm's differences.
    n_again = min(a.n_again, len(test))
    again = engine.measure(test[:n_again], None, 0.0, seed=1)
    for name, m in runs.items():
        print(f"      {name}: accuracy {m.accuracy:.3f}, {m.tokens:.1f} tokens, {m.seconds:.0f} s", flush=True)
    print(f"[5/7] shifted set: {len(shifted)} {SHIFT_TASK} problems")
    shift = {name: gen(shifted, arm) for name, arm in arms.items()}
    for name, m in shift.items():
        print(f"      {name}: accuracy {m.accuracy:.3f}, {m.tokens:.1f} tokens", flush=True)

    nf = min(a.n_faith, len(test))
    print(f"[6/7] chain measures on {nf} test problems (transformers, each arm's own weights and steering)")
    texts = {name: m.texts[:nf] for name, m in runs.items()}
    to_paraphrase = sorted({"".join(steps(t)) for ts in texts.values() for t in ts})
    para_runs, _ = engine.run(
        [[{"role": "user", "content": PARAPHRASE.format(chain=c)}] for c in to_paraphrase], None, 0.0
    )
    paraphrases = {c: g.text for c, g in zip(to_paraphrase, para_runs)}
    faith: dict[str, Any] = {}
    for name, arm in arms.items():
        # Keyed by the chains and the weights or steering that read them (the penalty only acts in
        # generation): an arm whose chains are the base's reuses the base's measures.
        reader = str(adapters[name]) if "lora" in arm else f"steered {strength}" if "vec" in arm else "base"
        extra = name == "answer-only SFT"
        digest = hashlib.sha256(json.dumps([texts[name], reader, extra]).encode()).hexdigest()[:16]
        key = f"faith-{digest}"

        def compute(name: str = name, arm: dict[str, Any] = arm, extra: bool = extra) -> dict[str, Any]:
            net = merged(model, adapters[name]) if "lora" in arm else model
            ctx: Callable[[], Any] = (
                (lambda: steer(net, arm["vec"], arm["strength"], scope="all")) if "vec" in arm else nullcontext
            )
            with ctx():
                out = chain_measures(net, tok, test[:nf], texts[name], paraphrases, seed=0)
                if extra:  # it writes no chain: does it follow one it is given?
                    out["on_base_chains"] = chain_measures(net, tok, test[:nf], texts["base"], paraphrases, seed=0)
            return out

        faith[name] = engine.cached(key, compute)
        print(
            f"      {name}: {json.dumps({k: v for k, v in faith[name].items() if not isinstance(v, (dict, list))})}",
            flush=True,
        )

    print("[7/7] results")
    base_correct = runs["base"].correct or []
    result: dict[str, Any] = {
        "model": QWEN_CODER_ID,
        "task": "reasoning-gym gsm_symbolic",
        "n_problems": len(test),
        "n_faith": nf,
        "shift_task": SHIFT_TASK,
        "n_shift": len(shifted),
        "max_new_tokens": MAX_NEW,
        "engine": "llama.cpp (generation), transformers (chain measures)",
        "lora": LORA,
        "train": {**TRAIN, "n_train_problems": len(train), "sets": training},
        "vector": {"name": "concise-gsm", "layer": vec.layers, "strength": strength},
        "tip": {
            **TIP,
            "token_ids": [p[0] for p in tip.patterns],
            "switch_words_in_base_chains": sum(
                t.count(w.strip()) for t in runs["base"].texts for w in TIP["words"][::2]
            ),
        },
        "arms": {},
        "base_again": {
            "n_problems": n_again,
            **short(again),
            **paired(base_correct[:n_again], again.correct or []),
            "identical_to_base": sum(x == y for x, y in zip(again.texts, runs["base"].texts)) / n_again,
        },
    }
    for name, m in runs.items():
        f = faith[name]
        result["arms"][name] = {
            **short(m),
            **paired(base_correct, m.correct or []),
            "aoc": f["aoc"],
            "aoc_ci95": f.get("aoc_ci95"),
            "filler_unchanged": f["filler_unchanged"],
            "paraphrase_unchanged": f["paraphrase_unchanged"],
            "information_gain": f["information_gain"],
            "information_gain_ci95": f.get("information_gain_ci95"),
            "chain_measures": f,
            "identical_to_base": sum(x == y for x, y in zip(m.texts, runs["base"].texts)) / len(test),
            "shifted": {**short(shift[name]), **paired(shift["base"].correct or [], shift[name].correct or [])},
        }
    result["seconds_total"] = round(time.time() - start)
    (a.out / "sft_real.json").write_text(json.dumps(result, indent=2) + "\n")
    (a.out / "sft_real.md").write_text(report(result))
    plot(result, a.out / "sft_real.png")
    print(
        json.dumps(
            {
                k: {x: v[x] for x in ("accuracy", "chain_tokens", "aoc", "information_gain")}
                for k, v in result["arms"].items()
            },
            indent=1,
        )
    )
    print(f"({result['seconds_total']} s)")


def _ci(ci: list[float] | None, fmt: str = "{:.2f}") -> str:
    return "" if not ci else f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if x is None else fmt.format(x)


def report(r: dict[str, Any]) -> str:
    """The arms x measures table (Markdown)."""
    lines = [
        f"# Fine-tune on answers, or steer? {r['model']}, {r['n_problems']} held-out GSM-Symbolic problems",
        "",
        f"Greedy, <= {r['max_new_tokens']} new tokens, llama.cpp; chain measures on the first {r['n_faith']} test "
        f"problems in transformers. Shifted set: {r['n_shift']} `{r['shift_task']}` problems. "
        f"Written by `python experiments/sft_real.py` ({r['seconds_total'] / 60:.0f} min on 2 CPU cores).",
        "",
        "| arm | accuracy [95% CI] | paired change vs base | chain tokens | AOC | filler: unchanged | "
        "paraphrase: unchanged | info gain / step (nats) | shifted accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, a in r["arms"].items():
        lines.append(
            f"| {name} | {a['accuracy']:.3f}{_ci(a['accuracy_ci95'], '{:.3f}')} | "
            f"{a['accuracy_diff']:+.3f}{_ci(a['accuracy_diff_ci95'], '{:+.3f}')} | {a['chain_tokens']:.1f} | "
            f"{_num(a['aoc'], '{:.3f}')}{_ci(a['aoc_ci95'])} | {_num(a['filler_unchanged'])} | "
            f"{_num(a['paraphrase_unchanged'])} | {_num(a['information_gain'])}{_ci(a['information_gain_ci95'])} | "
            f"{a['shifted']['accuracy']:.3f}{_ci(a['shifted']['accuracy_ci95'], '{:.3f}')} |"
        )
    again = r["base_again"]
    lines += [
        "",
        f"Base rerun on the first {again['n_problems']} problems (the floor: llama-server batching): "
        f"{again['identical_to_base']:.0%} of chains identical to the first run, accuracy {again['accuracy']:.3f} "
        f"(paired change {again['accuracy_diff']:+.3f}), "
        f"{again['chain_tokens']:.1f} tokens.",
    ]
    on_base = r["arms"]["answer-only SFT"]["chain_measures"].get("on_base_chains")
    if on_base:
        lines += [
            "",
            f"Answer-only SFT given the base model's chains ({on_base['n_chains']} problems): AOC "
            f"{_num(on_base['aoc'], '{:.3f}')}{_ci(on_base.get('aoc_ci95'))}, filler unchanged "
            f"{_num(on_base['filler_unchanged'])}, information gain {_num(on_base['information_gain'])}.",
        ]
    return "\n".join(lines) + "\n"


def plot(r: dict[str, Any], path: Path) -> None:
    """Accuracy against early-answering AOC and against information gain, one point per arm (95% CIs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, key, label in (
        (axes[0], "aoc", "early-answering AOC (higher: the answer needs more of the chain)"),
        (axes[1], "information_gain", "information gain per step (nats)"),
    ):
        for name, a in r["arms"].items():
            m = a["chain_measures"] if a[key] is not None else a["chain_measures"].get("on_base_chains") or {}
            x, (xlo, xhi) = m.get(key), m.get(f"{key}_ci95") or (None, None)
            if x is None:
                continue
            lo, hi = a["accuracy_ci95"]
            ax.errorbar(
                [x],
                [a["accuracy"]],
                xerr=None if xlo is None else [[x - xlo], [xhi - x]],
                yerr=[[a["accuracy"] - lo], [hi - a["accuracy"]]],
                fmt="o",
                capsize=3,
                label=name + ("" if a[key] is not None else " (on base chains)"),
            )
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (95% CI)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{r['model']}: accuracy vs how much the chain carries the answer")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
