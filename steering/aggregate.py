"""Turning paired activations into one direction per layer.

An aggregator is a plain callable ``(pos, neg) -> direction`` over ``(n, d)`` float tensors
(row ``i`` of each comes from pair ``i``); every direction points from ``neg`` to ``pos``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from einops import reduce
from jaxtyping import Float
from torch import Tensor

from .errors import DegenerateVectorError, UnknownOptionError, require
from .vector import unit

Aggregator = Callable[[Float[Tensor, "n d"], Float[Tensor, "n d"]], Float[Tensor, " d"]]


def mean_diff() -> Aggregator:
    """``mean(pos - neg)``: the difference of class means (ASC, CAA, steering-vectors' default).

    Examples:
        >>> mean_diff()(torch.tensor([[3.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
        tensor([2., 0.])
    """

    def aggregate(pos: Tensor, neg: Tensor) -> Tensor:
        return reduce(pos - neg, "n d -> d", "mean")

    return aggregate


def _scaled_unit(u: Tensor, diffs: Tensor) -> Tensor:
    """The unit vector ``u`` oriented with the differences and scaled by their mean projection onto it.

    This keeps the units of ``mean_diff`` (its projection onto ``u``), so strengths carry over.
    """
    return u * (diffs @ u).mean()  # a negative mean projection flips the sign: aligned either way


def pca() -> Aggregator:
    """First principal direction of the paired differences, sign-aligned with their mean.

    Uncentred, which is what RepE's random sign flips of each pair achieve: the direction that
    explains the most of the differences themselves, not of their spread around the mean.
    """

    def aggregate(pos: Tensor, neg: Tensor) -> Tensor:
        diffs = (pos - neg).double()
        _, _, vh = torch.linalg.svd(diffs, full_matrices=False)
        return _scaled_unit(vh[0], diffs).to(pos.dtype)

    return aggregate


def probe(C: float = 1.0, max_iter: int = 1000) -> Aggregator:
    """Weight direction of a scikit-learn logistic regression telling ``pos`` (1) from ``neg`` (0).

    Scaled like :func:`pca`. Needs scikit-learn.
    """

    def aggregate(pos: Tensor, neg: Tensor) -> Tensor:
        LogisticRegression = require("sklearn.linear_model", "probe", 'method="probe"').LogisticRegression  # type: ignore[attr-defined]

        x = torch.cat([pos, neg]).double().numpy()
        y = [1] * len(pos) + [0] * len(neg)
        clf = LogisticRegression(C=C, max_iter=max_iter).fit(x, y)
        w = torch.from_numpy(clf.coef_[0]).double()
        if not torch.isfinite(w).all() or w.norm() == 0:
            raise DegenerateVectorError("The logistic probe found no direction (all-zero or non-finite weights).")
        return _scaled_unit(unit(w), (pos - neg).double()).to(pos.dtype)

    return aggregate


METHODS: dict[str, Callable[[], Aggregator]] = {"mean_diff": mean_diff, "pca": pca, "probe": probe}


def get_aggregator(method: str | Aggregator) -> tuple[str, Aggregator]:
    """Resolve a method name (or a custom aggregator callable) to ``(name, aggregator)``."""
    if callable(method):
        return getattr(method, "__name__", "custom"), method
    if method not in METHODS:
        raise UnknownOptionError(
            f"Unknown method {method!r}; expected one of {sorted(METHODS)} or a callable (pos, neg) -> direction."
        )
    return method, METHODS[method]()


def diagnostics(pos: Tensor, neg: Tensor, direction: Tensor) -> dict[str, float]:
    """Per-layer numbers kept in the vector's metadata."""
    diffs = pos - neg
    u = unit(direction)
    acts = torch.cat([pos, neg])
    # Probe-style accuracy of the direction itself: does projecting onto it separate the classes?
    proj_pos, proj_neg = pos @ u, neg @ u
    threshold = (proj_pos.mean() + proj_neg.mean()) / 2
    separated = torch.cat([proj_pos > threshold, proj_neg <= threshold]).float().mean()
    return {
        "norm": float(direction.norm()),
        "mean_resid_norm": float(acts.norm(dim=-1).mean()),
        "sign_agreement": float(((diffs @ u) > 0).float().mean()),
        "separation_accuracy": float(separated),
    }
