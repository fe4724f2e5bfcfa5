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


# --- hostile input: nothing raw reaches the terminal, nothing half-written reaches the disk ----------


def test_list_and_show_escape_terminal_control_sequences(saved, capsys):
    tmp, path, vec = saved
    reg = tmp / "reg"
    evil = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J"  # OSC 52 (write the clipboard), clear the screen
    from steering import Registry

    Registry(reg).save(vec.with_metadata(method="mean\x1b[31m_diff"), "x", card=f"# card{evil}\nline two\n")
    assert main(["list", "--registry", str(reg)]) == 0
    assert main(["show", "x", "--registry", str(reg)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]52;c;" in out and "line two" in out and "mean\\x1b[31m_diff" in out


@pytest.mark.parametrize("strength", ["nan", "inf", "1e39"])
@pytest.mark.parametrize("fmt", ["gguf", "vllm", "svec"])
def test_export_refuses_a_non_finite_strength_and_writes_nothing(saved, capsys, strength, fmt):
    tmp, path, _ = saved
    out = tmp / "out" / ("v.svec" if fmt == "svec" else "v.gguf" if fmt == "gguf" else "v")
    out.parent.mkdir()
    assert main(["export", str(path), "--format", fmt, "--out", str(out), "--strength", strength]) == 2
    err = capsys.readouterr().err
    assert "finite" in err or "overflows" in err, err
    assert list(out.parent.iterdir()) == []


def test_a_vllm_export_with_a_bad_scope_leaves_no_gguf(saved, capsys):
    tmp, path, _ = saved
    (tmp / "out").mkdir()
    assert main(["export", str(path), "--format", "vllm", "--out", str(tmp / "out" / "v"), "--scope", "banana"]) == 2
    assert list((tmp / "out").iterdir()) == []


@pytest.mark.parametrize(
    "argv, match",
    [
        (
            ["extract", "--model", "m", "--pairs", "p", "--layers", "0", "--out", "x", "--dtype", "banana"],
            "invalid choice",
        ),
        (["list", "--bogus"], "unrecognized arguments"),
        (["pull"], "required"),
    ],
)
def test_argument_errors_are_one_line(capsys, argv, match):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and match in err and "usage:" not in err, err


def test_deeply_nested_json_is_a_user_error_everywhere(saved, capsys):
    tmp, path, _ = saved
    (tmp / "deep").mkdir()
    (tmp / "deep" / "index.json").write_text("[" * 100000)
    (tmp / "deep.jsonl").write_text("[" * 100000 + "\n")
    (tmp / "deep.svec").write_text("[" * 100000)
    for argv in (
        ["list", "--registry", str(tmp / "deep")],
        ["extract", "--model", str(tmp), "--pairs", str(tmp / "deep.jsonl"), "--layers", "0", "--out", "x"],
        ["import", str(tmp / "deep.svec"), "--out", str(tmp / "o.safetensors")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "internal error" not in err, err


def test_a_pickled_model_is_refused_in_one_line(tmp_path, capsys):
    """torch's weights-only loader refuses a pickle that would run code; the CLI says so in one line."""
    import os
    import pickle

    from transformers import LlamaConfig

    cfg = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, vocab_size=64)  # fmt: skip
    cfg.save_pretrained(tmp_path / "m")
    from conftest import make_tokenizer

    make_tokenizer().save_pretrained(tmp_path / "m")

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "m" / "pytorch_model.bin").write_bytes(pickle.dumps({"x": Payload()}))
    (tmp_path / "p.jsonl").write_text('{"prompt": "q", "positive": " a", "negative": " b"}\n')
    argv = ["extract", "--model", str(tmp_path / "m"), "--pairs", str(tmp_path / "p.jsonl"), "--layers", "0"]
    assert main([*argv, "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pickle" in err and not (tmp_path / "pwned").exists(), err


def test_ctrl_c_during_extract_is_one_line_and_exit_130(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from conftest import make_model, make_tokenizer

    make_model("llama", make_tokenizer()).save_pretrained(tmp_path / "m")
    make_tokenizer().save_pretrained(tmp_path / "m")
    row = json.dumps({"prompt": "q " * 20, "positive": " a" * 20, "negative": " b" * 20})
    (tmp_path / "p.jsonl").write_text((row + "\n") * 20000)  # long enough to interrupt
    cmd = [sys.executable, "-m", "steering.cli", "extract", "--model", str(tmp_path / "m"), "--pairs"]
    cmd += [str(tmp_path / "p.jsonl"), "--layers", "0", "--batch-size", "1", "--out", str(tmp_path / "x.safetensors")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    time.sleep(8)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "steering extract: interrupted", err
    assert "Traceback" not in err, err


def test_gc_verb_removes_only_unlisted_files_of_ours(saved, capsys):
    tmp, path, _ = saved
    reg = tmp / "reg"
    main(["push", str(path), "--name", "concise", "--to", str(reg)])
    orphan = reg / "org--tiny" / "killed" / "layer-3.0123456789abcdef.safetensors"
    orphan.parent.mkdir()
    orphan.write_bytes(b"x")
    (reg / "README.md").write_text("mine")
    capsys.readouterr()
    assert main(["gc", "--registry", str(reg)]) == 0
    assert "1 unlisted file(s) removed" in capsys.readouterr().out
    assert not orphan.exists() and (reg / "README.md").exists()
    assert main(["pull", "concise", "--source", str(reg)]) == 0
