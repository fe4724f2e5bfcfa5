"""Accuracy as a function of chain length (the inverted-U analysis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InvalidArgumentError


def _groups(lengths: Sequence[float], n_bins: int) -> list[list[int]]:
    """Indices in about ``n_bins`` equal-count bins by length; equal lengths always share a bin."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    target = len(order) / n_bins
    bins: list[list[int]] = [[]]
    for i in order:
        if len(bins[-1]) >= target * (1 - 1e-9) and lengths[i] != lengths[bins[-1][-1]] and len(bins) < n_bins:
            bins.append([])
        bins[-1].append(i)
    return bins


def length_curve(lengths: Sequence[float], correct: Sequence[bool], n_bins: int = 8) -> dict[str, Any]:
    """Bin responses by chain length (equal-count bins, ties kept together); accuracy per bin and the best bin.

    Examples:
        >>> c = length_curve([10, 20, 30, 40], [False, True, True, False], n_bins=2)
        >>> [b["accuracy"] for b in c["bins"]], c["optimal_length"]
        ([0.5, 0.5], 15.0)
        >>> [b["accuracy"] for b in length_curve([5, 5, 9, 9], [True, False, True, True], n_bins=4)["bins"]]
        [0.5, 1.0]
    """
    if len(lengths) != len(correct) or not lengths:
        raise InvalidArgumentError(
            f"length_curve needs equally many lengths and correctness flags (at least one); got "
            f"{len(lengths)} and {len(correct)}."
        )
    bins = []
    for idx in _groups(lengths, max(1, min(n_bins, len(lengths)))):
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
