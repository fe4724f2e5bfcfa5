"""GGUF control vectors, peer formats and serving exports: round trips, the readers, and refusals."""

from __future__ import annotations

import json
from dataclasses import dataclass

import gguf
import numpy as np
import pytest
import torch
from conftest import make_model
from helpers import arithmetic_pairs

import steering
from steering import SteeringVector, Tokens
from steering.cli import main as cli
from steering.errors import ShapeMismatchError, UnknownOptionError, VectorFileError
from steering.interop import (
    export_gguf,
    export_vllm,
    from_repeng,
    from_steering_vectors,
    import_gguf,
    load_svec,
    to_svec,
)


@pytest.fixture
def vec():
    g = torch.Generator().manual_seed(0)
    return SteeringVector(
        {1: torch.randn(32, generator=g), 2: torch.randn(32, generator=g)},
        {"model": "org/tiny", "model_type": "llama", "hidden_size": 32, "method": "mean_diff"},
    )


def write_like_repeng(path, directions: dict[int, np.ndarray], model_type: str = "llama") -> None:
    # The calls repeng 0.4's ControlVector.export_gguf makes.
    writer = gguf.GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", model_type)
    writer.add_uint32("controlvector.layer_count", len(directions))
    for layer, d in directions.items():
        writer.add_tensor(f"direction.{layer}", d)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_round_trip_bakes_strength_and_keeps_metadata(vec, tmp_path):
    path = export_gguf(vec, tmp_path / "v.gguf", strength=2.5)
    back = import_gguf(path)
    assert back.layers == [1, 2]
    for layer in (1, 2):
        torch.testing.assert_close(back.directions[layer], 2.5 * vec.directions[layer])
    assert back.metadata["model"] == "org/tiny" and back.metadata["gguf_strength"] == 2.5
    assert back.metadata["model_hint"] == "llama" and back.metadata["imported_from"] == "gguf"


def test_gguf_file_is_what_llama_cpp_reads(vec, tmp_path):
    # Read back with gguf-py, llama.cpp's own Python reader.
    reader = gguf.GGUFReader(str(export_gguf(vec, tmp_path / "v.gguf")))

    def field(key):
        f = reader.get_field(key)
        return f.contents() if hasattr(f, "contents") else f.parts[-1].tolist()

    assert field("general.architecture") == "controlvector"
    assert field("controlvector.model_hint") == "llama"
    assert field("controlvector.layer_count") == 2
    tensors = {t.name: t for t in reader.tensors}
    assert sorted(tensors) == ["direction.1", "direction.2"]  # direction.N = block N's output
    for layer in (1, 2):
        t = tensors[f"direction.{layer}"]
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and list(t.shape) == [32]
        np.testing.assert_array_equal(t.data, vec.directions[layer].numpy())


def test_a_repeng_style_file_imports_on_the_same_layers(tmp_path):
    dirs = {3: np.arange(8, dtype=np.float32), 5: -np.ones(8, dtype=np.float32)}
    write_like_repeng(tmp_path / "r.gguf", dirs)
    v = from_repeng(tmp_path / "r.gguf")
    assert v.layers == [3, 5] and v.metadata["imported_from"] == "repeng"
    assert "note" not in v.metadata  # repeng reads hidden_states[L + 1]: the block it applies to, our layer L
    np.testing.assert_array_equal(v.directions[3].numpy(), dirs[3])


def test_gguf_refusals(vec, tmp_path):
    with_zero = SteeringVector({0: torch.ones(32), 1: torch.ones(32)})
    with pytest.raises(ShapeMismatchError, match=r"no direction for layer 0.*select\(\[1\]\)"):
        export_gguf(with_zero, tmp_path / "z.gguf")
    assert not (tmp_path / "z.gguf").exists()
    write_like_repeng(tmp_path / "zero.gguf", {0: np.ones(4, dtype=np.float32)})
    with pytest.raises(VectorFileError, match=r"direction\.0 is invalid"):
        import_gguf(tmp_path / "zero.gguf")
    write_like_repeng(tmp_path / "f16.gguf", {1: np.ones(4, dtype=np.float16)})
    with pytest.raises(VectorFileError, match="1-D float32"):
        import_gguf(tmp_path / "f16.gguf")
    model_file = tmp_path / "model.gguf"
    w = gguf.GGUFWriter(str(model_file), "llama")
    w.add_tensor("token_embd.weight", np.ones((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(VectorFileError, match="not a control vector"):
        import_gguf(model_file)
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(VectorFileError, match="not a readable GGUF"):
        import_gguf(tmp_path / "junk.gguf")
    write_like_repeng(tmp_path / "ragged.gguf", {1: np.ones(4, np.float32), 2: np.ones(5, np.float32)})
    with pytest.raises(VectorFileError, match="one width"):
        import_gguf(tmp_path / "ragged.gguf")


def test_every_position_runtimes_refuse_a_vector_meant_for_another_scope(vec, tmp_path):
    prompt_last = vec.with_metadata(recommended_scope="prompt_last")
    with pytest.raises(UnknownOptionError, match=r"llama.cpp steers every position.*meant for scope 'prompt_last'"):
        export_gguf(prompt_last, tmp_path / "pl.gguf")
    assert not (tmp_path / "pl.gguf").exists()
    assert import_gguf(export_gguf(prompt_last, tmp_path / "pl.gguf", scope="all")).layers == [1, 2]


def test_an_imported_gguf_steers_like_the_original(tokenizer, tmp_path):
    # llama.cpp adds direction.N at every position of block N's output: steer(scope="all").
    model = make_model("llama", tokenizer)
    vec = steering.extract(model, tokenizer, arithmetic_pairs(6), layers=[1, 2])
    back = import_gguf(export_gguf(vec, tmp_path / "v.gguf", strength=3.0))
    enc = tokenizer(["Q: 3 + 4 = ?", "Q: 12"], return_tensors="pt", padding=True)
    with steering.steer(model, vec, 3.0):
        want = model.generate(**enc, max_new_tokens=6, do_sample=False)
    with steering.steer(model, back, 1.0):
        got = model.generate(**enc, max_new_tokens=6, do_sample=False)
    assert torch.equal(got, want)


def test_svec_round_trip_and_ibm_layout(vec, tmp_path):
    path = to_svec(vec, tmp_path / "v.svec")
    raw = json.loads(path.read_text())
    assert set(raw) == {"model_type", "directions", "explained_variances"} and raw["model_type"] == "llama"
    back = load_svec(path)
    assert back.layers == [1, 2] and back.metadata["imported_from"] == "activation-steering"
    torch.testing.assert_close(back.directions[2], vec.directions[2])
    # As activation-steering's SteeringVector.save writes it (json.dump of lists, int keys as strings).
    ibm = {"model_type": "qwen2", "directions": {"4": [0.5] * 6}, "explained_variances": {"4": 0.9}}
    (tmp_path / "ibm.svec").write_text(json.dumps(ibm))
    v = load_svec(tmp_path / "ibm.svec")
    assert v.layers == [4] and v.metadata["model_type"] == "qwen2" and v.hidden_size == 6
    with pytest.raises(VectorFileError, match=r"'\.svec'"):
        to_svec(vec, tmp_path / "v.json")
    (tmp_path / "bad.svec").write_text(json.dumps({"directions": {"x": [1.0]}}))
    with pytest.raises(VectorFileError, match="not an integer"):
        load_svec(tmp_path / "bad.svec")
    (tmp_path / "neg.svec").write_text(json.dumps({"directions": {"-1": [1.0]}}))
    with pytest.raises(VectorFileError, match="negative"):
        load_svec(tmp_path / "neg.svec")
    (tmp_path / "broken.svec").write_text("{")
    with pytest.raises(VectorFileError, match="not a readable"):
        load_svec(tmp_path / "broken.svec")


@dataclass
class _SteeringVectorsLayout:
    """The two fields of steering_vectors.SteeringVector (the real class is tested in test_peers.py)."""

    layer_activations: dict
    layer_type: str = "decoder_block"


def test_steering_vectors_layout_and_refusals():
    v = from_steering_vectors(_SteeringVectorsLayout({2: torch.ones(8)}))
    assert v.layers == [2] and v.metadata["imported_from"] == "steering-vectors"
    with pytest.raises(VectorFileError, match="'mlp'"):
        from_steering_vectors(_SteeringVectorsLayout({2: torch.ones(8)}, layer_type="mlp"))
    with pytest.raises(VectorFileError, match=r"needs a steering_vectors\.SteeringVector"):
        from_steering_vectors(torch.ones(3))
    with pytest.raises(VectorFileError, match="needs a repeng ControlVector"):
        from_repeng(42)


@pytest.mark.parametrize(
    ("scope", "want"),
    [
        ("all", {"prefill_trigger_tokens": [-1], "generate_trigger_tokens": [-1]}),
        ("prompt", {"prefill_trigger_tokens": [-1]}),
        ("generated", {"generate_trigger_tokens": [-1]}),
        (("prompt_last", "generated"), {"prefill_trigger_positions": [-1], "generate_trigger_tokens": [-1]}),
    ],
)
def test_vllm_export_maps_scopes_to_trigger_settings(vec, tmp_path, scope, want):
    request = export_vllm(vec, tmp_path, "concise", strength=0.7, scope=scope)
    on_disk = json.loads((tmp_path / "concise.request.json").read_text())
    assert on_disk == request
    assert request["scale"] == 0.7 and request["target_layers"] == [1, 2] and request["algorithm"] == "direct"
    assert {k: v for k, v in request.items() if "trigger" in k} == want
    back = import_gguf(request["steer_vector_local_path"])  # unscaled directions
    torch.testing.assert_close(back.directions[1], vec.directions[1])


def test_vllm_export_token_triggers_and_refusals(vec, tmp_path, tokenizer):
    think = tokenizer.convert_tokens_to_ids("<think>")
    request = export_vllm(vec, tmp_path, "t", scope=Tokens("<think>"), tokenizer=tokenizer)
    assert request["prefill_trigger_tokens"] == [think] == request["generate_trigger_tokens"]
    with pytest.raises(UnknownOptionError, match="several tokens"):
        export_vllm(vec, tmp_path, "t2", scope=Tokens("Let me think"), tokenizer=tokenizer)
    with pytest.raises(UnknownOptionError, match="cannot express"):
        export_vllm(vec, tmp_path, "t3", scope=steering.Window(0, 8))


def test_cli_export_and_import(vec, tmp_path, capsys):
    vec.save(tmp_path / "v.safetensors")
    assert cli(["export", str(tmp_path / "v.safetensors"), "--out", str(tmp_path / "v.gguf"), "--strength", "2"]) == 0
    assert cli(["import", str(tmp_path / "v.gguf"), "--out", str(tmp_path / "back.safetensors")]) == 0
    back = SteeringVector.load(tmp_path / "back.safetensors")
    torch.testing.assert_close(back.directions[1], 2 * vec.directions[1])
    assert cli(["export", str(tmp_path / "v.safetensors"), "--format", "svec", "--out", str(tmp_path / "v.svec")]) == 0
    assert cli(["import", str(tmp_path / "v.svec"), "--out", str(tmp_path / "s.safetensors")]) == 0
    out = tmp_path / "serve" / "concise"
    args = ["export", str(tmp_path / "v.safetensors"), "--format", "vllm", "--out", str(out), "--scope", "prompt_last"]
    assert cli(args) == 0
    assert json.loads((out.parent / "concise.request.json").read_text())["prefill_trigger_positions"] == [-1]
    zero = SteeringVector({0: torch.ones(4)})
    zero.save(tmp_path / "z.safetensors")
    assert cli(["export", str(tmp_path / "z.safetensors"), "--out", str(tmp_path / "z.gguf")]) == 2
    assert "layer 0" in capsys.readouterr().err


# --- untrusted files and requests -------------------------------------------------------------------


@pytest.mark.parametrize("index", ["٣", "³", "03x"])
def test_gguf_layer_numbers_are_ascii_digits_only(tmp_path, index):
    writer = gguf.GGUFWriter(str(tmp_path / "v.gguf"), "controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    writer.add_tensor(f"direction.{index}", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(VectorFileError, match=r"direction\.<layer number>"):
        import_gguf(tmp_path / "v.gguf")


@pytest.mark.parametrize("embedded, match", [("[" * 100000, "nests too deeply"), ("[1, 2]", "JSON list")])
def test_gguf_embedded_metadata_must_be_a_json_object(vec, tmp_path, embedded, match):
    path = export_gguf(vec, tmp_path / "v.gguf")
    reader = gguf.GGUFReader(str(path))
    writer = gguf.GGUFWriter(str(tmp_path / "w.gguf"), "controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    writer.add_string("steering.metadata", embedded)
    for t in reader.tensors:
        writer.add_tensor(t.name, np.asarray(t.data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(VectorFileError, match=match):
        import_gguf(tmp_path / "w.gguf")


def test_serving_takes_registry_names_never_paths_or_urls(vec, tmp_path):
    """What a vLLM request names resolves against the operator's registry; paths and URLs are refused
    without reading or fetching anything (the front end and every worker use this resolver)."""
    from steering.errors import InvalidArgumentError
    from steering.interop.vllm_requests import Entry, Limits, Resolver

    secret = tmp_path / "shadow"
    secret.write_bytes(b"root:*:20000:0:99999:7:::\n" * 4)
    resolver = Resolver(str(tmp_path / "registry"), Limits())
    steering.Registry(tmp_path / "registry").save(vec, "concise")
    for spec in (str(secret), "registry:x@http://127.0.0.1:9/v", "../registry/org--tiny/concise", "a/b", "hf://o/r"):
        with pytest.raises(InvalidArgumentError, match="not a path or URL") as info:
            resolver.resolve(Entry(spec, 1.0))
        assert "root:" not in str(info.value) and "20000" not in str(info.value)
    with pytest.raises(InvalidArgumentError, match="no vector 'nope' in this server's registry") as info:
        resolver.resolve(Entry("nope", 1.0))
    assert str(tmp_path) not in str(info.value)  # a client learns nothing of the server's paths
    with pytest.raises(InvalidArgumentError, match="STEERING_REGISTRY"):
        Resolver(None, Limits()).resolve(Entry("concise", 1.0))


def test_a_file_that_fails_to_parse_is_never_echoed(tmp_path):
    """Reading /etc/shadow as a vector used to print its first 8 bytes as a number."""
    path = tmp_path / "shadow.safetensors"
    path.write_bytes(b"root:*:19000:0:99999:7:::\n")
    with pytest.raises(VectorFileError) as info:
        SteeringVector.load(path)
    n = int.from_bytes(path.read_bytes()[:8], "little")
    said = str(info.value).replace(str(path), "<path>")
    assert str(n) not in said and "root" not in said, said


def test_a_vector_file_over_the_cap_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.safetensors"
    SteeringVector({1: torch.ones(4096)}).save(path)
    monkeypatch.setenv("STEERING_MAX_FILE_BYTES", "1000")
    with pytest.raises(VectorFileError, match="over the 1000-byte cap"):
        SteeringVector.load(path)


@pytest.mark.parametrize("config", ["none", "dora", "embedding"])
def test_a_lora_llama_cpp_cannot_hold_is_refused_before_anything_is_written(tmp_path, config):
    """Embedding LoRA and DoRA have no place in llama.cpp's adapter file; a model without LoRA is no adapter."""
    import copy
    import warnings

    from peft import LoraConfig, get_peft_model

    from steering.errors import InvalidArgumentError
    from steering.interop.lora_gguf import export_lora_gguf

    model = copy.deepcopy(make_model("llama"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if config == "dora":
            model = get_peft_model(model, LoraConfig(r=2, target_modules=["v_proj"], use_dora=True))
        elif config == "embedding":
            model = get_peft_model(model, LoraConfig(r=2, target_modules=["embed_tokens"]))
    match = "no LoRA layers" if config == "none" else "embedding LoRA or DoRA"
    with pytest.raises(InvalidArgumentError, match=match):
        export_lora_gguf(model, tmp_path / "a.gguf", base_gguf=tmp_path / "base.gguf")
    assert list(tmp_path.iterdir()) == []
