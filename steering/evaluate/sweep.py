"""A metric over strengths (and layers): a table you can hand to pandas, the best row under bounds, a plot."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tqdm.auto import tqdm

from ..errors import InvalidArgumentError


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


def best(
    rows: Sequence[Mapping[str, Any]],
    minimize: str | Callable[[Mapping[str, Any]], float],
    *,
    at_least: Mapping[str, float] | None = None,
    at_most: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The row with the smallest ``minimize`` among the rows that meet every bound (ties: the smaller
    strength, then the lower layer). ``minimize`` is a column or a function of a row. A row whose
    value or bounded column is NaN is never picked.

    Examples:
        >>> rows = [{"layer": 2, "strength": s, "tokens": 90 - 40 * s, "accuracy": 0.8 - s / 10} for s in (0, 0.5, 1)]
        >>> best(rows, "tokens", at_least={"accuracy": 0.75})["strength"]
        0.5
    """
    lower, upper = dict(at_least or {}), dict(at_most or {})
    if not rows:
        raise InvalidArgumentError("best() got no rows; pass the rows sweep() returned.")
    columns = [minimize] if isinstance(minimize, str) else []
    missing = sorted({c for c in [*columns, *lower, *upper] if any(c not in r for r in rows)})
    if missing:
        raise InvalidArgumentError(
            f"best() got bounds or a column {missing} that some rows lack; the rows have {sorted(rows[0])}."
        )
    key = (lambda r: float(r[minimize])) if isinstance(minimize, str) else minimize
    fine = [
        r
        for r in rows
        if all(r[c] >= v for c, v in lower.items())
        and all(r[c] <= v for c, v in upper.items())
        and not math.isnan(key(r))
    ]
    if not fine:
        reached = {c: max((r[c] for r in rows if r[c] == r[c]), default=math.nan) for c in lower} | {
            c: min((r[c] for r in rows if r[c] == r[c]), default=math.nan) for c in upper
        }
        raise InvalidArgumentError(
            f"None of the {len(rows)} rows meets at_least={lower} and at_most={upper}; the best each column "
            f"reached: {reached}. Loosen a bound or sweep smaller strengths."
        )
    chosen: Mapping[str, Any] = min(
        fine, key=lambda r: (key(r), r.get("strength", 0.0), -1 if r.get("layer") is None else r["layer"])
    )
    return dict(chosen)


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
