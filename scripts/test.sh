#!/usr/bin/env bash
# The test command: lint, types, unit tests and doctests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
.venv/bin/ruff check steering tests
.venv/bin/ruff format --check steering tests
.venv/bin/mypy
.venv/bin/pytest "$@"
