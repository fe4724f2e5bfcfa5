"""``steer``: apply a SteeringVector to a model's residual stream for the duration of a ``with`` block."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from . import backends
from .conditions import Gate, Rule
from .errors import ShapeMismatchError, UnknownOptionError
from .hooks import Hook, attached, output_tensor, replace_output
from .scopes import Scope, as_scope
from .tracker import Tracker
from .vector import SteeringVector

# An operator maps (hidden (B, T, D), direction (D,), strength) to the steered hidden states.
Operator = Callable[[Tensor, Tensor, float], Tensor]


def _add(h: Tensor, v: Tensor, strength: float) -> Tensor:
    return h + strength * v


def _ablate(h: Tensor, v: Tensor, strength: float) -> Tensor:
    """Remove ``strength`` (1 = all) of the component along ``v``."""
    unit = v / v.norm().clamp_min(1e-12)
    return h - strength * (h @ unit)[..., None] * unit


def _clamp(h: Tensor, v: Tensor, strength: float) -> Tensor:
    """Set the component along ``v`` to ``strength * |v|``."""
    norm = v.norm().clamp_min(1e-12)
    unit = v / norm
    return h + (strength * norm - h @ unit)[..., None] * unit


OPERATORS: dict[str, Operator] = {"add": _add, "ablate": _ablate, "clamp": _clamp}


class FingerprintWarning(UserWarning):
    """The vector was made on a model with other weights (e.g. a fine-tune of the same base)."""


def check_compatible(vector: SteeringVector, info: Any, basis: str, fingerprint: str | None, strict: bool) -> None:
    """Refuse a vector whose width, layers or basis do not fit the model; warn on other weights.

    ``strict=False`` keeps only the width check (which no override can make safe).
    """
    if vector.hidden_size != info.hidden_size:
        raise ShapeMismatchError(
            f"The vector has width {vector.hidden_size} but the model's hidden size is {info.hidden_size}: "
            f"it was made for another model ({vector.metadata.get('model') or 'unknown'}). Extract one on this model."
        )
    too_deep = [la for la in vector.layers if la >= info.n_layers]
    if too_deep:
        raise ShapeMismatchError(f"The vector has layers {too_deep}; this model has only 0..{info.n_layers - 1}.")
    if not strict:
        return
    n = vector.metadata.get("n_layers")
    if n is not None and n != info.n_layers:
        raise ShapeMismatchError(
            f"The vector was made for a model with {n} layers; this one has {info.n_layers}. "
            "Extract a vector on this model, or pass strict=False to apply it anyway."
        )
    vb = vector.metadata.get("basis")
    if vb is not None and vb != basis:
        raise ShapeMismatchError(
            f"The vector lives in the {vb!r} residual basis but this model uses {basis!r} "
            "(e.g. TransformerLens with folded/centred weights). Extract it on a model in the same basis."
        )
    made_on = vector.metadata.get("fingerprint")
    if made_on and fingerprint and made_on != fingerprint:
        warnings.warn(
            f"The vector was extracted on a model with other weights (fingerprint {made_on}, this model "
            f"{fingerprint}; {vector.metadata.get('model') or 'unknown model'}). A fine-tune of the same base "
            "often still works; check the effect, or pass strict=False to silence this.",
            FingerprintWarning,
            stacklevel=4,
        )


def _gate(when: Any, tracker: Tracker, tokenizer: Any, info: Any) -> Gate | None:
    if when is None:
        return None
    if not isinstance(when, Rule):
        raise UnknownOptionError(f"when= needs a Condition (or a rule of them), got {type(when).__name__}.")
    for leaf in when.leaves():
        if leaf.direction.shape[0] != info.hidden_size or not 0 <= leaf.layer < info.n_layers:
            raise ShapeMismatchError(
                f"The condition reads layer {leaf.layer} with width {leaf.direction.shape[0]}; this model has "
                f"layers 0..{info.n_layers - 1} of width {info.hidden_size}."
            )
    return Gate(when, tracker, tokenizer)


@contextmanager
def steer(
    model: Any,
    vector: SteeringVector,
    strength: float = 1.0,
    *,
    scope: str | Scope | tuple[Any, ...] = "all",
    operator: str = "add",
    tokenizer: Any = None,
    layer_path: str | None = None,
    strict: bool = True,
    when: Rule | None = None,
) -> Iterator[None]:
    """Steer ``model`` with ``vector`` inside the block; leaving it restores the model exactly.

    ``operator="add"`` adds ``strength * direction`` at every steered position of each of the
    vector's layers; ``"ablate"`` removes ``strength`` (1 = all) of the component along it;
    ``"clamp"`` sets that component to ``strength * |direction|``. ``scope`` picks positions (see
    :mod:`steering.scopes`); markers given as strings need ``tokenizer``. Blocks nest and compose.
    ``strict=False`` skips the layer-count, basis and fingerprint checks (never the width check).
    ``when`` (a :class:`~steering.conditions.Condition` or a rule of them) limits steering to the rows
    for which it has fired (see :mod:`steering.conditions`).
    """
    if not isinstance(vector, SteeringVector):
        raise UnknownOptionError(f"steer needs a SteeringVector, got {type(vector).__name__}.")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise UnknownOptionError(f"strength must be a finite number, got {strength!r}.")
    if operator not in OPERATORS:
        raise UnknownOptionError(f"Unknown operator {operator!r}; expected one of {list(OPERATORS)}.")
    op, s = OPERATORS[operator], float(strength)
    backend = backends.backend_for(model)
    info = backend.info(model, layer_path)
    check_compatible(vector, info, backend.basis(model), backend.fingerprint(model) if strict else None, strict)
    tracker = Tracker(as_scope(scope, tokenizer), backend)
    modules = backend.layers(model, layer_path)
    gate = _gate(when, tracker, tokenizer, info)
    cache: dict[tuple[int, torch.device, torch.dtype], Tensor] = {}

    def writer(layer: int) -> Callable[..., Any]:
        direction = vector.directions[layer]

        def hook(module: Any, args: Any, output: Any) -> Any:
            mask = tracker.mask()
            if mask is False:
                return None
            h = output_tensor(output)  # (B, T, D)
            if gate is not None:
                rows = gate.rows(h.shape[0], h.device)
                if not bool(rows.any()):
                    return None
                mask = rows[:, None].expand(-1, h.shape[1]) if mask is True else mask.to(h.device) & rows[:, None]
            key = (layer, h.device, h.dtype)
            v = cache.get(key)
            if v is None:  # moved once per device and dtype (models split with device_map work)
                v = direction.to(device=h.device, dtype=h.dtype)
                v = cache[key] = s * v if op is _add else v  # "add": one fused add per call
            steered = h + v if op is _add else op(h, v, s)
            if mask is not True:
                steered = torch.where(mask.to(h.device)[..., None], steered, h)
            return replace_output(output, steered)

        return hook

    owner = backend.inputs_module(model, layer_path)
    hooks = [Hook(owner, tracker.begin, kind="pre", with_kwargs=True), Hook(owner, tracker.end)]
    # Prepended, so every other observer of the layer (transformers' output_hidden_states
    # recorder, user hooks, extraction) sees the steered output. Nested blocks: innermost first.
    hooks += [Hook(modules[layer], writer(layer), prepend=True) for layer in vector.layers]
    if gate is not None:  # registered last and prepended: they read the layer before any write
        hooks += [Hook(modules[leaf.layer], gate.reader(leaf), prepend=True) for leaf in gate.rule.leaves()]
    with attached(hooks):
        yield
