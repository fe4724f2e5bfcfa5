"""Another tool's directions as a SteeringVector, with the site metadata our layer numbering implies."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ShapeMismatchError, VectorFileError
from ..sites import LAYER_CONVENTION, POINT
from ..vector import SteeringVector


def imported_vector(directions: dict[int, torch.Tensor], meta: dict[str, Any], where: str) -> SteeringVector:
    """Directions keyed by our layer numbers; a malformed one is the file's fault (:class:`VectorFileError`)."""
    if not directions:
        raise VectorFileError(f"{where} has no directions.")
    meta.setdefault("hidden_size", next(iter(directions.values())).shape[0])
    meta.setdefault("site", POINT)
    meta.setdefault("layer_convention", LAYER_CONVENTION)
    try:
        return SteeringVector(directions, meta)
    except ShapeMismatchError as e:
        raise VectorFileError(f"{where}: {e}") from e
