"""Choosing a strength: a KL budget on next-token distributions, or a fraction of the residual norm.

Raw vector norms differ ~20x across models and layers, so a raw strength does not transfer; these
give one that means the same thing everywhere. One unit throughout the library: a *strength* is the
multiplier ``steer`` applies to the direction (``h + strength * v``); :func:`strength_for_norm` and
:func:`norm_fraction_of` convert to and from "``strength * |v|`` as a fraction of the layer's
typical residual norm". The typical norm is the median over token positions after the first few
(:data:`steering.extract.TYPICAL_SKIP`), because real models put massive activations on their first
tokens, which would inflate a mean (see ``docs/howto/your-model.md`` for SmolLM2's figures).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .apply import steer
from .backends import backend_for
from .backends.inputs import position_ids
from .errors import CalibrationError, DegenerateVectorError, InvalidArgumentError
from .evaluate.generation import generate
from .extract import DEGENERATE
from .prompts import Prompt, batch
from .vector import SteeringVector

SATURATION = 8.0  # strength search stops at this multiple of the residual norm


@dataclass(frozen=True)
class Calibration:
    strength: float  # the multiplier steer() takes
    kl: float | None  # mean per-token KL at that strength (None for the norm rule)
    rule: str
    norm_fraction: float | None = None  # strength * |v| / typical residual norm (mean over layers)
    history: list[tuple[float, float]] = field(default_factory=list)  # (strength, kl) tried


def resid_norms(vector: SteeringVector) -> dict[int, float]:
    """Each layer's typical residual norm, from the diagnostics ``extract`` recorded."""
    diag = vector.metadata.get("diagnostics") or {}
    out = {}
    for layer in vector.layers:
        d = diag.get(str(layer)) or {}
        resid = d.get("typical_resid_norm") or d.get("mean_resid_norm")
        if not isinstance(resid, (int, float)):
            raise InvalidArgumentError(
                f"The vector has no residual norm for layer {layer} (metadata['diagnostics']); "
                "extract it with steering.extract, or use max_kl=..."
            )
        out[layer] = float(resid)
    return out


def strength_for_norm(vector: SteeringVector, fraction: float) -> float:
    """The strength at which ``strength * |v|`` is ``fraction`` of each layer's typical residual norm.

    One strength serves every layer, so for a multi-layer vector this is the mean of the per-layer
    strengths; :func:`per_layer_norm` rescales each layer exactly instead.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not math.isfinite(fraction):
        raise InvalidArgumentError(f"norm_fraction must be a finite number, got {fraction!r}.")
    ratios = []
    for layer, resid in resid_norms(vector).items():
        norm = float(vector.directions[layer].norm())
        if norm <= DEGENERATE * max(resid, 1.0):
            raise DegenerateVectorError(
                f"Layer {layer} of the vector has norm {norm:.3g} (residual norm {resid:.3g}): there is no "
                "direction to scale. Re-extract it from pairs whose sides differ."
            )
        ratios.append(fraction * resid / norm)
    return float(sum(ratios) / len(ratios))


def norm_fraction_of(vector: SteeringVector, strength: float) -> float:
    """The inverse of :func:`strength_for_norm`: ``strength * |v|`` over the typical residual norm (layer mean)."""
    resid = resid_norms(vector)
    return float(sum(strength * float(vector.directions[la].norm()) / r for la, r in resid.items()) / len(resid))


def per_layer_norm(vector: SteeringVector, fraction: float) -> SteeringVector:
    """A copy whose every layer has norm ``fraction`` of that layer's typical residual norm (use strength 1)."""
    resid = resid_norms(vector)
    return SteeringVector(
        {la: d * (fraction * resid[la] / float(d.norm())) for la, d in vector.directions.items()}, vector.metadata
    )


def kl_data(model: Any, tokenizer: Any, prompts: Sequence[Prompt], n_tokens: int) -> dict[str, Tensor]:
    """Unsteered greedy continuations of ``prompts`` (left-padded, whatever the tokenizer's side): what KL is
    measured on. ``gen_mask`` marks the positions before each row's end of sequence."""
    gens, _ = generate(model, tokenizer, prompts, max_new_tokens=n_tokens, batch_size=len(prompts))
    enc = batch(tokenizer, prompts)
    width = max(max(len(g.ids) for g in gens), 1)
    gen = torch.zeros((len(gens), width), dtype=torch.long)
    live = torch.zeros((len(gens), width), dtype=torch.bool)
    for r, g in enumerate(gens):
        gen[r, : len(g.ids)] = torch.tensor(g.ids, dtype=torch.long)
        live[r, : len(g.ids)] = True  # up to and including the end-of-sequence token's prediction
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "gen": gen, "gen_mask": live}


def log_probs(model: Any, data: dict[str, Tensor]) -> Tensor:
    """Log-probs predicting each generated token, fed as prompt then continuation through the cache."""
    backend = backend_for(model)
    device = backend.device(model)
    ids, mask = data["input_ids"].to(device), data["attention_mask"].to(device)
    gen = data["gen"].to(device)
    full_mask = torch.cat([mask, data["gen_mask"].long().to(device)], dim=1)
    pos = position_ids(full_mask)
    with torch.no_grad():
        first, cache = backend.forward(model, ids, mask, pos[:, : ids.shape[1]])
        logits = [first[:, -1:]]
        if gen.shape[1] > 1:
            rest, _ = backend.forward(model, gen[:, :-1], full_mask[:, :-1], pos[:, ids.shape[1] : -1], cache)
            logits.append(rest)
    return torch.log_softmax(torch.cat(logits, dim=1).float(), dim=-1)  # (B, n_gen, V)


def mean_kl(
    model: Any, vector: SteeringVector, strength: float, data: dict[str, Tensor], base: Tensor, **steer_kwargs: Any
) -> float:
    """Mean per-token KL(unsteered || steered) over the generated positions in ``data``."""
    with steer(model, vector, strength, **steer_kwargs):
        steered = log_probs(model, data)
    kl = (base.exp() * (base - steered)).sum(-1)  # (B, n_gen)
    m = data["gen_mask"].to(kl.device)
    return float((kl * m).sum() / m.sum().clamp_min(1))


def calibrate(
    model: Any,
    tokenizer: Any,
    vector: SteeringVector,
    prompts: Sequence[Prompt] | None = None,
    *,
    max_kl: float | None = None,
    norm_fraction: float | None = None,
    n_tokens: int = 32,
    iters: int = 12,
    progress: bool | None = None,
    **steer_kwargs: Any,
) -> Calibration:
    """The largest strength whose mean per-token KL from the unsteered model stays within ``max_kl``.

    KL is measured on the predictions of an unsteered greedy continuation of each prompt (``n_tokens``
    tokens, fed through the KV cache, so scopes such as ``"generated"`` act as in generation).
    ``norm_fraction=f`` instead returns :func:`strength_for_norm` (no forward pass).
    ``steer_kwargs`` (scope, operator, tokenizer, ...) are passed to :func:`steering.steer`.
    """
    from tqdm.auto import tqdm

    if (max_kl is None) == (norm_fraction is None):
        raise InvalidArgumentError("calibrate needs exactly one of max_kl=... or norm_fraction=...")
    known_norm = bool(vector.metadata.get("diagnostics"))
    if norm_fraction is not None:
        s = strength_for_norm(vector, norm_fraction)
        return Calibration(s, None, f"norm_fraction={norm_fraction}", float(norm_fraction))
    if not prompts:
        raise InvalidArgumentError("calibrate(max_kl=...) needs a non-empty list of prompts.")
    if isinstance(max_kl, bool) or not isinstance(max_kl, (int, float)) or not max_kl > 0 or not math.isfinite(max_kl):
        raise InvalidArgumentError(f"max_kl must be a positive finite number, got {max_kl!r}.")
    data = kl_data(model, tokenizer, prompts, n_tokens)
    base = log_probs(model, data)
    history: list[tuple[float, float]] = []
    bar = tqdm(total=None, desc="calibrate", disable=None if progress is None else not progress, leave=False)

    def kl_at(s: float) -> float:
        value = mean_kl(model, vector, s, data, base, **steer_kwargs)
        history.append((s, value))
        bar.update(1)
        return value

    lo, hi = 0.0, max(strength_for_norm(vector, 0.25), 1e-3) if known_norm else 1.0
    # Past SATURATION x the residual norm the vector is all there is at the steered positions.
    cap = strength_for_norm(vector, SATURATION) if known_norm else math.inf
    try:
        for _ in range(30):  # grow until the budget is exceeded
            if kl_at(hi) > max_kl or hi > cap:
                break
            lo, hi = hi, hi * 2
        if history[-1][1] <= max_kl:
            s, kl = history[-1]
            raise CalibrationError(
                f"The KL from steering stays at {kl:.3g} (strength {s:.3g}) below max_kl={max_kl}: in this scope "
                "the vector cannot move the model's predictions that much, whatever its strength. Pass a smaller "
                f"max_kl (e.g. {kl / 2:.2g}), or norm_fraction=... to set the strength from the residual norm."
            )
        for _ in range(iters):
            mid = (lo + hi) / 2
            if kl_at(mid) <= max_kl:
                lo = mid
            else:
                hi = mid
    finally:
        bar.close()
    kl_lo = next((k for s, k in reversed(history) if s == lo), 0.0)
    fraction = norm_fraction_of(vector, lo) if known_norm else None
    return Calibration(lo, kl_lo, f"max_kl={max_kl}", fraction, history)
