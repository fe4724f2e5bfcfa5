from __future__ import annotations

import json

import pytest
import torch
from servers import serve

from steering import SteeringVector
from steering.cli import main


@pytest.fixture
def saved(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERING_CACHE", str(tmp_path / "cache"))
    for var in ("STEERING_OFFLINE", "HF_HUB_OFFLINE", "STEERING_REGISTRY"):
        monkeypatch.delenv(var, raising=False)
    vec = SteeringVector(
        {2: torch.arange(6.0)}, {"model": "org/tiny", "hidden_size": 6, "method": "mean_diff", "position": "first"}
    )
    path = vec.save(tmp_path / "v.safetensors")
    (tmp_path / "card.md").write_text("# Concise CoT\nMade from 50 pairs.\n")
    return tmp_path, path, vec


def test_push_list_show_pull(saved, capsys):
    tmp, path, vec = saved
    reg = str(tmp / "reg")
    assert (
        main(["push", str(path), "--name", "concise", "--to", reg, "--card", str(tmp / "card.md"), "--strength", "3.5"])
        == 0
    )
    assert "pushed org/tiny/concise" in capsys.readouterr().out
    assert main(["list", "--registry", reg]) == 0
    out = capsys.readouterr().out
    assert "org/tiny  concise  layers [2]  mean_diff@first  strength 3.5" in out
    assert main(["list", "--registry", reg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "concise"
    assert main(["show", "concise", "--registry", reg]) == 0
    out = capsys.readouterr().out
    assert '"recommended_strength": 3.5' in out and "# Concise CoT" in out
    assert main(["pull", "concise", "--source", reg, "--out", str(tmp / "copy.safetensors")]) == 0
    assert torch.equal(SteeringVector.load(tmp / "copy.safetensors").directions[2], vec.directions[2])


def test_pull_and_show_over_http(saved, capsys):
    tmp, path, vec = saved
    main(["push", str(path), "--name", "concise", "--to", str(tmp / "reg"), "--card", str(tmp / "card.md")])
    with serve(tmp / "reg") as server:
        assert main(["pull", "concise", "--source", server.url, "--out", str(tmp / "c.safetensors")]) == 0
        assert main(["show", "concise", "--registry", server.url]) == 0
        assert "Made from 50 pairs" in capsys.readouterr().out
    assert main(["list", "--registry", server.url, "--offline"]) == 0  # served from the cache
    assert "concise" in capsys.readouterr().out


def test_errors_exit_2_with_one_clear_line(saved, capsys):
    tmp, path, _ = saved
    main(["push", str(path), "--name", "concise", "--to", str(tmp / "reg")])
    capsys.readouterr()
    assert main(["pull", "consise", "--source", str(tmp / "reg")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("steering pull: No entry 'consise'") and "concise" in err
    assert main(["push", str(path), "--name", "x", "--to", "https://example.invalid/vectors"]) == 2
    assert "read-only" in capsys.readouterr().err
    assert main(["push", str(path), "--name", "concise", "--to", str(tmp / "reg")]) == 2  # no silent overwrite
    assert "overwrite" in capsys.readouterr().err


def test_extract_verb_on_a_local_model(tmp_path, capsys):
    from conftest import make_model, make_tokenizer
    from helpers import arithmetic_pairs

    tok = make_tokenizer()
    model = make_model("gpt2", tok)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps(p.__dict__) for p in arithmetic_pairs(4)))
    out = tmp_path / "v.safetensors"
    assert (
        main(
            [
                "extract",
                "--model",
                str(tmp_path / "m"),
                "--pairs",
                str(pairs),
                "--layers",
                "0,-1",
                "--position",
                "first",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    vec = SteeringVector.load(out)
    assert vec.layers == [0, 2] and vec.metadata["position"] == "first" and vec.metadata["n_pairs"] == 4
    assert "saved" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, match",
    [
        (["show", "concise", "--registry", "{tmp}/no-such-registry"], "No registry at"),
        (["list", "--registry", "{tmp}/v.safetensors"], "is a file"),
        (["push", "{tmp}/missing.safetensors", "--name", "x", "--to", "{tmp}/reg"], "No vector file"),
        (["push", "{tmp}/v.safetensors", "--name", "x", "--to", "{tmp}/reg", "--card", "{tmp}/nope.md"], "nope.md"),
        (["extract", "--model", "{tmp}/no-model", "--pairs", "{tmp}/latin1.jsonl", "--layers", "0", "--out", "x"], ""),
        (["extract", "--model", "{tmp}/m.gguf", "--pairs", "{tmp}/p.jsonl", "--layers", "0", "--out", "x"], "GGUF"),
        (["list", "--registry", "{tmp}/bad-index"], "metadata"),
        (["import", "{tmp}/card.md", "--out", "{tmp}/o.safetensors"], "GGUF"),
    ],
)
def test_every_user_error_is_one_line_and_exit_2(saved, capsys, argv, match):
    tmp, _, _ = saved
    (tmp / "latin1.jsonl").write_bytes('{"prompt": "café", "positive": " a", "negative": " b"}\n'.encode("latin-1"))
    (tmp / "p.jsonl").write_text('{"prompt": "q", "positive": " a", "negative": " b"}\n')
    (tmp / "bad-index").mkdir()
    (tmp / "bad-index" / "index.json").write_text(
        json.dumps(
            {
                "schema": "steering.registry",
                "version": 1,
                "entries": [
                    {
                        "model": "o/m",
                        "name": "n",
                        "files": {"1": {"path": "a", "sha256": "0" * 64, "size": 1}},
                        "metadata": "not an object",
                    }
                ],
            }
        )
    )
    assert main([a.format(tmp=tmp) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"steering {argv[0]}: ") and "Traceback" not in err, err
    assert match in err


def test_a_latin1_pairs_file_and_a_missing_model_folder_are_one_line_errors(saved, capsys):
    tmp, _, _ = saved
    (tmp / "latin1.jsonl").write_bytes('{"prompt": "café", "positive": " a", "negative": " b"}\n'.encode("latin-1"))
    from steering import load_pairs
    from steering.errors import PairError

    with pytest.raises(PairError, match="UTF-8"):
        load_pairs(tmp / "latin1.jsonl")
    argv = ["extract", "--model", str(tmp / "no-model"), "--pairs", str(tmp / "latin1.jsonl"), "--layers", "0"]
    assert main([*argv, "--out", str(tmp / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-model" in err, err
    from steering.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="No model at"):
        main([*argv, "--out", str(tmp / "x.safetensors"), "--debug"])  # the exception itself, on request


def test_list_honours_steering_registry(saved, capsys, monkeypatch):
    tmp, path, _ = saved
    main(["push", str(path), "--name", "concise", "--to", str(tmp / "reg")])
    capsys.readouterr()
    monkeypatch.setenv("STEERING_REGISTRY", str(tmp / "reg"))
    assert main(["list"]) == 0
    assert "concise" in capsys.readouterr().out
