"""A shard's arrays that no source fills are written from the files of an earlier block with the same values
(zarrio.RepeatedFiles): the files must be the bytes zarr itself writes, in every layout, and the values of
an array a source starts filling mid-block must be what they would have been had it been held all along."""

from __future__ import annotations

import numpy as np
import pytest

from shardmerge import shard as shard_mod
from shardmerge.config import ClusterRequest, LayoutRequest
from shardmerge.headers import load_header_rules
from shardmerge.pipeline import plan_inputs
from shardmerge.schema import MASK_PADDING
from shardmerge.shard import _RowBlock, write_shard
from shardmerge.shardstore import shard_path, write_file_table
from shardmerge.testing.spectra import make_mixed_corpus
from shardmerge.zarrio import RepeatedFiles
from tests.storecmp import chunk_files

pytestmark = pytest.mark.timeout(120)
RULES = load_header_rules()


class _Counting(RepeatedFiles):
    def __init__(self, enabled: bool) -> None:
        super().__init__()
        self.enabled, self.served = enabled, 0

    def write(self, array, folder, row, key) -> bool:
        if not self.enabled:
            return False
        served = super().write(array, folder, row, key)
        self.served += served
        return served


def _shard_stores(tmp_path, monkeypatch, name: str, request: LayoutRequest, repeated: _Counting) -> dict:
    monkeypatch.setattr(shard_mod, "_REPEATED", repeated)
    plan = plan_inputs([str(tmp_path / "corpus")], request=request, rules=RULES, cluster=ClusterRequest(workers=0))
    scratch = tmp_path / name
    scratch.mkdir()
    context = plan.context(write_file_table(plan, str(scratch)))
    files = {}
    for s in plan.shards:
        write_shard(s, context, str(scratch), RULES)
        stored = chunk_files(shard_path(str(scratch), s))
        files[s.index] = {k: v for k, v in stored.items() if not k.startswith("manifest")}
    return files


@pytest.mark.parametrize("request_", [
    LayoutRequest(chunk_rows=8, shard_rows=24),  # Zarr v3, a file per chunk
    LayoutRequest(chunk_rows=8, shard_rows=24, zarr_format=2),
    LayoutRequest(chunk_rows=4, shard_rows=24, zarr_shard_rows=8),  # Zarr v3 sharding: 2 chunks a file
], ids=["v3", "v2", "v3-sharded"])
def test_files_written_again_are_the_bytes_zarr_writes(tmp_path, monkeypatch, request_):
    # 1-D images (no mask) of two widths, plates, SDSS tables (a mask): blocks whose mask is derived from
    # the rows' widths, blocks where a table starts the mask mid-block, blocks of NaN continuum
    make_mixed_corpus(tmp_path / "corpus", n_wcs1d=30, n_image2d=3, rows_per_image=20, n_sdss=6)
    plain = _shard_stores(tmp_path, monkeypatch, "plain", request_, _Counting(enabled=False))
    repeated = _Counting(enabled=True)
    again = _shard_stores(tmp_path, monkeypatch, "again", request_, repeated)
    assert repeated.served > 0  # the comparison below covered files that were written again
    assert again.keys() == plain.keys()
    for index, files in plain.items():
        assert again[index].keys() == files.keys(), index
        differ = [k for k in files if again[index][k] != files[k]]
        assert differ == [], (index, differ)


def test_an_array_a_source_starts_mid_block_holds_the_absent_value_over_the_rows_before():
    block = _RowBlock(start=0, n=4, n_pix=5, wavelength=None)
    block.widths[:2] = [3, 5]  # two rows filled from sources without a mask
    block.filled = 2
    mask = block.written("mask_raw")
    assert mask[0].tolist() == [0, 0, 0, MASK_PADDING, MASK_PADDING]
    assert mask[1].tolist() == [0] * 5
    assert (mask[2:] == MASK_PADDING).all()  # not filled yet: padding until a row is
    assert np.isnan(block.written("continuum_model")).all()  # absent and padding are both NaN
    assert block.values_key("continuum_model") == ("continuum_model", "blank")
    other = _RowBlock(start=0, n=4, n_pix=5, wavelength=None)
    other.widths[:2] = [3, 4]
    assert other.values_key("mask_raw") != block.values_key("mask_raw")  # other widths, other values


def test_kept_files_are_bounded_least_recently_used_out_first(tmp_path):
    import zarr

    group = zarr.open_group(str(tmp_path / "s"), mode="w")
    arr = group.create_array("a", shape=(8, 4), chunks=(2, 4), dtype="float32", fill_value=np.nan,
                             config={"write_empty_chunks": True})
    arr[:] = np.nan
    kept = RepeatedFiles()
    kept.MAX_ENTRIES = 2
    folder = str(tmp_path / "s" / "a")
    keys = [kept.content_key(arr, 2, k) for k in ("x", "y", "z")]
    for key in keys[:2]:
        kept.keep(arr, folder, 0, key)
    assert kept.write(arr, folder, 1, keys[0])  # used: now the most recent
    kept.keep(arr, folder, 0, keys[2])  # evicts "y"
    assert not kept.write(arr, folder, 1, keys[1])
    assert kept.write(arr, folder, 2, keys[0]) and kept.write(arr, folder, 3, keys[2])
    assert kept.content_key(arr, 2, "x") != kept.content_key(arr, 1, "x")  # a last, shorter storage file


def test_files_kept_for_a_narrower_array_are_never_written_into_a_wider_one(tmp_path):
    # one Python process runs many ingests (the API, --workers 0): arrays alike but for their width must not
    # share kept files (a row of them is another number of files, the last padded otherwise)
    import zarr

    kept = RepeatedFiles()
    made = {}
    for width in (12, 20):
        group = zarr.open_group(str(tmp_path / f"w{width}"), mode="w")
        arr = group.create_array("a", shape=(4, width), chunks=(2, 8), dtype="float32", fill_value=np.nan,
                                 config={"write_empty_chunks": True})
        arr[:] = np.nan
        made[width] = arr
    narrow, wide = made[12], made[20]
    kept.keep(narrow, str(tmp_path / "w12" / "a"), 0, kept.content_key(narrow, 2, "blank"))
    assert kept.content_key(narrow, 2, "blank") != kept.content_key(wide, 2, "blank")
    assert not kept.write(wide, str(tmp_path / "w20" / "a"), 1, kept.content_key(wide, 2, "blank"))
