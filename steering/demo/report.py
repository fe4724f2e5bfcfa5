"""Tables, cards and intervals for ``steering demo``'s results."""

from __future__ import annotations

from typing import Any

from ..evaluate.measure import bootstrap_ci
from ..vector import SteeringVector
from . import MODEL_ID
from .evaluate import Report
from .task import Problem, parse_answer


def say(msg: str) -> None:
    """Progress and tables of the demo jobs, printed at once."""
    print(msg, flush=True)


def short(r: Report) -> dict[str, Any]:
    return {
        "accuracy": r.accuracy,
        "accuracy_ci95": r.accuracy_ci,
        "chain_tokens": r.chain_tokens,
        "seconds": r.seconds,
        "well_formed": r.well_formed,
        "direct_share": r.direct_share,
        "modes": r.modes,
    }


def paired_gain(probs: list[Problem], before: list[str], after: list[str], seed: int) -> tuple[float, list[float]]:
    """Accuracy gain and a 95% paired-bootstrap interval over problems."""
    d = [
        float(parse_answer(a) == p.answer) - float(parse_answer(b) == p.answer) for p, b, a in zip(probs, before, after)
    ]
    return sum(d) / len(d), list(bootstrap_ci(d, seed=seed))


def card(
    name: str,
    vec: SteeringVector,
    layer: int,
    strength: float,
    before: Report,
    after: Report,
    reduction: float | None,
    speedup: float | None,
    n_pairs: int,
    sampled: dict[str, Any] | None = None,
) -> str:
    """The registry card, written from the measured results of the run that made the vector."""
    effect = (
        f"chain tokens {before.chain_tokens:.1f} -> {after.chain_tokens:.1f} ({reduction:.0%} fewer), "
        f"accuracy {before.accuracy:.3f} -> {after.accuracy:.3f}, wall-clock speedup {speedup:.2f}x "
        "(median of 3 paired, interleaved runs)"
        if reduction is not None
        else f"accuracy {before.accuracy:.3f} -> {after.accuracy:.3f}, chain tokens {before.chain_tokens:.1f} -> "
        f"{after.chain_tokens:.1f}, direct answers {before.direct_share:.0%} -> {after.direct_share:.0%}"
    )
    extra = (
        f"\nSampled (temperature 0.7, top-p 0.95, 3 seeds): {sampled['reduction']:.0%} fewer chain tokens, "
        f"accuracy change {sampled['accuracy_diff']:+.3f} (paired 95% CI [{sampled['accuracy_diff_ci95'][0]:+.3f}, "
        f"{sampled['accuracy_diff_ci95'][1]:+.3f}]).\n"
        if sampled
        else ""
    )
    return f"""# {name} ({MODEL_ID})

Made by `steering demo` on the bundled demo model from {n_pairs} pairs whose negative side is the
model's own greedy completion. Read at the first completion token (`position="first"`), layer {layer};
apply once at the last prompt token: `steer(model, vec)` uses the recommended strength {strength:.4g}
and scope "prompt_last".

Measured on held-out problems (greedy): {effect}.
{extra}Norm {float(vec.directions[layer].norm()):.3f}.
"""


def print_table(
    results: dict[str, Report],
    sampled: dict[str, dict[str, Any]],
    e_base: Report,
    e_steered: Report,
    gain: float,
    gain_ci: list[float],
    comp: dict[str, Any],
    elic: dict[str, Any],
) -> None:
    base = results["baseline/greedy"]
    say("\nCompression (held-out addsub problems)")
    say(f"{'setting':<50} {'acc':>6} {'95% CI':>15} {'tokens':>7} {'reduct.':>8} {'well-f.':>8}")
    for name, r in results.items():
        red = 1 - r.chain_tokens / base.chain_tokens
        ci = f"[{r.accuracy_ci[0]:.2f}, {r.accuracy_ci[1]:.2f}]"
        say(f"{name:<50} {r.accuracy:>6.3f} {ci:>15} {r.chain_tokens:>7.1f} {red:>8.1%} {r.well_formed:>8.2f}")
    sbase = sampled["baseline"]
    say("sampled: temperature 0.7, top-p 0.95, 3 seeds; reductions against the sampled baseline")
    for name, row in sampled.items():
        red = 1 - row["chain_tokens"] / sbase["chain_tokens"]
        ci = f"[{row['accuracy_ci95'][0]:.2f}, {row['accuracy_ci95'][1]:.2f}]"
        label = f"{name}/sampled"
        say(
            f"{label:<50} {row['accuracy']:>6.3f} {ci:>15} {row['chain_tokens']:>7.1f} {red:>8.1%} "
            f"{row['well_formed']:>8.2f}"
        )
    say(
        f"first-token recipe: layer {comp['layer']}, strength {comp['strength']:.3g} "
        f"({comp['strength_fraction_of_resid_norm']} of the typical residual norm); wall-clock speedup "
        f"{comp['speedup']:.2f}x (median of 3 paired runs)"
    )
    say("\nElicitation (held-out muladd problems, greedy)")
    say(
        f"baseline accuracy {e_base.accuracy:.3f} (direct answers {e_base.direct_share:.0%}) -> steered "
        f"{e_steered.accuracy:.3f} (direct {e_steered.direct_share:.0%}); gain {gain:+.3f}, 95% CI "
        f"[{gain_ci[0]:+.3f}, {gain_ci[1]:+.3f}]; layer {elic['layer']}, strength {elic['strength']:.3g}"
    )
