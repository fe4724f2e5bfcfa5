"""What every backend adapter provides: :class:`ModelInfo` and the :class:`Backend` contract.

An adapter is a module (``hf``, ``lens``, ``nnsight``) with these names; :func:`steering.backends.backend_for`
returns one, typed as :class:`Backend`, so the rest of the library never branches on the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    name: str  # hub id or local path, "" when unknown
    revision: str | None
    hidden_size: int
    n_layers: int
    architecture: str
    model_type: str | None = None  # config.model_type, e.g. "llama" (GGUF model hints)
    max_positions: int | None = None  # the longest sequence the model takes (its position table), if known


class Backend(Protocol):
    """The functions every adapter module defines (see ``backends/README.md``)."""

    NAME: str
    REMOTE: bool  # True: the adapter is also a RemoteBackend (extract(..., remote=) works)

    def layers(self, model: Any, override: str | None = None) -> list[nn.Module]: ...

    def inputs_module(self, model: Any, override: str | None = None) -> nn.Module: ...

    def info(self, model: Any, override: str | None = None) -> ModelInfo: ...

    def basis(self, model: Any) -> str: ...

    def fingerprint(self, model: Any) -> str | None: ...

    def run(self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None: ...

    def device(self, model: Any) -> torch.device: ...

    def unwrap(self, model: Any) -> nn.Module: ...

    def forward(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        cache: Any = None,
    ) -> tuple[torch.Tensor, Any]: ...

    def bind_inputs(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]: ...

    def past_length(self, bound: dict[str, Any]) -> int | None: ...

    def prepare(self, model: Any) -> None: ...


class RemoteBackend(Backend, Protocol):
    """An adapter whose models can run elsewhere: reads are written inside the runtime's own trace."""

    def read_remote(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        layers: list[int],
        idx: torch.Tensor,
        weights: torch.Tensor,
        remote: bool | str,
        override: str | None = None,
    ) -> list[torch.Tensor]: ...
