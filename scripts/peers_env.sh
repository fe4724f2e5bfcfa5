#!/usr/bin/env bash
# A separate environment with the peer libraries (repeng, steering-vectors), which pin older
# dependencies than ours (transformers < 5, numpy < 2). Used by tests/test_peers.py and the
# peer benchmarks; this project is put on its PYTHONPATH there, never installed into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv-peers/bin/python ]; then
  "$PY" -m venv .venv-peers
fi
stamp=.venv-peers/.installed
want=$(sha256sum scripts/peers_env.sh | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv-peers/bin/pip install -q --disable-pip-version-check "torch==2.13.0" "numpy==1.26.4" \
    "transformers==4.57.6" "repeng==0.4.0" "steering-vectors==0.12.2" "gguf==0.19.0" \
    "safetensors==0.8.0" "jaxtyping==0.3.11" "einops==0.8.2" "filelock==4.3.1" "matplotlib==3.11.2"
  echo "$want" >"$stamp"
fi
