"""Per-request steering inside stock vLLM (the CPU build), through our plugin and worker extension,
against our own steering of the same SmolLM2 weights in transformers, token by token.

Runs in ``.venv-vllm`` (``scripts/vllm_env.sh``); skipped when it does not exist.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import urllib.error
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from servers import external, free_port, post_json

import steering
from steering.demo.real import random_like
from steering.markers import Tokens
from steering.models import save_dequantized, smollm2
from steering.scope_json import scope_to_json
from steering.scopes import Span, Window

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


LONG = "Background for the question below. " + " ".join(
    f"Fact {i}: the number {i} comes after {i - 1}." for i in range(1, 18)
)


def smollm2_setup(tmp: Path) -> tuple:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tok = smollm2()
    folder = save_dequantized(model, tok, tmp / "smollm2")
    vec = steering.Registry(ROOT / "vectors").load("concise-answers")
    prompts = [steering.prompts.encode(tok, [{"role": "user", "content": q}]) for q in QUESTIONS]
    long_prompt = steering.prompts.encode(tok, [{"role": "user", "content": LONG + " What number comes after 7?"}])
    return model, tok, folder, vec, float(vec.metadata["recommended_strength"]), prompts, long_prompt


def tiny_setup(tmp: Path) -> tuple:
    """A random 4-layer Llama (head size 32, which vLLM's CPU attention takes) and the tests' own BPE."""
    from conftest import make_tokenizer
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = make_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, initializer_range=0.1, torch_dtype="float32",
    )  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.save_pretrained(tmp / "tiny")
    tok.save_pretrained(tmp / "tiny")
    rng = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(4, len(tok), (int(n),), generator=rng).tolist()
        for n in torch.randint(6, 40, (16,), generator=rng)
    ]
    long_prompt = torch.randint(4, len(tok), (300,), generator=rng).tolist()
    with torch.no_grad():
        hidden = model(torch.tensor([prompts[0]]), output_hidden_states=True).hidden_states[2]
    direction = torch.randn(128, generator=rng)
    resid = float(hidden.norm(dim=-1).mean())  # what STEERING_MAX_NORM_FRACTION measures strength against
    metadata = {"model": "tiny/random-llama", "diagnostics": {"1": {"typical_resid_norm": resid}}}
    vec = steering.SteeringVector({1: direction / direction.norm()}, metadata=metadata)
    return model, tok, tmp / "tiny", vec, 0.2 * resid, prompts, long_prompt  # as SmolLM2's: 0.2 of the norm


@pytest.fixture(scope="module", params=["smollm2", "tiny"])
def setup(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"vllm-{request.param}")
    model, tok, folder, vec, strength, prompts, long_prompt = (
        smollm2_setup if request.param == "smollm2" else tiny_setup
    )(tmp)
    other = random_like(vec, 1)
    # The operator's registry: requests name vectors in it, never paths.
    steering.Registry(tmp / "registry").save(vec, "concise-answers", recommended_strength=strength)
    steering.Registry(tmp / "registry").save(other, "random-b", recommended_strength=strength)
    # Token markers (a start and a stop): strings for SmolLM2, token ids for the tiny model.
    marker = (" the", ".") if request.param == "smollm2" else ((prompts[0][1],), (prompts[1][2],))
    vectors = {"concise-answers": vec, "random-b": other}
    return model, tok, vectors, strength, folder, prompts, long_prompt, marker, tmp


def conditions(s: float, marker: Any, stop: Any) -> dict[str, Any]:
    """Each condition: what the request carries (None: no key) and the steer() blocks of its HF reference,
    outermost first (hooks run innermost first, so a request's entries run in list order)."""
    a, b = "concise-answers", "random-b"
    return {
        "no key": (None, []),
        "opted out": ([], []),
        "A": ([{"vector": a, "strength": s, "scope": "all"}], [(a, s, "all")]),
        "A at 0": ([{"vector": a, "strength": 0.0}], []),
        "B at 1.5x": ([{"vector": b, "strength": 1.5 * s, "scope": "all"}], [(b, 1.5 * s, "all")]),
        "A+B": ([{"vector": a, "strength": s, "scope": "all"}, {"vector": b, "strength": s, "scope": "all"}],
                [(b, s, "all"), (a, s, "all")]),
        "A generated": ([{"vector": a, "strength": 2 * s, "scope": "generated"}], [(a, 2 * s, "generated")]),
        "A prompt_last": ([{"vector": a, "strength": 4 * s, "scope": "prompt_last"}], [(a, 4 * s, "prompt_last")]),
        "A window": ([{"vector": a, "strength": 2 * s, "scope": {"window": [0, 8]}}], [(a, 2 * s, Window(0, 8))]),
        "A tokens": ([{"vector": a, "strength": 2 * s, "scope": scope_to_json(Tokens(marker))}],
                     [(a, 2 * s, Tokens(marker))]),
        "A span": ([{"vector": a, "strength": 2 * s, "scope": scope_to_json(Span(marker, stop))}],
                   [(a, 2 * s, Span(marker, stop))]),
    }  # fmt: skip


def hf_greedy(model, tok, prompts, blocks=(), vectors=None) -> list[list[int]]:
    """One prompt at a time (no padding, as vLLM sees each request), under nested steer() blocks."""
    out = []
    for p in prompts:
        with contextlib.ExitStack() as stack:
            for name, s, scope in blocks:
                stack.enter_context(steering.steer(model, vectors[name], s, scope=scope, tokenizer=tok))
            with torch.no_grad():
                ids = model.generate(
                    torch.tensor([p]), max_new_tokens=NEW, do_sample=False, pad_token_id=tok.pad_token_id
                )
        out.append(ids[0, len(p) :].tolist())
    return out


def run_worker(spec: dict, tmp: Path, **env_extra: str) -> dict:
    (tmp / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false", **env_extra}
    env["STEERING_REGISTRY"] = str(tmp / "registry")
    env.pop("PYTHONPATH", None)  # steering comes from its install in the vLLM environment (with its plugin)
    run = subprocess.run(
        [str(VLLM), str(ROOT / "tests" / "vllm_worker.py"), str(tmp / "spec.json"), str(tmp / "out.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
        cwd=tmp,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads((tmp / "out.json").read_text())


def test_vllm_steers_each_request_as_our_hooks_do(setup):
    model, tok, vectors, strength, folder, prompts, long_prompt, marker, tmp = setup
    conds = conditions(strength, *marker)
    names = [name for name in conds for _ in range(2)]  # 22 requests, two prompts per condition
    reqs = []
    for i, name in enumerate(names):
        carried = conds[name][0]
        reqs.append({"prompt": prompts[i % len(prompts)], **({} if carried is None else {"steering": carried})})
    a_all = [{"vector": "concise-answers", "strength": strength, "scope": "all"}]
    spec = {
        "model": str(folder),
        "new_tokens": NEW,
        "requests": reqs,
        "long": [{"prompt": long_prompt}, {"prompt": long_prompt, "steering": a_all}],
        "refused": [
            [{"vector": "nope"}],
            [{"vector": "/etc/passwd"}],
            [{"vector": "https://127.0.0.1:9/x"}],
            [{"vector": "concise-answers", "strength": 50 * strength}],
            [{"vector": "concise-answers", "scope": "everywhere"}],
        ],
        "default": ["concise-answers", strength],
    }
    got = run_worker(spec, tmp, STEERING_MAX_NORM_FRACTION="1.0")
    report, plain = {}, {}
    for name, (_, blocks) in conds.items():
        asked = [r["prompt"] for r, n in zip(reqs, names) if n == name]
        mine = [g for g, n in zip(got["mixed"], names) if n == name]
        plain[name] = hf_greedy(model, tok, asked)
        report[name] = {
            "identical": mine == hf_greedy(model, tok, asked, blocks, vectors),
            "steered": mine != plain[name],
        }
    print(json.dumps(report))
    for name in conds:
        assert report[name]["identical"], (name, report)
    assert got["shuffled"] == got["mixed"]  # order and batchmates do not matter
    assert sum(r["steered"] for r in report.values()) >= 6, report  # the steering conditions change the text
    assert got["after_refusals"] == got["mixed"][:4]

    long_plain = hf_greedy(model, tok, [long_prompt])[0]
    long_steered = hf_greedy(model, tok, [long_prompt], [("concise-answers", strength, "all")], vectors)[0]
    print(json.dumps({"long_cached": got["long_cached"]}))
    assert got["long"]["unsteered"] == [long_plain] * 3 and got["long"]["steered"] == [long_steered] * 2
    cached = got["long_cached"]  # after a reset: unsteered, steered, unsteered; reset; steered, unsteered
    assert cached[2] >= 128 and cached[1] == 0 and cached[4] == 0, cached  # the cache is used, never across steerings

    messages = got["refused"]
    print(json.dumps(messages))
    assert all(m.startswith("VLLMValidationError") for m in messages), messages
    assert "no vector 'nope'" in messages[0]
    assert "not a path or URL" in messages[1] and "not a path or URL" in messages[2] and "root:" not in messages[1]
    assert "STEERING_MAX_NORM_FRACTION" in messages[3] and "Unknown scope 'everywhere'" in messages[4]

    steered_first = hf_greedy(model, tok, prompts[:1], [("concise-answers", strength, "all")], vectors)[0]
    assert got["default"] == [steered_first, plain["no key"][0]] and got["detached"] == [plain["no key"][0]], got


def test_tensor_parallel_ranks_steer_as_one(setup):
    """Two CPU ranks (threads bound one per core) give each request the tokens one rank gives: the plugin
    adds the vector to each rank's replica of the stream. SmolLM2 cannot split its 9 heads over 2 ranks."""
    model, tok, vectors, strength, folder, prompts, long_prompt, marker, tmp = setup
    if "tiny" not in folder.name:
        pytest.skip("SmolLM2's 9 attention heads do not split over 2 ranks; the tiny Llama's 4 do")
    conds = conditions(strength, *marker)
    reqs, refs = [], []
    for i, (carried, blocks) in enumerate(conds.values()):
        reqs.append({"prompt": prompts[i], **({} if carried is None else {"steering": carried})})
        refs += hf_greedy(model, tok, [prompts[i]], blocks, vectors)
    spec = {"model": str(folder), "new_tokens": NEW, "requests": reqs, "tensor_parallel_size": 2}
    got = run_worker(spec, tmp, VLLM_CPU_OMP_THREADS_BIND="0|1")
    assert got["mixed"] == refs


def test_a_stock_openai_server_steers_a_chat_request(setup):
    model, tok, vectors, strength, folder, prompts, long_prompt, marker, tmp = setup
    if "tiny" in folder.name:
        pytest.skip("the chat endpoint needs a chat template: SmolLM2 only")
    port = free_port()
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING", "STEERING_REGISTRY": str(tmp / "registry")}
    env.pop("PYTHONPATH", None)
    env.pop("VLLM_SERVER_DEV_MODE", None)  # no dev mode: steering travels in the request
    # vllm-cpu's distribution is named vllm-cpu, so the `vllm` CLI cannot find its own version: run the
    # OpenAI server module instead (the same server `vllm serve` starts).
    cmd = [str(VLLM), "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager"]
    cmd += ["--max-model-len", "512", "--gpu-memory-utilization", "0.3", "--served-model-name", "smollm2"]
    question = [{"role": "user", "content": QUESTIONS[1]}]
    with external(cmd, port, env=env, seconds=600, cwd=tmp) as url:
        ask = {"model": "smollm2", "messages": question, "max_tokens": NEW, "temperature": 0.0}
        steer_args = {"steering": json.dumps([{"vector": "concise-answers", "strength": strength}])}
        plain = post_json(f"{url}/v1/chat/completions", ask)["choices"][0]["message"]["content"]
        steered = post_json(f"{url}/v1/chat/completions", {**ask, "vllm_xargs": steer_args})
        steered = steered["choices"][0]["message"]["content"]
        with pytest.raises(urllib.error.HTTPError) as info:  # an unknown name: 400, and the server serves on
            post_json(f"{url}/v1/chat/completions", {**ask, "vllm_xargs": {"steering": "nope"}})
        refusal = info.value.read().decode()
        again = post_json(f"{url}/v1/chat/completions", ask)["choices"][0]["message"]["content"]
    want_plain = tok.decode(hf_greedy(model, tok, prompts[1:2])[0], skip_special_tokens=True)
    want = tok.decode(
        hf_greedy(model, tok, prompts[1:2], [("concise-answers", strength, "all")], vectors)[0],
        skip_special_tokens=True,
    )
    print(json.dumps({"plain": plain, "steered": steered, "hf_steered": want, "refusal": refusal[:300]}))
    assert info.value.code == 400 and "no vector 'nope'" in refusal
    assert steered != plain and again == plain
    assert steered.strip() == want.strip() and plain.strip() == want_plain.strip()
