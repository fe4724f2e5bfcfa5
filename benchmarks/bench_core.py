"""Steering at the cost of a forward pass: apply overhead, hook micro-cost, extraction vs its floor.

    .venv/bin/python benchmarks/bench_core.py [--reps 5] [--out docs/benchmarks.json]

Every number is a ratio from paired, interleaved runs (median and min-max over repetitions), with
torch threads fixed; the machine is shared and noisy, so absolute seconds are only context.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import steering
from steering.demo.main import load


def paired(a: Callable[[], Any], b: Callable[[], Any], reps: int) -> dict[str, float]:
    """Median, min and max of time(b) / time(a) over interleaved repetitions (after one warm-up each)."""
    a(), b()
    ratios, ta, tb = [], [], []
    for rep in range(reps):
        first, second = (a, b) if rep % 2 == 0 else (b, a)  # alternate the order: no position bias
        t0 = time.perf_counter()
        first()
        t1 = time.perf_counter()
        second()
        t2 = time.perf_counter()
        da, db = (t1 - t0, t2 - t1) if rep % 2 == 0 else (t2 - t1, t1 - t0)
        ta.append(da)
        tb.append(db)
        ratios.append(db / da)
    return {
        "ratio": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "base_seconds": statistics.median(ta),
    }


def big_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=1000,
        hidden_size=512,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(cfg).eval()


def apply_overhead(model: Any, batch: int, reps: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    lens = [12 + (7 * i) % 9 for i in range(batch)]
    width = max(lens)
    ids = torch.randint(3, model.config.vocab_size, (batch, width), generator=g)
    mask = torch.ones_like(ids)
    for i, n in enumerate(lens):
        ids[i, : width - n], mask[i, : width - n] = 0, 0
    d, n_layers = model.config.hidden_size, model.config.num_hidden_layers
    one = steering.SteeringVector({n_layers // 2: torch.randn(d, generator=g) * 1e-3})
    every = steering.SteeringVector({la: torch.randn(d, generator=g) * 1e-3 for la in range(n_layers)})

    def gen() -> None:
        with torch.no_grad():
            model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=128,
                min_new_tokens=128,
                do_sample=False,
                pad_token_id=0,
            )

    out = {}
    for vname, vec in (("one layer", one), ("all layers", every)):
        for scope in ("all", "generated", ("prompt_last", "generated"), steering.Window(0, 64), steering.Tokens(5)):

            def steered(vec: Any = vec, scope: Any = scope) -> None:
                with steering.steer(model, vec, 1.0, scope=scope):
                    gen()

            out[f"{vname}, scope={scope}"] = paired(gen, steered, reps)
    return out


def hook_micro(reps: int, d: int = 512, n_layers: int = 8, calls: int = 2000) -> dict[str, float]:
    """Extra microseconds a decode step pays, on a model of ``n_layers`` identity layers called as
    transformers calls its decoder (keywords, a 2-D mask and a cache that holds 40 positions)."""

    class Cache:
        def get_seq_length(self) -> int:
            return 40

    class Owner(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Identity() for _ in range(n_layers)])

        def forward(self, input_ids: Any = None, attention_mask: Any = None, cache: Any = None) -> torch.Tensor:
            h = self.h
            for layer in self.layers:
                h = layer(h)
            return h

    owner = Owner()
    owner.h = torch.randn(1, 1, d)
    owner.config = LlamaConfig(hidden_size=d, num_hidden_layers=n_layers)
    kwargs = {
        "input_ids": torch.ones(1, 1, dtype=torch.long),
        "attention_mask": torch.ones(1, 41, dtype=torch.long),
        "cache": Cache(),
    }
    one = steering.SteeringVector({0: torch.randn(d)})
    every = steering.SteeringVector({la: torch.randn(d) for la in range(n_layers)})

    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(calls):
            owner(**kwargs)
        return (time.perf_counter() - t0) / calls * 1e6

    out = {}
    for scope in ("all", "generated", ("prompt_last", "generated")):
        per_forward, per_layer = [], []
        for _ in range(reps):
            plain = run()
            with steering.steer(owner, one, 1.0, scope=scope, layer_path="layers", strict=False):
                owner(input_ids=torch.ones(1, 40, dtype=torch.long))  # a prefill, so the sequence is known
                single = run()
            with steering.steer(owner, every, 1.0, scope=scope, layer_path="layers", strict=False):
                owner(input_ids=torch.ones(1, 40, dtype=torch.long))
                full = run()
            per_forward.append(single - plain)
            per_layer.append((full - single) / (n_layers - 1))
        out[f"scope={scope}: per forward, one steered layer"] = statistics.median(per_forward)
        out[f"scope={scope}: per extra steered layer"] = statistics.median(per_layer)
    return out


def extraction_vs_floor(model: Any, reps: int, layers: list[int]) -> dict[str, Any]:
    from steering.extract import _batches, tokenize_pairs
    from steering.positions import PositionResolver

    class Tok:  # a whitespace "tokenizer" over random ids: lengths vary like real chains
        def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
            ids = [3 + (hash(w) % 900) for w in text.split()]
            return {"input_ids": ([1] if add_special_tokens else []) + ids}

        pad_token_id, eos_token_id, padding_side = 0, 2, "left"

    tok = Tok()
    pairs = [
        steering.Pair("q " * (5 + i % 7), " w" * (8 + (i * 13) % 40), " v" * (30 + (i * 7) % 60)) for i in range(50)
    ]
    seqs, _ = tokenize_pairs(tok, pairs, PositionResolver("last", tok))

    def padded(batch_ids: list[list[int]], m: Any) -> None:
        width = max(map(len, batch_ids))
        ids = torch.zeros(len(batch_ids), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(batch_ids):
            ids[r, width - len(s) :], mask[r, width - len(s) :] = torch.tensor(s), 1
        with torch.no_grad():
            m(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0), use_cache=False)

    def plain() -> None:  # padded batches of 16 in the given order, full depth
        for i in range(0, len(seqs), 16):
            padded(seqs[i : i + 16], model)

    full = model.model.layers

    def floor() -> None:  # length-sorted batches, stopped after the deepest requested layer
        model.model.layers = full[: max(layers) + 1]
        try:
            for batch in _batches([len(s) for s in seqs], 16):
                padded([seqs[i] for i in batch], model)
        finally:
            model.model.layers = full

    def ours() -> None:
        steering.extract(model, tok, pairs, layers=layers, batch_size=16)

    return {
        "floor_vs_plain": paired(plain, floor, reps),
        "extract_vs_floor": paired(floor, ours, reps),
        "extract_vs_plain": paired(plain, ours, reps),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="docs/benchmarks.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": a.threads,
            "processor": platform.processor() or platform.machine(),
        }
    }
    results["hook_micro_us"] = hook_micro(a.reps)
    print("hook micro (extra us per call):", results["hook_micro_us"], flush=True)
    llama = big_llama()
    results["extraction_llama_d512x8_layers_0_4"] = extraction_vs_floor(llama, a.reps, [0, 4])
    print("extraction:", results["extraction_llama_d512x8_layers_0_4"], flush=True)
    for batch in (1, 8):
        results[f"apply_llama_d512x8_batch{batch}"] = apply_overhead(llama, batch, a.reps)
        print(f"apply batch {batch}:", json.dumps(results[f"apply_llama_d512x8_batch{batch}"], indent=1), flush=True)
    demo, _ = load()
    results["apply_demo_batch1"] = apply_overhead(demo, 1, a.reps)
    print("apply demo:", json.dumps(results["apply_demo_batch1"], indent=1), flush=True)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    main()
