"""Steered serving: what to hand a vLLM server that steers (EasySteer's ``vllm-steer``).

Upstream vLLM has no steering (its feature requests and PRs were closed), and PyTorch hooks do not
run under CUDA graphs, so steered serving goes through a fork or plugin that adds the vector inside
the model's forward with ``enforce_eager=True``: EasySteer reads llama.cpp-style GGUF control vectors
plus a ``SteerVectorRequest`` (scale, target layers, trigger tokens/positions). :func:`export_vllm`
writes both from a :class:`SteeringVector` and a ``steer`` scope. For llama.cpp servers, the GGUF
alone is the route (``--control-vector-scaled FILE:SCALE``), which steers every position
(scope ``"all"``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from ..errors import UnknownOptionError
from ..markers import Tokens, encode_markers
from ..scopes import ScopeSpec
from ..vector import SteeringVector
from .convert import export_strength
from .gguf import export_gguf

_ALL = [-1]  # EasySteer: -1 = every token


def _triggers(scope: ScopeSpec, tokenizer: Any) -> dict[str, list[int]]:
    parts = scope if isinstance(scope, (tuple, list)) else (scope,)
    out: dict[str, list[int]] = {}

    def add(key: str, values: list[int]) -> None:
        merged = out.setdefault(key, [])
        merged.extend(v for v in values if v not in merged)

    for part in parts:
        if part == "all":
            add("prefill_trigger_tokens", _ALL)
            add("generate_trigger_tokens", _ALL)
        elif part == "prompt":
            add("prefill_trigger_tokens", _ALL)
        elif part == "generated":
            add("generate_trigger_tokens", _ALL)
        elif part == "prompt_last":
            add("prefill_trigger_positions", [-1])
        elif isinstance(part, Tokens):
            ids = encode_markers(part.markers, tokenizer, "export_vllm")
            if any(len(m) != 1 for m in ids):
                raise UnknownOptionError(
                    f"export_vllm: marker(s) {part.markers} span several tokens; vLLM trigger tokens are single "
                    "token ids. Use single-token markers."
                )
            add("prefill_trigger_tokens", [m[0] for m in ids])
            add("generate_trigger_tokens", [m[0] for m in ids])
        else:
            raise UnknownOptionError(
                f"export_vllm cannot express scope {part!r} as vLLM trigger tokens/positions; supported: "
                "'all', 'prompt', 'generated', 'prompt_last', Tokens(...) of single tokens, and tuples of them."
            )
    if _ALL[0] in out.get("prefill_trigger_tokens", []):
        out["prefill_trigger_tokens"] = _ALL
    if _ALL[0] in out.get("generate_trigger_tokens", []):
        out["generate_trigger_tokens"] = _ALL
    return out


def export_vllm(
    vector: SteeringVector,
    folder: str | os.PathLike[str],
    name: str,
    *,
    strength: float = 1.0,
    scope: ScopeSpec = "all",
    tokenizer: Any = None,
) -> dict[str, Any]:
    """Write ``<name>.gguf`` and ``<name>.request.json`` (the ``SteerVectorRequest`` keyword arguments).

    The GGUF holds the unscaled directions; ``scale`` in the request is ``strength``. Returns the request.
    """
    folder = Path(folder)
    strength = export_strength(vector, strength, "vLLM")
    triggers = _triggers(scope, tokenizer)  # a scope EasySteer cannot express is refused before any file
    # The GGUF is only EasySteer's container for the directions; the request's triggers say where they act.
    gguf_path = export_gguf(vector, folder / f"{name}.gguf", scope="all")
    request: dict[str, Any] = {
        "steer_vector_name": name,
        "steer_vector_int_id": 1,
        "steer_vector_local_path": str(gguf_path.resolve()),
        "scale": float(strength),
        "target_layers": vector.layers,
        "algorithm": "direct",
        "normalize": False,
        **triggers,
    }
    text = json.dumps(request, indent=2, allow_nan=False) + "\n"
    try:
        atomic_write_bytes(folder / f"{name}.request.json", text.encode())
    except BaseException:
        gguf_path.unlink(missing_ok=True)  # all or nothing: no GGUF without its request
        raise
    return request
