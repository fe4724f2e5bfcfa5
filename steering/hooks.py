"""The only place this library registers and removes PyTorch hooks.

Hooks live exactly as long as an :func:`attached` block (or an :class:`Attachment` until its
``remove()``): each handle is recorded the moment it is registered, so a failure partway through
registration, an exception in the body, or an exception raised by a hook itself all leave the model
with the hooks it had before. Nested blocks remove only their own hooks (``RemovableHandle.remove``
is idempotent).

Hooks of an :func:`attached` block act only in the thread (and ``contextvars`` context, so also the
asyncio task) that entered it: another thread calling the same model meanwhile runs it untouched.
To run a steered call in a worker thread, submit it through the block's context:
``pool.submit(contextvars.copy_context().run, model.generate, ...)``. An :class:`Attachment` made
with ``context_local=False`` (``steering.attach``) acts in every thread.
"""

from __future__ import annotations

import functools
import itertools
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

# The attached blocks active in the current context (thread / asyncio task), by a key never reused
# (id() of a dead object is: a context copied inside an ended block would match a later block).
_ACTIVE: ContextVar[frozenset[int]] = ContextVar("steering_active_blocks", default=frozenset())
_KEYS = itertools.count(1)
# Every live attachment, by each module it hooks: detach_all(model) finds them even when the handle is lost.
_LIVE: weakref.WeakKeyDictionary[nn.Module, list[Attachment]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Hook:
    """One hook to attach: ``kind="forward"`` runs after ``module.forward``, ``"pre"`` before it."""

    module: nn.Module
    fn: Callable[..., Any]
    kind: Literal["forward", "pre"] = "forward"
    with_kwargs: bool = False
    prepend: bool = False  # run before the module's existing hooks


def _only_in(key: int, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if key not in _ACTIVE.get():
            return None  # another thread's (or task's) forward pass: leave it alone
        return fn(*args, **kwargs)

    return run


class Attachment:
    """Hooks attached until :meth:`remove` (idempotent); also a context manager that removes them on exit."""

    def __init__(self, hooks: Sequence[Hook], *, key: int | None = None) -> None:
        self._handles: list[Any] = []
        self._modules: list[weakref.ref[nn.Module]] = []
        try:
            for h in hooks:
                fn = h.fn if key is None else _only_in(key, h.fn)
                if h.kind == "forward":
                    handle = h.module.register_forward_hook(fn, with_kwargs=h.with_kwargs, prepend=h.prepend)
                elif h.kind == "pre":
                    handle = h.module.register_forward_pre_hook(fn, with_kwargs=h.with_kwargs, prepend=h.prepend)
                else:
                    raise ValueError(f"Hook.kind must be 'forward' or 'pre', got {h.kind!r}.")
                self._handles.append(handle)
                _LIVE.setdefault(h.module, []).append(self)
                self._modules.append(weakref.ref(h.module))
        except BaseException:
            self.remove()
            raise

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def remove(self) -> None:
        """Detach every hook this attachment registered (a second call does nothing)."""
        while self._handles:
            self._handles.pop().remove()
        while self._modules:
            module = self._modules.pop()()
            mine = _LIVE.get(module) if module is not None else None
            if mine is not None and self in mine:
                mine.remove(self)

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


@contextmanager
def attached(hooks: Sequence[Hook]) -> Iterator[Attachment]:
    """Attach ``hooks`` for the duration of the block, in this context only; always remove them afterwards."""
    key = next(_KEYS)
    token = _ACTIVE.set(_ACTIVE.get() | {key})
    attachment = None
    try:
        attachment = Attachment(hooks, key=key)
        yield attachment
    finally:
        if attachment is not None:
            attachment.remove()
        try:
            _ACTIVE.reset(token)
        except ValueError:  # left in another context than it was entered in
            _ACTIVE.set(_ACTIVE.get() - {key})


def detach_all(model: nn.Module) -> int:
    """Remove every hook this library attached to ``model`` or its submodules (also those of handles
    that were dropped without ``remove()``); returns how many attachments went."""
    gone = {id(a): a for m in model.modules() for a in list(_LIVE.get(m, []))}
    for attachment in gone.values():
        attachment.remove()
    return len(gone)


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
