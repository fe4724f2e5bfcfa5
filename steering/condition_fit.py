"""Fit a :class:`~steering.conditions.Condition` on labelled prompts: direction, layer and threshold.

The direction at each layer is the difference of the class means of the prompts' hidden states
(at ``position``); each prompt is scored by its projection, and the threshold and layer are the
ones with the best F1 for "fires on the positive prompts" (CAST's grid search, arXiv 2409.05907).
Ties go to the earlier layer: a condition decided earlier reaches more behaviour layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from . import backends
from .conditions import Condition
from .errors import PairError, UnknownOptionError
from .extract import _pad_id, read_activations
from .sites import normalize_layers


def best_threshold(pos: Tensor, neg: Tensor) -> tuple[float, float, float, float]:
    """``(threshold, f1, precision, recall)`` for ``score > threshold`` flagging ``pos`` among both.

    Examples:
        >>> best_threshold(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0]))[:2]
        (1.5, 1.0)
    """
    scores = torch.cat([pos, neg]).float()
    labels = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).bool()
    values = scores.sort().values
    candidates = torch.cat([values[:1] - 1, (values[1:] + values[:-1]) / 2, values[-1:] + 1])
    best = (float(candidates[0]), -1.0, 0.0, 0.0)
    for t in candidates.tolist():
        fired = scores > t
        tp = int((fired & labels).sum())
        precision = tp / max(int(fired.sum()), 1)
        recall = tp / max(int(labels.sum()), 1)
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        if f1 > best[1]:
            best = (t, f1, precision, recall)
    return best


def fit_condition(
    model: Any,
    tokenizer: Any,
    positive: Sequence[str],
    negative: Sequence[str],
    layers: int | list[int],
    *,
    position: str = "prompt_last",
    check: str = "prompt",
    batch_size: int = 16,
    layer_path: str | None = None,
) -> Condition:
    """A condition that fires on prompts like ``positive`` and not on prompts like ``negative``.

    ``layers`` are the candidates; the chosen one, the threshold, F1, precision and recall (on these
    prompts: validate on held-out ones) and the per-layer F1 are in ``condition.metadata``.
    """
    if not positive or not negative:
        raise PairError(f"fit_condition needs prompts of both kinds; got {len(positive)} and {len(negative)}.")
    if position not in ("prompt_last", "prompt_mean"):
        raise UnknownOptionError(f"position must be 'prompt_last' or 'prompt_mean', got {position!r}.")
    backend = backends.backend_for(model)
    info = backend.info(model, layer_path)
    candidates = normalize_layers(layers, info.n_layers)
    seqs = [[int(i) for i in tokenizer(p)["input_ids"]] for p in [*positive, *negative]]
    if any(not s for s in seqs):
        raise PairError("A prompt encodes to no tokens.")
    reads = [[len(s) - 1] if position == "prompt_last" else list(range(len(s))) for s in seqs]
    acts = read_activations(
        model,
        seqs,
        reads,
        candidates,
        pad_id=_pad_id(tokenizer),
        batch_size=batch_size,
        layer_path=layer_path,
    )
    n = len(positive)
    table: dict[str, dict[str, float]] = {}
    units: dict[int, Tensor] = {}
    for layer in candidates:
        pos, neg = acts[layer][:n], acts[layer][n:]
        direction = pos.mean(0) - neg.mean(0)
        units[layer] = unit = direction / direction.norm().clamp_min(1e-12)
        threshold, f1, precision, recall = best_threshold(pos @ unit, neg @ unit)
        table[str(layer)] = {"f1": f1, "threshold": threshold, "precision": precision, "recall": recall}
    # The best F1; on ties the first candidate (candidates are non-empty: normalize_layers checks).
    layer = max(candidates, key=lambda la: (table[str(la)]["f1"], -candidates.index(la)))
    f1, threshold = table[str(layer)]["f1"], table[str(layer)]["threshold"]
    precision, recall, unit = table[str(layer)]["precision"], table[str(layer)]["recall"], units[layer]
    metadata = {
        "model": info.name,
        "n_layers": info.n_layers,
        "fingerprint": backend.fingerprint(model),
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "n_positive": len(positive),
        "n_negative": len(negative),
        "per_layer": table,
    }
    return Condition(unit, layer, threshold, position=position, check=check, metadata=metadata)
