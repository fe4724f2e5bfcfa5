"""The only place this library registers and removes PyTorch hooks.

Hooks live exactly as long as an :func:`attached` block: each handle is recorded the moment it
is registered, so a failure partway through registration, an exception in the body, or an
exception raised by a hook itself all leave the model with the hooks it had before. Nested
blocks remove only their own hooks (``RemovableHandle.remove`` is idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn


@dataclass(frozen=True)
class Hook:
    """One hook to attach: ``kind="forward"`` runs after ``module.forward``, ``"pre"`` before it."""

    module: nn.Module
    fn: Callable[..., Any]
    kind: Literal["forward", "pre"] = "forward"
    with_kwargs: bool = False
    prepend: bool = False  # run before the module's existing hooks


@contextmanager
def attached(hooks: Sequence[Hook]) -> Iterator[None]:
    """Attach ``hooks`` for the duration of the block, and always remove them afterwards."""
    handles = []
    try:
        for h in hooks:
            if h.kind == "forward":
                handle = h.module.register_forward_hook(h.fn, with_kwargs=h.with_kwargs, prepend=h.prepend)
            elif h.kind == "pre":
                handle = h.module.register_forward_pre_hook(h.fn, with_kwargs=h.with_kwargs, prepend=h.prepend)
            else:
                raise ValueError(f"Hook.kind must be 'forward' or 'pre', got {h.kind!r}.")
            handles.append(handle)
        yield
    finally:
        for handle in reversed(handles):
            handle.remove()


def count_hooks(model: nn.Module) -> int:
    """How many forward and forward-pre hooks are attached anywhere in ``model`` (for hygiene checks)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def output_tensor(output: Any) -> Any:
    """The hidden states in a decoder layer's output (a tensor in transformers 5, a tuple before)."""
    return output[0] if isinstance(output, tuple) else output


def replace_output(output: Any, hidden: Any) -> Any:
    """``output`` with its hidden states replaced by ``hidden``, keeping the container type."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


class StopForward(Exception):
    """Raised by a read hook once the deepest layer it needs has run, to skip the layers above."""
