"""Train the bundled demo model from scratch (seeded; about 15 minutes on 2 CPU cores).

    python experiments/train.py --out steering/demo/model

A 4-layer Llama-architecture model learns the task in ``task.py``: for each problem kind a mix
of verbose chains, concise chains and direct answers, with no marker in the prompt. The tests
never run this; its output (safetensors weights, config, tokenizer, card) is committed.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from steering.demo.task import MIX, MODES, Problem, held_out, random_problem
from steering.demo.tokenizer import build_tokenizer

KINDS = tuple(MIX)


def config(vocab: int, tok) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=160,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )


def sample(rng: random.Random) -> tuple[Problem, str]:
    while True:
        p = random_problem(rng, rng.choice(KINDS))
        if not held_out(p):
            return p, rng.choices(MODES, weights=MIX[p.kind])[0]


def batch(rng: random.Random, tok, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rows, targets = [], []
    for _ in range(size):
        p, mode = sample(rng)
        prompt = tok(p.prompt).input_ids
        completion = [*tok(p.completion(mode), add_special_tokens=False).input_ids, tok.eos_token_id]
        rows.append(prompt + completion)
        targets.append([-100] * len(prompt) + completion)  # learn the completion, not the prompt
    width = max(map(len, rows))
    ids = torch.full((size, width), tok.pad_token_id)
    labels = torch.full((size, width), -100)
    mask = torch.zeros((size, width), dtype=torch.long)
    for i, (r, t) in enumerate(zip(rows, targets)):
        ids[i, : len(r)], labels[i, : len(t)], mask[i, : len(r)] = torch.tensor(r), torch.tensor(t), 1
    return ids, labels, mask


def train(out: Path, steps: int, batch_size: int, lr: float, seed: int, threads: int) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = random.Random(seed)
    tok = build_tokenizer()
    model = LlamaForCausalLM(config(len(tok), tok))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    )
    model.train()
    start = time.time()
    for step in range(1, steps + 1):
        ids, labels, mask = batch(rng, tok, batch_size)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == 1:
            print(f"step {step}/{steps} loss {loss.item():.4f} {time.time() - start:.0f}s", flush=True)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "training.json").write_text(
        json.dumps(
            {
                "steps": steps,
                "batch_size": batch_size,
                "lr": lr,
                "seed": seed,
                "threads": threads,
                "seconds": round(time.time() - start),
                "mix": MIX,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"saved to {out} after {time.time() - start:.0f}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "model")
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--batch-size", type=int, default=48)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    train(a.out, a.steps, a.batch_size, a.lr, a.seed, a.threads)


if __name__ == "__main__":
    main()
