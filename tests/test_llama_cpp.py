"""A real consumer for our vectors: llama.cpp applies our GGUF control vectors on SmolLM2, checked against
our own steering of the same weights in transformers, next-token distribution by distribution.

llama.cpp computes in Q4_1, transformers in the dequantized float32 weights of the same GGUF file: the
unsteered gap between them is the reference. Runs in ``.venv-llama`` (``scripts/llama_env.sh``: the
portable llama.cpp build, llama-server and llama-cvector-generator); skipped when it does not exist.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import warnings
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from servers import external, free_port, post_json

import steering
from steering.calibrate import strength_for_norm
from steering.interop import export_gguf, import_gguf
from steering.models import smollm2, smollm2_path

ROOT = Path(__file__).resolve().parents[1]
LLAMA = Path(os.environ.get("STEERING_LLAMA_PYTHON", ROOT / ".venv-llama" / "bin" / "python"))
pytestmark = pytest.mark.skipif(not LLAMA.exists(), reason="no llama.cpp environment: bash scripts/llama_env.sh")
LAYERS = [6, 9, 12]
FRACTION = 0.08  # strength * |v| / typical residual norm: moves the distribution a lot, not into nonsense
CONVERSATIONS = [
    (
        "Why do leaves change color in autumn?",
        "Leaves change color in autumn because trees stop making chlorophyll, the green pigment that captures "
        "sunlight. As the days get shorter and colder, the chlorophyll breaks down, and other pigments such as "
        "carotenoids and anthocyanins show their yellow, orange and red colors.",
    ),
    (
        "How does a bicycle stay upright?",
        "A moving bicycle stays upright mostly because the rider steers into any lean, bringing the wheels back "
        "under the center of mass. The geometry of the front fork also helps: the front wheel turns toward the "
        "lean on its own, which corrects small tilts without the rider noticing.",
    ),
    (
        "What is the water cycle?",
        "The water cycle is the continuous movement of water on Earth. Water evaporates from oceans and lakes, "
        "rises as vapor, cools and condenses into clouds, and falls back as rain or snow. It then flows through "
        "rivers and soil back to the sea, and the cycle starts again.",
    ),
]
QUESTIONS = ["What is the capital of France?", "Why is the sky blue?", "How many legs does a spider have?"]


def chat(q: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": q}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("llama")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tok = smollm2()
    pairs = [steering.Pair(chat(q), "In short: " + a.split(",")[0] + ".", a) for q, a in CONVERSATIONS] + [
        steering.Pair(
            chat("What is the capital of Italy?"), "Rome.", "The capital of Italy is Rome, a city with a long history."
        ),
        steering.Pair(
            chat("How many legs does a dog have?"), "Four.", "Dogs have four legs, like most mammals that walk on land."
        ),
    ]
    vec = steering.extract(model, tok, pairs, layers=LAYERS, position="mean", progress=False)
    strength = strength_for_norm(vec, FRACTION)
    sequences = []
    for q, a in CONVERSATIONS:
        msgs = [*chat(q), {"role": "assistant", "content": a}]
        text = tok.apply_chat_template(msgs, tokenize=False)
        sequences.append(tok(text, add_special_tokens=False)["input_ids"])
    prompts = [steering.prompts.encode(tok, chat(q)) for q in QUESTIONS]
    return model, tok, vec, strength, sequences, prompts, tmp


def hf_logits(model, sequences) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(torch.tensor([s])).logits[0] for s in sequences]).float()


def hf_greedy(model, prompts, n, stop) -> list[list[int]]:
    out = []
    for p in prompts:
        with torch.no_grad():
            ids = model.generate(torch.tensor([p]), max_new_tokens=n, do_sample=False, pad_token_id=stop)[0, len(p) :]
        out.append(ids.tolist())
    return out


def run_llama(spec: dict, tmp: Path) -> dict[str, tuple[torch.Tensor, list[list[int]]]]:
    (tmp / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [str(LLAMA), str(ROOT / "tests" / "llama_worker.py"), str(tmp / "spec.json"), str(tmp)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return {
        r["name"]: (
            torch.from_numpy(np.load(tmp / f"{r['name']}.npy", allow_pickle=False)),
            json.loads((tmp / f"{r['name']}.json").read_text()),
        )
        for r in spec["runs"]
    }


def kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    """Mean over positions of KL(p || q)."""
    lp, lq = torch.log_softmax(p_logits, -1), torch.log_softmax(q_logits, -1)
    return float((lp.exp() * (lp - lq)).sum(-1).mean())


def top1(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(-1) == b.argmax(-1)).float().mean())


def shifted_gguf(vec, strength: float, path: Path) -> Path:
    """An export with an off-by-one layer mapping: direction.L written as L + 1."""
    w = gguf.GGUFWriter(str(path), "controlvector")
    w.add_string("controlvector.model_hint", "llama")
    w.add_uint32("controlvector.layer_count", len(vec.layers))
    for layer in vec.layers:
        w.add_tensor(f"direction.{layer + 1}", (strength * vec.directions[layer]).float().numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_llama_cpp_steers_as_our_hooks_do(setup):
    model, tok, vec, strength, sequences, prompts, tmp = setup
    assert sum(len(s) for s in sequences) >= 200
    path = export_gguf(vec, tmp / "vec.gguf", strength=strength)
    doubled = export_gguf(vec, tmp / "vec2.gguf", strength=2 * strength)
    low = export_gguf(vec.select([6, 9]), tmp / "low.gguf", strength=strength)
    shifted = shifted_gguf(vec, strength, tmp / "shifted.gguf")
    stop = tok.eos_token_id
    spec = {
        "model": str(smollm2_path()),
        "sequences": sequences,
        "generate": prompts,
        "new_tokens": 24,
        "stop": [stop],
        "runs": [
            {"name": "unsteered", "vectors": None},
            {"name": "steered", "vectors": [[str(path), 1.0]]},
            {"name": "scaled", "vectors": [[str(path), 2.0]]},
            {"name": "doubled", "vectors": [[str(doubled), 1.0]]},
            {"name": "range", "vectors": [[str(path), 1.0]], "il_start": 1, "il_end": 9},
            {"name": "low", "vectors": [[str(low), 1.0]]},  # after "range": a shorter vector must clear layer 12
            {"name": "shifted", "vectors": [[str(shifted), 1.0]]},
        ],
    }
    llama = run_llama(spec, tmp)
    hf_plain = hf_logits(model, sequences)
    with steering.steer(model, vec, strength):
        hf_steered = hf_logits(model, sequences)
        hf_gen = hf_greedy(model, prompts, 24, stop)
    plain_gen = hf_greedy(model, prompts, 24, stop)
    figures = {
        "positions": int(hf_plain.shape[0]),
        "gap": kl(hf_plain, llama["unsteered"][0]),
        "steered": kl(hf_steered, llama["steered"][0]),
        "effect": kl(hf_plain, hf_steered),
        "shifted": kl(hf_steered, llama["shifted"][0]),
        "top1_plain": top1(hf_plain, llama["unsteered"][0]),
        "top1_steered": top1(hf_steered, llama["steered"][0]),
        "top1_shifted": top1(hf_steered, llama["shifted"][0]),
    }
    print(json.dumps(figures))
    assert figures["top1_steered"] >= 0.90, figures
    assert figures["steered"] <= 1.5 * figures["gap"], figures
    assert figures["effect"] >= 5 * figures["gap"], figures  # the vector matters
    # An off-by-one layer mapping fails the same check.
    assert figures["shifted"] > 1.5 * figures["gap"] or figures["top1_shifted"] < 0.90, figures
    # --control-vector-scaled semantics: the file's directions times the scale; the layer range.
    torch.testing.assert_close(llama["scaled"][0], llama["doubled"][0], atol=1e-4, rtol=0)
    torch.testing.assert_close(llama["range"][0], llama["low"][0], atol=1e-4, rtol=0)
    # Greedy generations move as ours do.
    llama_gen, llama_plain = llama["steered"][1], llama["unsteered"][1]
    assert sum(a != b for a, b in zip(llama_gen, llama_plain)) >= 2
    agree = [sum(x == y for x, y in zip(a, b)) / max(len(a), 1) for a, b in zip(llama_gen, hf_gen)]
    print(
        json.dumps(
            {
                "greedy_token_agreement": agree,
                "llama_lengths": [len(g) for g in llama_gen],
                "hf_lengths": [len(g) for g in hf_gen],
                "hf_plain_lengths": [len(g) for g in plain_gen],
            }
        )
    )
    assert sum(agree) / len(agree) >= 0.5, (agree, llama_gen, hf_gen, plain_gen)


def serve_logprobs(bindir: Path, extra: list[str], prompts: list[list[int]]) -> list[dict[int, float]]:
    """Top-10 next-token log-probabilities from a llama-server on loopback, one request per prompt."""
    port = free_port()
    cmd = [str(bindir / "llama-server"), "-m", str(smollm2_path()), "--host", "127.0.0.1", "--port", str(port)]
    out = []
    with external([*cmd, "-c", "1024", "-t", "2", "--no-webui", *extra], port, seconds=120) as url:
        for p in prompts:
            body = {"prompt": p, "n_predict": 1, "n_probs": 10, "temperature": -1, "cache_prompt": False}
            top = post_json(f"{url}/completion", body, timeout=120)["completion_probabilities"][0]["top_logprobs"]
            out.append({t["id"]: t["logprob"] for t in top})
    return out


def effect_gap(
    served: list[dict[int, float]],
    served_plain: list[dict[int, float]],
    api: torch.Tensor,
    api_plain: torch.Tensor,
    ends: list[int],
) -> tuple[float, float]:
    """``(mean |server effect - API effect|, mean |API effect|)`` over the tokens both servers list, where an
    effect is a token's steered minus unsteered log-probability. The server and the Python API process a
    prompt with different kernels, so their absolute log-probs differ by a few tenths of a nat; the change
    the vector makes is what must agree."""
    diffs, sizes = [], []
    for row, plain_row, end in zip(served, served_plain, ends):
        lp, lp0 = torch.log_softmax(api[end], -1), torch.log_softmax(api_plain[end], -1)
        for t in set(row) & set(plain_row):
            api_effect = float(lp[t] - lp0[t])
            diffs.append(abs((row[t] - plain_row[t]) - api_effect))
            sizes.append(abs(api_effect))
    return sum(diffs) / len(diffs), sum(sizes) / len(sizes)


def test_llama_server_reads_our_file_like_the_python_api(setup):
    """llama.cpp's own GGUF loader (llama-server --control-vector-scaled) reads our file and steers as the
    Python API does with our buffer. Unsteered, the server's top-10 log-probs differ from the Python API's
    about as much as the API's differ from float32 transformers (Q4_1 kernels summing in another order:
    ~0.1 nat per token); a prompt read differently (an extra BOS) doubles that. The *change* the vector
    makes is compared; the off-by-one check is the exact-distribution test above."""
    model, tok, vec, strength, sequences, prompts, tmp = setup
    bindir = Path((LLAMA.parent.parent / "llama-bin").read_text().strip())
    path = export_gguf(vec, tmp / "served.gguf")  # unscaled: the scale goes on the command line
    shifted = shifted_gguf(vec, 1.0, tmp / "served-shifted.gguf")
    cut = [len(s) // 2 for s in sequences] + [len(s) - 5 for s in sequences]
    asks = [s[:n] for s, n in zip(sequences * 2, cut)]
    plain = serve_logprobs(bindir, [], asks)
    steered = serve_logprobs(bindir, ["--control-vector-scaled", f"{path}:{strength}"], asks)
    wrong = serve_logprobs(bindir, ["--control-vector-scaled", f"{shifted}:{strength}"], asks)
    spec = {
        "model": str(smollm2_path()),
        "sequences": asks,
        "runs": [{"name": "api", "vectors": [[str(path), strength]]}, {"name": "api_plain", "vectors": None}],
    }
    api = run_llama(spec, tmp)
    ends = list(np.cumsum(cut) - 1)
    right, size = effect_gap(steered, plain, api["api"][0], api["api_plain"][0], ends)
    off, _ = effect_gap(wrong, plain, api["api"][0], api["api_plain"][0], ends)
    hf = [torch.log_softmax(hf_logits(model, [a])[-1], -1) for a in asks]
    api_lp = [torch.log_softmax(api["api_plain"][0][e], -1) for e in ends]
    server_vs_api = mean_gap(plain, api_lp)
    api_vs_hf = mean_gap([{t: float(a[t]) for t in row} for row, a in zip(plain, api_lp)], hf)
    figures = {"effect": size, "server_vs_api_effect": right, "shifted_vs_api_effect": off}
    print(json.dumps({**figures, "plain_server_vs_api": server_vs_api, "plain_api_vs_hf": api_vs_hf}))
    assert server_vs_api < 2 * api_vs_hf, (server_vs_api, api_vs_hf)  # the server reads the prompt as the API does
    assert right < 0.25 * size, (right, off, size)


def mean_gap(served: list[dict[int, float]], reference: list[torch.Tensor]) -> float:
    """Mean ``|served - reference|`` log-probability over the tokens each served row lists."""
    gaps = [abs(lp - float(ref[t])) for row, ref in zip(served, reference) for t, lp in row.items()]
    return sum(gaps) / len(gaps)


def test_a_llama_cvector_generator_file_round_trips(setup):
    """llama.cpp's own trainer writes direction.N from block N-1's output; we read it and write it back."""
    model, tok, vec, strength, sequences, prompts, tmp = setup
    bindir = Path((LLAMA.parent.parent / "llama-bin").read_text().strip())
    (tmp / "pos.txt").write_text("I feel very happy today\nWhat a wonderful sunny day\n")
    (tmp / "neg.txt").write_text("I feel very sad today\nWhat a terrible rainy day\n")
    out = subprocess.run(
        [
            str(bindir / "llama-cvector-generator"),
            "-m",
            str(smollm2_path()),
            "--positive-file",
            str(tmp / "pos.txt"),
            "--negative-file",
            str(tmp / "neg.txt"),
            "--method",
            "mean",
            "-o",
            str(tmp / "theirs.gguf"),
            "-t",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    theirs = import_gguf(tmp / "theirs.gguf")
    assert theirs.layers == list(range(1, 30)) and theirs.metadata["generator"] == "llama-cvector-generator"
    back = import_gguf(export_gguf(theirs, tmp / "back.gguf"))
    for layer in theirs.layers:
        assert torch.equal(back.directions[layer], theirs.directions[layer])


def test_a_peft_lora_served_by_llama_server_changes_what_it_changes_in_transformers(setup):
    """A LoRA adapter trained with peft, written by ``export_lora_gguf`` and served by ``llama-server --lora``
    (how the fine-tuning study generates): the change it makes to the next-token log-probs is the change
    it makes in transformers; served at twice its scale it is not. A q_proj adapter is refused: the GGUF
    stores llama's q_proj permuted for rotary embeddings, so LoRA weights copied as they are would be wrong."""
    from peft import LoraConfig, get_peft_model

    from steering.errors import ShapeMismatchError
    from steering.interop.lora_gguf import export_lora_gguf

    model, tok, vec, strength, sequences, prompts, tmp = setup
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["v_proj", "o_proj", "up_proj"], init_lora_weights=False)
    tuned = get_peft_model(copy.deepcopy(model), config)  # random A and B: a change of ~1.6 nats
    path = export_lora_gguf(tuned, tmp / "lora.gguf", base_gguf=smollm2_path())
    bindir = Path((LLAMA.parent.parent / "llama-bin").read_text().strip())
    cut = [len(s) // 2 for s in sequences] + [len(s) - 5 for s in sequences]
    asks = [s[:n] for s, n in zip(sequences * 2, cut)]
    plain = serve_logprobs(bindir, [], asks)
    served = serve_logprobs(bindir, ["--lora", str(path)], asks)
    doubled = serve_logprobs(bindir, ["--lora-scaled", f"{path}:2"], asks)
    hf_plain = torch.stack([hf_logits(model, [a])[-1] for a in asks])
    hf_tuned = torch.stack([hf_logits(tuned, [a])[-1] for a in asks])
    ends = list(range(len(asks)))
    right, size = effect_gap(served, plain, hf_tuned, hf_plain, ends)
    wrong, _ = effect_gap(doubled, plain, hf_tuned, hf_plain, ends)
    print(json.dumps({"effect": size, "served_vs_transformers": right, "doubled_vs_transformers": wrong}))
    # Served and transformers effects differ by ~0.1 nat (Q4_1 kernels vs float32), whatever the effect's size.
    assert size > 0.5, size
    assert right < 0.25 * size and wrong > 2 * right, (right, wrong, size)

    q = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules=["q_proj"]))
    with pytest.raises(ShapeMismatchError, match="rotary"):
        export_lora_gguf(q, tmp / "q.gguf", base_gguf=smollm2_path())
    with pytest.raises(steering.errors.InvalidArgumentError, match="no LoRA layers"):
        export_lora_gguf(model, tmp / "none.gguf", base_gguf=smollm2_path())
    assert not (tmp / "q.gguf").exists() and not (tmp / "none.gguf").exists()
