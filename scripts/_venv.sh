# Sourced by demo.sh and test.sh: make .venv with this project installed (editable, with test extras).
# Idempotent: a second run only re-checks the install.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "shardmerge needs Python >= 3.11 (found $("$PY" --version 2>&1)); set PYTHON=" >&2; exit 1; }
VENV="${SHARDMERGE_VENV:-$REPO/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.shardmerge-installed"
if [ ! -f "$stamp" ] || [ "$REPO/pyproject.toml" -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$REPO[test]"
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
