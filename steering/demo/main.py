"""``steering demo``: Activation-Steered Compression and reasoning elicitation on the bundled model.

Every choice (layer, strength) is made on validation problems from the training distribution;
every reported number comes from held-out problems the model never saw.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import Registry, SteeringVector, build_pairs, extract, steer
from ..calibrate import strength_for_norm
from ..evaluate.sweep import plot_sweep, sweep
from . import MODEL_DIR, MODEL_ID
from .evaluate import Report, measure
from .report import card, paired_gain, print_table, short
from .task import Problem, classify, problems

FRACTIONS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)  # strength as a fraction of the layer's residual norm


def load(path: Path | None = None) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = path or MODEL_DIR
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    return model, tok


def _say(msg: str) -> None:
    print(msg, flush=True)


class Recipe:
    """Where a vector is read and written: e.g. read at the first completion token, add at the last prompt token."""

    def __init__(self, name: str, position: str, scope: Any) -> None:
        self.name, self.position, self.scope = name, position, scope


FIRST_TOKEN = Recipe("first-token", "first", "prompt_last")
ASC = Recipe("ASC (last token, every generated step)", "last", ("prompt_last", "generated"))


def _steered(model: Any, vec: SteeringVector | None, strength: float, scope: Any, fn: Callable[[], Any]) -> Any:
    if vec is None:
        return fn()
    with steer(model, vec, strength, scope=scope):
        return fn()


def _pairs(model: Any, tok: Any, pool: list[Problem], want: str, own: str, n: int) -> list[Any]:
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
    )
    return pairs[:n]


def split_train(n_val: int, n_pairs: int, kind: str, seed: int) -> tuple[list[Problem], list[Problem]]:
    pool = problems(n_val + 3 * n_pairs, kind, seed, split="train")
    return pool[:n_val], pool[n_val:]


def run(args: Any) -> dict[str, Any]:
    """The job ``steering demo`` runs: the bundled toy model, or with ``--model smollm2`` the real one."""
    if str(args.model) == "smollm2":
        from .real import run_real

        return run_real(args)
    return run_toy(args)


def run_toy(args: Any) -> dict[str, Any]:
    start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model, tok = load(Path(args.model) if args.model else None)
    n, seed = args.n_problems, args.seed
    n_layers = model.config.num_hidden_layers
    layers = [args.layer] if args.layer is not None else list(range(n_layers))

    # ---- compression -------------------------------------------------------------------------
    test = problems(n, "addsub", seed=1000 + seed)
    val, pool = split_train(100, args.n_pairs, "addsub", seed=3000 + seed)
    _say(f"[1/6] baseline on {n} held-out problems (greedy and sampled)")
    base_g, _ = measure(model, tok, test)
    base_s, _ = measure(model, tok, test, sample=True, seed=seed)
    val_base, _ = measure(model, tok, val)

    _say(f"[2/6] {args.n_pairs} pairs: concise chains vs the model's own (verbose) chains")
    pairs = _pairs(model, tok, pool, want="concise", own="verbose", n=args.n_pairs)

    _say(f"[3/6] extract at layers {layers} ({FIRST_TOKEN.position!r} and ASC's {ASC.position!r} positions)")
    vecs = {r.name: extract(model, tok, pairs, layers=layers, position=r.position) for r in (FIRST_TOKEN, ASC)}

    _say("[4/6] choose layer and strength on validation problems")

    def evaluator(recipe: Recipe, probs: list[Problem]) -> Callable[..., dict[str, float]]:
        def evaluate(strength: float, layer: int) -> dict[str, float]:
            v = vecs[recipe.name].select([layer])
            s = strength_for_norm(v, strength) if args.strength is None else args.strength
            r = _steered(model, v, s, recipe.scope, lambda: measure(model, tok, probs)[0])
            return {
                "abs_strength": s,
                "accuracy": r.accuracy,
                "chain_tokens": r.chain_tokens,
                "well_formed": r.well_formed,
            }

        return evaluate

    fractions = FRACTIONS if args.strength is None else (1.0,)
    ok = lambda r: r["accuracy"] >= val_base.accuracy - 0.01 and r["well_formed"] >= 0.98  # noqa: E731
    rows = {}
    for recipe in (FIRST_TOKEN, ASC):
        rows[recipe.name] = sweep(evaluator(recipe, val), fractions, layers, progress=False)
    picks = {}
    for name, rs in rows.items():
        fine = [r for r in rs if ok(r)] or [min(rs, key=lambda r: -r["accuracy"])]
        picks[name] = min(fine, key=lambda r: (round(r["chain_tokens"]), r["strength"], r["layer"]))
    pick = picks[FIRST_TOKEN.name]
    layer, strength = pick["layer"], pick["abs_strength"]
    vec = vecs[FIRST_TOKEN.name].select([layer])
    plot_sweep(
        [r for r in rows[FIRST_TOKEN.name]],
        ["chain_tokens", "accuracy"],
        out / "compression_sweep.png",
        x="strength",
        title="first-token recipe on validation (strength as fraction of residual norm)",
    )

    _say(f"[5/6] steer held-out problems: layer {layer}, strength {strength:.3g}")
    results: dict[str, Report] = {"baseline/greedy": base_g, "baseline/sampled": base_s}

    def held_out(sample: bool) -> Callable[[], Report]:
        return lambda: measure(model, tok, test, sample=sample, seed=seed)[0]

    for recipe in (FIRST_TOKEN, ASC):
        p = picks[recipe.name]
        v = vecs[recipe.name].select([p["layer"]])
        for mode, sample in (("greedy", False), ("sampled", True)):
            results[f"{recipe.name}/{mode}"] = _steered(model, v, p["abs_strength"], recipe.scope, held_out(sample))
    g = torch.Generator().manual_seed(seed)
    control_vec = SteeringVector({layer: torch.randn(vec.hidden_size, generator=g)}, vec.metadata)
    control_vec = control_vec * (float(vec.directions[layer].norm()) / float(control_vec.directions[layer].norm()))
    control = _steered(model, control_vec, strength, FIRST_TOKEN.scope, held_out(False))
    results["random control/greedy"] = control
    base_times, steer_times = [], []
    for _ in range(3):  # paired, interleaved: the machine is shared and noisy
        base_times.append(held_out(False)().seconds)
        steer_times.append(_steered(model, vec, strength, FIRST_TOKEN.scope, held_out(False)).seconds)
    speedup = statistics.median(base_times) / statistics.median(steer_times)
    steered_g = results[f"{FIRST_TOKEN.name}/greedy"]

    # ---- elicitation -------------------------------------------------------------------------
    _say("[6/6] elicitation: make the model reason where it answers directly")
    e_test = problems(n, "muladd", seed=2000 + seed)
    e_val, e_pool = split_train(100, args.n_pairs, "muladd", seed=4000 + seed)
    e_base, e_base_texts = measure(model, tok, e_test)
    e_pairs = _pairs(model, tok, e_pool, want="verbose", own="direct", n=args.n_pairs)
    e_vecs = extract(model, tok, e_pairs, layers=layers, position="first")
    vecs["elicit"] = e_vecs
    e_rows = sweep(evaluator(Recipe("elicit", "first", "prompt_last"), e_val), fractions, layers, progress=False)
    e_pick = min(
        [r for r in e_rows if r["well_formed"] >= 0.98] or e_rows,
        key=lambda r: (-round(r["accuracy"], 2), r["chain_tokens"], r["strength"]),
    )
    e_layer, e_strength = e_pick["layer"], e_pick["abs_strength"]
    e_vec = e_vecs.select([e_layer])
    e_steered, e_texts = _steered(model, e_vec, e_strength, "prompt_last", lambda: measure(model, tok, e_test))
    gain, gain_ci = paired_gain(e_test, e_base_texts, e_texts, seed)
    plot_sweep(
        e_rows,
        ["accuracy", "chain_tokens"],
        out / "elicitation_sweep.png",
        x="strength",
        title="reasoning elicitation on validation",
    )

    # ---- save --------------------------------------------------------------------------------
    registry = Registry(args.registry or out / "vectors")
    reduction = 1 - steered_g.chain_tokens / base_g.chain_tokens
    registry.save(
        vec.with_metadata(recommended_scope=FIRST_TOKEN.scope),
        "concise-cot",
        model=MODEL_ID,
        recommended_strength=strength,
        overwrite=True,
        card=card("concise-cot", vec, layer, strength, base_g, steered_g, reduction, speedup, len(pairs)),
    )
    registry.save(
        e_vec.with_metadata(recommended_scope="prompt_last"),
        "elicit-reasoning",
        model=MODEL_ID,
        recommended_strength=e_strength,
        overwrite=True,
        card=card("elicit-reasoning", e_vec, e_layer, e_strength, e_base, e_steered, None, None, len(e_pairs)),
    )
    summary = {
        "n_problems": n,
        "compression": {
            "baseline": short(base_g),
            "steered": short(steered_g),
            "layer": layer,
            "strength": strength,
            "strength_fraction_of_resid_norm": pick["strength"],
            "scope": FIRST_TOKEN.scope,
            "position": FIRST_TOKEN.position,
            "reduction": reduction,
            "speedup": speedup,
            "speedup_runs": {"baseline_seconds": base_times, "steered_seconds": steer_times},
            "sampled": {
                "baseline": short(results["baseline/sampled"]),
                "steered": short(results[f"{FIRST_TOKEN.name}/sampled"]),
            },
            "asc_recipe": {
                "layer": picks[ASC.name]["layer"],
                "strength": picks[ASC.name]["abs_strength"],
                "greedy": short(results[f"{ASC.name}/greedy"]),
                "sampled": short(results[f"{ASC.name}/sampled"]),
                "validation_sweep": rows[ASC.name],
            },
            "validation_sweep": rows[FIRST_TOKEN.name],
        },
        "elicitation": {
            "baseline": short(e_base),
            "steered": short(e_steered),
            "layer": e_layer,
            "strength": e_strength,
            "accuracy_gain": gain,
            "accuracy_gain_ci95": gain_ci,
            "validation_sweep": e_rows,
        },
        "control": {**short(control), "note": "random direction, same norm, layer, strength and scope"},
        "seconds_total": round(time.time() - start, 1),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_table(results, base_g, e_base, e_steered, gain, gain_ci, layer, strength, e_layer, e_strength, speedup)
    _say(
        f"\nresults: {out / 'results.json'}; plots: {out / 'compression_sweep.png'}, "
        f"{out / 'elicitation_sweep.png'}; vectors: {registry.root}  ({summary['seconds_total']}s)"
    )
    return summary
