"""What the merge does behind its own thread (issue 28): the chunk folders made up front, row by row, and
index.parquet's row groups and the row-wise chunks written on helper threads. The store is the one the
merge wrote before, its errors still stop the merge, and nothing is left writing once it is closed."""

from __future__ import annotations

import errno
import os

import pyarrow.parquet as pq
import pytest

from shardmerge import merge
from shardmerge.provenance import provenance_attrs
from shardmerge.validate import Expectation, failures, run_checks
from tests.helpers import flip_bit_keeping_mtime, written_shards


@pytest.fixture
def shards(tmp_path):
    """A mixed corpus planned into 16-row shards (several chunk rows)."""
    plan, paths = written_shards(tmp_path)
    assert len(plan.shards) >= 3
    return plan, paths


def _provenance(plan) -> dict:
    return provenance_attrs(n_inputs=len(plan.shards), input_bytes=plan.input_bytes, command=["test"])


def test_chunk_folders_are_one_a_chunk_row_in_row_order_then_the_1d_arrays(shards, tmp_path):
    plan, _ = shards
    merger = merge.Merger(plan, str(tmp_path / "out.tmp"))
    try:
        arrays = [*merger.data.values(), merger.wave, *merger.rows.values()]
        folders = merge._chunk_folders(arrays, merger.tmp)
        rows = -(-plan.n_spec // plan.write_rows)
        assert list(folders) == [*range(rows), -1]
        two_d = [a for a in arrays if a.ndim == 2]
        for r in range(rows):
            assert sorted(folders[r]) == sorted(os.path.join(merger.tmp, *a.path.split("/"), "c", str(r))
                                                for a in two_d)
        assert len(folders[-1]) == len(merger.rows) + (merger.wave.ndim == 1)
    finally:
        merger.close()
    made = {os.path.join(d, n) for d, names, _ in os.walk(merger.tmp) for n in names}
    assert {f for part in folders.values() for f in part} <= made  # close waited for every mkdir


def test_the_store_and_its_checksums_are_those_of_a_plain_merge(shards, tmp_path, monkeypatch):
    """With the helper threads held to one job at a time (the order the merge thread alone would write in)
    and with them free, the same files, bytes and checksums, and the gate passes."""
    plan, paths = shards
    provenance = _provenance(plan)  # once: it holds the time
    free = merge.materialize(plan, paths, str(tmp_path / "free.tmp"), provenance)
    monkeypatch.setattr(merge, "RAW_BACKLOG", 0)
    monkeypatch.setattr(merge, "INDEX_BACKLOG", 1)
    held = merge.materialize(plan, paths, str(tmp_path / "held.tmp"), provenance)
    assert free.checksums == held.checksums
    for rel in free.checksums:
        assert (tmp_path / "free.tmp" / rel).read_bytes() == (tmp_path / "held.tmp" / rel).read_bytes(), rel
    index = pq.ParquetFile(tmp_path / "free.tmp" / merge.INDEX_FILE)
    assert index.metadata.num_row_groups == len(plan.shards)  # one row group a shard, as before
    checks = run_checks(str(tmp_path / "free.tmp"),
                        Expectation(plan.n_spec, plan.n_pix, free.checksums, free.flux_rows))
    assert failures(checks) == []


def test_a_mkdir_that_fails_behind_the_merge_stops_it(shards, tmp_path, monkeypatch):
    plan, paths = shards

    def full(folders):
        raise OSError(errno.ENOSPC, "No space left on device", folders[0])

    monkeypatch.setattr(merge, "_make_folders", full)
    with pytest.raises(OSError, match="No space left"):
        merge.materialize(plan, paths, str(tmp_path / "out.tmp"), _provenance(plan))


def test_an_index_write_that_fails_behind_the_merge_stops_it(shards, tmp_path, monkeypatch):
    plan, paths = shards
    writes = []

    def failing(self, table, *args, **kwargs):
        writes.append(table.num_rows)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", failing)
    with pytest.raises(OSError, match="Input/output error"):
        merge.materialize(plan, paths, str(tmp_path / "out.tmp"), _provenance(plan))
    assert writes  # it was the index write that failed


def test_a_row_wise_chunk_that_fails_behind_the_merge_stops_it(shards, tmp_path, monkeypatch):
    plan, paths = shards
    from shardmerge import zarrio

    def failing(self, index, parts, n_items):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zarrio.RawChunks, "write", failing)
    with pytest.raises(OSError, match="No space left"):
        merge.materialize(plan, paths, str(tmp_path / "out.tmp"), _provenance(plan))


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_the_metadata_documents_are_zarrs_own_consolidated_on_disk(tmp_path, zarr_format):
    """The documents made in memory and consolidated there are, byte for byte, what zarr writes when it
    creates the arrays in the folder and consolidates the store from disk (which the merge did before)."""
    import shutil

    import zarr

    plan, paths = written_shards(tmp_path, zarr_format, n_wcs1d=4, n_image2d=1, rows_per_image=10, n_sdss=2)
    ours = tmp_path / "ours.tmp"
    result = merge.materialize(plan, paths, str(ours), _provenance(plan))
    disk = tmp_path / "disk"
    shutil.copytree(ours, disk)
    with pytest.warns(UserWarning):  # zarr's own: not part of the v3 spec, index.parquet not a node
        zarr.consolidate_metadata(str(disk))
    names = ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")
    docs = sorted(os.path.relpath(os.path.join(d, n), ours) for d, _, files in os.walk(ours) for n in files
                  if n in names)
    assert len(docs) > len(plan.layout.metadata_keys)  # every array's, every group's, the root's
    for rel in docs:
        assert (ours / rel).read_bytes() == (disk / rel).read_bytes(), rel
        assert result.checksums[rel][0] == (ours / rel).stat().st_size
    root = zarr.open_group(str(ours), mode="r")
    assert root.metadata.consolidated_metadata is not None if zarr_format == 3 else (ours / ".zmetadata").exists()


def test_a_metadata_document_that_fails_behind_the_merge_stops_it(shards, tmp_path, monkeypatch):
    plan, paths = shards
    from shardmerge import zarrio

    def failing(self, docs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zarrio.MetadataInMemory, "write", failing)
    with pytest.raises(OSError, match="No space left"):
        merge.materialize(plan, paths, str(tmp_path / "out.tmp"), _provenance(plan))


@pytest.mark.parametrize("rowwise_path", ["raw", "zarr"])
def test_every_file_of_the_store_is_summed_without_listing_every_chunk_folder(shards, tmp_path, monkeypatch,
                                                                               rowwise_path):
    """The merge lists only the folders whose files it did not sum as it wrote them: the root's and the
    groups', and arrays written through zarr (here every row-wise array when raw chunks are not used).
    Its checksums still hold every file of the store, each as it is on disk."""
    from shardmerge import durable, zarrio

    plan, paths = shards
    if rowwise_path == "zarr":
        monkeypatch.setattr(zarrio.RawChunks, "for_array", classmethod(lambda cls, array, root: None))
        monkeypatch.setattr(zarrio.StringChunks, "for_array", classmethod(lambda cls, array, root: None))
    listed = []
    real = merge._store_files
    monkeypatch.setattr(merge, "_store_files", lambda root, prefix="": listed.append(prefix) or real(root, prefix))
    out = tmp_path / "out.tmp"
    result = merge.materialize(plan, paths, str(out), _provenance(plan))
    files = {os.path.relpath(os.path.join(d, n), out) for d, _, names in os.walk(out) for n in names}
    assert set(result.checksums) == files
    for rel in files:
        assert result.checksums[rel] == durable.file_checksum(str(out / rel)), rel
    rowwise = {os.path.join(*a.path.split("/")) for a in merge.create_layout(
        merge.MetadataInMemory(str(tmp_path / "x"), plan.zarr_format).group, plan.layout)[2].values()}
    walked = {rel for rel in listed if not any(rel.startswith(f"{r}{os.sep}") for r in rowwise)}  # not below one
    assert walked == (rowwise if rowwise_path == "zarr" else set())
    assert len(listed) < len({os.path.dirname(f) for f in files})  # not every folder


def test_chunk_files_are_copied_where_links_fail_and_a_full_disk_names_the_store(shards, tmp_path, monkeypatch):
    """The puts behind the merge thread: a filesystem that refuses hard links gets copies (the same bytes,
    none recorded as linked); a copy that fails for want of space names its target in the store, and stops
    the merge."""
    import shutil

    plan, paths = shards
    linked = merge.materialize(plan, paths, str(tmp_path / "linked.tmp"), _provenance(plan), link_chunks=True)
    assert linked.linked and all(rel in linked.checksums for rel in linked.linked)

    def no_links(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(merge.os, "link", no_links)
    copied = merge.materialize(plan, paths, str(tmp_path / "copied.tmp"), _provenance(plan), link_chunks=True)
    assert copied.linked == {}
    for rel in linked.linked:
        assert (tmp_path / "copied.tmp" / rel).read_bytes() == (tmp_path / "linked.tmp" / rel).read_bytes()
        assert os.stat(tmp_path / "copied.tmp" / rel).st_nlink == 1

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", src)

    monkeypatch.setattr(shutil, "copyfile", full)
    with pytest.raises(OSError, match="No space left") as raised:
        merge.materialize(plan, paths, str(tmp_path / "full.tmp"), _provenance(plan), link_chunks=True)
    assert str(tmp_path / "full.tmp") in raised.value.filename


def test_a_chunk_written_between_its_check_and_its_link_behind_is_refused(shards, tmp_path, monkeypatch):
    """The link runs behind the check, on a helper thread: a chunk file written in between (the same inode,
    new bytes, its mtime put back) must not be linked into the store as if it were the file checked."""
    import threading

    from shardmerge.errors import ShardError
    from shardmerge.shardstore import load_manifest

    plan, paths = shards
    release, real = threading.Event(), merge._put_files

    def held(puts, link, shard_root):
        assert release.wait(60)
        return real(puts, link, shard_root)

    monkeypatch.setattr(merge, "_put_files", held)
    merger = merge.Merger(plan, str(tmp_path / "out.tmp"), link_chunks=True)
    try:
        for shard, path in zip(plan.shards, paths, strict=True):
            merger.place(shard, path)  # every chunk checked; none linked yet
        rel = next(r for r in load_manifest(paths[1])["files"] if "/c/" in r)
        flip_bit_keeping_mtime(os.path.join(paths[1], rel))
        release.set()
        with pytest.raises(ShardError, match=f"{rel} changed after its crc32 was checked"):
            for shard, path in zip(plan.shards, paths, strict=True):
                merger.add_rows(shard, path)
            merger.finish(_provenance(plan))
    finally:
        release.set()
        merger.close()
    assert not os.path.exists(paths[1])  # removed: the rerun writes it again
