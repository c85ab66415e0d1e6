#!/usr/bin/env bash
# One command, fresh machine: install shardmerge in .venv, generate a small mixed sample corpus (all three
# built-in FITS layouts, some gzip'd), ingest it on a local Dask cluster, validate and summarize the store.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO"
DEMO="${DEMO_DIR:-$REPO/sample-data}"
rm -rf "$DEMO"
mkdir -p "$DEMO"
python scripts/make_sample_corpus.py "$DEMO/corpus"
shardmerge plan "$DEMO/corpus" --workers 0
shardmerge ingest "$DEMO/corpus" -o "$DEMO/sample.zarr" --workers 2 --report "$DEMO/report.json"
shardmerge validate "$DEMO/sample.zarr" --quiet
shardmerge inspect "$DEMO/sample.zarr"
echo "run report: $DEMO/report.json"
