"""The columnar file table: what the scan learned, per file, without an object per file; the plan's files
on scratch, read back by the shard tasks as ranges."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardmerge import shardstore
from shardmerge.config import LayoutRequest
from shardmerge.errors import PlanError
from shardmerge.filetable import FileTable, FileTableBuilder
from shardmerge.plan import FileScan, make_plan
from shardmerge.shardstore import read_segments, write_file_table


def scan(path: str, n: int = 1, **kw) -> FileScan:
    base = dict(size=1000 + n, mtime_ns=10**18 + n, format="wcs-1d", n_spectra=n, n_pix_max=100, n_pix_min=90,
                grid_keys=("g0",), flux_unit="u", header_keys=("h0_a",))
    return FileScan(path=path, **{**base, **kw})


def varied_scans() -> list[FileScan]:
    return [
        scan("/x.fits", 2),  # a file in the root folder
        scan("/data/a/1.fits", 3, notes=("stale-checksum: CHECKSUM does not match",)),
        scan("/data/a/2.fits.gz", 1, format="sdss-spec", header_keys=("h0_a", "h1_b"), dropped=2),
        scan("/data/a-b/3.fits", 5, join_key="2M001", provides=("uncertainty",)),
        scan("/data/a/b/4.fits", 1, mask_convention="sdss", param_keys=("teff",), size=2**40, mtime_ns=2**62),
        scan("/data/é/5.fits", 4),  # non-ASCII names are packed as utf-8
    ]


def test_a_table_gives_back_every_scan_in_path_order():
    scans = varied_scans()
    table = FileTable.from_scans(reversed(scans))
    ordered = sorted(scans, key=lambda s: s.path)
    assert [table.scan(i) for i in range(len(table))] == ordered
    assert list(table.paths()) == [s.path for s in ordered]
    assert len(table.profiles) == 4  # files that share format, keys and unit share one profile (3 here)
    for i, s in enumerate(ordered):
        assert table.row_of(s.path) == i
    assert table.row_of("/data/a/0.fits") is None and table.row_of("/zzz") is None


def test_select_and_without_paths_keep_the_other_rows_whole():
    scans = sorted(varied_scans(), key=lambda s: s.path)
    table = FileTable.from_scans(scans)
    gone = {"/data/a/1.fits", "/data/a-b/3.fits", "/not/an/input.fits"}
    kept = table.without_paths(gone)
    assert [kept.scan(i) for i in range(len(kept))] == [s for s in scans if s.path not in gone]
    assert table.without_paths(["/nothing"]) is table


def test_a_path_listed_twice_is_refused_and_order_is_enforced():
    with pytest.raises(PlanError, match="/d/a.fits is listed twice"):
        FileTable.from_scans([scan("/d/a.fits"), scan("/d/a.fits")])
    builder = FileTableBuilder()
    builder.add(scan("/d/b.fits"))
    with pytest.raises(ValueError, match="out of path order"):
        builder.add(scan("/d/a.fits"))


def test_a_file_costs_tens_of_bytes_not_an_object():
    n = 20_000
    builder = FileTableBuilder()
    for i in range(n):
        builder.add(scan(f"/survey/{i // 1000:03d}/spec-{i:08d}.fits", 1))
    table = builder.finish()
    assert len(table.profiles) == 1  # format, keys, unit: held once for all
    assert table.resident_bytes() / n < 80


def _companion_scans(counts: list[int], rng: random.Random) -> list[FileScan]:
    scans = [scan(f"/s/{i // 4}/{i:03d}.fits", n, join_key=f"obj{i}") for i, n in enumerate(counts)]
    for i in rng.sample(range(len(counts)), k=len(counts) // 3):  # a third of the files have a companion
        scans.append(scan(f"/c/{i:03d}.fits", 1, format="apogee-aspcapstar", companion=True, join_key=f"obj{i}",
                          provides=("normalized",)))
    return scans


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=20),
       chunk_rows=st.integers(min_value=1, max_value=8), shard_chunks=st.integers(min_value=1, max_value=4),
       seed=st.integers(min_value=0, max_value=1000))
def test_shard_tasks_read_the_same_segments_from_the_table_on_disk(tmp_path_factory, counts, chunk_rows,
                                                                   shard_chunks, seed):
    if sum(counts) == 0:
        return
    plan = make_plan(_companion_scans(counts, random.Random(seed)),
                     LayoutRequest(chunk_rows=chunk_rows, shard_rows=chunk_rows * shard_chunks))
    folder = tmp_path_factory.mktemp("scratch")
    with pytest.MonkeyPatch.context() as mp:  # record batches of 3 rows: shards read across their boundaries
        mp.setattr(shardstore, "FILE_TABLE_BATCH_ROWS", 3)
        context = plan.context(write_file_table(plan, str(folder)))
    assert context.files is None and not context.shards  # what each task receives is small
    for shard in plan.shards:
        assert read_segments(context, shard) == plan.segments(shard)
    with_companion = [seg for s in plan.shards for seg in plan.segments(s) if seg.companions]
    assert all(seg.companions[0].path == f"/c/{seg.path[-8:-5]}.fits" for seg in with_companion)


def test_scan_batches_grow_with_the_survey_and_are_made_when_asked_for():
    from shardmerge.discover import batches
    from shardmerge.pipeline import scan_batch_files

    assert scan_batch_files(100, 2) == 64  # a small corpus: the fewest files a task is worth
    assert scan_batch_files(10**5, 16) == 782  # ~8 tasks per worker
    assert scan_batch_files(10**7, 16) == 4096  # the most: a lost task costs little to redo
    assert -(-10**7 // scan_batch_files(10**7, 16)) == 2442  # tasks for a survey, not 156k
    paths = [f"/d/{i:03d}.fits" for i in range(10)]
    b = batches(paths, 4)
    assert len(b) == 3 and b[-1] == paths[8:] and list(b) == [paths[:4], paths[4:8], paths[8:]]


def test_discovery_walks_in_sorted_path_order_and_packs_the_paths(tmp_path):
    """A survey's paths are never a set or list of str: each input is walked in the order sorted() would
    give (a subfolder `b` sorts as `b/`, between `b-` and `b0`) and the walks are merged."""
    import os

    from shardmerge.discover import discover_inputs
    from shardmerge.errors import InputError
    from shardmerge.filetable import PathList

    names = ["b.fits", "b-.fits", "b0.fits", "b/x.fits", "b/y/z.fits", "b-/q.fits", "ba/r.fits", "A.FITS",
             "é.fits.gz", "c/readme.txt", "c/d.fit"]
    for name in names:
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"")
    os.symlink(tmp_path / "in" / "b", tmp_path / "in" / "link")  # a symlinked folder is not followed
    (tmp_path / "list.txt").write_text("in/b/x.fits\nin/c\n# a comment\n")
    expected = sorted(os.path.join(root, n) for root, _, files in os.walk(tmp_path / "in") for n in files
                      if not n.endswith(".txt"))
    found = discover_inputs([str(tmp_path / "in")])
    assert isinstance(found, PathList) and list(found) == expected
    # overlapping inputs and a list: merged, each path once, still in order
    both = discover_inputs([str(tmp_path / "in" / "b"), f"@{tmp_path / 'list.txt'}", str(tmp_path / "in")])
    assert list(both) == expected and both[1:3] == expected[1:3] and both[-1] == expected[-1]
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "notes.txt").write_text("")
    with pytest.raises(InputError, match="no FITS files"):
        discover_inputs([str(tmp_path / "none")])


@settings(max_examples=60, deadline=None)
@given(paths=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                              max_size=12), max_size=40),
       run=st.integers(min_value=1, max_value=8))
def test_an_at_list_is_sorted_in_bounded_runs_exactly_as_sorted_would(paths, run):
    """An archive's @LIST of 10^7 paths is not held as one list of str: runs of `run` paths are sorted and
    spilled, then merged; any character a path may hold survives, newlines and odd unicode included."""
    from shardmerge.discover import sorted_bounded

    assert list(sorted_bounded(paths, run)) == sorted(paths)
    assert list(sorted_bounded(iter([p + "\udcff" for p in paths]), run)) == sorted(p + "\udcff" for p in paths)


def test_discovery_of_a_long_list_spills_and_gives_the_same_paths(tmp_path, monkeypatch):
    from shardmerge import discover

    for i in range(7):
        (tmp_path / f"f{i}.fits").write_bytes(b"")
    (tmp_path / "list.txt").write_text("".join(f"f{i}.fits\n" for i in (5, 2, 6, 0, 3, 1, 4, 2)))
    expected = [str(tmp_path / f"f{i}.fits") for i in range(7)]
    monkeypatch.setattr(discover, "LIST_SORT_RUN", 3)  # 8 entries: three runs spilled and merged
    assert list(discover.discover_inputs([f"@{tmp_path / 'list.txt'}"])) == expected


def test_an_unreadable_list_or_entry_is_named(tmp_path):
    from shardmerge.discover import discover_inputs
    from shardmerge.errors import InputError

    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9.fits\n")
    with pytest.raises(InputError, match=r"latin1.txt: cannot read the list \(not UTF-8 text"):
        discover_inputs([f"@{tmp_path / 'latin1.txt'}"])
    with pytest.raises(InputError, match=r"missing.txt: cannot read the list \(No such file"):
        discover_inputs([f"@{tmp_path / 'missing.txt'}"])
    (tmp_path / "list.txt").write_text("# comment\n\ngone.fits\n")
    with pytest.raises(InputError, match=r"gone.fits \(listed in .*list.txt line 3\): no such file or folder"):
        discover_inputs([f"@{tmp_path / 'list.txt'}"])


def test_single_input_file_looks_at_a_few_entries_only(tmp_path):
    from shardmerge.discover import single_input_file

    (tmp_path / "a" / "deep").mkdir(parents=True)
    one = tmp_path / "a" / "deep" / "s.fits"
    one.write_bytes(b"")
    (tmp_path / "a" / "notes.txt").write_text("not FITS")
    assert single_input_file([str(tmp_path)]) == str(one)  # through folders, other files ignored
    assert single_input_file([str(one)]) == str(one)
    (tmp_path / "b.fits.gz").write_bytes(b"")
    assert single_input_file([str(tmp_path)]) is None  # two
    assert single_input_file([str(one), str(tmp_path / "b.fits.gz")]) is None
    assert single_input_file(["@" + str(one)]) is None  # a list: discovery's to read
    assert single_input_file([str(tmp_path / "gone.fits")]) is None  # discovery's to name
    crowd = tmp_path / "crowd"
    crowd.mkdir()
    for i in range(20):
        (crowd / f"{i}.txt").write_text("")
    (crowd / "only.fits").write_bytes(b"")
    assert single_input_file([str(crowd)]) == str(crowd / "only.fits")
    assert single_input_file([str(crowd)], look_at=10) is None  # too many entries to tell cheaply
