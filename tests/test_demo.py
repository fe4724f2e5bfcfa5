"""The bundled model and its task: real computation on the committed weights (never retrained here)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import steering
from steering import fit_condition
from steering.demo import MODEL_DIR, MODEL_ID
from steering.demo.evaluate import measure
from steering.demo.main import load
from steering.demo.task import MODES, classify, held_out, parse_answer, problems, well_formed
from steering.evaluate import early_answering, filler, generate, information_gain, substitution
from steering.evaluate.continuation import continue_greedy

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
    entry = next(e for e in reg.entries(model=MODEL_ID) if e.name == "concise-cot")
    vec = reg.load("concise-cot", model=MODEL_ID)
    probs = problems(40, "addsub", seed=11)
    base, _ = measure(model, tok, probs)
    with steering.steer(model, vec, entry.metadata["recommended_strength"], scope="prompt_last"):
        steered, texts = measure(model, tok, probs)
    assert steered.chain_tokens <= 0.4 * base.chain_tokens
    assert steered.accuracy >= base.accuracy - 0.05 and steered.well_formed >= 0.95
    assert all(classify(t) == "concise" for t in texts)


def test_committed_elicitation_vector_makes_the_model_reason(demo):
    model, tok = demo
    reg = steering.Registry(ROOT / "vectors")
    entry = next(e for e in reg.entries(model=MODEL_ID) if e.name == "elicit-reasoning")
    probs = problems(40, "muladd", seed=12)
    base, _ = measure(model, tok, probs)
    with steering.steer(
        model, reg.load("elicit-reasoning"), entry.metadata["recommended_strength"], scope="prompt_last"
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


def test_the_demo_measures_through_the_library():
    """One measurement stack: the demo's report is steering.evaluate.measure plus the task's shares."""
    model, tok = load()
    report, texts = measure(model, tok, problems(20, "addsub", seed=3))
    m = report.measurement
    assert isinstance(m, steering.evaluate.Measurement) and m.texts == texts and m.n == 20
    assert report.accuracy == m.accuracy and report.chain_tokens == m.tokens
    lo, hi = report.accuracy_ci
    assert lo <= report.accuracy <= hi


# --- the library's measures on a model that really reasons (moved here: library tests use tiny models) ---


def test_demo_model_answers_depend_on_its_chain():
    model, tok = load()
    ps = problems(24, "addsub", seed=31)
    gens, _ = generate(model, tok, [p.prompt for p in ps], max_new_tokens=110, batch_size=24)
    chains = [[s for s in re.split(r"(?<=\.)(?= )", g.text) if s][:-1] for g in gens]
    prompts = [p.prompt for p in ps]
    ea = early_answering(model, tok, prompts, chains, cue=" So the answer is", parse=parse_answer)
    assert ea.same[-1] == 1.0 and ea.aoc > 0.4  # truncating the chain changes the answer
    fill = substitution(model, tok, prompts, chains, filler(tok, " Let"), cue=" So the answer is", parse=parse_answer)
    assert fill.unchanged < 0.3
    ig = information_gain(
        model, tok, prompts[:8], chains[:8], [f" {p.answer}" for p in ps[:8]], cue=" So the answer is"
    )
    assert ig.gain_per_step > 0  # steps make the gold answer likelier


def test_fit_condition_separates_the_demo_tasks():
    model, tok = load()
    mul = [p.prompt for p in problems(30, "muladd", seed=1, split="train")]
    add = [p.prompt for p in problems(30, "addsub", seed=1, split="train")]
    cond = fit_condition(model, tok, mul, add, layers=[0, 1, 2, 3])
    assert cond.metadata["f1"] == 1.0 and set(cond.metadata["per_layer"]) == {"0", "1", "2", "3"}
    assert cond.layer == min(int(k) for k, v in cond.metadata["per_layer"].items() if v["f1"] == 1.0)
    held_mul = [p.prompt for p in problems(20, "muladd", seed=2)]
    held_add = [p.prompt for p in problems(20, "addsub", seed=2)]
    enc = tok(held_mul + held_add, return_tensors="pt", padding=True)
    with torch.no_grad():
        h = model(**enc, output_hidden_states=True).hidden_states[cond.layer + 1][:, -1]
    fired = cond.fires(cond.scores(h))
    assert fired[:20].float().mean() >= 0.9 and fired[20:].float().mean() <= 0.1


def test_forced_continuation_keeps_prompt_tied_steering_where_generation_had_it():
    """Inside steer(scope="prompt_last"), continuing prompt + part of the steered chain reproduces
    the rest of that chain: the vector acts at the problem's last token, not at the prefix's end."""

    model, tok = load()
    reg = steering.Registry(ROOT / "vectors")
    strength = next(e for e in reg.entries(model=MODEL_ID) if e.name == "concise-cot").metadata["recommended_strength"]
    prompt = problems(1, "addsub", seed=41)[0].prompt
    with steering.steer(model, reg.load("concise-cot"), strength, scope="prompt_last"):
        (full,), _ = generate(model, tok, [prompt], max_new_tokens=40)
        cut = full.text.index(". ") + 1  # after the first step
        rest = continue_greedy(model, tok, prompt, full.text[:cut], 40)
    assert full.text.startswith(" ") and "Let me think" not in full.text  # steered: concise
    assert full.text[:cut] + rest == full.text
