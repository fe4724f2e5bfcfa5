"""Model files: loading a local folder, a hub id or a GGUF file; writing a dequantized copy.

A ``.gguf`` path is loaded by ``transformers`` (``from_pretrained(folder, gguf_file=name)``, weights
dequantized to float32; needs the ``gguf`` package). :func:`save_dequantized` writes such a model as
a plain folder other runtimes load.

Examples:
    >>> split_gguf("models/SmolLM2.Q4_1.gguf")
    ('models', 'SmolLM2.Q4_1.gguf')
    >>> split_gguf("models/llama") is None
    True
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from pickle import UnpicklingError  # the exception class only, to name a refused checkpoint: nothing is unpickled
from typing import Any

from ..errors import InvalidArgumentError, require


def split_gguf(path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """``(folder, file name)`` for a ``.gguf`` path, else ``None``."""
    p = Path(path)
    return (str(p.parent), p.name) if p.suffix.lower() == ".gguf" else None


def load(model: str | os.PathLike[str], *, dtype: Any = None, padding_side: str = "left") -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a folder, a hub id or a ``.gguf`` file, in eval mode, left-padding."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = split_gguf(model)
    where, extra = (gguf[0], {"gguf_file": gguf[1]}) if gguf else (str(model), {})
    if gguf and not Path(model).is_file():
        raise InvalidArgumentError(f"No GGUF file at {str(model)!r}.")
    if gguf:
        require("gguf", "gguf", "Loading a .gguf model file")
    text = str(model)
    looks_local = Path(text).is_absolute() or text.startswith((".", "~")) or text.count("/") > 1
    if looks_local and not Path(text).expanduser().exists():
        raise InvalidArgumentError(
            f"No model at {text!r}: pass a local folder (with config.json), a .gguf file, or a hub id 'org/name'."
        )
    tok = AutoTokenizer.from_pretrained(where, **extra)
    kwargs = {**extra, **({"dtype": dtype} if dtype is not None else {})}
    try:
        net = AutoModelForCausalLM.from_pretrained(where, **kwargs).eval()
    except UnpicklingError:
        raise InvalidArgumentError(
            f"{text}: its weights are a pickle (.bin) that torch's weights-only loader refused to unpickle "
            "(it would run code from the file). Use the model's safetensors weights, or convert the checkpoint "
            "where you trust it: model.save_pretrained(folder, safe_serialization=True)."
        ) from None
    tok.padding_side = padding_side
    return net, tok


def save_dequantized(model: Any, tokenizer: Any, folder: str | os.PathLike[str]) -> Path:
    """Write a GGUF-loaded model as a plain transformers folder (safetensors weights, config, tokenizer).

    ``save_pretrained`` refuses models "quantized with gguf"; this writes the dequantized weights
    ``transformers`` holds, with a config that no longer says GGUF, so other runtimes (vLLM) load them.
    """
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # tied: loaders rebuild it from the input embeddings
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = [type(model).__name__]
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    tokenizer.save_pretrained(out)
    return out
