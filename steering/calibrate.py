"""Choosing a strength: a KL budget on next-token distributions, or a fraction of the residual norm.

Raw vector norms differ ~20x across models and layers, so a strength does not transfer; these
give one that means the same thing everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .apply import steer
from .errors import CalibrationError, UnknownOptionError
from .vector import SteeringVector

SATURATION = 8.0  # strength search stops at this multiple of the residual norm


@dataclass(frozen=True)
class Calibration:
    strength: float
    kl: float | None  # mean per-token KL at that strength (None for the norm rule)
    rule: str
    history: list[tuple[float, float]] = field(default_factory=list)  # (strength, kl) tried


def strength_for_norm(vector: SteeringVector, fraction: float) -> float:
    """The strength at which ``strength * |v|`` is ``fraction`` of the layer's mean residual norm.

    Uses the per-layer diagnostics recorded by ``extract`` (the mean over the vector's layers).
    """
    diag = vector.metadata.get("diagnostics") or {}
    ratios = []
    for layer, d in vector.directions.items():
        resid = (diag.get(str(layer)) or {}).get("mean_resid_norm")
        if resid is None:
            raise UnknownOptionError(
                f"The vector has no mean residual norm for layer {layer} (metadata['diagnostics']); "
                "extract it with steering.extract, or use max_kl=..."
            )
        ratios.append(fraction * resid / float(d.norm().clamp_min(1e-12)))
    return float(sum(ratios) / len(ratios))


def _continuations(model: Any, tokenizer: Any, prompts: list[str], n_tokens: int) -> dict[str, Tensor]:
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(
            **enc,
            max_new_tokens=n_tokens,
            do_sample=False,
            pad_token_id=tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id,
        )
    gen = out[:, enc["input_ids"].shape[1] :]
    eos = tokenizer.eos_token_id
    # Positions after a row's end of sequence carry no prediction worth matching.
    ended = (
        (gen == eos).long().cumsum(-1) - (gen == eos).long() > 0
        if eos is not None
        else torch.zeros_like(gen, dtype=torch.bool)
    )
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "gen": gen, "gen_mask": ~ended}


def _log_probs(model: Any, data: dict[str, Tensor]) -> Tensor:
    """Log-probs predicting each generated token, fed as prompt then continuation through the cache."""
    from .backends import hf

    device = hf.device(model)
    ids, mask = data["input_ids"].to(device), data["attention_mask"].to(device)
    gen = data["gen"].to(device)
    full_mask = torch.cat([mask, torch.ones_like(gen)], dim=1)
    pos = (full_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        first = model(input_ids=ids, attention_mask=mask, position_ids=pos[:, : ids.shape[1]], use_cache=True)
        rest = model(
            input_ids=gen[:, :-1],
            attention_mask=full_mask[:, :-1],
            position_ids=pos[:, ids.shape[1] : -1],
            use_cache=True,
            **{hf.cache_kwarg(model): hf.output_cache(first)},
        )
    logits = torch.cat([first.logits[:, -1:], rest.logits], dim=1)  # (B, n_gen, V)
    return torch.log_softmax(logits.float(), dim=-1)


def mean_kl(
    model: Any, vector: SteeringVector, strength: float, data: dict[str, Tensor], base: Tensor, **steer_kwargs: Any
) -> float:
    """Mean per-token KL(unsteered || steered) over the generated positions in ``data``."""
    with steer(model, vector, strength, **steer_kwargs):
        steered = _log_probs(model, data)
    kl = (base.exp() * (base - steered)).sum(-1)  # (B, n_gen)
    m = data["gen_mask"].to(kl.device)
    return float((kl * m).sum() / m.sum().clamp_min(1))


def calibrate(
    model: Any,
    tokenizer: Any,
    vector: SteeringVector,
    prompts: list[str] | None = None,
    *,
    max_kl: float | None = None,
    norm_fraction: float | None = None,
    n_tokens: int = 32,
    iters: int = 12,
    **steer_kwargs: Any,
) -> Calibration:
    """The largest strength whose mean per-token KL from the unsteered model stays within ``max_kl``.

    KL is measured on the predictions of an unsteered greedy continuation of each prompt (``n_tokens``
    tokens, fed through the KV cache, so scopes such as ``"generated"`` act as in generation).
    ``norm_fraction=f`` instead returns :func:`strength_for_norm` (no forward pass).
    ``steer_kwargs`` (scope, operator, tokenizer, ...) are passed to :func:`steering.steer`.
    """
    if (max_kl is None) == (norm_fraction is None):
        raise UnknownOptionError("calibrate needs exactly one of max_kl=... or norm_fraction=...")
    if norm_fraction is not None:
        return Calibration(strength_for_norm(vector, norm_fraction), None, f"norm_fraction={norm_fraction}")
    if not prompts:
        raise UnknownOptionError("calibrate(max_kl=...) needs a non-empty list of prompts.")
    if max_kl is None or max_kl <= 0:
        raise UnknownOptionError(f"max_kl must be positive, got {max_kl!r}.")
    data = _continuations(model, tokenizer, prompts, n_tokens)
    base = _log_probs(model, data)
    history: list[tuple[float, float]] = []

    def kl_at(s: float) -> float:
        value = mean_kl(model, vector, s, data, base, **steer_kwargs)
        history.append((s, value))
        return value

    known_norm = bool(vector.metadata.get("diagnostics"))
    lo, hi = 0.0, max(strength_for_norm(vector, 0.25), 1e-3) if known_norm else 1.0
    # Past SATURATION x the residual norm the vector is all there is at the steered positions.
    cap = strength_for_norm(vector, SATURATION) if known_norm else math.inf
    for _ in range(30):  # grow until the budget is exceeded
        if kl_at(hi) > max_kl:
            break
        if hi > cap:
            break
        lo, hi = hi, hi * 2
    if history[-1][1] <= max_kl:
        s, kl = history[-1]
        raise CalibrationError(
            f"The KL from steering stays at {kl:.3g} (strength {s:.3g}) below max_kl={max_kl}: in this scope the "
            "vector cannot move the model's predictions that much, whatever its strength. Pass a smaller "
            f"max_kl (e.g. {kl / 2:.2g}), or norm_fraction=... to set the strength from the residual norm."
        )
    for _ in range(iters):
        mid = (lo + hi) / 2
        if kl_at(mid) <= max_kl:
            lo = mid
        else:
            hi = mid
    kl_lo = next((k for s, k in reversed(history) if s == lo), 0.0)
    return Calibration(lo, kl_lo, f"max_kl={max_kl}", history)
