"""Extraction cost against chain length: reading ``position="first"`` costs the prompt plus one token.

    .venv/bin/python benchmarks/bench_extract_length.py [--reps 5] [--out docs/benchmarks_extract_length.json]

50 pairs on a random Llama (d512 x 8 layers, 1 thread), once with 1,000-token completions and once with
1-token completions, the same prompts; paired, interleaved repetitions. Extraction cuts each sequence
after the last position it reads, so for ``"first"`` both runs process the same tokens; ``"mean"``
(which reads the whole completion) is the contrast. Target: ratio <= 1.2 for ``"first"``.
"""

from __future__ import annotations

import argparse
import json
import random

import torch
from bench_core import big_llama, paired

import steering

WORDS = [f" w{i}" for i in range(50)]


class CharTokenizer:
    """Encodes text as one token per space-separated word (ids 3..), enough to drive extraction."""

    pad_token_id, eos_token_id, bos_token_id, padding_side = 0, 2, 1, "left"

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        ids = [3 + (hash(w) % 900) for w in text.split()]
        return {"input_ids": ([self.bos_token_id] if add_special_tokens else []) + ids}


def pairs(n_completion: int, n: int = 50) -> list[steering.Pair]:
    rng = random.Random(0)
    out = []
    for i in range(n):
        prompt = "".join(rng.choice(WORDS) for _ in range(40))
        pos = "".join(rng.choice(WORDS) for _ in range(n_completion))
        neg = "".join(rng.choice(WORDS) for _ in range(n_completion))
        out.append(steering.Pair(prompt + f" p{i}", pos, neg))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tok = big_llama(), CharTokenizer()
    model.config.max_position_embeddings = 2048
    short, long_ = pairs(1), pairs(1000)
    results = {}
    for position in ("first", "mean"):

        def run(ps: list[steering.Pair], position: str = position) -> None:
            steering.extract(model, tok, ps, layers=[4], position=position, batch_size=16, progress=False)

        r = paired(lambda: run(short), lambda: run(long_), args.reps)
        results[position] = r
        print(
            f"position={position!r}: 1,000-token completions / 1-token completions = {r['ratio']:.2f}x "
            f"(min {r['min']:.2f}, max {r['max']:.2f}; 1-token run {r['base_seconds']:.2f}s)",
            flush=True,
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"reps": args.reps, "threads": 1, "results": results}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
