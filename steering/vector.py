"""The steering vector: one direction per layer plus the metadata that pins where it came from."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from .atomic import atomic_write
from .errors import ShapeMismatchError, VectorFileError
from .sites import parse_site, site_name

FORMAT = "steering.vector"
FORMAT_VERSION = 1
REFUSED_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


@dataclass(frozen=True)
class SteeringVector:
    """Directions per layer (``{layer: (d_model,) tensor}``) and a JSON-able ``metadata`` dict.

    Examples:
        >>> v = SteeringVector({2: torch.ones(4)}, {"hidden_size": 4})
        >>> (2 * v - v).directions[2]
        tensor([1., 1., 1., 1.])
    """

    directions: Mapping[int, Float[Tensor, " d_model"]]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.directions, Mapping) or not self.directions:
            raise ShapeMismatchError(
                f"SteeringVector needs a non-empty {{layer: tensor}} mapping, got {self.directions!r}."
            )
        width = None
        clean: dict[int, Tensor] = {}
        for layer, d in sorted(self.directions.items()):
            if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
                raise ShapeMismatchError(f"Layer keys must be non-negative ints, got {layer!r}.")
            if not isinstance(d, Tensor) or d.ndim != 1:
                got = f"shape {tuple(d.shape)}" if isinstance(d, Tensor) else type(d).__name__
                raise ShapeMismatchError(f"Direction for layer {layer} must be a 1-D tensor (d_model,), got {got}.")
            if not d.is_floating_point():
                raise ShapeMismatchError(f"Direction for layer {layer} must be floating point, got {d.dtype}.")
            if not torch.isfinite(d).all():
                raise ShapeMismatchError(
                    f"Direction for layer {layer} contains NaN or inf; it would corrupt every steered "
                    "activation. Re-extract it or check the inputs it was computed from."
                )
            if width is not None and d.shape[0] != width:
                raise ShapeMismatchError(
                    f"All directions must have one width; layer {layer} has {d.shape[0]}, others {width}."
                )
            width = d.shape[0]
            clean[layer] = d.detach()
        hidden = self.metadata.get("hidden_size")
        if hidden is not None and hidden != width:
            raise ShapeMismatchError(f"metadata says hidden_size={hidden} but the directions have width {width}.")
        object.__setattr__(self, "directions", clean)
        object.__setattr__(self, "metadata", dict(self.metadata))

    @property
    def layers(self) -> list[int]:
        return sorted(self.directions)

    @property
    def hidden_size(self) -> int:
        return next(iter(self.directions.values())).shape[0]

    def _combine(self, other: SteeringVector, sign: float, op: str) -> SteeringVector:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        if other.hidden_size != self.hidden_size:
            raise ShapeMismatchError(f"Cannot {op} vectors of width {self.hidden_size} and {other.hidden_size}.")
        for key in ("model", "basis"):
            a, b = self.metadata.get(key), other.metadata.get(key)
            if a and b and a != b:
                raise ShapeMismatchError(f"Cannot {op} vectors made for different {key}s: {a!r} and {b!r}.")
        out = dict(self.directions)
        for layer, d in other.directions.items():
            d = sign * d.to(out[layer].dtype) if layer in out else sign * d
            out[layer] = out[layer] + d if layer in out else d
        meta = {**self.metadata, "method": f"({self.metadata.get('method')} {op} {other.metadata.get('method')})"}
        return SteeringVector(out, meta)

    def __repr__(self) -> str:
        """Layers, width and provenance; the numbers themselves are in :attr:`directions`.

        Examples:
            >>> SteeringVector({2: torch.ones(4)}, {"method": "mean_diff", "model": "m"})
            SteeringVector(layers=[2], hidden_size=4, method='mean_diff', model='m')
        """
        keys = ("method", "position", "model")
        extra = "".join(f", {k}={self.metadata[k]!r}" for k in keys if self.metadata.get(k))
        return f"SteeringVector(layers={self.layers}, hidden_size={self.hidden_size}{extra})"

    def __add__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, 1.0, "+")

    def __sub__(self, other: SteeringVector) -> SteeringVector:
        return self._combine(other, -1.0, "-")

    def __neg__(self) -> SteeringVector:
        return self * -1.0

    def __mul__(self, scalar: float) -> SteeringVector:
        if isinstance(scalar, bool) or not isinstance(scalar, (int, float)):
            return NotImplemented
        return SteeringVector({k: d * scalar for k, d in self.directions.items()}, self.metadata)

    __rmul__ = __mul__

    def __truediv__(self, scalar: float) -> SteeringVector:
        return self * (1.0 / scalar)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> SteeringVector:
        """A copy on ``device`` and/or in ``dtype``."""
        return SteeringVector({k: d.to(device=device, dtype=dtype) for k, d in self.directions.items()}, self.metadata)

    def normalized(self) -> SteeringVector:
        """Each layer's direction scaled to unit norm."""
        return SteeringVector({k: d / d.norm().clamp_min(1e-12) for k, d in self.directions.items()}, self.metadata)

    def with_metadata(self, **updates: Any) -> SteeringVector:
        """A copy with metadata keys added or replaced."""
        return SteeringVector(self.directions, {**self.metadata, **updates})

    def select(self, layers: list[int]) -> SteeringVector:
        """Only the given layers (which must be present)."""
        missing = [la for la in layers if la not in self.directions]
        if missing:
            raise ShapeMismatchError(f"Layers {missing} are not in this vector (it has {self.layers}).")
        return SteeringVector({la: self.directions[la] for la in layers}, self.metadata)

    # --- files -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a ``.safetensors`` file atomically; metadata goes into the header as JSON."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {site_name(k): d.detach().to("cpu").contiguous() for k, d in self.directions.items()}
        header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "metadata": _to_json(self.metadata)}
        return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SteeringVector:
        """Read a file written by :meth:`save` (safetensors only; nothing is ever unpickled)."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if path.suffix.lower() in REFUSED_SUFFIXES:
            raise VectorFileError(
                f"{path} looks like a pickle-based file ({path.suffix}); steering loads safetensors only, "
                "because unpickling runs arbitrary code. Convert it to a SteeringVector and .save() it."
            )
        if not path.is_file():
            raise VectorFileError(f"No vector file at {str(path)!r}.")
        try:
            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise VectorFileError(
                f"{path} is not a readable safetensors file ({e}). Vectors are saved with SteeringVector.save()."
            ) from None
        if header.get("format") != FORMAT or "metadata" not in header:
            raise VectorFileError(
                f"{path} is a safetensors file without steering metadata (header keys: {sorted(header)}); "
                f"expected format={FORMAT!r}. Build a SteeringVector from its tensors and save it."
            )
        version = header.get("format_version", "?")
        if version != str(FORMAT_VERSION):
            raise VectorFileError(f"{path} has format_version {version}; this library reads {FORMAT_VERSION}.")
        try:
            metadata = json.loads(header["metadata"])
        except json.JSONDecodeError as e:
            raise VectorFileError(f"{path}: the metadata header is not valid JSON ({e.msg}).") from None
        try:
            directions = {parse_site(k): t for k, t in tensors.items()}
        except Exception as e:
            raise VectorFileError(f"{path}: {e}") from None
        return cls(directions, metadata)


def _to_json(metadata: Mapping[str, Any]) -> str:
    try:
        return json.dumps(metadata, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise VectorFileError(f"Vector metadata must be JSON-serialisable (finite numbers, str keys): {e}") from None
