# ruff: noqa: E501
"""Instruction counts (valgrind callgrind) of one generate() call, steered vs unsteered.

    .venv/bin/python benchmarks/instructions.py [--tokens 8]

Wall time on this shared machine scatters by ±10-30%; instruction counts do not. The model is
built and warmed up without instrumentation; callgrind counts only the timed generate() (toggled
on and off from outside with callgrind_control), once unsteered and once per steering setup.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import os, sys, time, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
from bench_core import big_llama
import steering
model = big_llama()
ids = torch.randint(3, 1000, (1, 16), generator=torch.Generator().manual_seed(0))
n_layers, d = 8, 512
g = torch.Generator().manual_seed(1)
setups = {
    "unsteered": None,
    "one layer, scope=all": (steering.SteeringVector({4: torch.randn(d, generator=g) * 1e-3}), "all"),
    "all layers, scope=all": (steering.SteeringVector({la: torch.randn(d, generator=g) * 1e-3 for la in range(n_layers)}), "all"),
    "all layers, scope=(prompt_last, generated)": (steering.SteeringVector({la: torch.randn(d, generator=g) * 1e-3 for la in range(n_layers)}), ("prompt_last", "generated")),
}
case = sys.argv[2]
tokens = int(sys.argv[3])
def gen():
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=0)
import contextlib
ctx = contextlib.nullcontext() if setups[case] is None else steering.steer(model, setups[case][0], 1.0, scope=setups[case][1])
with ctx:
    gen()  # warm-up
    flag = sys.argv[4]
    open(flag + ".ready", "w").close()
    while not os.path.exists(flag + ".go"):
        time.sleep(0.05)
    gen()
    open(flag + ".done", "w").close()
    while not os.path.exists(flag + ".end"):
        time.sleep(0.05)
"""


def count(case: str, tokens: int) -> int:
    work = Path(tempfile.mkdtemp())
    flag = str(work / "flag")
    out = work / "callgrind.out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", sys.executable, "-c",
           CHILD, str(Path(__file__).parent), case, str(tokens), flag]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait(flag + ".ready", proc)
    subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
    Path(flag + ".go").touch()
    wait(flag + ".done", proc)
    subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
    Path(flag + ".end").touch()
    proc.wait()
    totals = [int(m) for m in re.findall(r"^(?:summary|totals):\s*(\d+)", out.read_text(), re.M)]
    return max(totals)


def wait(path: str, proc: subprocess.Popen) -> None:
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read()[-3000:] if proc.stderr else "valgrind exited")
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--out", default="docs/benchmarks_instructions.json")
    a = ap.parse_args()
    cases = ["unsteered", "one layer, scope=all", "all layers, scope=all", "all layers, scope=(prompt_last, generated)"]
    counts = {}
    for case in cases:
        counts[case] = count(case, a.tokens)
        print(case, counts[case], f"{counts[case] / counts['unsteered']:.4f}x", flush=True)
    result = {"tokens": a.tokens, "instructions": counts, "ratio": {c: counts[c] / counts["unsteered"] for c in cases}}
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
