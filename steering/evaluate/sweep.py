"""Evaluate a metric over strengths (and layers): a table you can hand to pandas, and a plot."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tqdm.auto import tqdm


def sweep(
    evaluate: Callable[..., Mapping[str, float]],
    strengths: Iterable[float],
    layers: Sequence[int | None] = (None,),
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Rows ``{"layer", "strength", **evaluate(strength=s, layer=l)}`` for every pair.

    Examples:
        >>> rows = sweep(lambda strength, layer: {"tokens": 10 - strength}, [0, 2], progress=False)
        >>> [r["tokens"] for r in rows]
        [10.0, 8.0]
    """
    grid = [(layer, float(s)) for layer in layers for s in strengths]
    rows = []
    for layer, s in tqdm(grid, desc="sweep", disable=not progress, leave=False):
        rows.append({"layer": layer, "strength": s, **evaluate(strength=s, layer=layer)})
    return rows


def plot_sweep(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    path: str | os.PathLike[str] | None = None,
    x: str = "strength",
    title: str | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    baseline: Mapping[str, float] | None = None,
) -> Any:
    """One panel per metric against ``x``, one line per layer; saved as PNG when ``path`` is given.

    ``labels`` names the axes in words (``{"chain_tokens": "chain length (tokens)"}``; the default is
    the key); ``baseline`` draws each metric's unsteered value as a dashed line.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    words = dict(labels or {})
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for layer in sorted({r.get("layer") for r in rows}, key=lambda v: -1 if v is None else v):
            pts = sorted((r[x], r[metric]) for r in rows if r.get("layer") == layer and metric in r)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"layer {layer}")
        if baseline and metric in baseline:
            ax.axhline(baseline[metric], color="grey", linestyle="--", linewidth=1, label="unsteered")
        ax.set_xlabel(words.get(x, x))
        ax.set_ylabel(words.get(metric, metric))
        ax.grid(alpha=0.3)
    if len({r.get("layer") for r in rows}) > 1 or baseline:
        axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
