#!/usr/bin/env bash
# The main job: set up .venv if needed, then run `steering demo` on the bundled model (or, with
# --model smollm2 / --model qwen2.5-coder-0.5b, on a real one)
# (results in ./demo-out: results.json, plots, and the vectors in a registry folder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
case " $* " in
  *" qwen2.5-coder-0.5b"*)  # the reasoning job: the model in verified pieces, and llama.cpp to generate with
    .venv/bin/steering fetch-model qwen2.5-coder-0.5b-instruct
    bash scripts/llama_env.sh ;;
esac
.venv/bin/steering demo "$@"
