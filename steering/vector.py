"""The steering vector: one direction per layer plus the metadata that pins where it came from."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from .atomic import atomic_write_bytes
from .errors import InvalidArgumentError, ShapeMismatchError, VectorFileError
from .fileformat import check_file_size, from_bytes, to_bytes
from .sites import parse_site, site_name

FORMAT = "steering.vector"
FORMAT_VERSION = 1
REFUSED_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
EPS = 1e-12  # below this a norm is zero: directions are never divided by it
# Metadata that pins a vector to the model (and place in it) it was made on: arithmetic keeps it.
PINNING = (
    "model",
    "revision",
    "architecture",
    "model_type",
    "hidden_size",
    "n_layers",
    "site",
    "layer_convention",
    "basis",
    "fingerprint",
)


def unit(v: Float[Tensor, "*batch d"]) -> Float[Tensor, "*batch d"]:
    """``v`` scaled to unit norm along its last axis (a zero vector stays zero).

    Examples:
        >>> unit(torch.tensor([3.0, 4.0]))
        tensor([0.6000, 0.8000])
    """
    return v / v.norm(dim=-1, keepdim=True).clamp_min(EPS)


def _scalar(value: Any, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"A vector can be {op} by a number only, got {type(value).__name__}.")
    if not math.isfinite(value):
        raise InvalidArgumentError(f"Cannot {op} a vector by {value!r}: the factor must be a finite number.")
    return float(value)


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
        if not isinstance(self.metadata, Mapping):
            raise VectorFileError(f"SteeringVector metadata must be a mapping, got {type(self.metadata).__name__}.")
        width = None
        clean: dict[int, Tensor] = {}
        for layer, d in sorted(self.directions.items()):
            if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
                raise ShapeMismatchError(f"Layer keys must be non-negative ints, got {layer!r}.")
            if not isinstance(d, Tensor) or d.ndim != 1 or d.shape[0] == 0:
                got = f"shape {tuple(d.shape)}" if isinstance(d, Tensor) else type(d).__name__
                raise ShapeMismatchError(
                    f"Direction for layer {layer} must be a non-empty 1-D tensor (d_model,), got {got}."
                )
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

    # --- arithmetic --------------------------------------------------------------------------
    def _combine(self, other: SteeringVector, sign: float, op: str) -> SteeringVector:
        if not isinstance(other, SteeringVector):
            return NotImplemented
        if other.hidden_size != self.hidden_size:
            raise ShapeMismatchError(f"Cannot {op} vectors of width {self.hidden_size} and {other.hidden_size}.")
        pinned = {}
        for key in PINNING:
            a, b = self.metadata.get(key), other.metadata.get(key)
            if a is not None and b is not None and a != b:
                raise ShapeMismatchError(
                    f"Cannot {op} vectors made for different {key}s: {a!r} and {b!r}. If they are meant to "
                    f"combine, make the metadata agree first (v.with_metadata({key}=...))."
                )
            if a is not None or b is not None:
                pinned[key] = a if a is not None else b
        out = dict(self.directions)
        for layer, d in other.directions.items():
            d = sign * d.to(out[layer].dtype) if layer in out else sign * d
            out[layer] = out[layer] + d if layer in out else d
        meta = {
            **self.metadata,
            **pinned,
            "method": f"({self.metadata.get('method')} {op} {other.metadata.get('method')})",
        }
        diag = {**_diag(other), **_diag(self)}
        if diag:  # what stays true of a sum: the residual norms; the separation numbers do not
            meta["diagnostics"] = {
                str(la): {k: v for k, v in diag.get(str(la), {}).items() if k.endswith("resid_norm")}
                | {"norm": float(d.norm())}
                for la, d in out.items()
            }
        return SteeringVector(out, meta)

    def __repr__(self) -> str:
        """Layers, width and provenance; the numbers themselves are in :attr:`directions`.

        Examples:
            >>> SteeringVector({2: torch.ones(4)}, {"method": "mean_diff", "model": "m"})
            SteeringVector(layers=[2], hidden_size=4, method='mean_diff', model='m')
        """
        keys = ("method", "position", "model", "recommended_strength", "recommended_scope")
        extra = "".join(f", {k}={self.metadata[k]!r}" for k in keys if self.metadata.get(k) is not None)
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
        s = _scalar(scalar, "multiply")
        meta = dict(self.metadata)
        if _diag(self):
            meta["diagnostics"] = {
                str(la): _scaled_diag(_diag(self).get(str(la), {}), s, float(d.norm()) * abs(s))
                for la, d in self.directions.items()
            }
        return SteeringVector({k: d * s for k, d in self.directions.items()}, meta)

    __rmul__ = __mul__

    def __truediv__(self, scalar: float) -> SteeringVector:
        s = _scalar(scalar, "divide")
        if s == 0:
            raise InvalidArgumentError("Cannot divide a vector by 0.")
        return self * (1.0 / s)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> SteeringVector:
        """A copy on ``device`` and/or in ``dtype``."""
        return SteeringVector({k: d.to(device=device, dtype=dtype) for k, d in self.directions.items()}, self.metadata)

    def normalized(self) -> SteeringVector:
        """Each layer's direction scaled to unit norm."""
        zero = [la for la, d in self.directions.items() if float(d.norm()) <= EPS]
        if zero:
            raise InvalidArgumentError(f"Layer(s) {zero} of this vector are zero: there is no direction to normalise.")
        return SteeringVector({k: unit(d) for k, d in self.directions.items()}, self.metadata)

    def with_metadata(self, **updates: Any) -> SteeringVector:
        """A copy with metadata keys added or replaced."""
        return SteeringVector(self.directions, {**self.metadata, **updates})

    def select(self, layers: list[int]) -> SteeringVector:
        """Only the given layers (which must be present)."""
        if not layers:
            raise InvalidArgumentError(f"select needs at least one layer (this vector has {self.layers}).")
        missing = [la for la in layers if la not in self.directions]
        if missing:
            raise ShapeMismatchError(f"Layers {missing} are not in this vector (it has {self.layers}).")
        return SteeringVector({la: self.directions[la] for la in layers}, self.metadata)

    # --- files -----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The ``.safetensors`` bytes :meth:`save` writes."""
        tensors = {site_name(k): d for k, d in self.directions.items()}
        return to_bytes(tensors, FORMAT, FORMAT_VERSION, self.metadata)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a ``.safetensors`` file atomically; metadata goes into the header as JSON."""
        path = _not_pickle(Path(path), "save to")
        return atomic_write_bytes(path, self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "<bytes>") -> SteeringVector:
        """Parse the bytes of a file written by :meth:`save` (nothing is ever unpickled)."""
        tensors, metadata = from_bytes(data, FORMAT, FORMAT_VERSION, where)
        try:
            directions = {parse_site(k): t for k, t in tensors.items()}
            return cls(directions, metadata)
        except (ShapeMismatchError, ValueError) as e:
            raise VectorFileError(f"{where}: {e}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SteeringVector:
        """Read a file written by :meth:`save` (safetensors only; nothing is ever unpickled)."""
        path = _not_pickle(Path(path), "load")
        if not path.is_file():
            raise VectorFileError(f"No vector file at {str(path)!r}.")
        try:
            check_file_size(path.stat().st_size, str(path))
            data = path.read_bytes()
        except OSError as e:
            raise VectorFileError(f"{path} could not be read ({e.strerror or e}).") from None
        return cls.from_bytes(data, str(path))


def _not_pickle(path: Path, verb: str) -> Path:
    if path.suffix.lower() in REFUSED_SUFFIXES:
        raise VectorFileError(
            f"Refusing to {verb} {str(path)!r}: {path.suffix} is a pickle-based format, and steering reads and "
            "writes safetensors only (unpickling runs arbitrary code). Use a '.safetensors' file, e.g. "
            f"{path.with_suffix('.safetensors').name!r}."
        )
    return path


def _diag(v: SteeringVector) -> dict[str, dict[str, Any]]:
    d = v.metadata.get("diagnostics")
    return d if isinstance(d, dict) else {}


def _scaled_diag(d: dict[str, Any], s: float, norm: float) -> dict[str, Any]:
    """Diagnostics of ``s * v``: the norm changes; a flipped sign flips what "agrees" means."""
    out = {**d, "norm": norm}
    if s < 0:
        for key in ("sign_agreement", "separation_accuracy"):
            if isinstance(out.get(key), (int, float)):
                out[key] = 1.0 - out[key]
    return out
