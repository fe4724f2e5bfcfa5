"""Loading models: a local folder, a hub id or a GGUF file (:mod:`~steering.models.files`), and the
real pretrained models this project is tested on offline (:mod:`~steering.models.reference`).
"""

from .files import load, save_dequantized, split_gguf
from .reference import QWEN_CODER, QWEN_CODER_ID, SMOLLM2_ID, qwen_coder, qwen_coder_path, smollm2, smollm2_path

__all__ = [
    "QWEN_CODER",
    "QWEN_CODER_ID",
    "SMOLLM2_ID",
    "load",
    "qwen_coder",
    "qwen_coder_path",
    "save_dequantized",
    "smollm2",
    "smollm2_path",
    "split_gguf",
]
