"""Conditions and the rules that combine them: values, no hooks.

A :class:`Condition` is a unit direction at one layer, a score of the hidden state against it, and a
threshold. Two scores:

- ``"projection"`` (the default): ``h · u``, linear in the hidden state. :func:`fit_condition` fits
  the threshold on this very statistic, so the threshold means what it meant in fitting. It grows
  with the residual norm, so it suits prompts of similar form.
- ``"cast"``: CAST's score (Lee et al. 2024), the cosine between ``h`` and ``tanh(P h)`` for the
  projector ``P = u uᵀ``. Invariant to the residual norm (long prompts, massive activations on early
  tokens); use it, with ``position="prompt_mean"`` (CAST's aggregation), when norms vary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import ShapeMismatchError, UnknownOptionError
from ..markers import Tokens
from ..vector import EPS, SteeringVector, unit

CHECKS = ("prompt", "step")
POSITIONS = ("prompt_last", "prompt_mean")
SCORES = ("projection", "cast")


def score(h: Float[Tensor, "*batch d"], u: Float[Tensor, " d"], kind: str) -> Float[Tensor, "*batch"]:
    """The condition score of hidden states ``h`` against the unit direction ``u``.

    Examples:
        >>> u = torch.tensor([1.0, 0.0])
        >>> score(torch.tensor([[2.0, 0.0], [0.0, 3.0]]), u, "projection").tolist()
        [2.0, 0.0]
        >>> round(float(score(torch.tensor([2.0, 0.0]), u, "cast")), 4)
        1.0
    """
    proj = h @ u
    if kind == "projection":
        return proj
    projected = torch.tanh(proj[..., None] * u)  # tanh(P h), P = u uᵀ
    return (h * projected).sum(-1) / (h.norm(dim=-1) * projected.norm(dim=-1)).clamp_min(EPS)


class Rule:
    """A boolean combination of conditions; ``|``, ``&`` and ``~`` build more."""

    def leaves(self) -> list[Condition]:
        raise NotImplementedError

    def value(self, state: dict[int, Tensor]) -> Tensor:
        """``(B,)`` bool: does the rule hold for each row, given each leaf's ``(B,)`` state."""
        raise NotImplementedError

    def __or__(self, other: Rule) -> Rule:
        return _Op("or", (self, other))

    def __and__(self, other: Rule) -> Rule:
        return _Op("and", (self, other))

    def __invert__(self) -> Rule:
        return _Op("not", (self,))


@dataclass(frozen=True, eq=False)
class _Op(Rule):
    op: str
    parts: tuple[Rule, ...]

    def leaves(self) -> list[Condition]:
        return [leaf for p in self.parts for leaf in p.leaves()]

    def value(self, state: dict[int, Tensor]) -> Tensor:
        values = [p.value(state) for p in self.parts]
        if self.op == "not":
            return ~values[0]
        out = values[0]
        for v in values[1:]:
            out = out | v if self.op == "or" else out & v
        return out


@dataclass(frozen=True, eq=False)
class Condition(Rule):
    """Fires for a row when its score at ``layer`` is above ``threshold`` (below, if ``above=False``).

    Examples:
        >>> c = Condition(torch.tensor([1.0, 0.0]), layer=2, threshold=0.5)
        >>> (c | ~c).leaves() == [c, c]
        True
    """

    direction: Float[Tensor, " d_model"]
    layer: int
    threshold: float
    position: str = "prompt_last"
    check: str | Tokens = "prompt"
    above: bool = True
    score: str = "projection"
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.direction, Tensor) or self.direction.ndim != 1:
            raise ShapeMismatchError("Condition.direction must be a 1-D tensor (d_model,).")
        if not float(self.direction.norm()) > EPS:
            raise ShapeMismatchError("Condition.direction is zero: it cannot separate anything.")
        object.__setattr__(self, "direction", unit(self.direction.detach().float().cpu()))
        if self.position not in POSITIONS:
            raise UnknownOptionError(f"Condition position must be one of {POSITIONS}, got {self.position!r}.")
        if not (self.check in CHECKS or isinstance(self.check, Tokens)):
            raise UnknownOptionError(f"Condition check must be one of {CHECKS} or Tokens(...), got {self.check!r}.")
        if self.score not in SCORES:
            raise UnknownOptionError(f"Condition score must be one of {SCORES}, got {self.score!r}.")

    def leaves(self) -> list[Condition]:
        return [self]

    def value(self, state: dict[int, Tensor]) -> Tensor:
        return state[id(self)]

    def scores(self, h: Float[Tensor, "*batch d_model"]) -> Float[Tensor, "*batch"]:
        """This condition's score of hidden states ``h`` (float32)."""
        return score(h.float(), self.direction.to(h.device), self.score)

    def fires(self, score: Tensor) -> Tensor:
        return score > self.threshold if self.above else score < self.threshold

    def to_vector(self) -> SteeringVector:
        """A one-layer SteeringVector whose metadata carries the condition (for the registry)."""
        if isinstance(self.check, Tokens):
            raise UnknownOptionError("Save conditions checked at markers by their markers' token ids in metadata.")
        spec = {
            "layer": self.layer,
            "threshold": self.threshold,
            "position": self.position,
            "check": self.check,
            "above": self.above,
            "score": self.score,
        }
        meta = {**self.metadata, "kind": "condition", "condition": spec, "hidden_size": self.direction.shape[0]}
        return SteeringVector({self.layer: self.direction}, meta)

    @classmethod
    def from_vector(cls, vector: SteeringVector) -> Condition:
        spec = vector.metadata.get("condition")
        if not isinstance(spec, dict):
            raise UnknownOptionError(
                "This vector carries no condition (metadata['condition']); make one with fit_condition()."
            )
        meta = {k: v for k, v in vector.metadata.items() if k not in ("condition", "kind")}
        return cls(
            vector.directions[spec["layer"]],
            layer=int(spec["layer"]),
            threshold=float(spec["threshold"]),
            position=spec.get("position", "prompt_last"),
            check=spec.get("check", "prompt"),
            above=bool(spec.get("above", True)),
            score=spec.get("score", "projection"),
            metadata=meta,
        )
