"""The merge's stat proof (merge.stat_proof): a shard written in this run on this host has each chunk file's
sum taken as its shard task recorded it while the file's stat key is the one recorded then; any other
shard, and any file written since, is read and summed, so damage is still refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shardmerge import durable, merge
from shardmerge.errors import ShardError
from shardmerge.provenance import provenance_attrs
from shardmerge.shardstore import MANIFEST_FILE, load_manifest
from tests.helpers import flip_bit_keeping_mtime, written_shards

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def shards(tmp_path):
    return written_shards(tmp_path)


def _chunks(path: str) -> list[str]:
    return [rel for rel in load_manifest(path)["files"] if "/c/" in rel]


PROVENANCE = provenance_attrs(n_inputs=1, input_bytes=1, command=["test"])  # once: it holds the time


def _merge(plan, paths, out, written_here: bool):
    streamed = merge.StreamedMerge(plan, paths, str(out), link_chunks=False)
    for s in plan.shards:
        streamed.shard_written(s.index, written_here=written_here)
    try:
        return streamed.finish(PROVENANCE)
    except BaseException:
        streamed.abandon()
        raise


def _count_reads(monkeypatch) -> list[str]:
    read: list[str] = []
    real = merge.file_checksum
    monkeypatch.setattr(merge, "file_checksum", lambda path: read.append(path) or real(path))
    return read


def test_a_shard_task_records_the_key_of_every_file_it_summed(shards):
    _, paths = shards
    for path in paths:
        manifest = load_manifest(path)
        assert manifest["boot_id"] == durable.boot_id() is not None
        assert set(manifest["file_stats"]) == set(manifest["files"])
        for rel, key in manifest["file_stats"].items():
            assert key == durable.stat_key(os.path.join(path, rel))
        assert MANIFEST_FILE not in manifest["files"]


def test_chunks_of_shards_written_here_are_not_read_again_and_the_store_is_the_same(shards, tmp_path, monkeypatch):
    plan, paths = shards
    read = _count_reads(monkeypatch)
    proven = _merge(plan, paths, tmp_path / "proven.tmp", written_here=True)
    assert not [p for p in read if "/c/" in p and "scratch" in p]  # no chunk file of a shard read again
    summed = _merge(plan, paths, tmp_path / "summed.tmp", written_here=False)
    chunk_reads = [p for p in read if "/c/" in p and "scratch" in p]
    assert len(chunk_reads) == sum(len(_chunks(p)) for p in paths)  # every one read and summed
    assert proven.checksums == summed.checksums
    for rel in proven.checksums:
        assert (tmp_path / "proven.tmp" / rel).read_bytes() == (tmp_path / "summed.tmp" / rel).read_bytes(), rel


def test_a_chunk_written_since_its_shard_was_summed_is_read_and_refused(shards, tmp_path):
    """One bit flipped with size and mtime kept: the ctime is not, so the proof does not hold, the file is
    read, and its sum does not match."""
    plan, paths = shards
    flip_bit_keeping_mtime(os.path.join(paths[1], _chunks(paths[1])[0]))
    with pytest.raises(ShardError, match="does not match its manifest checksum"):
        _merge(plan, paths, tmp_path / "out.tmp", written_here=True)
    assert not (tmp_path / "out.tmp").exists()


def test_no_proof_for_a_shard_of_another_kernel_or_of_an_earlier_run(shards):
    _, paths = shards
    manifest = load_manifest(paths[0])
    assert merge.stat_proof(manifest, written_here=True) == manifest["file_stats"]
    assert merge.stat_proof(manifest, written_here=False) == {}  # reused: read whole (maybe from the disk)
    assert merge.stat_proof({**manifest, "boot_id": "another-node"}, written_here=True) == {}
    assert merge.stat_proof({**manifest, "boot_id": None}, written_here=True) == {}
    assert merge.stat_proof({k: v for k, v in manifest.items() if k != "file_stats"}, written_here=True) == {}


def _fetched_and_kept(plan, paths, scratch) -> list[str]:
    """Each shard store's files as a node-local fetch brings them (manifest included), kept on `scratch`."""
    from shardmerge.shardstore import FetchedShardKeeper, shard_path

    keeper, kept = FetchedShardKeeper(str(scratch)), []
    for shard, path in zip(plan.shards, paths, strict=True):
        files = {}
        for root, _, names in os.walk(path):
            for name in names:
                full = os.path.join(root, name)
                files[os.path.relpath(full, path)] = Path(full).read_bytes()
        keeper.keep(shard, files, kept.append)
    keeper.close()
    assert len(kept) == len(plan.shards)
    return [shard_path(str(scratch), s) for s in plan.shards]


def test_a_fetched_node_local_shard_is_proven_by_the_keys_of_the_files_its_keeper_wrote(shards, tmp_path,
                                                                                        monkeypatch):
    """The keeper writes each file from bytes whose crc32 it has just checked, and records the key of the
    file it wrote (the shard task's keys are another node's inodes): the merge reads none of them again."""
    plan, paths = shards
    scratch = tmp_path / "driver-scratch"
    scratch.mkdir()
    kept = _fetched_and_kept(plan, paths, scratch)
    for path in kept:
        manifest = load_manifest(path)
        assert manifest["boot_id"] == durable.boot_id() is not None
        assert set(manifest["file_stats"]) == set(manifest["files"])
        for rel, key in manifest["file_stats"].items():
            assert key == durable.stat_key(os.path.join(path, rel))
    read = _count_reads(monkeypatch)
    proven = _merge(plan, kept, tmp_path / "proven.tmp", written_here=True)
    assert not [p for p in read if "/c/" in p and "driver-scratch" in p]
    summed = _merge(plan, paths, tmp_path / "summed.tmp", written_here=False)
    assert proven.checksums == summed.checksums

    flip_bit_keeping_mtime(os.path.join(kept[0], _chunks(kept[0])[-1]), at=-1)  # written since it was kept
    with pytest.raises(ShardError, match="does not match its manifest checksum"):
        _merge(plan, kept, tmp_path / "refused.tmp", written_here=True)


@pytest.mark.parametrize("local", [True, False])
def test_only_shards_of_a_cluster_on_this_machine_count_as_written_here(tmp_path, local):
    """Clones of one VM image share a boot id: a shard written by a worker elsewhere (a batch or remote
    cluster) is read whole, whatever its manifest says. The executor stands in for a remote cluster's: its
    tasks run here, so only its `local` differs."""
    from shardmerge.config import ClusterRequest, LayoutRequest
    from shardmerge.executors.inline import InlineExecutor
    from shardmerge.headers import load_header_rules
    from shardmerge.pipeline import plan_inputs
    from shardmerge.stages.transport import ShardWork, SharedScratch
    from shardmerge.testing.spectra import make_mixed_corpus

    make_mixed_corpus(tmp_path / "corpus", n_wcs1d=4, n_image2d=1, rows_per_image=20, n_sdss=2)
    plan = plan_inputs([str(tmp_path / "corpus")], request=LayoutRequest(chunk_rows=16, shard_rows=16),
                       cluster=ClusterRequest(workers=0))
    (tmp_path / "scratch").mkdir()

    ex = InlineExecutor()
    ex.local = local

    class Merging:
        def __init__(self):
            self.written = []

        def raise_error(self):
            pass

        def shard_written(self, index, written_here=False):
            self.written.append(written_here)

    merging = Merging()
    work = ShardWork(ex=ex, scratch=str(tmp_path / "scratch"), rules=load_header_rules(), strict=frozenset(),
                     progress_to="off")
    SharedScratch().write(work, plan, merging)
    assert merging.written == [local] * len(plan.shards)
