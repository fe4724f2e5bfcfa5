"""Between our vectors and other tools' files: imported directions with the site metadata our layer
numbering implies, and the checks every export makes before it writes a byte."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import InvalidArgumentError, ShapeMismatchError, VectorFileError
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


def export_strength(vector: SteeringVector, strength: Any, fmt: str) -> float:
    """``strength`` as a float, refused (before anything is written) unless it and ``strength * vector``
    are finite in float32, the precision every export format stores."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise InvalidArgumentError(f"{fmt} export: strength must be a finite number, got {strength!r}.")
    for layer, d in vector.directions.items():
        if not bool(torch.isfinite(float(strength) * d.to(torch.float32)).all()):
            raise InvalidArgumentError(
                f"{fmt} export: strength={strength:g} times the vector at layer {layer} overflows float32 "
                "(the file would hold inf, which no reader accepts); use a strength of the order of the residual norm."
            )
    return float(strength)
