"""Fit a :class:`~steering.conditions.Condition` on labelled prompts: direction, layer and threshold.

The direction at each layer is the difference of the class means of the prompts' hidden states
(at ``position``); each prompt gets the condition's ``score`` against it, and the threshold and layer
are the ones with the best F1 for "fires on the positive prompts" (CAST's grid search,
arXiv 2409.05907). Ties go to the earlier layer: a condition decided earlier reaches more behaviour
layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..backends import backend_for
from ..backends.inputs import pad_id
from ..errors import InvalidArgumentError, UnknownOptionError
from ..extract import read_activations
from ..prompts import Prompt, encode
from ..provenance import provenance
from ..sites import normalize_layers
from ..vector import unit
from .rules import POSITIONS, SCORES, Condition, score


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
    positive: Sequence[Prompt],
    negative: Sequence[Prompt],
    layers: int | list[int],
    *,
    position: str = "prompt_last",
    check: str = "prompt",
    score_kind: str = "projection",
    batch_size: int = 16,
    layer_path: str | None = None,
) -> Condition:
    """A condition that fires on prompts like ``positive`` and not on prompts like ``negative``.

    ``layers`` are the candidates; ``score_kind`` is ``"projection"`` or ``"cast"`` (see
    :mod:`steering.conditions.rules`). The chosen layer, the threshold, F1, precision and recall (on
    these prompts: validate on held-out ones) and the per-layer F1 are in ``condition.metadata``.
    """
    if not positive or not negative:
        raise InvalidArgumentError(
            f"fit_condition needs prompts of both kinds; got {len(positive)} positive and {len(negative)} negative."
        )
    if position not in POSITIONS:
        raise UnknownOptionError(f"position must be one of {POSITIONS}, got {position!r}.")
    if score_kind not in SCORES:
        raise UnknownOptionError(f"score_kind must be one of {SCORES}, got {score_kind!r}.")
    info = backend_for(model).info(model, layer_path)
    candidates = normalize_layers(layers, info.n_layers)
    seqs = [encode(tokenizer, p) for p in [*positive, *negative]]
    if any(not s for s in seqs):
        raise InvalidArgumentError("A prompt encodes to no tokens.")
    reads = [[len(s) - 1] if position == "prompt_last" else list(range(len(s))) for s in seqs]
    acts = read_activations(
        model, seqs, reads, candidates, pad_id=pad_id(tokenizer), batch_size=batch_size, layer_path=layer_path
    )
    n = len(positive)
    table: dict[str, dict[str, float]] = {}
    units: dict[int, Tensor] = {}
    for layer in candidates:
        pos, neg = acts[layer][:n], acts[layer][n:]
        units[layer] = u = unit(pos.mean(0) - neg.mean(0))
        threshold, f1, precision, recall = best_threshold(score(pos, u, score_kind), score(neg, u, score_kind))
        table[str(layer)] = {"f1": f1, "threshold": threshold, "precision": precision, "recall": recall}
    # The best F1; on ties the first candidate (candidates are non-empty: normalize_layers checks).
    layer = max(candidates, key=lambda la: (table[str(la)]["f1"], -candidates.index(la)))
    best = table[str(layer)]
    metadata = provenance(
        model,
        layer_path=layer_path,
        f1=best["f1"],
        precision=best["precision"],
        recall=best["recall"],
        n_positive=len(positive),
        n_negative=len(negative),
        per_layer=table,
    )
    return Condition(
        units[layer], layer, best["threshold"], position=position, check=check, score=score_kind, metadata=metadata
    )
