"""The demo's elicitation experiment: make the model reason where it answers directly (muladd)."""

from __future__ import annotations

from typing import Any

from .. import extract
from ..calibrate import strength_for_norm
from ..evaluate.sweep import plot_sweep, sweep
from .evaluate import measure
from .job import FRACTIONS, Job, model_pairs, split_train, steered
from .report import paired_gain, say, short
from .task import problems


def elicitation(job: Job, layers: list[int]) -> dict[str, Any]:
    model, tok, args, out = job.model, job.tok, job.args, job.out
    n, seed = args.n_problems, args.seed
    say("[6/6] elicitation: make the model reason where it answers directly")
    e_test = problems(n, "muladd", seed=2000 + seed)
    e_val, e_pool = split_train(100, args.n_pairs, "muladd", seed=4000 + seed)
    e_base, e_base_texts = measure(model, tok, e_test)
    e_pairs = model_pairs(model, tok, e_pool, want="verbose", own="direct", n=args.n_pairs)
    e_vecs = extract(model, tok, e_pairs, layers=layers, position="first", progress=False)

    def evaluate(strength: float, layer: int) -> dict[str, float]:
        v = e_vecs.select([layer])
        s = strength_for_norm(v, strength) if args.strength is None else args.strength
        r = steered(model, v, s, "prompt_last", lambda: measure(model, tok, e_val)[0])
        return {"abs_strength": s, "accuracy": r.accuracy, "chain_tokens": r.chain_tokens, "well_formed": r.well_formed}

    fractions = FRACTIONS if args.strength is None else (1.0,)
    e_rows = sweep(evaluate, fractions, layers, progress=False)
    e_pick = min(
        [r for r in e_rows if r["well_formed"] >= 0.98] or e_rows,
        key=lambda r: (-round(r["accuracy"], 2), r["chain_tokens"], r["strength"]),
    )
    e_layer, e_strength = e_pick["layer"], e_pick["abs_strength"]
    e_vec = e_vecs.select([e_layer])
    e_steered, e_texts = steered(model, e_vec, e_strength, "prompt_last", lambda: measure(model, tok, e_test))
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
