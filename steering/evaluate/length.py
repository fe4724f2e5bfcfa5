"""Accuracy as a function of chain length (the inverted-U analysis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def length_curve(lengths: Sequence[float], correct: Sequence[bool], n_bins: int = 8) -> dict[str, Any]:
    """Bin responses by chain length (equal-count bins); accuracy per bin and the best bin.

    Examples:
        >>> c = length_curve([10, 20, 30, 40], [False, True, True, False], n_bins=2)
        >>> [b["accuracy"] for b in c["bins"]], c["optimal_length"]
        ([0.5, 0.5], 15.0)
    """
    if len(lengths) != len(correct) or not lengths:
        raise ValueError("length_curve needs equally many lengths and correctness flags (at least one).")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n_bins = max(1, min(n_bins, len(order)))
    bins = []
    for b in range(n_bins):
        idx = order[b * len(order) // n_bins : (b + 1) * len(order) // n_bins]
        if not idx:
            continue
        ls = [lengths[i] for i in idx]
        bins.append(
            {
                "lo": min(ls),
                "hi": max(ls),
                "mean_length": sum(ls) / len(ls),
                "n": len(idx),
                "accuracy": sum(bool(correct[i]) for i in idx) / len(idx),
            }
        )
    best = max(bins, key=lambda x: (x["accuracy"], -x["mean_length"]))
    after = [x for x in bins if x["mean_length"] > best["mean_length"]]
    return {
        "bins": bins,
        "optimal_length": best["mean_length"],
        "optimal_accuracy": best["accuracy"],
        "accuracy_past_optimum": (sum(x["accuracy"] * x["n"] for x in after) / sum(x["n"] for x in after))
        if after
        else None,
    }
