"""Per-token projections of a text's residual stream onto a vector: which tokens a direction lights up on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ..backends import backend_for
from ..errors import ShapeMismatchError
from ..hooks import Hook, attached, output_tensor
from ..prompts import Prompt, encode
from ..vector import EPS, SteeringVector, unit


@dataclass(frozen=True)
class Projection:
    tokens: list[str]  # each token decoded on its own
    scores: Float[Tensor, " n_tokens"]  # h_t · v / |v| at the vector's layer
    layer: int


def project(
    model: Any,
    tokenizer: Any,
    text: Prompt,
    vector: SteeringVector,
    layer: int | None = None,
    *,
    layer_path: str | None = None,
) -> Projection:
    """Project every token's block output at ``layer`` (default: the vector's first) onto the unit direction."""
    layer = vector.layers[0] if layer is None else layer
    if layer not in vector.directions:
        raise ShapeMismatchError(f"The vector has layers {vector.layers}, not {layer}; pass one of them as layer=.")
    backend = backend_for(model)
    ids = encode(tokenizer, text)
    u = unit(vector.directions[layer].float())
    got: list[Tensor] = []

    def read(module: Any, args: Any, output: Any) -> None:
        got.append(output_tensor(output)[0].detach().float().cpu() @ u)

    module = backend.layers(model, layer_path)[layer]
    with attached([Hook(module, read)]), torch.no_grad():
        input_ids = torch.tensor([ids], device=backend.device(model))
        backend.run(model, input_ids, torch.ones_like(input_ids))
    return Projection([tokenizer.decode([i]) for i in ids], got[0], layer)


def visible(token: str) -> str:
    r"""A token with its spaces and line breaks made visible.

    Examples:
        >>> visible(" the\n")
        '␣the↵'
    """
    return token.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"


def plot_projection(
    projection: Projection, path: str | os.PathLike[str] | None = None, per_line: int = 16, title: str | None = None
) -> Any:
    """The tokens as a heat-map coloured by their projection (red: along the vector, blue: against).

    Spaces show as ``␣`` and line breaks as ``↵``, so token boundaries stay visible; a colour bar
    gives the scale (the projection onto the unit direction, in residual-stream units).
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    scores = projection.scores
    bound = float(scores.abs().max().clamp_min(EPS))
    n = len(projection.tokens)
    rows = (n + per_line - 1) // per_line
    fig, ax = plt.subplots(figsize=(per_line * 0.75, 0.5 * rows + 0.8))
    cmap = plt.get_cmap("coolwarm")
    for i, (tok, s) in enumerate(zip(projection.tokens, scores.tolist())):
        r, c = divmod(i, per_line)
        ax.text(
            c + 0.5,
            rows - r - 0.5,
            visible(tok),
            ha="center",
            va="center",
            fontsize=8,
            bbox={"facecolor": cmap(0.5 + 0.5 * s / bound), "edgecolor": "none", "pad": 2},
        )
    ax.set_xlim(0, per_line)
    ax.set_ylim(0, rows)
    ax.axis("off")
    mappable = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(-bound, bound))
    bar = fig.colorbar(mappable, ax=ax, fraction=0.025, pad=0.01)
    bar.set_label("projection onto the unit vector")
    ax.set_title(title or f"Each token's residual stream at layer {projection.layer}, projected onto the vector")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
