"""The reasoning job's engine: each condition in its own ``llama-server``, every run cached on disk in chunks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import SteeringVector
from ..atomic import atomic_write_bytes
from ..evaluate import Measurement, measure_generations
from ..evaluate.generation import Generation
from ..interop.llama_server import LlamaServer
from ..prompts import Prompt
from .gsm import ASK, Problem, right

MAX_NEW = 400  # tokens per chain
CHUNK = 100  # prompts per cached engine run
SAMPLING = {"temperature": 0.7, "top_p": 0.95}  # the sampled rows
SEEDS = (0, 1, 2)


def run_key(parts: Any, vec: SteeringVector | None) -> str:
    """What a cached result is filed under: its inputs, and the vector's bytes."""
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    if vec is not None:
        for layer in sorted(vec.directions):
            key.update(str(layer).encode() + vec.directions[layer].float().numpy().tobytes())
    return key.hexdigest()[:24]


class Engine:
    """Runs each condition in its own ``llama-server`` (one control vector per server).

    Runs are kept under ``runs/`` in chunks of :data:`CHUNK` prompts, each keyed by everything that
    decides it (prompts, vector, strength, limits, sampling), so a job that stops part-way resumes
    where it stopped, and a larger test set reuses the chunks a smaller one generated.
    """

    def __init__(self, gguf: Path, tok: Any, parallel: int, threads: int, cache: Path) -> None:
        self.gguf, self.tok, self.parallel, self.threads, self.cache = gguf, tok, parallel, threads, cache

    def run(
        self,
        prompts: Sequence[Prompt],
        vec: SteeringVector | None,
        strength: float,
        max_new: int = MAX_NEW,
        lora: Path | None = None,
        **kw: Any,
    ) -> tuple[list[Generation], float]:
        """Generate (or read back) every prompt's reply; ``lora``: a llama.cpp LoRA adapter file to serve with."""
        gens: list[Generation] = []
        seconds = 0.0
        for start in range(0, len(prompts), CHUNK):
            # Request i keeps seed ``seed + i`` whichever chunk it falls in.
            extra = kw if kw.get("seed") is None else {**kw, "seed": kw["seed"] + start}
            g, s = self._chunk(prompts[start : start + CHUNK], vec, strength, max_new, lora, **extra)
            gens += g
            seconds += s
        return gens, seconds

    def _chunk(
        self,
        prompts: Sequence[Prompt],
        vec: SteeringVector | None,
        strength: float,
        max_new: int,
        lora: Path | None,
        **kw: Any,
    ) -> tuple[list[Generation], float]:
        parts = [list(map(list, prompts)), max_new, strength, kw]
        if lora is not None:  # runs without an adapter keep the keys they always had
            parts.append(hashlib.sha256(Path(lora).read_bytes()).hexdigest())
        key = run_key(parts, vec)
        saved = self.cached(key, lambda: self._generate(prompts, vec, strength, max_new, lora, **kw))
        return [Generation(**g) for g in saved["generations"]], saved["seconds"]

    def _generate(
        self,
        prompts: Sequence[Prompt],
        vec: SteeringVector | None,
        strength: float,
        max_new: int,
        lora: Path | None,
        **kw: Any,
    ) -> dict[str, Any]:
        with LlamaServer(
            self.gguf,
            vector=vec,
            strength=strength,
            parallel=self.parallel,
            context_per_slot=1024,
            threads=self.threads,
            lora=lora,
        ) as server:
            gens, seconds = server.generate(self.tok, list(prompts), max_new_tokens=max_new, **kw)
        return {"generations": [g.__dict__ for g in gens], "seconds": seconds}

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``'s JSON result, kept under ``runs/<key>.json`` and read back on the next call."""
        path = self.cache / f"{key}.json"
        if path.is_file():
            return json.loads(path.read_text())
        result = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(result).encode())
        return result

    def measure(
        self, probs: list[Problem], vec: SteeringVector | None, strength: float, ask: str = ASK, **kw: Any
    ) -> Measurement:
        """Accuracy, chain tokens and the rest of ``probs`` asked with ``ask`` (``kw`` as for :meth:`run`)."""
        gens, seconds = self.run([p.chat(ask) for p in probs], vec, strength, **kw)
        return measure_generations(gens, seconds, gold=probs, check=right)
