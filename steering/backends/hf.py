"""Adapter for Hugging Face ``transformers`` decoder-only models (plain torch hooks).

Decoder layers are found by a template guess over module paths, then by the decoder module's
own layer list, then by the shallowest ``nn.ModuleList`` whose length is the configured number of
layers; ``layer_path="model.layers"`` overrides all of it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import LayerNotFoundError
from .base import ModelInfo
from .inputs import position_ids

NAME = "hf"
REMOTE = False  # a local model: extract(..., remote=) is refused
FINGERPRINT_SAMPLE = 256  # weights hashed per sampled tensor (enough to tell fine-tunes apart)

# Ordered guesses; the first that resolves to an nn.ModuleList wins.
LAYER_TEMPLATES = (
    "model.layers",  # Llama, Qwen2/3, Mistral, Gemma 2/3, Phi-3, most modern models
    "model.language_model.layers",  # multimodal wrappers around a text model
    "transformer.h",  # GPT-2, GPT-J, Bloom
    "gpt_neox.layers",  # GPT-NeoX, Pythia
    "model.decoder.layers",  # OPT
    "transformer.layers",
    "transformer.blocks",
    "layers",
    "h",
)


def _get(root: nn.Module, path: str) -> Any:
    obj: Any = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _n_layers_from_config(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        n = getattr(config, key, None)
        if isinstance(n, int):
            return n
    return None


def layer_path(model: nn.Module, override: str | None = None) -> str:
    """The dotted path of the model's decoder-layer list."""
    if override is not None:
        if not isinstance(_get(model, override), nn.ModuleList):
            raise LayerNotFoundError(
                f"layer_path={override!r} does not name an nn.ModuleList in {type(model).__name__}. "
                "Pass the dotted path of the decoder-layer list, e.g. 'model.layers' or 'transformer.h'."
            )
        return override
    for path in LAYER_TEMPLATES:
        if isinstance(_get(model, path), nn.ModuleList):
            return path
    n = _n_layers_from_config(model)
    candidates = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.ModuleList) and len(m) > 0 and (n is None or len(m) == n)
    ]
    if candidates:
        return min(candidates, key=lambda name: name.count("."))
    raise LayerNotFoundError(
        f"Could not find the decoder layers of {type(model).__name__} (tried {list(LAYER_TEMPLATES)} and "
        f"every nn.ModuleList of length {n}). Pass layer_path='<dotted path to the layer list>'."
    )


def layers(model: nn.Module, override: str | None = None) -> list[nn.Module]:
    """The decoder layers, in order; layer ``L``'s output is the site ``blocks.L.hook_resid_post``."""
    return list(_get(model, layer_path(model, override)))


def inputs_module(model: nn.Module, override: str | None = None) -> nn.Module:
    """The module that owns the layer list: its forward sees ``input_ids``, the mask and the cache."""
    path = layer_path(model, override)
    parent = path.rpartition(".")[0]
    return model if not parent else _get(model, parent)


_POSITION_KEYS = ("max_position_embeddings", "n_positions", "n_ctx")  # the config's context length, by family


def info(model: nn.Module, override: str | None = None) -> ModelInfo:
    config: Any = getattr(model, "config", None)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = getattr(text, "hidden_size", None) or getattr(text, "n_embd", None)
    if not isinstance(hidden, int):
        emb = _input_embeddings(model)
        hidden = emb.weight.shape[1] if emb is not None else None
    if not isinstance(hidden, int):
        raise LayerNotFoundError(f"Could not read the hidden size of {type(model).__name__} from its config.")
    return ModelInfo(
        name=str(getattr(config, "_name_or_path", "") or getattr(model, "name_or_path", "") or ""),
        revision=getattr(config, "_commit_hash", None),
        hidden_size=hidden,
        n_layers=len(layers(model, override)),
        architecture=type(model).__name__,
        model_type=getattr(text, "model_type", None),
        max_positions=next(
            (
                v
                for k in ("max_position_embeddings", "n_positions", "n_ctx")
                if isinstance(v := getattr(text, k, None), int)
            ),
            None,
        ),
    )


def _input_embeddings(model: nn.Module) -> Any:
    get = getattr(model, "get_input_embeddings", None)
    return get() if callable(get) else None


def _accepts(model: nn.Module, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


def run(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
    """One forward pass for extraction; absolute positions come from the mask, so padding is inert."""
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
    if _accepts(model, "position_ids"):
        kwargs["position_ids"] = position_ids(attention_mask)
    if _accepts(model, "use_cache"):
        kwargs["use_cache"] = False
    model(**kwargs)


def forward(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    positions: torch.Tensor | None = None,
    cache: Any = None,
) -> tuple[torch.Tensor, Any]:
    """``(logits (B, T, V), cache)`` of one cached forward pass (``cache=None`` starts a sequence)."""
    kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": True}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    if positions is not None:
        kwargs["position_ids"] = positions
    if cache is not None:
        kwargs[cache_kwarg(model)] = cache
    out = model(**kwargs)
    return out.logits, output_cache(out)


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers model that runs (for a plain HF model, itself)."""
    return model


def prepare(model: nn.Module) -> None:
    """Nothing to set up for plain transformers models."""


def device(model: nn.Module) -> torch.device:
    """Where the model's inputs go (the input embedding's device)."""
    emb = _input_embeddings(model)
    if emb is not None:
        return emb.weight.device
    return next(model.parameters()).device


_SIGNATURES: dict[type, inspect.Signature] = {}


def bind_inputs(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Name the arguments of a call to ``module.forward`` (pre-hook args and kwargs, any order)."""
    if not args:  # the common case: transformers calls its sub-modules with keywords only
        extra = kwargs.get("kwargs")
        return {**kwargs, **extra} if isinstance(extra, dict) else kwargs
    sig = _SIGNATURES.get(type(module))
    if sig is None:
        sig = _SIGNATURES[type(module)] = inspect.signature(module.forward)
    try:
        bound = sig.bind_partial(*args, **kwargs).arguments
    except TypeError:
        bound = dict(kwargs)
    extra = bound.pop("kwargs", None)
    if isinstance(extra, dict):
        bound.update(extra)
    return bound


def past_length(bound: dict[str, Any]) -> int | None:
    """How many positions the KV cache already holds before this call (``None``: no cache given)."""
    for key in ("cache", "past_key_values", "layer_past"):
        cache = bound.get(key)
        if cache is not None and hasattr(cache, "get_seq_length"):
            return int(cache.get_seq_length())
    position = bound.get("cache_position")
    if isinstance(position, torch.Tensor) and position.numel() > 0:
        return int(position.reshape(-1)[0])
    return None


def basis(model: nn.Module) -> str:
    """The residual-stream basis vectors live in: the model's own weights, unchanged."""
    return "hf"


_VOLATILE_CONFIG_KEYS = {
    "_name_or_path",
    "transformers_version",
    "_commit_hash",
    "torch_dtype",
    "dtype",
    "_attn_implementation",
    "_attn_implementation_autoset",
    "use_cache",
}


def fingerprint(model: nn.Module, name: Callable[[str], str] = str) -> str | None:
    """A short hash of the architecture config and a sample of the weights.

    The sample is rounded to bfloat16, so a dtype conversion keeps the fingerprint while a
    fine-tune (or another model) changes it. ``name`` maps parameter names to Hugging Face's (for
    wrappers that rename them), so every backend gives the same fingerprint for the same weights.
    """
    import hashlib
    import json

    h = hashlib.sha256()
    config: Any = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        cfg = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
        h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    named = dict(model.named_parameters())
    emb = _input_embeddings(model)
    picks = [next((n for n, p in named.items() if p is emb.weight), None)] if emb is not None else []
    picks += sorted(named, key=name)[-2:]
    for n in picks:
        value = _weight_value(model, n, named[n]) if n is not None else None
        if value is None:
            return None  # weights not readable here (e.g. offloaded without a weights map)
        sample = value.detach().reshape(-1)[:FINGERPRINT_SAMPLE].to("cpu", torch.bfloat16).view(torch.int16)
        h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]


def _weight_value(model: nn.Module, name: str, param: torch.Tensor) -> torch.Tensor | None:
    """A parameter's values, also when accelerate offloaded it (a meta tensor + a weights map)."""
    if param.device.type != "meta":
        return param
    parts = name.split(".")
    for i in range(len(parts) - 1, -1, -1):  # the nearest module with an accelerate hook that holds it
        module = model.get_submodule(".".join(parts[:i])) if i else model
        weights = getattr(getattr(module, "_hf_hook", None), "weights_map", None)
        key = ".".join(parts[i:])
        if weights is not None and key in weights:
            return weights[key]
    return None


def cache_kwarg(model: nn.Module) -> str:
    """The forward argument that takes a KV cache: ``cache`` (transformers 5) or ``past_key_values``."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def output_cache(output: Any) -> Any:
    """The KV cache a forward pass returned, under either name."""
    return getattr(output, "cache", None) or getattr(output, "past_key_values", None)
