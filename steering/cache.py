"""Where this library caches what it downloads or builds: ``$STEERING_CACHE``, else ``$HF_HOME/steering``
(``~/.cache/huggingface/steering``). Registries cache under ``blobs/`` and ``indexes/``, reference
models under ``models/<sha256>/``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    if os.environ.get("STEERING_CACHE"):
        return Path(os.environ["STEERING_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "steering"
