"""``steering demo``: Activation-Steered Compression and reasoning elicitation on the bundled model.

Every choice (layer, strength) is made on validation problems from the training distribution;
every reported number comes from held-out problems the model never saw. Compression is reported
greedy and sampled (temperature 0.7, top-p 0.95, three seeds), as reasoning models are run.
``--model smollm2`` runs the real-model job instead (:mod:`steering.demo.real`).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import Registry, SteeringVector, build_pairs, extract, steer
from ..calibrate import strength_for_norm
from ..errors import InvalidArgumentError
from ..evaluate.measure import bootstrap_ci
from ..evaluate.sweep import best, plot_sweep, sweep
from ..scopes import scope_to_json
from . import MODEL_DIR, MODEL_ID
from .evaluate import Report, correct, measure
from .report import card, paired_gain, print_table, short
from .task import Problem, classify, problems

FRACTIONS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)  # strength as a fraction of the layer's typical residual norm
SEEDS = (0, 1, 2)  # sampled evaluations


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
        progress=False,
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


@dataclass
class Job:
    model: Any
    tok: Any
    args: Any
    out: Path

    def held_out(self, probs: list[Problem], sample: bool, seed: int = 0) -> Callable[[], tuple[Report, list[str]]]:
        return lambda: measure(self.model, self.tok, probs, sample=sample, seed=seed)

    def sampled(self, probs: list[Problem], vec: SteeringVector | None, s: float, scope: Any) -> dict[str, Any]:
        """Sampled runs over SEEDS: pooled accuracy and tokens, and each problem's share of right answers."""
        runs = [_steered(self.model, vec, s, scope, self.held_out(probs, True, seed)) for seed in SEEDS]
        per_problem = [sum(c) / len(SEEDS) for c in zip(*(correct(probs, texts) for _, texts in runs))]
        return {
            "accuracy": sum(per_problem) / len(per_problem),
            "accuracy_ci95": list(bootstrap_ci(per_problem)),
            "chain_tokens": statistics.mean(r.chain_tokens for r, _ in runs),
            "well_formed": statistics.mean(r.well_formed for r, _ in runs),
            "per_seed": [short(r) for r, _ in runs],
            "per_problem": per_problem,
        }


def sampled_comparison(base: dict[str, Any], steered: dict[str, Any]) -> dict[str, Any]:
    d = [s - b for b, s in zip(base["per_problem"], steered["per_problem"])]
    return {
        "reduction": 1 - steered["chain_tokens"] / base["chain_tokens"],
        "accuracy_diff": sum(d) / len(d),
        "accuracy_diff_ci95": list(bootstrap_ci(d)),
    }


def choose(job: Job, vecs: dict[str, SteeringVector], val: list[Problem], layers: list[int]) -> tuple[dict, dict]:
    """Per recipe: the fewest sampled chain tokens on validation with greedy accuracy within 1 point of
    the baseline, sampled accuracy within 2, and well-formed chains; ties to the smaller strength."""
    model, tok, args = job.model, job.tok, job.args
    val_greedy = measure(model, tok, val)[0]
    val_sampled = measure(model, tok, val, sample=True, seed=0)[0]

    def evaluator(recipe: Recipe) -> Callable[..., dict[str, float]]:
        def evaluate(strength: float, layer: int) -> dict[str, float]:
            v = vecs[recipe.name].select([layer])
            s = strength_for_norm(v, strength) if args.strength is None else args.strength
            g = _steered(model, v, s, recipe.scope, lambda: measure(model, tok, val)[0])
            smp = _steered(model, v, s, recipe.scope, lambda: measure(model, tok, val, sample=True, seed=0)[0])
            return {
                "abs_strength": s,
                "accuracy": g.accuracy,
                "chain_tokens": g.chain_tokens,
                "well_formed": g.well_formed,
                "sampled_accuracy": smp.accuracy,
                "sampled_chain_tokens": smp.chain_tokens,
            }

        return evaluate

    bounds = {
        "accuracy": val_greedy.accuracy - 0.01,
        "sampled_accuracy": val_sampled.accuracy - 0.02,
        "well_formed": 0.98,
    }
    fractions = FRACTIONS if args.strength is None else (1.0,)
    rows = {r.name: sweep(evaluator(r), fractions, layers, progress=False) for r in (FIRST_TOKEN, ASC)}
    picks = {}
    for name, rs in rows.items():
        try:
            picks[name] = best(rs, lambda r: round(r["sampled_chain_tokens"]), at_least=bounds)
        except InvalidArgumentError:  # nothing within the bounds: the most accurate row
            picks[name] = max(rs, key=lambda r: r["accuracy"])
    return picks, rows


def compression(job: Job, layers: list[int]) -> dict[str, Any]:
    model, tok, args, out = job.model, job.tok, job.args, job.out
    n, seed = args.n_problems, args.seed
    test = problems(n, "addsub", seed=1000 + seed)
    val, pool = split_train(100, args.n_pairs, "addsub", seed=3000 + seed)
    _say(f"[1/6] baseline on {n} held-out problems (greedy, and sampled with {len(SEEDS)} seeds)")
    base_g, _ = measure(model, tok, test)
    base_s = job.sampled(test, None, 0.0, None)

    _say(f"[2/6] {args.n_pairs} pairs: concise chains vs the model's own (verbose) chains")
    pairs = _pairs(model, tok, pool, want="concise", own="verbose", n=args.n_pairs)

    _say(f"[3/6] extract at layers {layers} ({FIRST_TOKEN.position!r} and ASC's {ASC.position!r} positions)")
    vecs = {
        r.name: extract(model, tok, pairs, layers=layers, position=r.position, progress=False)
        for r in (FIRST_TOKEN, ASC)
    }

    _say("[4/6] choose layer and strength on validation problems (greedy and sampled)")
    picks, rows = choose(job, vecs, val, layers)
    pick = picks[FIRST_TOKEN.name]
    layer, strength = pick["layer"], pick["abs_strength"]
    vec = vecs[FIRST_TOKEN.name].select([layer])
    plot_sweep(
        rows[FIRST_TOKEN.name],
        ["chain_tokens", "sampled_chain_tokens", "accuracy"],
        out / "compression_sweep.png",
        x="strength",
        title="first-token recipe on validation problems",
        labels={
            "strength": "strength (fraction of the typical residual norm)",
            "chain_tokens": "chain tokens, greedy",
            "sampled_chain_tokens": "chain tokens, sampled (T=0.7)",
            "accuracy": "accuracy, greedy",
        },
    )

    _say(f"[5/6] steer held-out problems: layer {layer}, strength {strength:.3g}")
    results: dict[str, Report] = {"baseline/greedy": base_g}
    sampled = {"baseline": base_s}
    for recipe in (FIRST_TOKEN, ASC):
        p = picks[recipe.name]
        v = vecs[recipe.name].select([p["layer"]])
        results[f"{recipe.name}/greedy"] = _steered(
            model, v, p["abs_strength"], recipe.scope, job.held_out(test, False)
        )[0]
        sampled[recipe.name] = job.sampled(test, v, p["abs_strength"], recipe.scope)
    g = torch.Generator().manual_seed(seed)
    control_vec = SteeringVector({layer: torch.randn(vec.hidden_size, generator=g)}, vec.metadata)
    control_vec = control_vec * (float(vec.directions[layer].norm()) / float(control_vec.directions[layer].norm()))
    results["random control/greedy"] = _steered(
        model, control_vec, strength, FIRST_TOKEN.scope, job.held_out(test, False)
    )[0]
    sampled["random control"] = job.sampled(test, control_vec, strength, FIRST_TOKEN.scope)
    base_times, steer_times = [], []
    for _ in range(3):  # paired, interleaved: the machine is shared and noisy
        base_times.append(job.held_out(test, False)()[0].seconds)
        steer_times.append(_steered(model, vec, strength, FIRST_TOKEN.scope, job.held_out(test, False))[0].seconds)
    speedup = statistics.median(base_times) / statistics.median(steer_times)
    steered_g = results[f"{FIRST_TOKEN.name}/greedy"]
    reduction = 1 - steered_g.chain_tokens / base_g.chain_tokens
    return {
        "vec": vec,
        "pairs": pairs,
        "results": results,
        "sampled": sampled,
        "summary": {
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
                "settings": {"temperature": 0.7, "top_p": 0.95, "seeds": list(SEEDS)},
                **{name: {k: v for k, v in r.items() if k != "per_problem"} for name, r in sampled.items()},
                **{
                    f"{name} vs baseline": sampled_comparison(base_s, r)
                    for name, r in sampled.items()
                    if name != "baseline"
                },
            },
            "asc_recipe": {
                "layer": picks[ASC.name]["layer"],
                "strength": picks[ASC.name]["abs_strength"],
                "greedy": short(results[f"{ASC.name}/greedy"]),
                "validation_sweep": rows[ASC.name],
            },
            "validation_sweep": rows[FIRST_TOKEN.name],
        },
    }


def elicitation(job: Job, layers: list[int]) -> dict[str, Any]:
    model, tok, args, out = job.model, job.tok, job.args, job.out
    n, seed = args.n_problems, args.seed
    _say("[6/6] elicitation: make the model reason where it answers directly")
    e_test = problems(n, "muladd", seed=2000 + seed)
    e_val, e_pool = split_train(100, args.n_pairs, "muladd", seed=4000 + seed)
    e_base, e_base_texts = measure(model, tok, e_test)
    e_pairs = _pairs(model, tok, e_pool, want="verbose", own="direct", n=args.n_pairs)
    e_vecs = extract(model, tok, e_pairs, layers=layers, position="first", progress=False)

    def evaluate(strength: float, layer: int) -> dict[str, float]:
        v = e_vecs.select([layer])
        s = strength_for_norm(v, strength) if args.strength is None else args.strength
        r = _steered(model, v, s, "prompt_last", lambda: measure(model, tok, e_val)[0])
        return {"abs_strength": s, "accuracy": r.accuracy, "chain_tokens": r.chain_tokens, "well_formed": r.well_formed}

    fractions = FRACTIONS if args.strength is None else (1.0,)
    e_rows = sweep(evaluate, fractions, layers, progress=False)
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
        title="reasoning elicitation on validation problems",
        labels={"strength": "strength (fraction of the typical residual norm)", "chain_tokens": "chain tokens"},
    )
    return {
        "vec": e_vec,
        "pairs": e_pairs,
        "base": e_base,
        "steered": e_steered,
        "summary": {
            "baseline": short(e_base),
            "steered": short(e_steered),
            "layer": e_layer,
            "strength": e_strength,
            "accuracy_gain": gain,
            "accuracy_gain_ci95": gain_ci,
            "validation_sweep": e_rows,
        },
    }


def run_toy(args: Any) -> dict[str, Any]:
    start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model, tok = load(Path(args.model) if args.model else None)
    job = Job(model, tok, args, out)
    layers = [args.layer] if args.layer is not None else list(range(model.config.num_hidden_layers))
    comp = compression(job, layers)
    elic = elicitation(job, layers)

    c, e = comp["summary"], elic["summary"]
    registry = Registry(args.registry or out / "vectors")
    base_g, steered_g = comp["results"]["baseline/greedy"], comp["results"][f"{FIRST_TOKEN.name}/greedy"]
    registry.save(
        comp["vec"].with_metadata(recommended_scope=scope_to_json(FIRST_TOKEN.scope)),
        "concise-cot",
        model=MODEL_ID,
        recommended_strength=c["strength"],
        overwrite=True,
        card=card(
            "concise-cot",
            comp["vec"],
            c["layer"],
            c["strength"],
            base_g,
            steered_g,
            c["reduction"],
            c["speedup"],
            len(comp["pairs"]),
            sampled=c["sampled"].get(f"{FIRST_TOKEN.name} vs baseline"),
        ),
    )
    registry.save(
        elic["vec"].with_metadata(recommended_scope="prompt_last"),
        "elicit-reasoning",
        model=MODEL_ID,
        recommended_strength=e["strength"],
        overwrite=True,
        card=card(
            "elicit-reasoning",
            elic["vec"],
            e["layer"],
            e["strength"],
            elic["base"],
            elic["steered"],
            None,
            None,
            len(elic["pairs"]),
        ),
    )
    summary = {
        "n_problems": args.n_problems,
        "compression": c,
        "elicitation": e,
        "control": {
            **short(comp["results"]["random control/greedy"]),
            "note": "random direction, same norm, layer, strength and scope",
        },
        "seconds_total": round(time.time() - start, 1),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_table(
        comp["results"],
        comp["sampled"],
        elic["base"],
        elic["steered"],
        e["accuracy_gain"],
        e["accuracy_gain_ci95"],
        c,
        e,
    )
    _say(
        f"\nresults: {out / 'results.json'}; plots: {out / 'compression_sweep.png'}, "
        f"{out / 'elicitation_sweep.png'}; vectors: {registry.root}  ({summary['seconds_total']}s)"
    )
    return summary
