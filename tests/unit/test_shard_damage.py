"""A shard damaged in scratch is refused by the merge, whatever part of it is damaged and whichever way the
merge reads that part: chunk files linked raw, arrays decoded and re-encoded (Zarr v2, layouts that do not
line up), the shared wavelength grid, the array documents, rowwise.bin and its index rows, and the
rows.parquet older shards are read from. Each refusal names the file and removes the shard, so that a rerun
writes it again; nothing is published from it."""

from __future__ import annotations

import json
import os

import pytest

from shardmerge import merge
from shardmerge.errors import ShardError
from shardmerge.provenance import provenance_attrs
from shardmerge.shardstore import MANIFEST_FILE, ROWWISE_FILE, load_manifest
from tests.helpers import written_shards

pytestmark = pytest.mark.timeout(120)

PROVENANCE = provenance_attrs(n_inputs=1, input_bytes=1, command=["test"])


def _flip(path: str, at: float = 0.5) -> None:
    """One bit of the file flipped, `at` of the way in (a flip in the middle of a compressed chunk may
    still decompress, into other values)."""
    with open(path, "r+b") as f:
        f.seek(int(os.path.getsize(path) * at))
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 1]))


def _refused(plan, paths, tmp_path, match: str, victim: str) -> None:
    with pytest.raises(ShardError, match=match):
        merge.materialize(plan, paths, str(tmp_path / "out.tmp"), PROVENANCE, link_chunks=True)
    assert not os.path.exists(victim)  # removed: the rerun writes it again


def _rewrite_manifest(path: str, change) -> None:
    manifest = load_manifest(path)
    change(manifest)
    with open(os.path.join(path, MANIFEST_FILE), "w", encoding="utf-8") as f:
        json.dump(manifest, f)


@pytest.mark.parametrize("at", [0.5, 0.9])
def test_a_chunk_of_an_array_the_merge_decodes_is_checked_first(tmp_path, at):
    """Zarr v2 stores are re-encoded shard by shard: a damaged chunk that still decompresses would
    otherwise be published as other values."""
    plan, paths = written_shards(tmp_path, zarr_format=2)
    rel = next(r for r in load_manifest(paths[1])["files"] if r.startswith("flux_raw/") and "." in r[9:]
               and not r.endswith((".zarray", ".zattrs")))
    _flip(os.path.join(paths[1], rel), at)
    _refused(plan, paths, tmp_path, f"{rel} does not match its manifest checksum", paths[1])


def test_the_shared_wavelength_grid_is_checked_before_it_is_written_for_every_row(tmp_path):
    plan, paths = written_shards(tmp_path, n_wcs1d=0, n_image2d=3, n_sdss=0)
    assert plan.wavelength_shared
    rel = next(r for r in load_manifest(paths[0])["files"] if r.startswith("wavelength/c/"))
    _flip(os.path.join(paths[0], rel))
    _refused(plan, paths, tmp_path, f"{rel} does not match its manifest checksum", paths[0])


def test_an_array_document_is_checked_before_its_settings_are_trusted(tmp_path):
    plan, paths = written_shards(tmp_path)
    doc = os.path.join(paths[1], "flux_raw", "zarr.json")
    with open(doc, "rb") as f:
        text = f.read()
    with open(doc, "wb") as f:  # still JSON, still an array: one setting changed
        f.write(text.replace(b'"fill_value": ', b'"fill_value":  ', 1))
    _refused(plan, paths, tmp_path, "flux_raw/zarr.json does not match its manifest checksum", paths[1])


def test_a_missing_rowwise_bin_is_damage_not_a_shard_of_before(tmp_path):
    plan, paths = written_shards(tmp_path)
    os.unlink(os.path.join(paths[1], ROWWISE_FILE))
    _refused(plan, paths, tmp_path, f"{ROWWISE_FILE} is missing", paths[1])


def test_index_rows_the_manifest_places_outside_rowwise_bin_are_damage(tmp_path):
    plan, paths = written_shards(tmp_path)
    size = os.path.getsize(os.path.join(paths[1], ROWWISE_FILE))
    _rewrite_manifest(paths[1], lambda m: m.update(rowwise_index=[m["rowwise_index"][0], size]))
    _refused(plan, paths, tmp_path, "rowwise_index .* names no part of its rowwise.bin", paths[1])


def test_the_rows_parquet_of_a_shard_of_before_is_checked_before_it_is_read(tmp_path):
    """A shard written before its index rows were in rowwise.bin: they come from rows.parquet, which is
    checked against its manifest crc32 first."""
    plan, paths = written_shards(tmp_path)

    def as_before(manifest: dict) -> None:
        manifest.pop("rowwise_index")
        manifest.pop("rowwise")
        manifest["files"].pop(ROWWISE_FILE)

    for path in paths:
        _rewrite_manifest(path, as_before)
        os.unlink(os.path.join(path, ROWWISE_FILE))
    merge.materialize(plan, paths, str(tmp_path / "before.tmp"), PROVENANCE)  # such shards still merge
    _flip(os.path.join(paths[1], "rows.parquet"))
    _refused(plan, paths, tmp_path, "rows.parquet does not match its manifest checksum", paths[1])


def test_a_missing_array_document_is_damage_not_an_array_of_another_format(tmp_path):
    """A v3 shard without a zarr.json its manifest lists was taken for a v2 array, and zarr's error failed
    every rerun alike (the shard was never removed)."""
    plan, paths = written_shards(tmp_path)
    os.unlink(os.path.join(paths[1], "flux_raw", "zarr.json"))
    _refused(plan, paths, tmp_path, "flux_raw/zarr.json is missing", paths[1])


def test_a_v2_array_document_is_checked_before_zarr_reads_it(tmp_path):
    """A .zarray with another shape (still valid JSON) was trusted by the shape check: a refusal that left the
    shard in place, so every rerun failed the same way."""
    plan, paths = written_shards(tmp_path, zarr_format=2)
    doc = os.path.join(paths[1], "flux_raw", ".zarray")
    with open(doc, encoding="utf-8") as f:
        meta = json.load(f)
    meta["shape"][0] += 1
    with open(doc, "w", encoding="utf-8") as f:
        json.dump(meta, f)
    _refused(plan, paths, tmp_path, "flux_raw/.zarray does not match its manifest checksum", paths[1])
