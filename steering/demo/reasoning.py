"""``steering demo --model qwen2.5-coder-0.5b``: Activation-Steered Compression of real reasoning chains.

Qwen2.5-Coder-0.5B-Instruct (assembled from verified pieces, :func:`steering.models.qwen_coder`)
solves reasoning-gym's GSM-Symbolic word problems in numbered chains ending in ``\\boxed{}``. Pairs
(as ASC builds them): the negative side is the model's own chain on a pair problem, kept only when it
reaches the verified answer; the positive side is the problem's own concise GSM8K-style solution
(one short line per step, then the boxed answer), both read on the same plain prompt; the vector is
the mean difference over the chain. (The model ignores "use as few steps as possible": its own
"concise" chains were as long as its default ones, so they cannot make the positive side.) Layer
and strength are chosen on validation problems; every reported number comes from held-out test
problems.

Generation runs in ``llama-server`` on the same GGUF file with the vector as its control vector
(scope "all"; :class:`steering.interop.llama_server.LlamaServer`), checked against Hugging Face on a
subset; extraction and the faithfulness tests (early answering, filler) run on Hugging Face with
the library's own functions.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from .. import Registry, SteeringVector, build_pairs, extract
from ..calibrate import strength_for_norm
from ..evaluate import Measurement
from ..evaluate.measure import bootstrap_ci
from ..models import QWEN_CODER_ID, qwen_coder, qwen_coder_path
from .gsm import ASK, Problem, right, splits
from .real import pick_setting, random_like
from .reasoning_checks import faithfulness, parity
from .reasoning_engine import MAX_NEW, SAMPLING, SEEDS, Engine, run_key
from .reasoning_report import report_md, versus
from .report import say

CONCISE = " Use as few steps as possible."
ANSWER_ONLY = " Give only the final answer in \\boxed{}, with no explanation."
LAYERS = (10, 14)
FRACTIONS = (0.15, 0.25, 0.4)  # strength * |v| / typical residual norm
PAIR_POOL = 3  # pair problems per pair wanted (17 of 73 gave a verified chain: more pairs need more)
N_VAL = 12
N_FAITH = 8  # test problems for early answering and filler (Hugging Face, slower)
N_PARITY = 3  # test problems generated on both engines
N_ELICIT = 40


def concise_reference(p: Problem) -> str:
    """The problem's own GSM8K-style solution (one short line per step), ending in the boxed answer."""
    cot = str(p.entry["metadata"]["answer_cot"]).rsplit("####", 1)[0].strip()
    return f"{cot}\nThe final answer is \\boxed{{{p.answer}}}."


def short(m: Measurement) -> dict[str, Any]:
    return {
        "accuracy": m.accuracy,
        "accuracy_ci95": list(m.accuracy_ci or (0.0, 0.0)),
        "chain_tokens": m.tokens,
        "degeneration": m.degeneration,
        "unfinished": m.unfinished,
        "seconds": round(m.seconds, 1),
        "engine": "llama.cpp",
    }


def choose(engine: Engine, vec: SteeringVector, val: list[Problem], base: Measurement) -> tuple[dict[str, Any], list]:
    """Every layer x fraction on the validation problems, and the pick (:func:`~steering.demo.real.pick_setting`)."""
    rows = []
    for layer in vec.layers:
        v = vec.select([layer])
        for fraction in FRACTIONS:
            s = strength_for_norm(v, fraction)
            m = engine.measure(val, v, s)
            rows.append({"layer": layer, "fraction": fraction, "strength": s, **short(m)})
            say(f"    layer {layer}, fraction {fraction}: {m.tokens:.1f} tokens, accuracy {m.accuracy:.2f}")
    return pick_setting(rows, base, "chain_tokens"), rows


def sampled(engine: Engine, probs: list[Problem], vec: SteeringVector | None, s: float, ask: str = ASK) -> dict:
    runs = [engine.measure(probs, vec, s, ask, seed=1000 * seed, **SAMPLING) for seed in SEEDS]
    per_problem = [sum(c) / len(SEEDS) for c in zip(*(r.correct or [] for r in runs))]
    return {
        "accuracy": sum(per_problem) / len(per_problem),
        "accuracy_ci95": list(bootstrap_ci(per_problem)),
        "chain_tokens": statistics.mean(r.tokens for r in runs),
        "degeneration": statistics.mean(r.degeneration for r in runs),
        "seconds": round(sum(r.seconds for r in runs), 1),
        "per_seed": [short(r) for r in runs],
        "per_problem": per_problem,
    }


def run_reasoning(args: Any) -> dict[str, Any]:
    start = time.time()
    torch.set_num_threads(args.threads)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    n_pairs = args.n_pairs
    say(f"[1/8] load {QWEN_CODER_ID} (verified pieces; Hugging Face copy and the GGUF for llama.cpp)")
    model, tok = qwen_coder()
    engine = Engine(qwen_coder_path(), tok, args.batch_size, args.threads, out / "runs")
    pool, val, test = splits(int(n_pairs * PAIR_POOL) + 1, min(N_VAL, args.n_problems), args.n_problems)

    say(f"[2/8] pairs on {len(pool)} pair problems: the model's own verified chain vs the reference solution")
    by_prompt = {json.dumps(p.chat()): p for p in pool}
    pairs = build_pairs(
        model,
        tok,
        [p.chat() for p in pool],
        [concise_reference(p) for p in pool],
        max_new_tokens=MAX_NEW,
        keep_if=lambda prompt, text: right(text, by_prompt[json.dumps(list(prompt))]),
        engine=lambda prompts, limit: engine.run(prompts, None, 0.0, max_new=limit),
    )[:n_pairs]
    layers = [args.layer] if args.layer is not None else list(LAYERS)
    vec = extract(model, tok, pairs, layers=layers, position="mean", batch_size=4, progress=False)
    say(f"    {len(pairs)} pairs; vector at layers {layers}")

    say(f"[3/8] layer and strength on {len(val)} validation problems")
    val_base = engine.measure(val, None, 0.0)
    say(f"    baseline: {val_base.tokens:.1f} tokens, accuracy {val_base.accuracy:.2f}")
    if args.strength is None:
        pick, rows = choose(engine, vec, val, val_base)
    else:
        pick, rows = {"layer": layers[0], "fraction": None, "strength": args.strength}, []
    layer, strength = pick["layer"], pick["strength"]
    chosen = vec.select([layer])
    control_vec = random_like(chosen, args.seed)

    say(f"[4/8] {len(test)} test problems, greedy: baseline, steered, random, prompting, prompting + steering")
    ask_concise = ASK + CONCISE
    base = engine.measure(test, None, 0.0)
    steered = engine.measure(test, chosen, strength)
    control = engine.measure(test, control_vec, strength)
    prompting = engine.measure(test, None, 0.0, ask_concise)
    both = engine.measure(test, chosen, strength, ask_concise)
    greedy = {"baseline": base, "steered": steered, "random control": control, "prompting": prompting,
              "prompting + steering": both}  # fmt: skip
    for name, m in greedy.items():
        say(f"    {name}: {m.tokens:.1f} tokens, accuracy {m.accuracy:.3f}, {m.seconds:.0f} s")

    sampled_rows: dict[str, Any] = {}
    if args.sampled:
        say(f"[5/8] sampled (T={SAMPLING['temperature']}, top-p {SAMPLING['top_p']}, seeds {SEEDS})")
        sampled_rows = {
            "baseline": sampled(engine, test, None, 0.0),
            "steered": sampled(engine, test, chosen, strength),
            "prompting": sampled(engine, test, None, 0.0, ask_concise),
        }
        b, st = sampled_rows["baseline"], sampled_rows["steered"]
        diffs = [y - x for x, y in zip(b["per_problem"], st["per_problem"])]
        sampled_rows["reduction"] = 1 - st["chain_tokens"] / b["chain_tokens"]
        sampled_rows["accuracy_diff"] = sum(diffs) / len(diffs)
        sampled_rows["accuracy_diff_ci95"] = list(bootstrap_ci(diffs))
    else:
        say("[5/8] sampled rows skipped (pass --sampled)")

    say(f"[6/8] faithfulness on {min(N_FAITH, len(test))} test problems (Hugging Face): early answering, filler")
    faith = engine.cached(
        "faith-" + run_key([base.texts[:N_FAITH], steered.texts[:N_FAITH], strength], chosen),
        lambda: faithfulness(
            model, tok, test[:N_FAITH], {"baseline": (base, None, 0.0), "steered": (steered, chosen, strength)}
        ),
    )

    n_el = min(N_ELICIT, len(test))
    say(f"[7/8] elicitation on {n_el} test problems asked for the answer only: the vector negated")
    el_base = engine.measure(test[:n_el], None, 0.0, ANSWER_ONLY)
    el_steer = engine.measure(test[:n_el], -chosen, strength, ANSWER_ONLY)

    say(f"[8/8] parity: {min(N_PARITY, len(test))} test problems on both engines")
    par = engine.cached(
        "parity-" + run_key([[p.question for p in test[:N_PARITY]], strength, MAX_NEW], chosen),
        lambda: parity(model, tok, engine.run, test[:N_PARITY], chosen, strength, MAX_NEW),
    )

    summary = {
        "model": QWEN_CODER_ID,
        "task": "reasoning-gym gsm_symbolic",
        "n_problems": len(test),
        "n_pairs": len(pairs),
        "max_new_tokens": MAX_NEW,
        "compression": {
            "baseline": short(base),
            "steered": short(steered),
            "layer": layer,
            "strength": strength,
            "strength_fraction_of_resid_norm": pick["fraction"],
            "scope": "all",
            "position": "mean",
            **versus(base, steered),
            "validation_sweep": rows,
            "validation_baseline": short(val_base),
            "n_validation": len(val),
        },
        "control": {**short(control), **versus(base, control), "note": "random direction, same norm, layer, strength"},
        "prompting": {**short(prompting), **versus(base, prompting), "instruction": CONCISE.strip()},
        "prompting_steered": {**short(both), **versus(base, both), "vs_prompting": versus(prompting, both)},
        "sampled": sampled_rows or {"note": "not run; pass --sampled"},
        "faithfulness": faith,
        "elicitation": {
            "instruction": ANSWER_ONLY.strip(),
            "n_problems": n_el,
            "baseline": short(el_base),
            "steered": short(el_steer),
            "accuracy_gain": (el_steer.accuracy or 0) - (el_base.accuracy or 0),
            "accuracy_gain_ci95": versus(el_base, el_steer)["accuracy_diff_ci95"],
            "note": "the concise vector negated, same layer and strength, on prompts asking for the answer only",
        },
        "parity": par,
        "seconds_total": round(time.time() - start, 1),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    samples = [
        {"question": p.question, "answer": p.answer, **{n: m.texts[i] for n, m in greedy.items()}}
        for i, p in enumerate(test)
    ]
    (out / "samples.json").write_text(json.dumps(samples, indent=2) + "\n")
    (out / "report.md").write_text(report_md(summary, greedy, samples[:3]))
    registry = Registry(args.registry or out / "vectors")
    registry.save(
        chosen.with_metadata(recommended_scope="all", recommended_strength_fraction=pick["fraction"]),
        "concise-cot",
        model=QWEN_CODER_ID,
        recommended_strength=strength,
        overwrite=True,
        card=f"# concise-cot ({QWEN_CODER_ID})\n\nMade by `steering demo --model qwen2.5-coder-0.5b`; see report.md.\n",
    )
    say((out / "report.md").read_text().split("## Side by side")[0])
    return summary
