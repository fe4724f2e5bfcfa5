#!/usr/bin/env bash
# The main job: set up .venv if needed, then run `steering demo` on the bundled model
# (results in ./demo-out: results.json, plots, and the vectors in a registry folder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
.venv/bin/steering demo "$@"
