"""The shard-store format, shared by the shard task that writes it and the merge that reads it.

A shard store is `<scratch>/<hash of OUT>/shard-NNNNNN-<key>.zarr`: a zarr group with the plan's 2-D arrays
(schema.arrays_for the plan's capabilities) and `wavelength`, in the final dtypes, codec and chunking;
`rows.parquet` with the row-wise values (parameters prefixed `param:`, format-specific metadata `meta:`);
and `manifest.json`, written last and fsynced: key, plan fingerprint, rows, inputs, the flux rows with no
data, and `[size, crc32]` of every file. A folder without a manifest of the current plan is no shard."""

from __future__ import annotations

import json
import os

from .durable import fsync_path
from .plan import Plan, ShardSpec
from .schema import ARRAY_BY_NAME, arrays_for

ROWS_FILE = "rows.parquet"  # row-wise values inside a shard store
MANIFEST_FILE = "manifest.json"  # written last inside a shard store


def shard_path(scratch: str, shard: ShardSpec) -> str:
    return os.path.join(scratch, shard.store_name)


def shard_arrays(plan: Plan) -> list[str]:
    """The 2-D arrays of this plan's shards (and store), in the schema table's order."""
    return [a.name for a in arrays_for(plan.capabilities)]


def array_dtype(name: str) -> str:
    return ARRAY_BY_NAME[name].dtype


def load_manifest(path: str) -> dict | None:
    try:
        with open(os.path.join(path, MANIFEST_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def manifest_matches(manifest: dict | None, shard: ShardSpec) -> bool:
    """The shard store holds exactly this shard: same key (layout and inputs), same rows."""
    return (
        manifest is not None
        and manifest.get("key") == shard.key
        and manifest.get("row_start") == shard.row_start
        and manifest.get("row_stop") == shard.row_stop
        and isinstance(manifest.get("files"), dict)
    )


def write_manifest(partial: str, manifest: dict) -> None:
    """Last, and durably: a store with a manifest is complete."""
    path = os.path.join(partial, MANIFEST_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f)
        f.flush()
        os.fsync(f.fileno())
    fsync_path(partial, directory=True)
