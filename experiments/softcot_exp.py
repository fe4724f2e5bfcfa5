"""SoftCoT-style soft thoughts on the bundled (frozen) model, against the steering vectors.

    python experiments/softcot_exp.py --out demo-out

The assistant is a frozen copy of the model; only a linear projection (128 -> 128, k = 2 thoughts
placed after BOS) is trained, for two objectives: the direct answer on ``muladd`` (can latent
thoughts make direct answers more accurate?) and the concise chain on both kinds (can they
compress and elicit, as the vectors do?). Reports accuracy (95% Wilson interval) and tokens on
held-out problems, checks the backbone's weights are bit-identical after training, and saves the
projections to a registry with metadata naming both models.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from steering import Pair, Registry, extract, steer
from steering.calibrate import strength_for_norm
from steering.demo import MODEL_ID
from steering.demo.evaluate import measure
from steering.demo.main import load
from steering.demo.task import Problem, classify, parse_answer, problems
from steering.evaluate import wilson
from steering.softcot import SoftThoughts, save_soft_thoughts, soft_thoughts, train_soft_thoughts, with_placeholders

K = 2


def _digest(model: Any) -> str:
    return hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in model.state_dict().values())).hexdigest()


def _with_thoughts(model: Any, assistant: Any, tok: Any, proj: SoftThoughts, test: list[Problem]) -> dict[str, Any]:
    enc = with_placeholders(tok, [p.prompt for p in test], proj.k)
    with soft_thoughts(model, assistant, proj, placeholder_id=tok.unk_token_id), torch.no_grad():
        out = model.generate(**enc, max_new_tokens=110, do_sample=False, pad_token_id=tok.pad_token_id)
    gen = out[:, enc["input_ids"].shape[1] :].tolist()
    eos = tok.eos_token_id
    tokens = [row.index(eos) + 1 if eos in row else len(row) for row in gen]
    texts = tok.batch_decode(gen, skip_special_tokens=True)
    return _summary(test, texts, sum(tokens) / len(tokens))


def _summary(test: list[Problem], texts: list[str], tokens: float) -> dict[str, Any]:
    right = sum(parse_answer(t) == p.answer for t, p in zip(texts, test))
    modes = Counter(classify(t) for t in texts)
    return {
        "accuracy": right / len(test),
        "accuracy_ci95": wilson(right, len(test)),
        "tokens": tokens,
        "modes": {k: v / len(test) for k, v in sorted(modes.items())},
    }


def run(n: int, seed: int, out: Path) -> dict[str, Any]:
    torch.manual_seed(seed)
    model, tok = load()
    assistant = copy.deepcopy(model)
    before = _digest(model)
    mul = problems(2000, "muladd", seed=31 + seed, split="train")
    both = problems(1000, "muladd", seed=31 + seed, split="train") + problems(
        1000, "addsub", seed=31 + seed, split="train"
    )
    projections = {
        "direct": train_soft_thoughts(
            model, assistant, tok, [p.prompt for p in mul], [p.completion("direct") + "<eos>" for p in mul],
            k=K, steps=1000, lr=3e-3, seed=seed,
        ),
        "concise": train_soft_thoughts(
            model, assistant, tok, [p.prompt for p in both], [p.completion("concise") + "<eos>" for p in both],
            k=K, steps=1500, lr=3e-3, seed=seed,
        ),
    }  # fmt: skip
    identical = _digest(model) == before
    registry = Registry(out / "vectors")
    for target, (proj, losses) in projections.items():
        path = save_soft_thoughts(
            proj, out / f"softcot-{target}.safetensors", backbone=model, assistant=assistant, target=target,
            final_loss=sum(losses[-50:]) / 50, placeholder="<unk>", where="before",
        )  # fmt: skip
        registry.save_file(
            path, f"softcot-{target}", model=MODEL_ID, kind="softcot", metadata={"target": target, "k": K}
        )

    results: dict[str, dict[str, Any]] = {}
    compress = extract(
        model,
        tok,
        [Pair(p.prompt, p.completion("concise"), p.completion("verbose")) for p in problems(50, "addsub", 7, "train")],
        layers=[3],
        position="first",
    )
    elicit = extract(
        model,
        tok,
        [Pair(p.prompt, p.completion("concise"), p.completion("direct")) for p in problems(50, "muladd", 8, "train")],
        layers=[2],
        position="first",
    )
    for kind, vec, frac in (("addsub", compress, 0.5), ("muladd", elicit, 2.0)):
        test = problems(n, kind, seed=12 + seed)
        rows: dict[str, Any] = {}
        base, texts = measure(model, tok, test)
        rows["no steering"] = _summary(test, texts, base.chain_tokens)
        with steer(model, vec, strength_for_norm(vec, frac), scope="prompt_last"):
            r, texts = measure(model, tok, test)
        rows["concise vector"] = _summary(test, texts, r.chain_tokens)
        for target, (proj, _) in projections.items():
            if target == "direct" and kind == "addsub":
                continue
            rows[f"soft thoughts ({target} target)"] = _with_thoughts(model, assistant, tok, proj, test)
        results[kind] = rows
    return {
        "n_problems": n,
        "k": K,
        "backbone_bit_identical": identical,
        "final_loss": {t: sum(losses[-50:]) / 50 for t, (_, losses) in projections.items()},
        "results": results,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("demo-out"))
    ap.add_argument("--n-problems", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(2)
    a.out.mkdir(parents=True, exist_ok=True)
    res = run(a.n_problems, a.seed, a.out)
    (a.out / "softcot.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"backbone weights bit-identical after training: {res['backbone_bit_identical']}")
    for kind, rows in res["results"].items():
        print(f"\n{kind}: {'accuracy':>9} {'95% CI':>15} {'tokens':>7}  modes")
        for name, r in rows.items():
            lo, hi = r["accuracy_ci95"]
            modes = ", ".join(f"{m} {v:.0%}" for m, v in r["modes"].items())
            print(f"  {name:<30}{r['accuracy']:>7.3f} [{lo:.3f}, {hi:.3f}] {r['tokens']:>7.1f}  {modes}")


if __name__ == "__main__":
    main()
