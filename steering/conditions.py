"""Conditional steering: apply a behaviour vector only to the rows whose hidden state says so.

A :class:`Condition` is a unit direction at one layer plus a threshold on the projection of the
hidden state there (CAST, Lee et al. 2024, arXiv 2409.05907). While ``steer(..., when=condition)``
is active, each row's condition is evaluated as the model runs; once it fires for a row, the
behaviour vector is applied to that row from then on (per row, under padding and the KV cache):

- ``check="prompt"``: decided once, on the prompt pass, at ``position`` (``"prompt_last"`` or
  ``"prompt_mean"``);
- ``check="step"``: re-checked at every new token (the prompt's last token first);
- ``check=Tokens(...)``: re-checked wherever a marker ends (e.g. at each step end).

Rules combine conditions: ``c1 | c2``, ``c1 & c2``, ``~c1``. A decision made at layer ``c`` reaches
the behaviour layers *after* ``c`` in the same forward pass, and every layer in later passes: put
the condition at or before the behaviour's layers when the behaviour acts on the prompt.

:func:`fit_condition` picks the layer and threshold by F1 on labelled prompts and stores them in the
condition's metadata; ``condition.to_vector()`` makes it a registry artefact like any vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from .errors import ShapeMismatchError, UnknownOptionError
from .markers import Tokens, encode_markers, match_ends
from .vector import SteeringVector

CHECKS = ("prompt", "step")
POSITIONS = ("prompt_last", "prompt_mean")


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
    """Fires for a row when ``h · direction`` at ``layer`` is above ``threshold`` (below, if ``above=False``).

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
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.direction, Tensor) or self.direction.ndim != 1:
            raise ShapeMismatchError("Condition.direction must be a 1-D tensor (d_model,).")
        norm = float(self.direction.norm())
        if not norm > 0:
            raise ShapeMismatchError("Condition.direction is zero: it cannot separate anything.")
        object.__setattr__(self, "direction", self.direction.detach().float().cpu() / norm)
        if self.position not in POSITIONS:
            raise UnknownOptionError(f"Condition position must be one of {POSITIONS}, got {self.position!r}.")
        if not (self.check in CHECKS or isinstance(self.check, Tokens)):
            raise UnknownOptionError(f"Condition check must be one of {CHECKS} or Tokens(...), got {self.check!r}.")

    def leaves(self) -> list[Condition]:
        return [self]

    def value(self, state: dict[int, Tensor]) -> Tensor:
        return state[id(self)]

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
            metadata=meta,
        )


class Gate:
    """Per-row state of a rule during one ``steer`` block (used by :mod:`steering.apply`)."""

    def __init__(self, rule: Rule, tracker: Any, tokenizer: Any = None) -> None:
        self.rule = rule
        self.tracker = tracker
        self.state: dict[int, Tensor] = {}
        self.patterns: dict[int, list[tuple[int, ...]]] = {}
        for leaf in rule.leaves():
            if isinstance(leaf.check, Tokens):
                self.patterns[id(leaf)] = encode_markers(leaf.check.markers, tokenizer, "Condition(check=Tokens(...))")

    def reader(self, leaf: Condition) -> Any:
        """A forward hook for ``leaf.layer``'s module that updates the leaf's per-row state."""

        def hook(module: Any, args: Any, output: Any) -> None:
            from .hooks import output_tensor

            t = self.tracker
            chunk = t.chunk
            if chunk is None:
                return
            h = output_tensor(output)
            batch = h.shape[0]
            key = id(leaf)
            if t.fresh or key not in self.state or self.state[key].shape[0] != batch:
                self.state[key] = torch.zeros(batch, dtype=torch.bool, device=h.device)
            state = self.state[key]
            unit = leaf.direction.to(device=h.device, dtype=torch.float32)
            rows = torch.arange(batch, device=h.device)
            if leaf.check == "prompt" and not t.fresh:
                return  # decided on the prompt pass
            if t.fresh and leaf.position == "prompt_mean":
                real = t.mask2d[:, -h.shape[1] :].to(h.device).bool() if t.mask2d is not None else None
                weights = real.float() if real is not None else torch.ones(h.shape[:2], device=h.device)
                mean = (h.float() * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1)
                score = mean @ unit
                self.state[key] = state | leaf.fires(score)
                return
            if isinstance(leaf.check, Tokens):
                if chunk.history is None:
                    return
                ends = match_ends(chunk.history.to(h.device), self.patterns[key])[:, chunk.past :]
                scores = h.float() @ unit  # (B, T)
                self.state[key] = state | (ends & leaf.fires(scores)).any(1)
                return
            # "prompt" on the prompt pass, or "step": the last real token of this chunk.
            last = chunk.prompt_last.to(h.device) if t.fresh else torch.full((batch,), h.shape[1] - 1, device=h.device)
            index = (last - chunk.past).clamp(0, h.shape[1] - 1) if t.fresh else last
            score = h[rows, index].float() @ unit
            self.state[key] = state | leaf.fires(score)

        return hook

    def rows(self, batch: int, device: torch.device) -> Tensor:
        """``(B,)`` bool: the rows the behaviour applies to now."""
        state = {}
        for leaf in self.rule.leaves():
            s = self.state.get(id(leaf))
            state[id(leaf)] = (
                s.to(device)
                if s is not None and s.shape[0] == batch
                else torch.zeros(batch, dtype=torch.bool, device=device)
            )
        return self.rule.value(state)
