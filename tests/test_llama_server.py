"""The fast engine: ``llama-server`` with our vector as its control vector, on SmolLM2's GGUF file.

Real server processes on loopback (the portable build from ``scripts/llama_env.sh``); skipped without it.
"""

from __future__ import annotations

import pytest

import steering
from steering.calibrate import strength_for_norm
from steering.errors import InvalidArgumentError, ModelFileError
from steering.evaluate import measure_generations
from steering.interop.llama_server import LlamaServer, find_server
from steering.models import smollm2, smollm2_path

try:
    find_server()
    HAVE_SERVER = True
except ModelFileError:
    HAVE_SERVER = False
pytestmark = pytest.mark.skipif(not HAVE_SERVER, reason="no llama-server: bash scripts/llama_env.sh")
PROMPTS = [[{"role": "user", "content": q}] for q in ("What is the capital of France?", "Name a colour.", "Hi!")]


@pytest.fixture(scope="module")
def ref():
    model, tok = smollm2()
    pairs = [
        steering.Pair(p, " Yes, gladly! What a lovely question.", " No. I refuse to answer that.") for p in PROMPTS
    ]
    vec = steering.extract(model, tok, pairs, layers=[9], position="mean", progress=False)
    return model, tok, vec


def test_replies_count_tokens_as_transformers_does(ref):
    _, tok, _ = ref
    with LlamaServer(smollm2_path(), parallel=2, context_per_slot=256, threads=1) as server:
        gens, seconds = server.generate(tok, PROMPTS, max_new_tokens=48)
        cut, _ = server.generate(tok, PROMPTS[:1], max_new_tokens=3)
    assert seconds > 0 and len(gens) == 3
    for g in gens:
        assert g.n_tokens == len(g.ids) and g.text == tok.decode(g.ids, skip_special_tokens=True)
        if g.finished:  # ended by end of sequence, which is counted, as in steering.evaluate.generate
            assert g.ids[-1] == tok.eos_token_id
    assert cut[0].n_tokens == 3 and not cut[0].finished and cut[0].ids == gens[0].ids[:3]  # greedy: a prefix
    m = measure_generations(gens, seconds, gold=[gens[0].text[:6], "\x00", "\x00"], check=lambda a, g: g in a)
    assert m.correct == [True, False, False] and m.tokens == sum(g.n_tokens for g in gens) / 3


def test_a_vector_steers_and_strength_zero_is_the_baseline(ref):
    _, tok, vec = ref
    s = strength_for_norm(vec, 0.5)
    runs = {}
    for name, v, strength in (("plain", None, 1.0), ("zero", vec, 0.0), ("steered", vec, s)):
        with LlamaServer(smollm2_path(), vector=v, strength=strength, parallel=3, context_per_slot=256) as server:
            runs[name], _ = server.generate(tok, PROMPTS, max_new_tokens=24)
    assert [g.ids for g in runs["zero"]] == [g.ids for g in runs["plain"]]
    assert [g.ids for g in runs["steered"]] != [g.ids for g in runs["plain"]]


def test_sampling_is_repeatable_by_seed_whatever_the_batch(ref):
    _, tok, _ = ref
    with LlamaServer(smollm2_path(), parallel=3, context_per_slot=256) as server:
        a, _ = server.generate(tok, PROMPTS, max_new_tokens=16, seed=7, temperature=1.0)
        b, _ = server.generate(tok, PROMPTS[::-1][2:], max_new_tokens=16, seed=7, temperature=1.0)
    assert a[0].ids == b[0].ids  # request 0 samples with seed 7 in both batches


def test_the_server_stops_after_an_error_inside_the_block(ref):
    _, tok, _ = ref
    server = LlamaServer(smollm2_path(), parallel=1, context_per_slot=128)
    with pytest.raises(RuntimeError, match="inside"):
        with server:
            proc = server._proc
            raise RuntimeError("inside")
    assert proc is not None and proc.poll() is not None
    with pytest.raises(InvalidArgumentError, match="not running"):
        server.generate(tok, PROMPTS[:1])


def test_bad_arguments_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ModelFileError, match="fetch it first"):
        LlamaServer(tmp_path / "missing.gguf")
    with pytest.raises(InvalidArgumentError, match="parallel"):
        LlamaServer(smollm2_path(), parallel=0)
    with pytest.raises(ModelFileError, match="not executable"):
        find_server(tmp_path / "nope")


def test_a_prompt_too_long_for_a_slot_is_refused_with_the_fix(ref):
    _, tok, _ = ref
    with LlamaServer(smollm2_path(), parallel=1, context_per_slot=64) as server:
        with pytest.raises(InvalidArgumentError, match="raise context_per_slot"):
            server.generate(tok, [[{"role": "user", "content": "tell me a story " * 40}]], max_new_tokens=8)


def test_the_reasoning_job_resumes_from_chunks_and_keeps_each_requests_seed(ref, tmp_path, monkeypatch):
    """The reasoning job's engine caches runs in chunks: a longer prompt list reuses the chunks a shorter
    one generated, and request i samples with seed + i whichever chunk it falls in."""
    from steering.demo import reasoning_engine as reasoning

    _, tok, vec = ref
    engine = reasoning.Engine(smollm2_path(), tok, 2, 1, tmp_path / "runs")
    sampling = {"temperature": 0.9, "seed": 7}
    whole, _ = engine.run(PROMPTS, vec, 1.0, max_new=12, **sampling)  # one chunk of 3
    monkeypatch.setattr(reasoning, "CHUNK", 2)
    chunked, _ = engine.run(PROMPTS, vec, 1.0, max_new=12, **sampling)  # chunks of 2 and 1
    assert [g.ids for g in chunked] == [g.ids for g in whole]
    files = sorted((tmp_path / "runs").iterdir())
    assert len(files) == 3
    again, _ = engine.run(PROMPTS, vec, 1.0, max_new=12, **sampling)  # read back, no server started
    assert [g.ids for g in again] == [g.ids for g in whole] and sorted((tmp_path / "runs").iterdir()) == files
