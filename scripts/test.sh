#!/usr/bin/env bash
# The test command: lint, types, the docs build, unit tests, doctests, the docs' code, the notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
bash scripts/peers_env.sh  # repeng / steering-vectors, for tests/test_peers.py
.venv/bin/ruff check steering tests
.venv/bin/ruff format --check steering tests
.venv/bin/mypy
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
.venv/bin/pytest "$@"
# Notebooks run top to bottom (a few minutes); SKIP_NOTEBOOKS=1 skips them for a quick local run.
if [ -z "${SKIP_NOTEBOOKS:-}" ] && [ $# -eq 0 ]; then
  .venv/bin/pytest --nbmake --nbmake-timeout=1200 notebooks -p no:cacheprovider -o addopts=""
fi
