"""What a shardmerge store is, and reading one: the helpers the shard writer, the publish step, `inspect`
and the gate share (the gate's checks themselves live in validate.py, which only the pipeline and the CLI
import)."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import zarr

from .errors import StoreChangedError

T = TypeVar("T")

def is_shardmerge_store(path: str) -> bool:
    """True when `path` is a zarr group whose provenance says shardmerge wrote it."""
    for meta in ("zarr.json", ".zattrs"):
        try:
            with open(os.path.join(path, meta), encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        attrs = doc.get("attributes", {}) if meta == "zarr.json" else doc
        pipeline = attrs.get("ingest_pipeline", "") if isinstance(attrs, dict) else ""
        if isinstance(pipeline, str) and pipeline.startswith("shardmerge"):
            return True
    return False


def store_identity(path: str) -> tuple[int, int, str | None]:
    """What changes whenever `path` names another published store: the folder's device and inode (an
    overwrite renames a new folder onto the path) and the root attr `store_id` (a fresh uuid per publish,
    absent from stores written before it; it also tells apart an inode the filesystem reuses)."""
    st = os.stat(path)
    store_id = None
    for meta in ("zarr.json", ".zattrs"):
        try:
            with open(os.path.join(path, meta), encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        attrs = doc.get("attributes", {}) if meta == "zarr.json" else doc
        if isinstance(attrs, dict) and isinstance(attrs.get("store_id"), str):
            store_id = attrs["store_id"]
        break
    return st.st_dev, st.st_ino, store_id


def read_consistent(path: str, read: Callable[[str], T], attempts: int = 3) -> T:
    """`read(path)`, all of whose reads come from one published store, even while `shardmerge ingest
    --overwrite` replaces it. An overwrite exchanges the folders in one rename (the old one moves to
    `OUT.tmp` and is deleted): a reader holding the old store open then reads files of the new one under
    the old metadata and index (silently mixed), or meets files that vanished (zarr reads a missing chunk
    as fill values; others raise). So the store's identity is taken before and after `read`; if it
    changed, whatever `read` returned or raised is discarded and it runs again, on the new store. `read`
    must open the store itself, from `path`, and keep nothing open across calls. Raises
    StoreChangedError after `attempts` overwrites in a row."""
    for _ in range(attempts):
        before = store_identity(path)
        try:
            result = read(path)
        except Exception:
            if _identity_or_none(path) == before:
                raise  # a fault of the store or of `read`, not an overwrite
            continue
        if _identity_or_none(path) == before:
            return result
    raise StoreChangedError(f"{path} was overwritten during each of {attempts} attempts to read it")


def _identity_or_none(path: str) -> tuple[int, int, str | None] | None:
    try:
        return store_identity(path)
    except FileNotFoundError:  # the two-step fallback publish: OUT absent for a moment
        return None


def members(group: zarr.Group) -> list[tuple[str, object]]:
    """Children of a group. index.parquet sits at the store root (the spec puts it there); zarr warns that
    it is not a zarr node, which is expected here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is not recognized as a component of a Zarr hierarchy")
        return sorted(group.members(), key=lambda m: m[0])


def all_arrays(group: zarr.Group, prefix: str = "") -> list[tuple[str, zarr.Array]]:
    out = []
    for name, node in members(group):
        path = f"{prefix}{name}"
        if isinstance(node, zarr.Array):
            out.append((path, node))
        else:
            out.extend(all_arrays(node, path + "/"))
    return out


def row_data_flags(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a flux block: (any finite value, any finite non-zero value). A row with neither carries no
    data (all NaN); one with the first only is all zero. NaN padding past a spectrum's end is neither."""
    finite = np.isfinite(block)
    return finite.any(axis=1), (finite & (block != 0)).any(axis=1)


def flux_row_faults(block: np.ndarray, kind: str) -> np.ndarray:
    """Rows of a full-width flux block that carry no data: "all_nan" (no finite value) or "all_zero" (finite
    values, all 0)."""
    any_finite, any_nonzero = row_data_flags(block)
    if kind == "all_nan":
        return np.flatnonzero(~any_finite)
    return np.flatnonzero(any_finite & ~any_nonzero)


def _root_metadata(path: str) -> tuple[str, object] | None:
    """(file name, parsed JSON or None when it does not parse) of a store's root metadata, or None."""
    for meta in ("zarr.json", ".zgroup", ".zarray"):
        full = os.path.join(path, meta)
        if os.path.isfile(full):
            try:
                with open(full, encoding="utf-8") as f:
                    return meta, json.load(f)
            except (OSError, ValueError):
                return meta, None
    return None


def require_zarr_group(path: str, what: str = "a store") -> None:
    """Raise NotAStoreError, one line naming `path` and what it is, unless it is a folder whose root is a
    zarr group (v3 zarr.json with node_type group, or v2 .zgroup). A root metadata file that exists but does
    not parse is let through: that is a damaged store, for `validate`'s checks (17) to name."""
    from .errors import NotAStoreError

    if not os.path.lexists(path):
        raise NotAStoreError(f"{path}: no such file or folder (expected {what}, a folder OUT.zarr)")
    if not os.path.isdir(path):
        raise NotAStoreError(f"{path}: a file, not {what} (a store is a folder)")
    found = _root_metadata(path)
    if found is None:
        raise NotAStoreError(f"{path}: not a zarr group (a folder without zarr.json or .zgroup), not {what}")
    meta, doc = found
    if meta == ".zarray" or (meta == "zarr.json" and isinstance(doc, dict) and doc.get("node_type") == "array"):
        raise NotAStoreError(f"{path}: a zarr array, not {what} (a store is a zarr group)")


def require_shardmerge_store(path: str, needs: tuple[str, ...] = ("signal/flux_raw",)) -> None:
    """As require_zarr_group, and the group must hold the arrays in `needs` (relative paths): else one line
    saying whether it is a zarr group shardmerge did not write or a shardmerge store missing them."""
    from .errors import NotAStoreError

    require_zarr_group(path)
    missing = [a for a in needs if _root_metadata(os.path.join(path, *a.split("/"))) is None]
    if not missing:
        return
    if not is_shardmerge_store(path):
        raise NotAStoreError(f"{path}: a zarr group shardmerge did not write (no ingest_pipeline attr "
                             f"'shardmerge…', no {', '.join(missing)})")
    raise NotAStoreError(f"{path}: a shardmerge store missing {', '.join(missing)}")
