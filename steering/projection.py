"""Per-token projections of a text's residual stream onto a vector: which tokens a direction lights up on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from . import backends
from .errors import ShapeMismatchError
from .hooks import Hook, attached, output_tensor
from .vector import SteeringVector


@dataclass(frozen=True)
class Projection:
    tokens: list[str]  # each token decoded on its own
    scores: Float[Tensor, " n_tokens"]  # h_t · v / |v| at the vector's layer
    layer: int


def project(
    model: Any,
    tokenizer: Any,
    text: str,
    vector: SteeringVector,
    layer: int | None = None,
    *,
    layer_path: str | None = None,
) -> Projection:
    """Project every token's block output at ``layer`` (default: the vector's first) onto the unit direction."""
    layer = vector.layers[0] if layer is None else layer
    if layer not in vector.directions:
        raise ShapeMismatchError(f"The vector has layers {vector.layers}, not {layer}; pass one of them as layer=.")
    backend = backends.backend_for(model)
    ids = [int(i) for i in tokenizer(text)["input_ids"]]
    unit = vector.directions[layer].float()
    unit = unit / unit.norm().clamp_min(1e-12)
    got: list[Tensor] = []

    def read(module: Any, args: Any, output: Any) -> None:
        got.append(output_tensor(output)[0].detach().float().cpu() @ unit)

    module = backend.layers(model, layer_path)[layer]
    with attached([Hook(module, read)]), torch.no_grad():
        input_ids = torch.tensor([ids], device=backend.device(model))
        backend.run(model, input_ids, torch.ones_like(input_ids))
    return Projection([tokenizer.decode([i]) for i in ids], got[0], layer)


def plot_projection(
    projection: Projection, path: str | os.PathLike[str] | None = None, per_line: int = 16, title: str | None = None
) -> Any:
    """The tokens as a heat-map coloured by their projection (red: along the vector, blue: against)."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    scores = projection.scores
    bound = float(scores.abs().max().clamp_min(1e-12))
    n = len(projection.tokens)
    rows = (n + per_line - 1) // per_line
    fig, ax = plt.subplots(figsize=(per_line * 0.75, 0.5 * rows + 0.8))
    cmap = plt.get_cmap("coolwarm")
    for i, (tok, s) in enumerate(zip(projection.tokens, scores.tolist())):
        r, c = divmod(i, per_line)
        ax.text(
            c + 0.5,
            rows - r - 0.5,
            tok.replace("\n", "\\n") or " ",
            ha="center",
            va="center",
            fontsize=8,
            bbox={"facecolor": cmap(0.5 + 0.5 * s / bound), "edgecolor": "none", "pad": 2},
        )
    ax.set_xlim(0, per_line)
    ax.set_ylim(0, rows)
    ax.axis("off")
    ax.set_title(title or f"projection onto the vector at layer {projection.layer} (max |score| {bound:.3g})")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
