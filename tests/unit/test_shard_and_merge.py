"""The shard task and the merge called directly, in this process (no cluster, no CLI): what a shard store
holds, reuse of a finished shard, what the merge returns to the gate, and the merge's refusals, each
located in the function that makes it."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.config import ClusterRequest, LayoutRequest
from shardmerge.errors import BadFileError, ShardError
from shardmerge.headers import load_header_rules
from shardmerge.merge import materialize
from shardmerge.pipeline import plan_inputs, split_file_damage
from shardmerge.provenance import provenance_attrs
from shardmerge.readers import fastfits, fitsio
from shardmerge.schema import MASK_PADDING
from shardmerge.shard import write_shard
from shardmerge.shardstore import load_manifest, manifest_matches, shard_path, write_file_table
from shardmerge.testing import surveys as ss
from shardmerge.testing.spectra import make_image2d, make_mixed_corpus, make_wcs1d
from shardmerge.validate import Expectation, failures, run_checks
from tests.storecmp import chunk_files

RULES = load_header_rules()


def _plan(corpus):
    return plan_inputs([str(corpus)], request=LayoutRequest(chunk_rows=16, shard_rows=16), rules=RULES,
                       cluster=ClusterRequest(workers=0))


@pytest.fixture
def shards(tmp_path):
    """A mixed corpus planned into 16-row shards, every shard written in this process."""
    corpus = tmp_path / "corpus"
    make_mixed_corpus(corpus, n_wcs1d=6, n_image2d=2, rows_per_image=20, n_sdss=3)
    plan = _plan(corpus)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    context = plan.context(write_file_table(plan, str(scratch)))
    manifests = [write_shard(s, context, str(scratch), RULES) for s in plan.shards]
    return plan, scratch, manifests


def _split_plate(tmp_path, sums: bool, lead: int = 0, astropy_only: bool = False):
    """A 40-row plate (flux and IVAR images) after `lead` one-spectrum files, planned into 16-row shards:
    with no lead, plate rows 0-15, 16-31, 32-39; with one, 0-14, 15-30, 31-39. `astropy_only`: a long
    string card (CONTINUE) that the fast path leaves to astropy."""
    for i in range(lead):
        make_wcs1d(tmp_path / "corpus" / f"a{i}.fits", i=i, n_pix=500, seed=i)
    path = make_image2d(tmp_path / "corpus" / "plate.fits", n_rows=40, n_pix=500)
    if not sums or astropy_only:
        with fits.open(path) as h:
            hdus = fits.HDUList([type(hdu)(hdu.data, header=hdu.header) for hdu in h])
        for hdu in hdus:
            for key in ("CHECKSUM", "DATASUM"):
                hdu.header.remove(key, ignore_missing=True)
        if astropy_only:
            hdus[0].header["COMMENTS"] = "a remark longer than one card holds, " * 4
        hdus.writeto(path, overwrite=True, checksum=sums)
    plan = _plan(tmp_path / "corpus")
    assert [s.n_rows for s in plan.shards] == [16, 16, 8 + lead]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return path, plan, plan.context(write_file_table(plan, str(scratch))), scratch


def _planned_again(tmp_path, scratch):
    """(plan, context) of the corpus as it is now: bit rot changes no stat field, but flipping a bit here
    sets the file's ctime, which the shard task's check compares. Planned after the flip, the damage is
    the disk's, from before the scan: only the file's sums can tell."""
    plan = _plan(tmp_path / "corpus")
    return plan, plan.context(write_file_table(plan, str(scratch)))


def _spy_reads(monkeypatch) -> tuple[list[int], list[str]]:
    """Bytes read at offsets (the headers-and-rows open) and paths read whole (the verifying open)."""
    partial: list[int] = []
    whole: list[str] = []
    read, read_bytes = fastfits.FileSource.read, fitsio.read_bytes
    monkeypatch.setattr(fastfits.FileSource, "read", lambda self, o, n: partial.append(n) or read(self, o, n))
    monkeypatch.setattr(fitsio, "read_bytes", lambda path: whole.append(path) or read_bytes(path))
    return partial, whole


def _flip_bit(path: Path, at: int) -> None:
    """One bit flipped, the size and modification time kept (the ctime is not: see `_planned_again`)."""
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x01
    mtime = os.stat(path).st_mtime_ns
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(mtime, mtime))


@pytest.mark.parametrize("sums", [False, True])
def test_a_file_split_between_shards_is_read_once_in_all(tmp_path, monkeypatch, sums):
    """Each shard reads the headers and its own rows of a plate that three shards share, not the file;
    with sums, the parts each shard recorded add up to a verified file."""
    path, plan, context, scratch = _split_plate(tmp_path, sums=sums)
    partial, whole = _spy_reads(monkeypatch)
    manifests = [write_shard(shard, context, str(scratch), RULES) for shard in plan.shards]
    assert whole == []
    data = 2 * 40 * 500 * 4  # flux and IVAR, float32
    headers = os.path.getsize(path) - data  # header blocks and padding
    assert data <= sum(partial) <= data + 3 * headers, (sum(partial), os.path.getsize(path))
    with fits.open(path) as h:
        flux = h[0].data
    for shard in plan.shards:
        stored = zarr.open_group(shard_path(str(scratch), shard), mode="r")["flux_raw"][:]
        np.testing.assert_array_equal(stored, flux[shard.row_start : shard.row_stop])
    recorded = [m["split_sums"].get(str(path)) for m in manifests]
    assert all(r is not None for r in recorded) if sums else recorded == [None, None, None]
    assert split_file_damage(manifests, frozenset()) == {}


@pytest.mark.parametrize("where", ["rows", "padding", "header"])
def test_a_split_file_damaged_where_one_shard_reads_is_found_by_adding_the_shards_sums(tmp_path, monkeypatch,
                                                                                       where):
    """A bit flipped in rows only the last shard reads, in the padding after them (that no reader asks
    for), or in a header card's comment: every shard is written without reading the file whole, and the
    sums their tasks recorded, added, judge the file as a whole read would. Damaged data refuses it; a
    header edited after checksumming (CHECKSUM wrong, DATASUM right) is accepted as odd, and refused
    under --strict."""
    path, plan, context, scratch = _split_plate(tmp_path, sums=True, lead=1)
    with fits.open(path) as h:
        info = h.fileinfo(1)
        at = {"rows": info["datLoc"] + 36 * 500 * 4 + 8,  # IVAR row 36: shard 2
              "padding": info["datLoc"] + 40 * 500 * 4 + 5,
              "header": h.fileinfo(0)["hdrLoc"] + 80 * 12 + 75}[where]
    if where == "header":  # a card's comment: the header still parses alike, only its sum changes
        assert path.read_bytes()[at] == ord(" ")
    _flip_bit(path, at)
    plan, context = _planned_again(tmp_path, scratch)
    partial, whole = _spy_reads(monkeypatch)
    manifests = [write_shard(shard, context, str(scratch), RULES) for shard in plan.shards]
    # the file once, and each shard's two header blocks (and a few bytes peeked at)
    assert str(path) not in whole and sum(partial) <= os.path.getsize(path) + 3 * (2 * 2880 + 16)
    reason = {"rows": "HDU 1: DATASUM mismatch", "padding": "HDU 1: DATASUM mismatch",
              "header": "HDU 0: CHECKSUM does not match but DATASUM does"}[where]
    if where == "header":  # a header edited after checksumming: accepted as odd, refused under --strict
        assert split_file_damage(manifests, frozenset()) == {}
        assert any(reason in n for n in manifests[0]["notes"][str(path)]), manifests[0]["notes"]
        assert "refused: --strict stale-checksum" in split_file_damage(manifests, frozenset({"stale-checksum"}))[
            str(path)]
    else:
        assert reason in split_file_damage(manifests, frozenset())[str(path)]


def test_a_split_file_astropy_reads_is_verified_whole_by_the_shard_holding_most_of_it(tmp_path, monkeypatch):
    """Where astropy reads the file (a CONTINUE card), the shards' reads are not recorded: the middle
    shard, holding most of the plate's rows (16 of 40), reads the whole file and refuses it (DATASUM)."""
    path, plan, context, scratch = _split_plate(tmp_path, sums=True, lead=1, astropy_only=True)
    with fits.open(path) as h:
        _flip_bit(path, h.fileinfo(0)["datLoc"] + 36 * 500 * 4 + 8)  # flux row 36: shard 2
    plan, context = _planned_again(tmp_path, scratch)
    partial, whole = _spy_reads(monkeypatch)
    manifests = [write_shard(plan.shards[k], context, str(scratch), RULES) for k in (2, 0)]
    assert str(path) not in whole and all(m["split_sums"] == {} for m in manifests)
    with pytest.raises(BadFileError, match="HDU 0: DATASUM mismatch"):
        write_shard(plan.shards[1], context, str(scratch), RULES)
    assert whole.count(str(path)) == 1


def test_a_split_file_its_shards_do_not_all_cover_is_verified_whole_here(tmp_path):
    """Shards an earlier version wrote recorded no parts: the ingest reads the file itself."""
    path, plan, context, scratch = _split_plate(tmp_path, sums=True)
    manifests = [write_shard(shard, context, str(scratch), RULES) for shard in plan.shards]
    del manifests[1]["split_sums"][str(path)]
    assert split_file_damage(manifests, frozenset()) == {}
    with fits.open(path) as h:
        _flip_bit(path, h.fileinfo(0)["datLoc"] + 20 * 500 * 4)
    assert "HDU 0: DATASUM mismatch" in split_file_damage(manifests, frozenset())[str(path)]
    assert split_file_damage(manifests, frozenset(), all_written=False) == {}


def test_a_shard_store_holds_its_rows_and_a_manifest_of_every_file(shards):
    plan, scratch, manifests = shards
    assert len(plan.shards) > 2 and all(not m["reused"] for m in manifests)
    first = plan.shards[0]
    store = shard_path(str(scratch), first)
    manifest = load_manifest(store)
    assert (manifest["row_start"], manifest["row_stop"]) == (first.row_start, first.row_stop)
    on_disk = {os.path.relpath(os.path.join(d, n), store) for d, _, names in os.walk(store) for n in names}
    assert set(manifest["files"]) == on_disk - {"manifest.json"}  # written last, it lists everything else
    flux = zarr.open_group(store, mode="r")["flux_raw"]
    assert flux.shape == (first.n_rows, plan.n_pix) and flux.chunks == plan.chunks_2d


def test_a_finished_shard_is_reused_not_rewritten(shards):
    plan, scratch, manifests = shards
    again = write_shard(plan.shards[1], plan.context(write_file_table(plan, str(scratch))), str(scratch), RULES)
    assert again["reused"] and again["created_at"] == manifests[1]["created_at"]


def test_padding_past_a_shorter_spectrum_is_nan_and_flagged_in_the_mask(tmp_path):
    """LAMOST MRS: epochs with different grids in one file; each row is padded past its own width."""
    path, truth = ss.make_lamost_mrs(tmp_path / "in" / "mrs.fits")
    plan = _plan(tmp_path / "in")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    write_shard(plan.shards[0], plan.context(write_file_table(plan, str(scratch))), str(scratch), RULES)
    g = zarr.open_group(shard_path(str(scratch), plan.shards[0]), mode="r")
    for row, t in enumerate(truth):
        n = t["wave"].shape[0]
        np.testing.assert_array_equal(g["flux_raw"][row, :n], np.asarray(t["flux"], dtype=np.float32))
        assert np.all(np.isnan(g["flux_raw"][row, n:])) and np.all(g["mask_raw"][row, n:] == MASK_PADDING)
        assert not np.any(g["mask_raw"][row, :n] & MASK_PADDING)


def test_the_merge_returns_what_the_gate_needs(shards, tmp_path):
    plan, scratch, _ = shards
    tmp = tmp_path / "out.zarr.tmp"
    provenance = provenance_attrs(n_inputs=len(plan.shards), input_bytes=plan.input_bytes, command=["test"])
    result = materialize(plan, [shard_path(str(scratch), s) for s in plan.shards], str(tmp), provenance)
    on_disk = {os.path.relpath(os.path.join(d, n), tmp) for d, _, names in os.walk(tmp) for n in names}
    assert set(result.checksums) == on_disk  # every file, so check 11 can prove each one
    assert result.raw_chunks > 0 and result.recoded_arrays == 0
    assert result.flux_rows == {"all_nan": [], "all_zero": []}  # raw copies of verified shards: sampled decode
    assert result.stats()["raw_chunks"] == result.raw_chunks
    checks = run_checks(str(tmp), Expectation(plan.n_spec, plan.n_pix, result.checksums, result.flux_rows))
    assert failures(checks) == []


def test_shards_written_out_of_row_order_merge_to_the_same_store(shards, tmp_path, monkeypatch):
    """Shard tasks start longest first, so they finish out of row order: the streamed merge puts each
    one's chunk files in place as it arrives and its rows in row order, into the store an in-order merge
    writes."""
    from shardmerge import merge

    plan, scratch, _ = shards
    paths = [shard_path(str(scratch), s) for s in plan.shards]
    provenance = provenance_attrs(n_inputs=len(plan.shards), input_bytes=plan.input_bytes, command=["test"])
    assert len(plan.shards) >= 4
    in_order = materialize(plan, paths, str(tmp_path / "in_order.tmp"), provenance)
    steps: list[tuple[str, int]] = []
    place, add_rows = merge.Merger.place, merge.Merger.add_rows
    monkeypatch.setattr(merge.Merger, "place",
                        lambda self, s, p, *rest: steps.append(("place", s.index)) or place(self, s, p, *rest))
    monkeypatch.setattr(merge.Merger, "add_rows",
                        lambda self, s, p, *rest: steps.append(("rows", s.index)) or add_rows(self, s, p, *rest))
    readers: list[str] = []
    read_rows = merge._read_rows
    monkeypatch.setattr(merge, "_read_rows",
                        lambda path: readers.append(threading.current_thread().name) or read_rows(path))
    streamed = merge.StreamedMerge(plan, paths, str(tmp_path / "streamed.tmp"))
    last = plan.shards[0].index
    for shard in reversed(plan.shards[1:]):  # every shard but the first, last first
        streamed.shard_written(shard.index)
    n = len(plan.shards)
    for _ in range(600):  # their chunks go in place while shard 0 is not yet written (30 s at most)
        if len(steps) == n - 1:
            break
        threading.Event().wait(0.05)
    assert steps == [("place", i) for i in range(1, n)]  # lowest first, no rows yet
    streamed.shard_written(last)
    result = streamed.finish(provenance)
    assert steps[n - 1:] == [("place", 0)] + [("rows", i) for i in range(n)]
    # every shard was written when its turn came: the next one's rows were read ahead, beside the merge
    assert len(readers) == n and readers.count("shardmerge-merge") <= 1, readers
    assert chunk_files(tmp_path / "streamed.tmp") == chunk_files(tmp_path / "in_order.tmp")
    assert result.checksums == in_order.checksums and result.flux_rows == in_order.flux_rows


def test_chunk_sums_read_ahead_are_used_only_for_files_unchanged_since(shards, tmp_path, monkeypatch):
    """The streamed merge's helper threads read each written shard's crc32s ahead: placing it then reads
    nothing, unless a file changed after it was read ahead (here: its bytes and its mtime), which is read
    again and refused."""
    from shardmerge import merge

    plan, scratch, _ = shards
    paths = [shard_path(str(scratch), s) for s in plan.shards]
    read_ahead = {k: merge._sums_ahead(p) for k, p in enumerate(paths)}
    assert all(read_ahead[k] for k in read_ahead)
    merger = merge.Merger(plan, str(tmp_path / "out.tmp"), link_chunks=True)
    read_here: list[str] = []
    checksum = merge.file_checksum
    monkeypatch.setattr(merge, "file_checksum", lambda path: read_here.append(path) or checksum(path))
    merger.place(plan.shards[0], paths[0], read_ahead[0])
    assert read_here == [] and merger.stats["raw_chunks"] > 0
    chunk = os.path.join(paths[1], "flux_raw", "c", "0", "0")
    data = Path(chunk).read_bytes()
    Path(chunk).write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    st = os.stat(chunk)
    os.utime(chunk, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # changed, whatever the clock's resolution
    with pytest.raises(ShardError, match="does not match its manifest checksum"):
        merger.place(plan.shards[1], paths[1], read_ahead[1])
    assert read_here == [chunk]
    merger.close()


def test_a_read_ahead_stuck_on_a_hung_disk_holds_neither_the_merge_nor_the_exit(monkeypatch):
    """`close` (the run is abandoned) releases a merge thread waiting for sums that never come, and the
    helper threads are daemons, so a read that never returns cannot keep the process alive."""
    import threading

    from shardmerge import merge

    hung = threading.Event()
    monkeypatch.setattr(merge, "_sums_ahead", lambda path: hung.wait(60) and {})
    precheck = merge.ShardPrecheck()
    precheck.submit(0, "/nowhere")
    got: list = []
    taker = threading.Thread(target=lambda: got.append(precheck.take(0)))
    taker.start()
    precheck.close()
    taker.join(30)
    try:
        assert not taker.is_alive() and got == [None]
        assert all(t.daemon for t in threading.enumerate() if t.name.startswith("shardmerge-precheck"))
        assert precheck.take(1) is None  # never submitted: nothing to wait for
    finally:
        hung.set()


def test_the_merge_refuses_a_damaged_shard_chunk_and_removes_that_shard(shards, tmp_path):
    plan, scratch, _ = shards
    victim = shard_path(str(scratch), plan.shards[1])
    chunk = os.path.join(victim, "flux_raw", "c", "0", "0")
    with open(chunk, "r+b") as f:  # flip one byte in the middle of the compressed chunk
        f.seek(os.path.getsize(chunk) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ShardError, match=r"flux_raw/c/0/0.*the shard store was removed, rerun the same command"):
        materialize(plan, [shard_path(str(scratch), s) for s in plan.shards], str(tmp_path / "o.tmp"), {})
    assert not os.path.exists(victim)  # so the rerun recomputes exactly this shard
    assert all(os.path.exists(shard_path(str(scratch), s)) for s in plan.shards if s is not plan.shards[1])


def test_the_merge_refuses_a_shard_of_another_plan(shards, tmp_path):
    plan, scratch, _ = shards
    paths = [shard_path(str(scratch), s) for s in plan.shards]
    paths[0], paths[1] = paths[1], paths[0]
    with pytest.raises(ShardError, match="not shard 0 of this plan"):
        materialize(plan, paths, str(tmp_path / "o.tmp"), {})


def _store_files(store: str) -> dict[str, bytes]:
    return {os.path.relpath(os.path.join(d, n), store): Path(d, n).read_bytes()
            for d, _, names in os.walk(store) for n in names}


def test_a_fetched_node_local_shard_is_checked_against_its_crc32_before_it_is_kept(shards, tmp_path):
    from shardmerge.shardstore import FetchedShardKeeper

    plan, scratch, manifests = shards
    shard = plan.shards[1]
    files = _store_files(shard_path(str(scratch), shard))
    here = tmp_path / "driver-scratch"
    here.mkdir()
    keeper, kept = FetchedShardKeeper(str(here)), []
    keeper.keep(shard, files, kept.append)
    keeper.close()
    assert [m["key"] for m in kept] == [shard.key] and load_manifest(shard_path(str(here), shard)) == kept[0]
    flux = next(rel for rel in files if rel.startswith("flux_raw/c"))
    damaged = {**files, flux: bytes([files[flux][0] ^ 1]) + files[flux][1:]}
    other = tmp_path / "other"
    other.mkdir()
    keeper = FetchedShardKeeper(str(other))
    with pytest.raises(ShardError, match=f"{flux}: fetched bytes do not match the crc32"):
        keeper.keep(shard, damaged, kept.append)
    with pytest.raises(ShardError, match="not this shard's"):
        keeper.keep(plan.shards[0], files, kept.append)
    keeper.close()
    assert os.listdir(other) == [] and len(kept) == 1  # nothing half-kept


def test_fetched_shards_are_put_in_place_in_order_and_a_failed_sync_leaves_them_partial(shards, tmp_path,
                                                                                       monkeypatch):
    """The keeper's thread makes stores durable in groups; each is announced once in place, in the order
    given. A failed sync is raised to the caller, and nothing it covered becomes a shard."""
    from shardmerge import shardstore
    from shardmerge.errors import DurabilityError

    plan, scratch, _ = shards
    here = tmp_path / "here"
    here.mkdir()
    keeper, kept = shardstore.FetchedShardKeeper(str(here)), []
    for shard in plan.shards:
        keeper.keep(shard, _store_files(shard_path(str(scratch), shard)), kept.append)
    keeper.close()
    assert [m["shard"] for m in kept] == [s.index for s in plan.shards]
    assert all(manifest_matches(load_manifest(shard_path(str(here), s)), s) for s in plan.shards)

    def failing_sync(paths):
        raise DurabilityError(paths[0], "syncfs failed (Input/output error); nothing is published")

    monkeypatch.setattr(shardstore, "sync_trees", failing_sync)
    there = tmp_path / "there"
    there.mkdir()
    keeper = shardstore.FetchedShardKeeper(str(there))
    keeper.keep(plan.shards[0], _store_files(shard_path(str(scratch), plan.shards[0])), kept.append)
    with pytest.raises(DurabilityError, match="syncfs failed"):
        keeper.close()
    assert [n.endswith(".fetch.partial") for n in os.listdir(there)] == [True] and len(kept) == len(plan.shards)


def test_a_node_local_store_damaged_on_its_disk_is_removed_by_the_fetch_so_it_is_written_again(shards, tmp_path,
                                                                                              monkeypatch):
    """Refused on the worker, not only by the ingest: else the same damaged copy would be reused and fetched,
    and refused, on every rerun."""
    import shutil

    from shardmerge.shardstore import node_scratch, read_node_shard

    plan, scratch, manifests = shards
    monkeypatch.setenv("SHARDMERGE_NODE_SCRATCH", str(tmp_path / "node"))
    shard = plan.shards[1]
    node_copy = Path(node_scratch(str(scratch))) / shard.store_name
    shutil.copytree(shard_path(str(scratch), shard), node_copy)
    files = read_node_shard(shard.store_name, str(scratch))
    assert set(files) == {str(p.relative_to(node_copy)) for p in node_copy.rglob("*") if p.is_file()}
    chunk = next(p for p in (node_copy / "flux_raw").rglob("*") if p.is_file())
    data = chunk.read_bytes()
    chunk.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    rel = str(chunk.relative_to(node_copy))
    with pytest.raises(ShardError, match=f"{rel}: stored bytes do not match the crc32.*written again"):
        read_node_shard(shard.store_name, str(scratch))
    assert not node_copy.exists()


def test_a_failed_run_does_not_wait_forever_for_a_stuck_merge(shards, tmp_path, monkeypatch, caplog):
    """The merge thread hangs in its first shard (a hung disk): abandon gives up after ABANDON_WAIT_S, says
    where the thread was, and removes the .tmp store all the same."""
    import threading

    from shardmerge import merge

    plan, scratch, _ = shards
    reached, release = threading.Event(), threading.Event()

    def stuck(self, shard, path, prechecked=None):
        reached.set()
        release.wait(60)

    monkeypatch.setattr(merge, "ABANDON_WAIT_S", 0.5)
    monkeypatch.setattr(merge.Merger, "place", stuck)
    tmp = tmp_path / "o.tmp"
    merging = merge.StreamedMerge(plan, [shard_path(str(scratch), s) for s in plan.shards], str(tmp))
    merging.shard_written(plan.shards[0].index)
    assert reached.wait(60)  # the store's arrays are created; the merge hangs in its first shard
    try:
        with caplog.at_level("WARNING", logger="shardmerge"):
            merging.abandon()
        assert "the merge did not stop within 0 s" in caplog.text and "release.wait(60)" in caplog.text
        assert not tmp.exists()
    finally:
        release.set()


def test_a_fetched_store_travels_out_of_band_as_one_buffer(shards, tmp_path, monkeypatch):
    """What a fetch task returns pickles (protocol 5, as Dask sends a result straight from a worker) to a
    few hundred bytes plus the store's bytes as one out-of-band buffer: no copy into or out of the pickle.
    Unpickled, it is the same files, and the keeper keeps it like any store."""
    import pickle
    import shutil

    from shardmerge.shardstore import FetchedShardKeeper, node_scratch, read_node_shard

    plan, scratch, _ = shards
    monkeypatch.setenv("SHARDMERGE_NODE_SCRATCH", str(tmp_path / "node"))
    shard = plan.shards[0]
    shutil.copytree(shard_path(str(scratch), shard), Path(node_scratch(str(scratch))) / shard.store_name)
    fetched = read_node_shard(shard.store_name, str(scratch))
    buffers: list = []
    head = pickle.dumps(fetched, protocol=5, buffer_callback=buffers.append)
    expected = _store_files(shard_path(str(scratch), shard))
    assert len(head) < 2000 and [b.raw().nbytes for b in buffers] == [sum(map(len, expected.values()))]
    arrived = pickle.loads(head, buffers=buffers)
    assert {rel: bytes(data) for rel, data in arrived.items()} == expected
    here = tmp_path / "here"
    here.mkdir()
    keeper, kept = FetchedShardKeeper(str(here)), []
    keeper.keep(shard, arrived, kept.append)
    keeper.close()
    stored = _store_files(shard_path(str(here), shard))
    manifest, fetched_manifest = (json.loads(files.pop("manifest.json")) for files in (stored, expected))
    assert stored == expected
    # the same manifest, but for the stat keys: those of the files as the keeper wrote them here
    assert manifest.pop("file_stats") != fetched_manifest.pop("file_stats")
    assert manifest == fetched_manifest
