"""What a vLLM request may ask for (``extra_args["steering"]``), checked without vLLM: the parsing, the
defaults, the operator's limits and the prefix-cache key. tests/test_vllm.py runs them in vLLM."""

from __future__ import annotations

import pytest
import torch

import steering
from steering.errors import InvalidArgumentError
from steering.interop.vllm_requests import Entry, Limits, Resolver, bind_scope, parse, salt
from steering.scopes import Window


@pytest.fixture
def registry(tmp_path):
    torch.manual_seed(0)
    diag = {"2": {"typical_resid_norm": 10.0}}
    vec = steering.SteeringVector(
        {2: torch.randn(16)}, metadata={"diagnostics": diag, "recommended_strength": 3.0, "model": "org/tiny"}
    )
    steering.Registry(tmp_path / "reg").save(vec.with_metadata(recommended_scope="generated"), "a")
    steering.Registry(tmp_path / "reg").save(-vec, "b")
    return str(tmp_path / "reg"), vec


def test_requests_parse_into_entries_and_bad_ones_say_what_was_expected():
    assert parse(None) is None and parse({"other": 1}) is None
    assert parse({"steering": []}) == []
    got = parse({"steering": [{"vector": "a", "strength": 2, "scope": {"window": [0, 8]}}, "b"]})
    assert got == [Entry("a", 2.0, {"window": [0, 8]}), Entry("b")]
    assert parse({"steering": '[{"vector": "a", "scope": "prompt_last"}]'}) == [Entry("a", None, "prompt_last")]
    assert parse({"steering": {"vector": "a"}}) == [Entry("a")]
    bad = [
        (7, "must be a list"),
        ([{"vector": "a", "strength": "2"}], "strength must be a finite number"),
        ([{"vector": "a", "strength": float("nan")}], "strength must be a finite number"),
        ([{"vector": "a", "strength": True}], "strength must be a finite number"),
        ([{"vector": "a", "scope": "everywhere"}], "Unknown scope 'everywhere'"),
        ([{"vector": "a", "path": "/etc"}], "each entry is"),
        ([{"name": "a"}], "each entry is"),
        ([{"vector": 3}], "each entry is"),
    ]
    for raw, message in bad:
        with pytest.raises(InvalidArgumentError, match=message):
            parse({"steering": raw})
    with pytest.raises(InvalidArgumentError, match=r"3 entries in one request; this server allows 2"):
        parse({"steering": ["a", "a", "a"]}, Limits(max_entries=2))


def test_defaults_come_from_the_vector_and_strength_zero_is_no_steering(registry):
    source, vec = registry
    r = Resolver(source, Limits())
    a = r.resolve(Entry("a"))
    assert (a.strength, a.scope) == (3.0, "generated") and torch.equal(a.vector.directions[2], vec.directions[2])
    b = r.resolve(Entry("b", 2.0, "prompt"))
    assert (b.strength, b.scope) == (2.0, "prompt") and b.digest != a.digest
    assert r.resolve_all([Entry("a", 0.0), Entry("b", 1.0)]) == [r.resolve(Entry("b", 1.0))]


def test_operator_limits_refuse_with_the_number(registry):
    source, vec = registry
    norm = float(vec.directions[2].norm())
    r = Resolver(source, Limits(max_norm_fraction=0.5, max_vectors=1))
    ok = 0.5 * 10.0 / norm
    assert r.resolve(Entry("a", ok * 0.99)).strength == pytest.approx(ok * 0.99)
    with pytest.raises(InvalidArgumentError, match=r"at most 0.5 \(STEERING_MAX_NORM_FRACTION\): use a strength up to"):
        r.resolve(Entry("a", -ok * 1.5))  # the size counts, whatever the sign
    with pytest.raises(InvalidArgumentError, match=r"already serves 1 distinct vectors.*STEERING_MAX_VECTORS=1"):
        r.resolve(Entry("b", 1.0))
    bare = steering.SteeringVector({2: torch.ones(16)}, metadata={"model": "org/tiny"})
    steering.Registry(source).save(bare, "bare")
    with pytest.raises(InvalidArgumentError, match="records no residual norms"):
        Resolver(source, Limits(max_norm_fraction=0.5)).resolve(Entry("bare", 1.0))
    assert Limits.from_env({"STEERING_MAX_NORM_FRACTION": "0.3", "STEERING_MAX_VECTORS": "4"}) == Limits(0.3, 4, 8)
    with pytest.raises(InvalidArgumentError, match="STEERING_MAX_VECTORS must be a int, got 'many'"):
        Limits.from_env({"STEERING_MAX_VECTORS": "many"})


def test_the_prefix_cache_key_separates_steerings(registry):
    source, _ = registry
    r = Resolver(source, Limits())
    a_all, a_gen, b_all = (
        r.resolve(Entry("a", 1.0, "all")),
        r.resolve(Entry("a", 1.0)),
        r.resolve(Entry("b", 1.0, "all")),
    )
    assert salt([], 50) is None and salt([], 50, "user") == "user"  # unsteered requests share the cache
    keys = {salt([a_all], 50), salt([b_all], 50), salt([a_gen], 50), salt([a_all, b_all], 50), salt([b_all, a_all], 50)}
    assert len(keys) == 5
    assert salt([a_all], 50) == salt([a_all], 70)  # scope "all" does not depend on where the prompt ends
    assert salt([a_gen], 50) != salt([a_gen], 70)  # "generated" does
    assert salt([a_all], 50, "user") != salt([a_all], 50)
    assert bind_scope({"window": [0, 8]}, None) == Window(0, 8)
