"""One name per activation site, used in tensor names, registry keys and file paths.

Layer ``L`` means the output of decoder layer ``L`` (0-based): the residual stream after that
block, TransformerLens's ``blocks.{L}.hook_resid_post`` and Hugging Face's
``output_hidden_states[L + 1]`` (except the last layer, whose HF hidden state has the final norm
applied).

Examples:
    >>> site_name(12)
    'blocks.12.hook_resid_post'
    >>> parse_site(site_name(12))
    12
"""

from __future__ import annotations

import re

from .errors import LayerNotFoundError, UnknownOptionError

POINT = "hook_resid_post"
LAYER_CONVENTION = "decoder_layer_output"  # layer L = output of block L = hidden_states[L + 1]
_SITE = re.compile(r"blocks\.(\d+)\.hook_resid_post")


def site_name(layer: int) -> str:
    """The canonical name of the residual stream after decoder layer ``layer``."""
    if layer < 0:
        raise LayerNotFoundError(f"site_name needs a non-negative layer index, got {layer}.")
    return f"blocks.{layer}.{POINT}"


def parse_site(name: str) -> int:
    """The layer index of a canonical site name (the inverse of :func:`site_name`)."""
    m = _SITE.fullmatch(name)
    if m is None:
        raise UnknownOptionError(
            f"{name!r} is not a site name; expected 'blocks.<layer>.{POINT}', e.g. {site_name(0)!r}."
        )
    return int(m.group(1))


def normalize_layers(layers: int | list[int] | tuple[int, ...], n_layers: int) -> list[int]:
    """Resolve Python-style (possibly negative) layer indices against ``n_layers``; keep order, drop repeats.

    Examples:
        >>> normalize_layers([-1, 0, 3], n_layers=4)
        [3, 0]
    """
    if isinstance(layers, int):
        layers = [layers]
    if not layers:
        raise LayerNotFoundError("No layers given: pass e.g. layers=[10] or layers=[-4, -2].")
    out: list[int] = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise LayerNotFoundError(f"Layer indices must be ints, got {layer!r}.")
        if not -n_layers <= layer < n_layers:
            raise LayerNotFoundError(
                f"Layer {layer} is out of range for a model with {n_layers} decoder layers; "
                f"use 0..{n_layers - 1} (or -{n_layers}..-1 from the end)."
            )
        resolved = layer % n_layers
        if resolved not in out:
            out.append(resolved)
    return out
