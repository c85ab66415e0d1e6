"""Scan results as columns (issue 28): each scan task returns one ScanBatch, the driver folds it by the column
into a FileTable that shares the discovered PathList's packed paths, and the plan works on runs and views of
the columns. Same table, same fingerprints and shard keys as folding FileScans one at a time."""

from __future__ import annotations

import hashlib
import pickle
import random
from array import array
from itertools import groupby

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardmerge.filescan import BadFile, FileScan
from shardmerge.filetable import FileTable, FileTableBuilder, PathList, ScanBatch, runs
from shardmerge.plan import _hash_files, make_plan


def scan(path: str, n: int = 1, **kw) -> FileScan:
    base = dict(size=1000 + n, mtime_ns=10**18 + n, format="wcs-1d", n_spectra=n, n_pix_max=100, n_pix_min=90,
                grid_keys=("g0",), flux_unit="u", header_keys=("h0_a",), stat_id=-(n + 7))
    return FileScan(path=path, **{**base, **kw})


def varied(rng: random.Random, n: int) -> list[FileScan]:
    """Sorted scans over a few folders and profiles, with the sparse fields now and then."""
    out = []
    for i in range(n):
        kw: dict = {}
        if rng.random() < 0.3:
            kw["format"] = rng.choice(["sdss-spec", "apogee-apstar"])
        if rng.random() < 0.2:
            kw["header_keys"] = ("h0_a", "h1_b")
        if rng.random() < 0.1:
            kw["notes"] = ("stale-checksum: CHECKSUM does not match",)
        if rng.random() < 0.1:
            kw["join_key"] = f"obj{i}"
        out.append(scan(f"/s/{rng.randrange(3)}/é{i:04d}.fits", rng.randrange(0, 4), **kw))
    return sorted(out, key=lambda s: s.path)


def packed(paths: list[str]) -> PathList:
    out = PathList()
    for p in paths:
        out.append(p)
    out.seal()
    return out


def fold_in_batches(results: list, size: int) -> tuple[FileTable, PathList, list[BadFile]]:
    """What the scan stage does: one pickled ScanBatch per task of `size` paths, folded in order."""
    paths = packed([r.path for r in results])
    builder, bad = FileTableBuilder(paths), []
    for lo in range(0, len(results), size):
        batch = pickle.loads(pickle.dumps(ScanBatch(results[lo : lo + size])))
        builder.fold(batch)
        bad.extend(b for _, b in batch.bad)
    return builder.finish(), paths, bad


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 60), size=st.integers(1, 9), bad_share=st.sampled_from([0, 0.2]))
def test_folded_batches_make_the_table_one_at_a_time_adds_make(seed, n, size, bad_share):
    rng = random.Random(seed)
    scans = varied(rng, n)
    results = [BadFile(s.path, "unreadable") if rng.random() < bad_share else s for s in scans]
    table, paths, bad = fold_in_batches(results, size)
    good = [r for r in results if isinstance(r, FileScan)]
    assert [table.scan(i) for i in range(len(table))] == good
    assert bad == [r for r in results if isinstance(r, BadFile)]
    if good:  # the same columns, profile ids and sparse rows (a refused file's folder may stay listed)
        same = FileTable.from_scans(good)
        assert all(getattr(table, c) == getattr(same, c) for c in FileTable.__slots__
                   if c not in ("folders", "folder_of") or not bad)
    assert list(paths) == [s.path for s in scans]  # the discovered paths are intact
    if not bad:  # every file read: the table's paths are the PathList's own columns, not a copy
        assert table.names is paths.names and table.name_ends is paths.ends and table.folder_of is paths.folder_of


def test_a_batch_pickles_each_profile_once_and_small():
    keys = tuple(f"h0_key{k:02d}" for k in range(18))
    scans = [scan(f"/d/{i:05d}.fits", header_keys=tuple(list(keys)), grid_keys=("g" * 16,)) for i in range(1000)]
    batch = ScanBatch(scans)
    assert len(batch) == 1000 and len(batch.profiles) == 1  # equal keys (not the same tuples): one profile
    sent = pickle.dumps(batch)
    assert len(sent) < 60 * len(scans) < len(pickle.dumps(scans))
    back = pickle.loads(sent)
    assert back.size == batch.size and back.profiles == batch.profiles


def test_a_fold_must_answer_for_every_path_and_a_shared_pathlist_is_sealed():
    paths = packed(["/d/a.fits", "/d/b.fits"])
    builder = FileTableBuilder(paths)
    builder.fold(ScanBatch([scan("/d/a.fits")]))
    with pytest.raises(ValueError, match="cover 1 of 2 paths"):
        builder.finish()
    with pytest.raises(ValueError, match="sealed"):
        paths.append("/d/c.fits")
    with pytest.raises(TypeError):
        FileTableBuilder(paths).add(scan("/d/a.fits"))


def test_a_second_pass_over_a_table_shares_its_paths():
    table = FileTable.from_scans(varied(random.Random(3), 30))
    again = table.path_list()
    assert list(again) == list(table.paths()) and again.last == table.path(len(table) - 1)
    builder = FileTableBuilder(again)
    builder.fold(ScanBatch(table.scan(i) for i in range(len(table))))
    assert builder.finish() == table


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.integers(0, 3), max_size=40), cut=st.tuples(st.integers(0, 40), st.integers(0, 40)))
def test_runs_are_groupby_of_the_slice(values, cut):
    column = array("i", values)
    lo, hi = min(cut), min(max(cut), len(values))
    expected, at = [], lo
    for value, group in groupby(values[lo:hi]):
        n = len(list(group))
        expected.append((value, at, at + n))
        at += n
    assert runs(column, lo, hi) == expected


def _hash_files_as_before(h, table: FileTable, lo: int, hi: int) -> None:
    """The file hash as it was before columns were hashed by runs and views (commit 7a1ca66): shard keys and
    fingerprints, hence resume and the store's provenance, must not change."""
    for folder, run in groupby(table.folder_of[lo:hi]):
        h.update(b"D%s\0%d\0" % (table.folders[folder].encode(), len(list(run))))
    for profile, run in groupby(table.profile[lo:hi]):
        h.update(b"F%s\0%d\0" % (table.profiles[profile].format.encode(), len(list(run))))
    base = table.name_ends[lo - 1] if lo else 0
    h.update(table.names[base : table.name_ends[hi - 1] if hi > lo else base])
    h.update(array("q", (e - base for e in table.name_ends[lo:hi])).tobytes())
    for column in (table.size, table.mtime_ns, table.stat_id, table.n_spectra):
        h.update(column[lo:hi].tobytes())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 50), cut=st.tuples(st.integers(0, 50), st.integers(0, 50)))
def test_the_file_hash_is_the_one_before(seed, n, cut):
    table = FileTable.from_scans(varied(random.Random(seed), n))
    lo, hi = min(cut), min(max(cut), n)
    lo = min(lo, hi)
    new, old = hashlib.sha256(), hashlib.sha256()
    _hash_files(new, table, lo, hi)
    _hash_files_as_before(old, table, lo, hi)
    assert new.hexdigest() == old.hexdigest()


def test_a_plan_of_folded_batches_is_the_plan_of_the_scans():
    scans = [s for s in varied(random.Random(11), 200) if not s.join_key]
    table, _, _ = fold_in_batches(scans, 16)
    by_batches, by_scans = make_plan(table), make_plan(scans)
    assert by_batches.fingerprint == by_scans.fingerprint
    assert [s.key for s in by_batches.shards] == [s.key for s in by_scans.shards]
    assert by_batches.files_per_format == by_scans.files_per_format
    assert by_batches.spectra_per_format == by_scans.spectra_per_format


@pytest.mark.timeout(120)
def test_the_scan_stage_on_a_real_cluster_folds_what_each_file_scans_to(tmp_path, dask_scheduler):
    """Real FITS files (one empty, so refused) scanned by real workers in tasks of 4: the table is what
    scan_file says of each good file, the refused one is named, and the table shares the discovered paths."""
    from distributed import Client

    from shardmerge.discover import discover_inputs
    from shardmerge.executors.dask_backend import DaskExecutor
    from shardmerge.headers import load_header_rules
    from shardmerge.jobs import ScanJob
    from shardmerge.scan import scan_file
    from shardmerge.stages import scan as scan_stage
    from shardmerge.testing.spectra import make_mixed_corpus

    make_mixed_corpus(tmp_path / "in", n_wcs1d=6, n_image2d=2, rows_per_image=5, n_sdss=3)
    (tmp_path / "in" / "m-empty.fits").write_bytes(b"")
    paths = discover_inputs([str(tmp_path / "in")])
    rules = load_header_rules()
    with pytest.MonkeyPatch.context() as mp, Client(dask_scheduler) as client:
        mp.setattr(scan_stage, "SCAN_BATCH_FILES", 4)
        result = scan_stage.scan_inputs(paths, ScanJob(choice=None, rules=rules), DaskExecutor(client), "off")
    good = [p for p in paths if not p.endswith("m-empty.fits")]
    assert [result.table.scan(i) for i in range(len(result.table))] == [scan_file(p, None, rules) for p in good]
    assert [(b.path, b.reason) for b in result.bad] == [(str(tmp_path / "in" / "m-empty.fits"), "file is empty")]
    assert result.files_found == len(paths) == len(good) + 1


def test_name_ends_widen_when_the_names_outgrow_them(monkeypatch):
    """Name ends are 4 bytes a path until the names pass 4 GiB; here 1 byte (256 bytes of names)."""
    from shardmerge import filetable

    monkeypatch.setattr(filetable, "NAME_ENDS", "B")
    names = [f"/d/{i:03d}-{'x' * 20}.fits" for i in range(30)]
    paths = packed(names)
    assert paths.ends.typecode == "q" and list(paths) == names
    table = FileTable.from_scans([scan(p) for p in names])
    digest = make_plan(table).fingerprint
    monkeypatch.setattr(filetable, "NAME_ENDS", "I")
    assert make_plan(FileTable.from_scans([scan(p) for p in names])).fingerprint == digest  # width never hashed
