from __future__ import annotations

import pytest
import torch
from conftest import make_model, make_tokenizer
from helpers import arithmetic_pairs

import steering
from steering.calibrate import calibrate, mean_kl, strength_for_norm
from steering.errors import InvalidArgumentError


@pytest.fixture
def setup():
    tok = make_tokenizer()
    model = make_model("llama", tok)
    vec = steering.extract(model, tok, arithmetic_pairs(8), layers=[1])
    return tok, model, vec


def test_norm_rule_matches_diagnostics(setup):
    _, _, vec = setup
    s = strength_for_norm(vec, 0.5)
    resid = vec.metadata["diagnostics"]["1"]["typical_resid_norm"]  # the median norm past the first tokens
    assert s * float(vec.directions[1].norm()) == pytest.approx(0.5 * resid, rel=1e-6)
    assert calibrate(None, None, vec, norm_fraction=0.5).strength == pytest.approx(s)


@pytest.mark.parametrize("scope", ["all", "generated"])
def test_kl_budget_is_respected_and_tight(setup, scope):
    tok, model, vec = setup
    prompts = ["Q: 3 + 4 = ?", "Question: what is 12 + 7?"]
    cal = calibrate(model, tok, vec, prompts, max_kl=0.05, n_tokens=8, scope=scope)
    assert 0 < cal.strength and cal.kl is not None and cal.kl <= 0.05
    over = [k for s, k in cal.history if s > cal.strength]
    assert over and min(over) > 0.05  # every larger strength tried broke the budget


def test_kl_is_zero_at_zero_strength(setup):
    from steering.calibrate import kl_data, log_probs

    tok, model, vec = setup
    data = kl_data(model, tok, ["Q: 3 + 4 = ?"], 6)
    base = log_probs(model, data)
    assert mean_kl(model, vec, 0.0, data, base) == 0.0
    assert mean_kl(model, vec, 5.0, data, base) > 0.0


def test_calibrate_needs_one_rule(setup):
    tok, model, vec = setup
    with pytest.raises(InvalidArgumentError, match="exactly one"):
        calibrate(model, tok, vec, ["x"])
    with pytest.raises(InvalidArgumentError, match="prompts"):
        calibrate(model, tok, vec, [], max_kl=0.1)
    with pytest.raises(InvalidArgumentError, match="residual norm"):
        strength_for_norm(steering.SteeringVector({0: torch.ones(32)}), 0.5)


def test_an_unreachable_kl_budget_is_an_error_not_a_huge_strength(setup):
    # Steering one prompt position moves the predictions only so far: the KL saturates.
    from steering.errors import CalibrationError

    tok, model, vec = setup
    prompts = ["Q: 3 + 4 = ?"]
    with pytest.raises(CalibrationError, match=r"below max_kl=50\.0"):
        calibrate(model, tok, vec, prompts, max_kl=50.0, n_tokens=4, scope="prompt_last")
