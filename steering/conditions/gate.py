"""The per-row gate a ``steer(..., when=rule)`` block keeps: which rows the rule has fired for.

The gate's state belongs to one sequence. The tracker numbers sequences; the first hook of a new
sequence to touch the gate (a behaviour layer below the condition layer, say) finds the number
changed and clears the state, so a decision never leaks from one batch into the next.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..hooks import output_tensor
from ..markers import Tokens, encode_markers, match_ends
from .rules import Condition, Rule


class Gate:
    """Per-row state of a rule during one ``steer`` block (used by :mod:`steering.apply`)."""

    def __init__(self, rule: Rule, tracker: Any, tokenizer: Any = None) -> None:
        self.rule = rule
        self.tracker = tracker
        self.state: dict[int, Tensor] = {}
        self.sequence = -1  # the tracker's sequence the state belongs to
        self.patterns: dict[int, list[tuple[int, ...]]] = {}
        for leaf in rule.leaves():
            if isinstance(leaf.check, Tokens):
                self.patterns[id(leaf)] = encode_markers(leaf.check.markers, tokenizer, "Condition(check=Tokens(...))")

    def _sync(self) -> None:
        if self.sequence != self.tracker.sequence:
            self.state.clear()
            self.sequence = self.tracker.sequence

    def reader(self, leaf: Condition) -> Any:
        """A forward hook for ``leaf.layer``'s module that updates the leaf's per-row state."""

        def hook(module: Any, args: Any, output: Any) -> None:
            t = self.tracker
            chunk = t.chunk
            if chunk is None:
                return
            self._sync()
            h = output_tensor(output)
            batch = h.shape[0]
            key = id(leaf)
            if key not in self.state or self.state[key].shape[0] != batch:
                self.state[key] = torch.zeros(batch, dtype=torch.bool, device=h.device)
            state = self.state[key]
            rows = torch.arange(batch, device=h.device)
            if leaf.check == "prompt" and not t.fresh:
                return  # decided on the prompt pass
            if t.fresh and leaf.position == "prompt_mean":
                real = t.mask2d[:, -h.shape[1] :].to(h.device).bool() if t.mask2d is not None else None
                weights = real.float() if real is not None else torch.ones(h.shape[:2], device=h.device)
                mean = (h.float() * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1)
                self.state[key] = state | leaf.fires(leaf.scores(mean))
                return
            if isinstance(leaf.check, Tokens):
                if chunk.history is None:
                    return
                ends = match_ends(chunk.history.to(h.device), self.patterns[key])[:, chunk.past :]
                self.state[key] = state | (ends & leaf.fires(leaf.scores(h))).any(1)
                return
            # "prompt" on the prompt pass, or "step": the last real token of this chunk.
            last = chunk.prompt_last.to(h.device) if t.fresh else torch.full((batch,), h.shape[1] - 1, device=h.device)
            index = (last - chunk.past).clamp(0, h.shape[1] - 1) if t.fresh else last
            self.state[key] = state | leaf.fires(leaf.scores(h[rows, index]))

        return hook

    def rows(self, batch: int, device: torch.device) -> Tensor:
        """``(B,)`` bool: the rows the behaviour applies to now."""
        self._sync()
        state = {}
        for leaf in self.rule.leaves():
            s = self.state.get(id(leaf))
            state[id(leaf)] = (
                s.to(device)
                if s is not None and s.shape[0] == batch
                else torch.zeros(batch, dtype=torch.bool, device=device)
            )
        return self.rule.value(state)
