"""``steering demo``: Activation-Steered Compression and reasoning elicitation on the bundled model.

Every choice (layer, strength) is made on validation problems from the training distribution;
every reported number comes from held-out problems the model never saw. Compression is reported
greedy and sampled (temperature 0.7, top-p 0.95, three seeds), as reasoning models are run.
``--model smollm2`` runs the real-model job instead (:mod:`steering.demo.real`); ``--model
qwen2.5-coder-0.5b`` compresses real reasoning chains (:mod:`steering.demo.reasoning`).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import torch

from .. import Registry
from . import MODEL_DIR, MODEL_ID
from .compression import compression
from .elicitation import elicitation
from .job import FIRST_TOKEN, Job
from .options import REASONING_MODELS
from .report import card, print_table, say, short


def load(path: Path | None = None) -> tuple[Any, Any]:
    """The bundled demo model and its tokenizer (left padding), or those in ``path``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = path or MODEL_DIR
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    return model, tok


def run(args: Any) -> dict[str, Any]:
    """The job ``steering demo`` runs: the bundled toy model, or with ``--model smollm2`` the real one."""
    if str(args.model) == "smollm2":
        from .real import run_real

        return run_real(args)
    if str(args.model) in REASONING_MODELS:
        from .reasoning import run_reasoning

        return run_reasoning(args)
    return run_toy(args)


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
    concise_card = card(
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
    )
    elicit_card = card(
        "elicit-reasoning", elic["vec"], e["layer"], e["strength"], elic["base"], elic["steered"], None, None,
        len(elic["pairs"]),
    )  # fmt: skip
    for name, vec, strength, scope, text in (
        ("concise-cot", comp["vec"], c["strength"], FIRST_TOKEN.scope, concise_card),
        ("elicit-reasoning", elic["vec"], e["strength"], "prompt_last", elicit_card),
    ):
        registry.save(
            vec, name, model=MODEL_ID, recommended_strength=strength, recommended_scope=scope, overwrite=True, card=text
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
    say(
        f"\nresults: {out / 'results.json'}; plots: {out / 'compression_sweep.png'}, "
        f"{out / 'elicitation_sweep.png'}; vectors: {registry.root}  ({summary['seconds_total']}s)"
    )
    return summary
