"""Contrastive pairs -> activations at the requested layers -> one SteeringVector.

One forward pass per batch reads every requested layer; only the needed positions are kept
(``O(pairs x layers x d)``), sequences are length-sorted to waste little on padding, each sequence is
cut after the last position it reads (a causal model's later tokens cannot change it: reading
``"first"`` costs the prompt plus one token, however long the completion), and the pass stops after
the deepest requested layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from einops import einsum
from torch import Tensor

from .aggregate import Aggregator, diagnostics, get_aggregator
from .backends import backend_for, remote_backend
from .backends.inputs import left_pad, pad_id
from .errors import DegenerateVectorError, InvalidArgumentError, PairError, UnknownOptionError
from .hooks import Hook, StopForward, attached, output_tensor
from .pairs import Pair, load_pairs, pairs_hash
from .positions import Position, PositionResolver, describe
from .prompts import encode, encode_completion
from .provenance import provenance
from .sites import normalize_layers
from .vector import SteeringVector

TYPICAL_SKIP = 4  # positions before this are left out of the typical residual norm (massive activations)
DEGENERATE = 1e-6  # a direction shorter than this fraction of the residual norm is no direction


def tokenize_pairs(
    tokenizer: Any, pairs: list[Pair], resolve: PositionResolver
) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of ``prompt + positive`` and ``prompt + negative`` (interleaved) and their read positions.

    Prompt and completion are encoded separately and concatenated, so the boundary between them is
    exact whatever the tokenizer would merge across it; chat-message prompts go through the template.
    """
    seqs, reads = [], []
    for i, pair in enumerate(pairs):
        prompt = encode(tokenizer, pair.prompt)
        for side in ("positive", "negative"):
            completion = encode_completion(tokenizer, getattr(pair, side))
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
    norms: dict[int, list[Tensor]] | None = None,
    progress: bool | None = False,
) -> dict[int, Tensor]:
    """``{layer: (n_seqs, d) float32}``: the mean of each sequence's read positions at each layer.

    Each sequence runs only up to its last read position. ``norms``, if given, collects per layer the
    residual norms at positions ``>= TYPICAL_SKIP`` of every sequence (for :func:`typical_norm`; local
    reads only). ``remote`` runs each pass where the model lives (a :class:`~steering.backends.RemoteBackend`).
    """
    from tqdm.auto import tqdm

    backend = backend_for(model)
    seqs = [s[: max(r) + 1] for s, r in zip(seqs, reads)]
    info = backend.info(model, layer_path)
    out = {layer: torch.empty(len(seqs), info.hidden_size, dtype=torch.float32) for layer in layers}
    deepest = max(layers)
    current: dict[str, Tensor] = {}

    def reader(layer: int) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            h = output_tensor(output)  # (B, T, D)
            idx, w, rows = current["idx"], current["w"], current["rows"]
            picked = h.gather(1, idx.to(h.device)[..., None].expand(-1, -1, h.shape[-1]))  # (B, K, D)
            out[layer][rows] = einsum(picked.float(), w.to(h.device), "b k d, b k -> b d").cpu()
            if norms is not None:
                norms.setdefault(layer, []).append(h.float().norm(dim=-1)[current["typical"].to(h.device)].cpu())
            if layer == deepest:
                raise StopForward

        return hook

    # One way to read, chosen once: local hooks, or a trace that runs where the model lives.
    hooks: list[Hook] = []
    if remote is None:
        modules = backend.layers(model, layer_path)
        hooks = [Hook(modules[layer], reader(layer)) for layer in layers]
        device = backend.device(model)

        def read(rows: Tensor, ids: Tensor, mask: Tensor, idx: Tensor, w: Tensor, typical: Tensor) -> None:
            current.update(idx=idx, w=w, rows=rows, typical=typical)
            try:
                backend.run(model, ids.to(device), mask.to(device))
            except StopForward:
                pass

    else:
        far = remote_backend(model)

        def read(rows: Tensor, ids: Tensor, mask: Tensor, idx: Tensor, w: Tensor, typical: Tensor) -> None:
            for layer, acts in zip(layers, far.read_remote(model, ids, mask, layers, idx, w, remote, layer_path)):
                out[layer][rows] = acts.float()

    batches = list(_batches([len(s) for s in seqs], batch_size))
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with attached(hooks), torch.inference_mode():
            for batch in tqdm(batches, desc="extract", disable=None if progress is None else not progress, leave=False):
                ids, mask = left_pad([seqs[i] for i in batch], pad_id, padding_side)
                width, k = ids.shape[1], max(len(reads[i]) for i in batch)
                idx = torch.zeros((len(batch), k), dtype=torch.long)
                w = torch.zeros((len(batch), k), dtype=torch.float32)
                typical = torch.zeros_like(mask, dtype=torch.bool)
                for r, i in enumerate(batch):
                    n, pos = len(seqs[i]), reads[i]
                    offset = width - n if padding_side == "left" else 0
                    # Unused slots point at a real token with weight 0 (never at padding, whose
                    # activations some attention kernels leave as NaN).
                    idx[r] = offset + torch.tensor(pos + [pos[0]] * (k - len(pos)))
                    w[r, : len(pos)] = 1.0 / len(pos)
                    typical[r, offset + min(TYPICAL_SKIP, n - 1) : offset + n] = True
                read(torch.tensor(batch), ids, mask, idx, w, typical)
    finally:
        model.train(was_training)
    return out


def typical_norm(norms: list[Tensor]) -> float | None:
    """The median residual norm over the collected positions (``None`` if none were collected)."""
    flat = torch.cat(norms) if norms else torch.empty(0)
    return float(flat.median()) if flat.numel() else None


def _check_lengths(seqs: list[list[int]], reads: list[list[int]], limit: int | None) -> None:
    """Refuse sequences longer than the model takes (before a forward pass that would fail, or run for minutes)."""
    if limit is None:
        return
    needed = [max(r) + 1 for r in reads]  # each sequence runs up to its last read position
    worst = max(range(len(needed)), key=needed.__getitem__)
    if needed[worst] > limit:
        n_over = sum(n > limit for n in needed)
        raise PairError(
            f"pair {worst // 2} ({'positive' if worst % 2 == 0 else 'negative'}) needs {needed[worst]} tokens "
            f"(prompt + completion up to the read position); the model takes at most {limit} "
            f"({n_over} of {len(needed)} sequences are too long). Shorten the prompts, or read an earlier position "
            "(position='first' costs the prompt plus one token)."
        )


def _check_direction(direction: Tensor, layer: int, resid: float, position: Position) -> None:
    norm = float(direction.norm())
    if norm <= DEGENERATE * max(resid, 1.0):
        raise DegenerateVectorError(
            f"Layer {layer}: the extracted direction has norm {norm:.3g} against a residual norm of {resid:.3g}: "
            f"the two sides of every pair give the same activations at position={describe(position)!r} "
            "(identical completions, or a position both sides share, such as 'prompt_last'). Use pairs whose "
            "sides differ, or read where they differ (position='first', 'mean' or 'last')."
        )


def extract(
    model: Any,
    tokenizer: Any,
    pairs: str | Iterable[Pair | Mapping[str, Any]],
    layers: int | list[int],
    *,
    method: str | Aggregator = "mean_diff",
    position: Position = "last",
    batch_size: int = 16,
    padding_side: str | None = None,
    layer_path: str | None = None,
    remote: bool | str | None = None,
    progress: bool | None = None,
) -> SteeringVector:
    """Extract a steering vector pointing from the ``negative`` to the ``positive`` completions.

    Args:
        model: a decoder-only model (Hugging Face ``transformers``; other backends by adapter).
        tokenizer: its tokenizer (a pad token is not required).
        pairs: a JSONL path or an iterable of :class:`Pair` / dicts; prompts may be chat messages.
        layers: decoder-layer indices (negative counts from the end); all are read in one pass.
        method: ``"mean_diff"``, ``"pca"``, ``"probe"`` or a callable ``(pos, neg) -> direction``.
        position: which tokens to read, see :mod:`steering.positions`.
        batch_size: sequences per forward pass (each pair is two sequences).
        padding_side: ``"left"`` or ``"right"`` (default: the tokenizer's); results do not depend on it.
        layer_path: dotted path of the decoder-layer list, if it cannot be found automatically.
        remote: nnsight models only: run each pass as an nnsight trace with this ``remote``
            (``True``: on NDIF, for hosted models; ``"local"``: serialised and run here).
        progress: a progress bar over batches (default: when attached to a terminal or notebook).
    """
    pairs = pairs if isinstance(pairs, list) and all(isinstance(p, Pair) for p in pairs) else load_pairs(pairs)
    if not pairs:
        raise PairError("No pairs given: extraction needs at least one pair (about 50 is typical).")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive int, got {batch_size!r}.")
    side = padding_side or getattr(tokenizer, "padding_side", "right") or "right"
    if side not in ("left", "right"):
        raise UnknownOptionError(f"padding_side must be 'left' or 'right', got {side!r}.")
    method_name, aggregate = get_aggregator(method)
    resolve = PositionResolver(position, tokenizer)
    info = backend_for(model).info(model, layer_path)
    layer_ids = normalize_layers(layers, info.n_layers)

    seqs, reads = tokenize_pairs(tokenizer, pairs, resolve)
    _check_lengths(seqs, reads, info.max_positions)
    norms: dict[int, list[Tensor]] = {}
    acts = read_activations(
        model,
        seqs,
        reads,
        layer_ids,
        pad_id=pad_id(tokenizer),
        padding_side=side,
        batch_size=batch_size,
        layer_path=layer_path,
        remote=remote,
        norms=norms,
        progress=progress,
    )
    directions, diag = {}, {}
    for layer in layer_ids:
        pos, neg = acts[layer][0::2], acts[layer][1::2]
        typical = typical_norm(norms.get(layer, []))
        resid = typical or float(torch.cat([pos, neg]).norm(dim=-1).mean())
        _check_direction((pos - neg).abs().amax(0), layer, resid, position)  # before an aggregator chokes on it
        direction = aggregate(pos, neg).float()
        _check_direction(direction, layer, resid, position)
        directions[layer] = direction
        diag[str(layer)] = {**diagnostics(pos, neg, direction), **({"typical_resid_norm": typical} if typical else {})}
    metadata = provenance(
        model,
        layer_path=layer_path,
        remote=remote is not None,
        method=method_name,
        position=describe(position),
        n_pairs=len(pairs),
        pairs_sha256=pairs_hash(pairs),
        diagnostics=diag,
    )
    return SteeringVector(directions, metadata)
