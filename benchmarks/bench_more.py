"""Peers side by side, backends, and the registry.

    bash scripts/peers_env.sh                       # repeng and steering-vectors, in their own env
    .venv/bin/python benchmarks/bench_more.py [--reps 5] [--out docs/benchmarks_more.json]

- peers: steering-vectors and repeng (``.venv-peers``: transformers 4.57, numpy 1.26) against this
  library on the same saved weights, pairs, layer and token, each run in its own process, the
  tools alternating inside every repetition; each process times only its own work (model loaded
  and warmed up first). Extraction seconds and steered-generation seconds as ratios to ours, and
  each tool's own steered/unsteered generation ratio (its transformers version differs from ours);
- backends: TransformerLens and nnsight against the HF backend, in one process, paired;
- registry: pull from a loopback HTTP server (cold: empty cache; warm: cached), ``SteeringVector.load``
  and a cold ``import steering``, in milliseconds (context, not pass/fail).
"""

from __future__ import annotations

import argparse
import copy
import functools
import http.server
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_core import big_llama, paired  # noqa: E402

import steering  # noqa: E402

LAYER = 4
NEW_TOKENS = 64

# One script per tool; each prints {"extract": s, "plain": s, "steered": s} after a warm-up.
TOOL_SCRIPTS = {
    "ours": """
        from steering import Pair, extract, steer
        pairs = [Pair(p, pos, neg) for p, pos, neg in rows]
        def train():
            return extract(model, tok, pairs, layers=[LAYER], position="last", batch_size=16)
        def steered(v):
            with steer(model, v, 1.0, scope="all"):
                return gen()
    """,
    "steering-vectors": """
        from steering_vectors import train_steering_vector
        data = [(p + pos, p + neg) for p, pos, neg in rows]
        def train():
            return train_steering_vector(model, tok, data, layers=[LAYER], read_token_index=-1, batch_size=16,
                                         show_progress=False)
        def steered(v):
            with v.apply(model, multiplier=1.0):
                return gen()
    """,
    "repeng": """
        from repeng import ControlModel, ControlVector, DatasetEntry
        data = [DatasetEntry(positive=p + pos, negative=p + neg) for p, pos, neg in rows]
        cmodel = ControlModel(model, [LAYER])
        def train():
            return ControlVector.train(cmodel, tok, data, batch_size=16, hidden_layers=[LAYER])
        def steered(v):
            cmodel.set_control(v, 1.0)
            try:
                return cmodel.generate(**enc, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)
            finally:
                cmodel.reset()
    """,
}

HARNESS = """
import json, sys, time, torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
torch.set_num_threads(1)
folder, LAYER, NEW = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = AutoModelForCausalLM.from_pretrained(folder).eval()
tok = PreTrainedTokenizerFast(tokenizer_file=folder + "/tokenizer.json", bos_token="<bos>", eos_token="<eos>",
                              pad_token="<pad>")
tok.padding_side = "left"
rows = json.load(open(folder + "/pairs.json"))
enc = tok(["q q q q q q", "q q q"], return_tensors="pt", padding=True, return_token_type_ids=False)
def gen():
    with torch.no_grad():
        return model.generate(**enc, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, pad_token_id=0)
{tool}
v = train(); gen(); steered(v)  # warm-up
t0 = time.perf_counter(); v = train(); t1 = time.perf_counter()
gen(); t2 = time.perf_counter(); steered(v); t3 = time.perf_counter()
print(json.dumps({{"extract": t1 - t0, "plain": t2 - t1, "steered": t3 - t2}}))
"""


def _word_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, **{w: i + 3 for i, w in enumerate(f"w{i}" for i in range(900))}}
    vocab.update({"q": len(vocab), "v": len(vocab) + 1})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(folder / "tokenizer.json"))


def peers(reps: int, peers_python: Path) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp())
    big_llama().save_pretrained(folder)
    _word_tokenizer(folder)
    rows = [
        ["q " * (5 + i % 7), " " + " ".join(f"w{(i * 7 + j) % 900}" for j in range(8 + (i * 13) % 40)),
         " " + " ".join(f"w{(i * 11 + j) % 900}" for j in range(30 + (i * 7) % 60))]
        for i in range(50)
    ]  # fmt: skip
    (folder / "pairs.json").write_text(json.dumps(rows))
    pythons = {"ours": Path(sys.executable), "steering-vectors": peers_python, "repeng": peers_python}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in TOOL_SCRIPTS}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRANSFORMERS_VERBOSITY": "error", "OMP_NUM_THREADS": "1"}
    for rep in range(reps):
        order = list(TOOL_SCRIPTS) if rep % 2 == 0 else list(reversed(TOOL_SCRIPTS))
        for name in order:
            code = HARNESS.format(tool=textwrap.dedent(TOOL_SCRIPTS[name]))
            out = subprocess.run(
                [str(pythons[name]), "-c", code, str(folder), str(LAYER), str(NEW_TOKENS)],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if out.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(name, runs[name][-1], flush=True)
    result: dict[str, Any] = {}
    for name, rs in runs.items():
        ours = runs["ours"]
        result[name] = {
            "extract_vs_ours": statistics.median(r["extract"] / o["extract"] for r, o in zip(rs, ours)),
            "steered_generate_vs_ours": statistics.median(r["steered"] / o["steered"] for r, o in zip(rs, ours)),
            "own_steered_vs_unsteered": statistics.median(r["steered"] / r["plain"] for r in rs),
            "extract_seconds": statistics.median(r["extract"] for r in rs),
        }
    return result


def backends(reps: int) -> dict[str, Any]:
    from nnsight.modeling.transformers import TransformersModel
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    folder = Path(tempfile.mkdtemp())
    model = big_llama()
    _word_tokenizer(folder)
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(folder / "tokenizer.json"), bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    tok.save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    bridge = TransformerBridge.boot_transformers("bench", hf_model=copy.deepcopy(model), tokenizer=tok)
    nn_model = TransformersModel(copy.deepcopy(model), task="text-generation", tokenizer=tok)
    pairs = [
        steering.Pair("q " * (5 + i % 7), " " + " ".join(f"w{(i * 7 + j) % 900}" for j in range(8 + i % 40)),
                      " " + " ".join(f"w{(i * 11 + j) % 900}" for j in range(30 + (i * 7) % 60)))
        for i in range(50)
    ]  # fmt: skip
    enc = tok(["q q q q q q", "q q q"], return_tensors="pt", padding=True, return_token_type_ids=False)
    vec = steering.extract(model, tok, pairs, layers=[LAYER])
    opts = dict(max_new_tokens=NEW_TOKENS, do_sample=False)

    def hf_gen() -> None:
        with steering.steer(model, vec, 1.0), torch.no_grad():
            model.generate(**enc, min_new_tokens=NEW_TOKENS, pad_token_id=0, **opts)

    def tl_gen() -> None:
        with steering.steer(bridge, vec, 1.0), torch.no_grad():
            bridge.generate(
                enc["input_ids"], attention_mask=enc["attention_mask"], verbose=False, stop_at_eos=False, **opts
            )

    def nn_gen() -> None:
        with (
            steering.steer(nn_model, vec, 1.0),
            nn_model.generate(**enc, min_new_tokens=NEW_TOKENS, pad_token_id=0, **opts),
        ):
            pass

    def extract_with(m: Any) -> Any:
        return lambda: steering.extract(m, tok, pairs, layers=[LAYER], batch_size=16)

    return {
        "transformer_lens": {
            "extract_vs_hf": paired(extract_with(model), extract_with(bridge), reps),
            "steered_generate_vs_hf": paired(hf_gen, tl_gen, reps),
        },
        "nnsight": {
            "extract_vs_hf": paired(extract_with(model), extract_with(nn_model), reps),
            "steered_generate_vs_hf": paired(hf_gen, nn_gen, reps),
        },
    }


def registry(reps: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp())
    reg = steering.Registry(root / "site")
    g = torch.Generator().manual_seed(0)
    vec = steering.SteeringVector({la: torch.randn(4096, generator=g) for la in (10, 14, 18, 22)}, {"model": "org/m"})
    reg.save(vec, "bench", model="org/m")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root / "site")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    cold, warm, load = [], [], []
    try:
        for rep in range(reps):
            os.environ["STEERING_CACHE"] = str(root / f"cache{rep}")
            t0 = time.perf_counter()
            steering.pull("bench", model="org/m", source=url, progress=False)
            t1 = time.perf_counter()
            steering.pull("bench", model="org/m", source=url, progress=False, offline=True)
            t2 = time.perf_counter()
            steering.SteeringVector.load(root / "site" / "org--m" / "bench" / "layer-10.safetensors")
            t3 = time.perf_counter()
            cold.append(t1 - t0)
            warm.append(t2 - t1)
            load.append(t3 - t2)
    finally:
        server.shutdown()
    imports = []
    for _ in range(reps):
        base = _timed([sys.executable, "-c", "pass"])
        imports.append(_timed([sys.executable, "-c", "import steering"]) - base)
    ms = lambda xs: 1000 * statistics.median(xs)  # noqa: E731
    return {
        "pull_cold_4x4096_ms": ms(cold),
        "pull_warm_cached_ms": ms(warm),
        "vector_load_one_layer_ms": ms(load),
        "import_steering_ms": ms(imports),
    }


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="docs/benchmarks_more.json")
    ap.add_argument("--peers-python", type=Path, default=ROOT / ".venv-peers" / "bin" / "python")
    a = ap.parse_args()
    torch.set_num_threads(1)
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": 1},
        "registry": registry(a.reps),
    }
    print("registry:", results["registry"], flush=True)
    results["backends"] = backends(a.reps)
    print("backends:", json.dumps(results["backends"], indent=1), flush=True)
    if a.peers_python.exists():
        results["peers"] = peers(a.reps, a.peers_python)
        print("peers:", json.dumps(results["peers"], indent=1), flush=True)
    Path(a.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
