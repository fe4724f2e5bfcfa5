"""The bundled model and its task: real computation on the committed weights (never retrained here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import steering
from steering.demo import MODEL_DIR, MODEL_ID
from steering.demo.evaluate import measure, wilson
from steering.demo.main import load
from steering.demo.task import MODES, classify, held_out, parse_answer, problems, well_formed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo():
    torch.manual_seed(0)
    return load()


def test_task_templates_parse_and_classify():
    for kind in ("addsub", "muladd"):
        for p in problems(20, kind, seed=0):
            assert held_out(p)
            for mode in MODES:
                text = p.completion(mode)
                assert parse_answer(text) == p.answer and classify(text) == mode and well_formed(text, p)
    p = problems(1, "addsub", seed=0)[0]
    assert not well_formed(" Answer: 12. Wait", p) and classify("12 + ") == "malformed"
    train = problems(50, "addsub", seed=0, split="train")
    assert not any(held_out(q) for q in train)


def test_bundled_model_is_verbose_on_addsub_and_direct_on_muladd(demo):
    model, tok = demo
    assert (MODEL_DIR / "model.safetensors").stat().st_size < 8_000_000
    add, _ = measure(model, tok, problems(24, "addsub", seed=5))
    mul, _ = measure(model, tok, problems(24, "muladd", seed=5))
    assert add.modes.get("verbose", 0) >= 0.9 and add.accuracy >= 0.5
    assert mul.direct_share >= 0.9


def test_committed_compression_vector_compresses_at_unchanged_accuracy(demo):
    model, tok = demo
    reg = steering.Registry(ROOT / "vectors")
    entry = next(e for e in reg.list(model=MODEL_ID) if e["name"] == "concise-cot")
    vec = reg.load("concise-cot", model=MODEL_ID)
    probs = problems(40, "addsub", seed=11)
    base, _ = measure(model, tok, probs)
    with steering.steer(model, vec, entry["metadata"]["recommended_strength"], scope="prompt_last"):
        steered, texts = measure(model, tok, probs)
    assert steered.chain_tokens <= 0.4 * base.chain_tokens
    assert steered.accuracy >= base.accuracy - 0.05 and steered.well_formed >= 0.95
    assert all(classify(t) == "concise" for t in texts)


def test_committed_elicitation_vector_makes_the_model_reason(demo):
    model, tok = demo
    reg = steering.Registry(ROOT / "vectors")
    entry = next(e for e in reg.list(model=MODEL_ID) if e["name"] == "elicit-reasoning")
    probs = problems(40, "muladd", seed=12)
    base, _ = measure(model, tok, probs)
    with steering.steer(
        model, reg.load("elicit-reasoning"), entry["metadata"]["recommended_strength"], scope="prompt_last"
    ):
        steered, _ = measure(model, tok, probs)
    assert base.direct_share >= 0.9 and steered.direct_share <= 0.1
    assert steered.accuracy > base.accuracy


def test_demo_end_to_end_small(tmp_path, capsys):
    from steering.cli import main

    assert main(["demo", "--n-problems", "16", "--n-pairs", "8", "--layer", "3", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    for key in ("baseline", "steered"):
        assert set(results["compression"][key]) >= {
            "accuracy",
            "chain_tokens",
            "seconds",
            "well_formed",
            "direct_share",
        }
    assert {"layer", "strength", "reduction", "speedup"} <= set(results["compression"])
    assert {"accuracy"} <= set(results["elicitation"]["baseline"]) and results["n_problems"] == 16
    assert {"accuracy", "chain_tokens"} <= set(results["control"])
    assert (tmp_path / "compression_sweep.png").stat().st_size > 1000
    assert steering.Registry(tmp_path / "vectors").load("concise-cot").layers == [3]
    assert "Compression (held-out addsub problems)" in capsys.readouterr().out


def test_wilson_interval():
    lo, hi = wilson(82, 100)
    assert lo < 0.82 < hi and 0.72 < lo and hi < 0.89
