"""Contrastive pairs -> activations at the requested layers -> one SteeringVector.

One forward pass per batch reads every requested layer; only the needed positions are kept
(``O(pairs x layers x d)``), sequences are length-sorted to waste little on padding, and the pass
stops after the deepest requested layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from . import backends
from ._version import __version__
from .aggregate import Aggregator, diagnostics, get_aggregator
from .errors import PairError, UnknownOptionError
from .hooks import Hook, StopForward, attached, output_tensor
from .pairs import Pair, load_pairs, pairs_hash
from .positions import Position, PositionResolver, describe
from .sites import LAYER_CONVENTION, POINT, normalize_layers
from .vector import SteeringVector


def _pad_id(tokenizer: Any) -> int:
    # A tokenizer without a pad token is fine: padded positions are masked and never read.
    for attr in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int):
            return value
    return 0


def _encode(tokenizer: Any, text: str, special: bool) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=special)["input_ids"]]


def tokenize_pairs(
    tokenizer: Any, pairs: list[Pair], resolve: PositionResolver
) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of ``prompt + positive`` and ``prompt + negative`` (interleaved) and their read positions.

    Prompt and completion are encoded separately and concatenated, so the boundary between them is
    exact whatever the tokenizer would merge across it.
    """
    seqs, reads = [], []
    for i, pair in enumerate(pairs):
        prompt = _encode(tokenizer, pair.prompt, special=True)
        for side in ("positive", "negative"):
            completion = _encode(tokenizer, getattr(pair, side), special=False)
            if not completion:
                raise PairError(f"pair {i}: the {side} completion encodes to no tokens ({getattr(pair, side)!r}).")
            ids = prompt + completion
            seqs.append(ids)
            reads.append(resolve(len(prompt), ids, f"pair {i} ({side})"))
    return seqs, reads


def _batches(lengths: list[int], batch_size: int) -> Iterable[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # longest first: OOM shows up at once
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def read_activations(
    model: Any,
    seqs: list[list[int]],
    reads: list[list[int]],
    layers: list[int],
    *,
    pad_id: int,
    padding_side: str = "left",
    batch_size: int = 16,
    layer_path: str | None = None,
    remote: bool | str | None = None,
) -> dict[int, Tensor]:
    """``{layer: (n_seqs, d) float32}``: the mean of each sequence's read positions at each layer."""
    backend = backends.backend_for(model)
    if remote is not None and not hasattr(backend, "read_remote"):
        raise UnknownOptionError(
            f"remote={remote!r} needs an nnsight model (got a {backend.NAME} one); drop remote= to run locally."
        )
    modules = [] if remote is not None else backend.layers(model, layer_path)
    device = torch.device("cpu") if remote is not None else backend.device(model)
    info = backend.info(model, layer_path)
    out = {layer: torch.empty(len(seqs), info.hidden_size, dtype=torch.float32) for layer in layers}
    deepest = max(layers)
    current: dict[str, Tensor] = {}

    def reader(layer: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            h = output_tensor(output)  # (B, T, D)
            idx, w, rows = current["idx"], current["w"], current["rows"]
            picked = h.gather(1, idx.to(h.device)[..., None].expand(-1, -1, h.shape[-1]))  # (B, K, D)
            acts = (picked.float() * w.to(h.device)[..., None]).sum(1)  # (B, D)
            out[layer][rows] = acts.cpu()
            if layer == deepest:
                raise StopForward

        return hook

    was_training = model.training
    model.eval()
    try:
        with attached([Hook(modules[la], reader(la)) for la in layers if modules]), torch.inference_mode():
            for batch in _batches([len(s) for s in seqs], batch_size):
                width = max(len(seqs[i]) for i in batch)
                k = max(len(reads[i]) for i in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                idx = torch.zeros((len(batch), k), dtype=torch.long)
                w = torch.zeros((len(batch), k), dtype=torch.float32)
                for r, i in enumerate(batch):
                    n = len(seqs[i])
                    offset = width - n if padding_side == "left" else 0
                    ids[r, offset : offset + n] = torch.tensor(seqs[i])
                    mask[r, offset : offset + n] = 1
                    pos = reads[i]
                    # Unused slots point at a real token with weight 0 (never at padding, whose
                    # activations some attention kernels leave as NaN).
                    idx[r] = offset + torch.tensor(pos + [pos[0]] * (k - len(pos)))
                    w[r, : len(pos)] = 1.0 / len(pos)
                if remote is not None:  # a trace that runs where the model lives: no local hooks
                    got = backend.read_remote(model, ids, mask, layers, idx, w, remote, layer_path)
                    for layer, acts in zip(layers, got):
                        out[layer][torch.tensor(batch)] = acts.float()
                    continue
                current.update(idx=idx, w=w, rows=torch.tensor(batch))
                try:
                    backend.run(model, ids.to(device), mask.to(device))
                except StopForward:
                    pass
    finally:
        model.train(was_training)
    return out


def extract(
    model: Any,
    tokenizer: Any,
    pairs: str | Iterable[Pair | Mapping[str, str]],
    layers: int | list[int],
    *,
    method: str | Aggregator = "mean_diff",
    position: Position = "last",
    batch_size: int = 16,
    padding_side: str | None = None,
    layer_path: str | None = None,
    remote: bool | str | None = None,
) -> SteeringVector:
    """Extract a steering vector pointing from the ``negative`` to the ``positive`` completions.

    Args:
        model: a decoder-only model (Hugging Face ``transformers``; other backends by adapter).
        tokenizer: its tokenizer (a pad token is not required).
        pairs: a JSONL path or an iterable of :class:`Pair` / dicts.
        layers: decoder-layer indices (negative counts from the end); all are read in one pass.
        method: ``"mean_diff"``, ``"pca"``, ``"probe"`` or a callable ``(pos, neg) -> direction``.
        position: which tokens to read, see :mod:`steering.positions`.
        batch_size: sequences per forward pass (each pair is two sequences).
        padding_side: ``"left"`` or ``"right"`` (default: the tokenizer's); results do not depend on it.
        layer_path: dotted path of the decoder-layer list, if it cannot be found automatically.
        remote: nnsight models only: run each pass as an nnsight trace with this ``remote``
            (``True``: on NDIF, for hosted models; ``"local"``: serialised and run here).
    """
    pairs = pairs if isinstance(pairs, list) and all(isinstance(p, Pair) for p in pairs) else load_pairs(pairs)
    if not pairs:
        raise PairError("No pairs given: extraction needs at least one pair (about 50 is typical).")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UnknownOptionError(f"batch_size must be a positive int, got {batch_size!r}.")
    side = padding_side or getattr(tokenizer, "padding_side", "right") or "right"
    if side not in ("left", "right"):
        raise UnknownOptionError(f"padding_side must be 'left' or 'right', got {side!r}.")
    method_name, aggregate = get_aggregator(method)
    resolve = PositionResolver(position, tokenizer)
    backend = backends.backend_for(model)
    info = backend.info(model, layer_path)
    layer_ids = normalize_layers(layers, info.n_layers)

    seqs, reads = tokenize_pairs(tokenizer, pairs, resolve)
    acts = read_activations(
        model,
        seqs,
        reads,
        layer_ids,
        pad_id=_pad_id(tokenizer),
        padding_side=side,
        batch_size=batch_size,
        layer_path=layer_path,
        remote=remote,
    )
    directions, diag = {}, {}
    for layer in layer_ids:
        pos, neg = acts[layer][0::2], acts[layer][1::2]
        direction = aggregate(pos, neg).float()
        directions[layer] = direction
        diag[str(layer)] = diagnostics(pos, neg, direction)
    metadata = {
        "model": info.name,
        "revision": info.revision,
        "architecture": info.architecture,
        "model_type": info.model_type,
        "hidden_size": info.hidden_size,
        "n_layers": info.n_layers,
        "site": POINT,
        "layer_convention": LAYER_CONVENTION,
        "basis": backend.basis(model),
        "fingerprint": backend.fingerprint(model) if remote is None else None,  # remote weights stay remote
        "backend": backend.NAME,
        "method": method_name,
        "position": describe(position),
        "n_pairs": len(pairs),
        "pairs_sha256": pairs_hash(pairs),
        "diagnostics": diag,
        "library_version": __version__,
    }
    return SteeringVector(directions, metadata)
