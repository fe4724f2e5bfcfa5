"""Follows one sequence across forward passes, so scopes see absolute positions.

A pre-hook on the module that owns the decoder layers calls :meth:`Tracker.begin` with that
module's arguments; the layer hooks then read :attr:`Tracker.current`, the scope's mask for the
chunk being processed (computed once per forward pass, shared by every steered layer).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .backends.base import Backend
from .backends.inputs import last_real
from .errors import ScopeError
from .scopes import All, Chunk, Mask, Scope

_NOT_STARTED = object()


class Tracker:
    def __init__(self, scope: Scope, backend: Backend) -> None:
        self.scope = scope
        self.backend = backend
        self.prompt_len = 0
        self.prompt_last: Tensor | None = None
        self.history: Tensor | None = None  # (B, L) token ids of the current sequence
        self.current: Mask | object = _NOT_STARTED
        self.chunk: Chunk | None = None  # the forward pass in progress
        self.mask2d: Tensor | None = None  # its (B, past + length) attention mask, if given
        self.fresh = False  # did this pass start a new sequence (the prompt)?
        self.sequence = 0  # counts sequences: per-sequence state elsewhere (the gate) resets when it moves

    def begin(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        bound = self.backend.bind_inputs(module, args, kwargs)
        ids = bound.get("input_ids")
        ids = ids if isinstance(ids, Tensor) and ids.ndim == 2 else None
        embeds = bound.get("inputs_embeds")
        ref = ids if ids is not None else embeds
        if not isinstance(ref, Tensor):
            raise ScopeError("steer: the forward pass got neither input_ids nor inputs_embeds.")
        batch, length = ref.shape[0], ref.shape[1]
        mask2d = bound.get("attention_mask")
        mask2d = mask2d if isinstance(mask2d, Tensor) and mask2d.ndim == 2 else None
        past = self.backend.past_length(bound)
        if past is None:
            past = mask2d.shape[1] - length if mask2d is not None else 0

        self.fresh = past == 0 and not self._extends(ids, batch)
        if self.fresh:
            self._new_sequence(length, batch, mask2d, ref.device)
        elif past > 0 and self.prompt_last is None:
            # A continuation of a sequence prefilled outside this block: what is cached is prompt.
            self._new_sequence(past, batch, None, ref.device)
            self.history = None
        if ids is not None:
            if past == 0:
                self.history = ids
            elif self.history is not None and self.history.shape[1] == past and self.history.shape[0] == batch:
                self.history = torch.cat([self.history, ids.to(self.history.device)], dim=1)
            else:
                self.history = None  # cache from elsewhere: earlier tokens unknown
        else:
            self.history = None

        chunk = Chunk(
            past=past,
            length=length,
            batch=batch,
            prompt_len=self.prompt_len,
            prompt_last=self.prompt_last,  # type: ignore[arg-type]
            history=self.history,
            device=ref.device,
        )
        self.chunk, self.mask2d = chunk, mask2d
        mask = self.scope.mask(chunk)
        if mask is not False and mask2d is not None and mask2d.shape[1] == past + length:
            real = mask2d[:, past:].bool()
            if not bool(real.all()):
                mask = real if mask is True else mask & real  # never steer padding
        self.current = mask

    def _extends(self, ids: Tensor | None, batch: int) -> bool:
        """Without a cache, does this input repeat the sequence so far and add to it (no-cache decoding)?"""
        h = self.history
        if ids is None or h is None or h.shape[0] != batch or ids.shape[1] <= h.shape[1]:
            return False
        return bool(torch.equal(ids[:, : h.shape[1]].to(h.device), h))

    def _new_sequence(self, length: int, batch: int, mask2d: Tensor | None, device: torch.device) -> None:
        self.sequence += 1
        self.prompt_len = length
        if mask2d is not None and mask2d.shape[1] == length:
            # Each row's last real prompt token (right padding puts it before the pads).
            self.prompt_last = last_real(mask2d).to(device)
        else:
            self.prompt_last = torch.full((batch,), length - 1, device=device)

    def end(self, *_: Any) -> None:
        self.current = _NOT_STARTED

    def mask(self) -> Mask:
        """The mask for the forward pass in progress."""
        if self.current is _NOT_STARTED:
            if isinstance(self.scope, All):
                return True
            raise ScopeError(
                "A steered layer ran outside a forward pass of the model it was attached to, so its "
                "token positions are unknown. Call the model itself (or use scope='all')."
            )
        return self.current  # type: ignore[return-value]
