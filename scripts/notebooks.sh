#!/usr/bin/env bash
# Execute every notebook top to bottom into docs/notebooks/: the copies the documentation site renders,
# with their outputs and plots. A failing cell fails the script (CI runs it). The notebooks/ originals
# stay committed without outputs. With --copy, only copy them unexecuted (a quick local docs build).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/notebooks
rm -f docs/notebooks/*.ipynb
if [ "${1:-}" = "--copy" ]; then
  cp notebooks/*.ipynb docs/notebooks/
  exit 0
fi
for nb in notebooks/*.ipynb; do
  echo "executing $nb" >&2
  .venv/bin/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=1200 \
    --output-dir docs/notebooks "$nb" --log-level WARN
done
