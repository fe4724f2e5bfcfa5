#!/usr/bin/env bash
# The test command: lint, types, unit tests and doctests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
.venv/bin/ruff check steering tests
.venv/bin/ruff format --check steering tests
.venv/bin/mypy
.venv/bin/pytest "$@"
# Notebooks run top to bottom (a few minutes); SKIP_NOTEBOOKS=1 skips them for a quick local run.
if [ -z "${SKIP_NOTEBOOKS:-}" ] && [ $# -eq 0 ]; then
  .venv/bin/pytest --nbmake notebooks -p no:cacheprovider -o addopts=""
fi
