"""Runs inside .venv-llama (llama-cpp-python on the portable llama.cpp build, this project on PYTHONPATH).

    python tests/llama_worker.py spec.json out/

``spec.json``: ``{"model": GGUF path, "sequences": [[ids]], "generate": [[ids]], "new_tokens": N,
"stop": [ids], "runs": [{"name", "vectors": [[gguf path, scale], ...] | null, "il_start", "il_end"}]}``.
For each run, writes ``<name>.npy`` (the logits at every position of every sequence, concatenated,
float32) and ``<name>.json`` (greedy continuations). Token ids go in as given: no BOS is added.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from llama_cpp import Llama

from steering.interop.llama_cpp import apply_control_vector


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    llm = Llama(model_path=spec["model"], logits_all=True, n_ctx=2048, n_batch=512, n_threads=2, seed=0, verbose=False)
    stop = set(spec.get("stop", []))
    for run in spec["runs"]:
        vectors = run.get("vectors")
        apply_control_vector(
            llm,
            [(path, float(scale)) for path, scale in vectors] if vectors else None,
            il_start=run.get("il_start"),
            il_end=run.get("il_end"),
        )
        logits = []
        for ids in spec["sequences"]:
            llm.reset()
            llm.eval(ids)
            logits.append(np.array(llm.scores[: len(ids)], dtype=np.float32))
        np.save(out / f"{run['name']}.npy", np.concatenate(logits), allow_pickle=False)
        generations = []
        for ids in spec.get("generate", []):
            llm.reset()
            llm.eval(ids)
            new: list[int] = []
            for _ in range(spec.get("new_tokens", 0)):
                token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                new.append(token)
                if token in stop:
                    break
                llm.eval([token])
            generations.append(new)
        (out / f"{run['name']}.json").write_text(json.dumps(generations))


if __name__ == "__main__":
    main()
