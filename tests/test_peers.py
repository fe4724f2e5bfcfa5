"""Against the peers' own code, run in their own environment (``scripts/peers_env.sh``).

repeng and steering-vectors need transformers < 5 and numpy < 2, so they live in ``.venv-peers``;
each check runs a short script there (this project on its PYTHONPATH) and compares here. Skipped
when that environment does not exist (``scripts/test.sh`` creates it).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_model, make_tokenizer
from helpers import arithmetic_pairs

import steering
from steering.interop import export_gguf, from_repeng

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(os.environ.get("STEERING_PEERS_PYTHON", ROOT / ".venv-peers" / "bin" / "python"))
pytestmark = pytest.mark.skipif(not PEERS.exists(), reason="no peers environment: bash scripts/peers_env.sh")


def run_peer(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRANSFORMERS_VERBOSITY": "error"}
    out = subprocess.run(
        [str(PEERS), "-c", textwrap.dedent(code), *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_repeng_reads_our_gguf_and_we_read_repengs(tmp_path):
    g = torch.Generator().manual_seed(0)
    ours = steering.SteeringVector({1: torch.randn(16, generator=g), 3: torch.randn(16, generator=g)})
    export_gguf(ours, tmp_path / "ours.gguf", strength=1.5, model_hint="llama")
    read = run_peer(
        """
        import json, sys
        from repeng import ControlVector
        v = ControlVector.import_gguf(sys.argv[1])
        print(json.dumps({"model_type": v.model_type, "directions": {k: d.tolist() for k, d in v.directions.items()}}))
        """,
        str(tmp_path / "ours.gguf"),
    )
    got = json.loads(read)
    assert got["model_type"] == "llama" and sorted(got["directions"], key=int) == ["1", "3"]
    np.testing.assert_allclose(got["directions"]["3"], 1.5 * ours.directions[3].numpy(), rtol=1e-6)

    run_peer(
        """
        import sys, numpy as np
        from repeng import ControlVector
        dirs = {2: np.arange(16, dtype=np.float32), 5: -np.ones(16, dtype=np.float32)}
        ControlVector("qwen2", dirs).export_gguf(sys.argv[1])
        print("ok")
        """,
        str(tmp_path / "theirs.gguf"),
    )
    theirs = from_repeng(tmp_path / "theirs.gguf")
    assert theirs.layers == [2, 5] and theirs.metadata["model_hint"] == "qwen2"
    np.testing.assert_array_equal(theirs.directions[2].numpy(), np.arange(16, dtype=np.float32))


def test_steering_vectors_mean_difference_matches_ours(tmp_path):
    # Same weights, same pairs, same layer, same token (the last of prompt + completion).
    tok = make_tokenizer(padding_side="right")
    model = make_model("llama", tok)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    pairs = arithmetic_pairs(8)
    (tmp_path / "pairs.json").write_text(json.dumps([[p.prompt + p.positive, p.prompt + p.negative] for p in pairs]))
    out = run_peer(
        """
        import json, sys, torch
        from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
        from steering_vectors import train_steering_vector
        from steering.interop import from_steering_vectors
        model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
        # transformers 5 saves tokenizer_class "TokenizersBackend", unknown to 4.x: load the tokenizer.json.
        tok = PreTrainedTokenizerFast(tokenizer_file=sys.argv[1] + "/tokenizer.json", bos_token="<bos>",
                                      eos_token="<eos>", pad_token="<pad>")
        pairs = [tuple(p) for p in json.load(open(sys.argv[2]))]
        sv = train_steering_vector(model, tok, pairs, layers=[1], read_token_index=-1, show_progress=False)
        from_steering_vectors(sv).save(sys.argv[3])
        print("ok")
        """,
        str(tmp_path / "model"),
        str(tmp_path / "pairs.json"),
        str(tmp_path / "theirs.safetensors"),
    )
    assert out == "ok"
    theirs = steering.SteeringVector.load(tmp_path / "theirs.safetensors")
    ours = steering.extract(model, tok, pairs, layers=[1], position="last")
    cos = torch.nn.functional.cosine_similarity(theirs.directions[1], ours.directions[1], dim=0)
    assert theirs.metadata["imported_from"] == "steering-vectors"
    assert cos > 0.999, float(cos)
    torch.testing.assert_close(theirs.directions[1], ours.directions[1], atol=1e-4, rtol=1e-3)


def test_a_repeng_trained_vector_is_read_where_ours_is(tmp_path):
    """repeng 0.4 reads a non-negative layer L at hidden_states[L + 1] (the output of block L): our layer L.

    Its ``pca_center`` direction is the first principal direction of the pairs' differences, as our
    ``pca``; trained on the same weights, pairs and (last) token, the two agree at the same layer.
    """
    tok = make_tokenizer(padding_side="right")
    model = make_model("llama", tok)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    pairs = arithmetic_pairs(10)
    (tmp_path / "pairs.json").write_text(json.dumps([[p.prompt + p.positive, p.prompt + p.negative] for p in pairs]))
    run_peer(
        """
        import json, sys
        from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
        from repeng import ControlVector, DatasetEntry
        model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
        tok = PreTrainedTokenizerFast(tokenizer_file=sys.argv[1] + "/tokenizer.json", bos_token="<bos>",
                                      eos_token="<eos>", pad_token="<pad>")
        data = [DatasetEntry(positive=p, negative=n) for p, n in json.load(open(sys.argv[2]))]
        v = ControlVector.train(model, tok, data, hidden_layers=[1, 2], method="pca_center")
        v.export_gguf(sys.argv[3])
        print("ok")
        """,
        str(tmp_path / "model"),
        str(tmp_path / "pairs.json"),
        str(tmp_path / "repeng.gguf"),
    )
    theirs = from_repeng(tmp_path / "repeng.gguf")
    ours = steering.extract(model, tok, pairs, layers=[0, 1, 2], method="pca", position="last")
    cos = {
        (a, b): float(torch.nn.functional.cosine_similarity(theirs.directions[a], ours.directions[b], dim=0))
        for a in (1, 2)
        for b in (0, 1, 2)
    }
    assert cos[(1, 1)] > 0.999, cos  # same layer number, same direction
    assert cos[(1, 0)] < 0.99 and cos[(1, 2)] < 0.99, cos  # an off-by-one either way would show here
    # The last layer differs a little: HF's last hidden state, which repeng reads, has the final norm applied.
    assert 0.95 < cos[(2, 2)] < 0.999, cos
