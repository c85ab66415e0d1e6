#!/usr/bin/env bash
# One command, fresh machine: install shardmerge with its test extras in .venv, lint, run every test.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/unit -x).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO"
ruff check shardmerge tests scripts benchmarks
python -m pytest "$@"
