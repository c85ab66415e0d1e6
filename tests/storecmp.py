"""Comparing stores byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

# root attrs hold created_at and the command; index.parquet embeds the writer's metadata
VOLATILE = {"zarr.json", ".zattrs", "index.parquet"}


def chunk_files(store) -> dict[str, bytes]:
    """Every file of a store but the root metadata: {relative path: bytes}."""
    out = {}
    for dirpath, _, names in os.walk(store):
        for n in names:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, store)
            if rel not in VOLATILE:
                out[rel] = Path(p).read_bytes()
    return out
