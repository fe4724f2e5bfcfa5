"""``steer`` and ``attach``: apply a SteeringVector to a model's residual stream.

``with steer(model, vec):`` steers inside the block, in the calling thread only; ``attach(model, vec)``
returns a handle that steers every call until ``handle.remove()`` (a notebook or server habit). Both
give a :class:`Steering` handle saying what is applied: without a ``strength`` or ``scope``, the
vector's ``recommended_strength`` / ``recommended_scope`` (set when it was saved to a registry) are
used, else 1.0 and ``"all"``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from .backends import Backend, ModelInfo, backend_for
from .conditions.gate import Gate
from .conditions.rules import Rule
from .errors import InvalidArgumentError, ShapeMismatchError, UnknownOptionError
from .handle import Steering
from .hooks import Attachment, Hook, attached, output_tensor, replace_output
from .scope_json import scope_from_json
from .scopes import ScopeSpec, as_scope
from .tracker import Tracker
from .vector import EPS, SteeringVector

log = logging.getLogger("steering")

# An operator maps (hidden (B, T, D), direction (D,), strength) to the steered hidden states.
Operator = Callable[[Tensor, Tensor, float], Tensor]


def _add(h: Tensor, v: Tensor, strength: float) -> Tensor:
    return h + strength * v


def _ablate(h: Tensor, v: Tensor, strength: float) -> Tensor:
    """Remove ``strength`` (1 = all) of the component along ``v``."""
    u = v / v.norm().clamp_min(EPS)
    return h - strength * (h @ u)[..., None] * u


def _clamp(h: Tensor, v: Tensor, strength: float) -> Tensor:
    """Set the component along ``v`` to ``strength * |v|``."""
    norm = v.norm().clamp_min(EPS)
    u = v / norm
    return h + (strength * norm - h @ u)[..., None] * u


OPERATORS: dict[str, Operator] = {"add": _add, "ablate": _ablate, "clamp": _clamp}


class FingerprintWarning(UserWarning):
    """The vector was made on a model with other weights (e.g. a fine-tune of the same base)."""


def check_compatible(
    vector: SteeringVector, info: ModelInfo, basis: str, fingerprint: str | None, strict: bool
) -> None:
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
            stacklevel=5,
        )


def _resolve(vector: SteeringVector, strength: Any, scope: ScopeSpec | None) -> tuple[float, ScopeSpec, dict[str, str]]:
    chosen = {"strength": "argument", "scope": "argument"}
    if strength is None:
        rec = vector.metadata.get("recommended_strength")
        strength, chosen["strength"] = (rec, "recommended") if rec is not None else (1.0, "default")
    if scope is None:
        rec = vector.metadata.get("recommended_scope")
        scope, chosen["scope"] = (scope_from_json(rec), "recommended") if rec is not None else ("all", "default")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise InvalidArgumentError(f"strength must be a finite number, got {strength!r}.")
    for d in vector.directions.values():
        if not bool(torch.isfinite(float(strength) * d.float()).all()):
            raise InvalidArgumentError(
                f"strength={strength!r} times the vector overflows float32; use a strength of the order of the "
                "residual norm (steering.calibrate finds one)."
            )
    return float(strength), scope, chosen


def _gate(when: Any, tracker: Tracker, tokenizer: Any, info: ModelInfo) -> Gate | None:
    if when is None:
        return None
    if not isinstance(when, Rule):
        raise InvalidArgumentError(f"when= needs a Condition (or a rule of them), got {type(when).__name__}.")
    for leaf in when.leaves():
        if leaf.direction.shape[0] != info.hidden_size or not 0 <= leaf.layer < info.n_layers:
            raise ShapeMismatchError(
                f"The condition reads layer {leaf.layer} with width {leaf.direction.shape[0]}; this model has "
                f"layers 0..{info.n_layers - 1} of width {info.hidden_size}."
            )
    return Gate(when, tracker, tokenizer)


def _check_norm_input(steered: Tensor, layer: int, s: float) -> None:
    """Refuse a steered stream whose squares overflow float32: the next norm would divide by ``inf``,
    every logit would become 0 and generation would silently emit one token over and over."""
    if not bool(torch.isfinite(steered.float().pow(2).mean(-1)).all()):
        peak = float(steered.detach().float().abs().amax())
        raise InvalidArgumentError(
            f"strength={s:g} makes layer {layer}'s residual stream reach {peak:.3g}; its square overflows float32 "
            "in the next normalisation, so the model would output nothing meaningful. Use a strength of the order "
            "of the residual norm (steering.calibrate.strength_for_norm(vec, 0.5) is a typical start)."
        )


def _writer(
    vector: SteeringVector, layer: int, op: Operator, s: float, tracker: Tracker, gate: Gate | None
) -> Callable[..., Any]:
    direction = vector.directions[layer]
    cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}

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
        key = (h.device, h.dtype)
        v = cache.get(key)
        first = v is None
        if v is None:  # moved once per device and dtype (models split with device_map work)
            v = direction.to(device=h.device, dtype=h.dtype)
            v = s * v if op is _add else v  # "add": one fused add per call
            if not bool(torch.isfinite(v).all()):
                raise InvalidArgumentError(
                    f"strength={s:g} times the vector at layer {layer} overflows {h.dtype}; use a smaller strength."
                )
            cache[key] = v
        steered = h + v if op is _add else op(h, v, s)
        if first:  # once per block: the next layer's norm squares the stream (RMSNorm's mean of x**2)
            _check_norm_input(steered, layer, s)
        if mask is not True:
            steered = torch.where(mask.to(h.device)[..., None], steered, h)
        return replace_output(output, steered)

    return hook


def _plan(
    model: Any,
    vector: Any,
    strength: Any,
    scope: ScopeSpec | None,
    operator: str,
    tokenizer: Any,
    layer_path: str | None,
    strict: bool,
    when: Rule | None,
) -> tuple[Steering, list[Hook]]:
    """Check everything, then the hooks to attach and the handle that describes them."""
    if not isinstance(vector, SteeringVector):
        raise InvalidArgumentError(f"steer needs a SteeringVector, got {type(vector).__name__}.")
    s, scope, chosen = _resolve(vector, strength, scope)
    if operator not in OPERATORS:
        raise UnknownOptionError(f"Unknown operator {operator!r}; expected one of {list(OPERATORS)}.")
    op = OPERATORS[operator]
    backend: Backend = backend_for(model)
    info = backend.info(model, layer_path)
    check_compatible(vector, info, backend.basis(model), backend.fingerprint(model) if strict else None, strict)
    tracker = Tracker(as_scope(scope, tokenizer), backend)
    modules = backend.layers(model, layer_path)
    gate = _gate(when, tracker, tokenizer, info)
    owner = backend.inputs_module(model, layer_path)
    hooks = [Hook(owner, tracker.begin, kind="pre", with_kwargs=True), Hook(owner, tracker.end)]
    # Prepended, so every other observer of the layer (transformers' output_hidden_states
    # recorder, user hooks, extraction) sees the steered output. Nested blocks: innermost first.
    hooks += [Hook(modules[la], _writer(vector, la, op, s, tracker, gate), prepend=True) for la in vector.layers]
    if gate is not None:  # registered last and prepended: they read the layer before any write
        hooks += [Hook(modules[leaf.layer], gate.reader(leaf), prepend=True) for leaf in gate.rule.leaves()]
    handle = Steering(vector, s, scope, operator, chosen)
    if "recommended" in chosen.values():
        log.info("steering with %r", handle)
    return handle, hooks


def every_position_hooks(
    model: Any, vector: SteeringVector, strength: float, *, layer_path: str | None = None
) -> list[Hook]:
    """The write hooks of ``scope="all"`` (no position tracking), for runtimes that call the decoder layers
    themselves with flattened, continuously batched inputs (vLLM): every position of every sequence is
    steered, so nothing about positions needs to be known."""
    s, _, _ = _resolve(vector, strength, "all")
    backend: Backend = backend_for(model)
    info = backend.info(model, layer_path)
    check_compatible(vector, info, backend.basis(model), None, strict=False)
    tracker = Tracker(as_scope("all"), backend)  # never started: its mask is "every position"
    modules = backend.layers(model, layer_path)
    return [Hook(modules[la], _writer(vector, la, _add, s, tracker, None), prepend=True) for la in vector.layers]


@contextmanager
def steer(
    model: Any,
    vector: SteeringVector,
    strength: float | None = None,
    *,
    scope: ScopeSpec | None = None,
    operator: str = "add",
    tokenizer: Any = None,
    layer_path: str | None = None,
    strict: bool = True,
    when: Rule | None = None,
) -> Iterator[Steering]:
    """Steer ``model`` with ``vector`` inside the block (this thread only); leaving it restores the model exactly.

    ``operator="add"`` adds ``strength * direction`` at every steered position of each of the
    vector's layers; ``"ablate"`` removes ``strength`` (1 = all) of the component along it;
    ``"clamp"`` sets that component to ``strength * |direction|``. ``strength=None`` uses the vector's
    ``recommended_strength`` (else 1.0); ``scope=None`` its ``recommended_scope`` (else ``"all"``).
    ``scope`` picks positions (see :mod:`steering.scopes`); markers given as strings need
    ``tokenizer``. Blocks nest and compose. ``strict=False`` skips the layer-count, basis and
    fingerprint checks (never the width check). ``when`` (a :class:`~steering.conditions.Condition`
    or a rule of them) limits steering to the rows for which it has fired.
    """
    handle, hooks = _plan(model, vector, strength, scope, operator, tokenizer, layer_path, strict, when)
    with attached(hooks) as attachment:
        handle._attachment = attachment
        yield handle


def attach(
    model: Any,
    vector: SteeringVector,
    strength: float | None = None,
    *,
    scope: ScopeSpec | None = None,
    operator: str = "add",
    tokenizer: Any = None,
    layer_path: str | None = None,
    strict: bool = True,
    when: Rule | None = None,
) -> Steering:
    """Steer every call of ``model`` (in any thread) until ``handle.remove()``; the handle is also a context manager.

    The same arguments as :func:`steer`. One sequence at a time: positions are tracked per forward
    pass, so do not run two steered calls of one model concurrently.

    Examples:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> config = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        ...                      num_attention_heads=2, num_key_value_heads=2, vocab_size=64)
        >>> model = LlamaForCausalLM(config)
        >>> vec = SteeringVector({1: torch.zeros(16)}, {"recommended_strength": 2.0})
        >>> h = attach(model, vec)
        >>> h
        Steering(layers=[1], strength=2 (recommended), scope='all' (default), operator='add', active=True)
        >>> h.remove()
        >>> h.active
        False
    """
    handle, hooks = _plan(model, vector, strength, scope, operator, tokenizer, layer_path, strict, when)
    handle._attachment = Attachment(hooks)
    return handle
