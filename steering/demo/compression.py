"""The demo's compression experiment: concise vs the model's own verbose chains, two recipes (read at
the first completion token and add at the last prompt token; ASC's last token added at every step),
layer and strength chosen on greedy and sampled validation, held-out results with a random control."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import torch

from .. import SteeringVector, extract
from ..calibrate import strength_for_norm
from ..errors import InvalidArgumentError
from ..evaluate.measure import bootstrap_ci
from ..evaluate.sweep import best, plot_sweep, sweep
from .evaluate import Report, measure
from .job import ASC, FIRST_TOKEN, FRACTIONS, SEEDS, Job, Recipe, model_pairs, split_train, steered
from .report import say, short
from .task import Problem, problems


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
            g = steered(model, v, s, recipe.scope, lambda: measure(model, tok, val)[0])
            smp = steered(model, v, s, recipe.scope, lambda: measure(model, tok, val, sample=True, seed=0)[0])
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
    say(f"[1/6] baseline on {n} held-out problems (greedy, and sampled with {len(SEEDS)} seeds)")
    base_g, _ = measure(model, tok, test)
    base_s = job.sampled(test, None, 0.0, None)

    say(f"[2/6] {args.n_pairs} pairs: concise chains vs the model's own (verbose) chains")
    pairs = model_pairs(model, tok, pool, want="concise", own="verbose", n=args.n_pairs)

    say(f"[3/6] extract at layers {layers} ({FIRST_TOKEN.position!r} and ASC's {ASC.position!r} positions)")
    vecs = {
        r.name: extract(model, tok, pairs, layers=layers, position=r.position, progress=False)
        for r in (FIRST_TOKEN, ASC)
    }

    say("[4/6] choose layer and strength on validation problems (greedy and sampled)")
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

    say(f"[5/6] steer held-out problems: layer {layer}, strength {strength:.3g}")
    results: dict[str, Report] = {"baseline/greedy": base_g}
    sampled = {"baseline": base_s}
    for recipe in (FIRST_TOKEN, ASC):
        p = picks[recipe.name]
        v = vecs[recipe.name].select([p["layer"]])
        results[f"{recipe.name}/greedy"] = steered(
            model, v, p["abs_strength"], recipe.scope, job.held_out(test, False)
        )[0]
        sampled[recipe.name] = job.sampled(test, v, p["abs_strength"], recipe.scope)
    g = torch.Generator().manual_seed(seed)
    control_vec = SteeringVector({layer: torch.randn(vec.hidden_size, generator=g)}, vec.metadata)
    control_vec = control_vec * (float(vec.directions[layer].norm()) / float(control_vec.directions[layer].norm()))
    results["random control/greedy"] = steered(
        model, control_vec, strength, FIRST_TOKEN.scope, job.held_out(test, False)
    )[0]
    sampled["random control"] = job.sampled(test, control_vec, strength, FIRST_TOKEN.scope)
    base_times, steer_times = [], []
    for _ in range(3):  # paired, interleaved: the machine is shared and noisy
        base_times.append(job.held_out(test, False)()[0].seconds)
        steer_times.append(steered(model, vec, strength, FIRST_TOKEN.scope, job.held_out(test, False))[0].seconds)
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
