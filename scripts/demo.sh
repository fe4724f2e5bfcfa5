#!/usr/bin/env bash
# The main job: set up .venv if needed, then run the end-to-end example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
.venv/bin/python examples/quickstart.py "$@"
