"""Soft thoughts: the backbone stays bit-identical, only the projection learns, injection is exact."""

from __future__ import annotations

import copy
import hashlib

import pytest
import torch
from conftest import make_model, make_tokenizer, track_hooks

from steering.errors import InvalidArgumentError, ShapeMismatchError, VectorFileError
from steering.hooks import count_hooks
from steering.softcot import (
    SoftThoughts,
    assistant_states,
    load_soft_thoughts,
    save_soft_thoughts,
    soft_thoughts,
    train_soft_thoughts,
    with_placeholders,
)

PROMPTS = ["Q: 3 + 4 = ?", "Question: what is 12 + 7?"]
TARGETS = [" 7.", " 19."]


def digest(model) -> str:
    return hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in model.state_dict().values())).hexdigest()


@pytest.fixture
def setup():
    tok = make_tokenizer()
    tok.unk_token = "<think>"  # a placeholder the prompts never contain
    backbone = make_model("llama", tok)
    assistant = make_model("qwen2", tok, seed=1)  # a different (smaller-or-not) model reads the problem
    return tok, backbone, assistant


def test_training_moves_only_the_projection_and_lowers_the_loss(setup):
    tok, backbone, assistant = setup
    before, before_a = digest(backbone), digest(assistant)
    grads = [p.requires_grad for p in backbone.parameters()]
    projection, losses = train_soft_thoughts(
        backbone, assistant, tok, PROMPTS * 4, TARGETS * 4, k=3, steps=60, batch_size=8, lr=1e-2
    )
    assert digest(backbone) == before and digest(assistant) == before_a  # bit-identical weights
    assert [p.requires_grad for p in backbone.parameters()] == grads
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
    # Without placeholders the backbone computes exactly what it did before, even inside the block.
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        plain = backbone(**enc).logits
        with soft_thoughts(backbone, assistant, projection, placeholder_id=tok.unk_token_id):
            assert torch.equal(backbone(**enc).logits, plain)


@pytest.mark.parametrize("where", ["before", "after"])
def test_injection_replaces_exactly_the_placeholder_embeddings(setup, where):
    tok, backbone, assistant = setup
    projection = SoftThoughts(32, 32, k=2)
    enc = with_placeholders(tok, PROMPTS, 2, where=where)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    pid = tok.unk_token_id
    assert ((ids == pid).sum(1) == 2).all()
    # What the assistant reads: each prompt, then the 2 placeholders (left-padded).
    a_ids = tok.pad({"input_ids": [[*tok(p)["input_ids"], pid, pid] for p in PROMPTS]}, return_tensors="pt")
    last = torch.tensor([[a_ids["input_ids"].shape[1] - 2, a_ids["input_ids"].shape[1] - 1]] * 2)
    thoughts = projection(assistant_states(assistant, a_ids["input_ids"], a_ids["attention_mask"], last)).detach()
    embeds = backbone.get_input_embeddings()(ids).detach().clone()
    for r in range(2):
        embeds[r, (ids[r] == pid).nonzero().flatten()] = thoughts[r]
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        want = backbone(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids).logits
        with soft_thoughts(backbone, assistant, projection, placeholder_id=pid):
            got = backbone(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits
    torch.testing.assert_close(got, want)
    with soft_thoughts(backbone, assistant, projection, placeholder_id=pid):
        a = backbone.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=0)
        b = backbone.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=0, use_cache=False)
    assert torch.equal(a, b)  # without a cache every step re-runs the prompt, with the same thoughts
    assert a.shape == (2, ids.shape[1] + 5)


def test_save_load_round_trip_names_both_models(setup, tmp_path):
    tok, backbone, assistant = setup
    projection = SoftThoughts(32, 32, k=3)
    path = save_soft_thoughts(projection, tmp_path / "p.safetensors", backbone=backbone, assistant=assistant)
    back, meta = load_soft_thoughts(path)
    assert meta["k"] == 3 and meta["backbone"]["hidden_size"] == 32 and meta["assistant"]["fingerprint"]
    assert meta["backbone"]["fingerprint"] != meta["assistant"]["fingerprint"]
    for name, t in projection.state_dict().items():
        assert torch.equal(back.state_dict()[name], t)
    (tmp_path / "v.safetensors").write_bytes(b"junk")
    with pytest.raises(VectorFileError):
        load_soft_thoughts(tmp_path / "v.safetensors")


def test_refusals_and_hook_hygiene(setup):
    tok, backbone, assistant = setup
    track_hooks(backbone)
    projection = SoftThoughts(32, 32, k=2)
    before = count_hooks(backbone)
    with pytest.raises(InvalidArgumentError, match="frozen copy"):
        with soft_thoughts(backbone, backbone, projection, placeholder_id=tok.unk_token_id):
            pass
    bad = tok(["Q: 3 <think> 4"], return_tensors="pt")  # one placeholder where two are expected
    with pytest.raises(ShapeMismatchError, match="exactly 2"):
        with soft_thoughts(backbone, copy.deepcopy(backbone), projection, placeholder_id=tok.unk_token_id):
            backbone(**bad)
    assert count_hooks(backbone) == before
    with pytest.raises(InvalidArgumentError, match="pad token"):
        with_placeholders(tok, PROMPTS, 2, placeholder_id=tok.pad_token_id)
    with pytest.raises(InvalidArgumentError, match="k"):
        SoftThoughts(32, 32, k=0)


def test_projection_goes_into_a_registry_as_its_own_kind(setup, tmp_path):
    import steering
    from steering.errors import RegistryError

    tok, backbone, assistant = setup
    path = save_soft_thoughts(
        SoftThoughts(32, 32, k=2), tmp_path / "p.safetensors", backbone=backbone, assistant=assistant
    )
    reg = steering.Registry(tmp_path / "reg")
    entry = reg.save_file(path, "thoughts", model="org/tiny", kind="softcot", metadata={"k": 2})
    assert entry.kind == "softcot" and entry.files["file"]["sha256"]
    back, meta = load_soft_thoughts(reg.file("thoughts", model="org/tiny"))
    assert meta["k"] == 2
    with pytest.raises(RegistryError, match="not a 'vector'"):
        reg.load("thoughts", model="org/tiny")
    reg.file("thoughts").write_bytes(b"tampered")
    with pytest.raises(RegistryError, match="sha256"):
        reg.file("thoughts")
    with pytest.raises(RegistryError, match=r"Registry\.save"):
        reg.save_file(path, "v", model="org/tiny", kind="vector")
