"""The plan is pure: plain data in, plain data out; every row ↔ shard ↔ chunk mapping checked here."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardmerge.config import MIN_SHARDS, LayoutRequest
from shardmerge.errors import PlanError
from shardmerge.plan import FileScan, choose_chunks, choose_shard_rows, longest_first, make_plan, spec_id


def scan(path: str, n: int = 1, n_pix: int = 100, grid: str = "g0", unit: str = "u", n_pix_min: int | None = None,
         **kw) -> FileScan:
    return FileScan(path=path, size=1000, mtime_ns=1, format="wcs-1d", n_spectra=n, n_pix_max=n_pix,
                    n_pix_min=n_pix if n_pix_min is None else n_pix_min, grid_keys=(grid,), flux_unit=unit, **kw)


def test_plan_imports_no_dask_zarr_or_astropy():
    code = ("import sys, shardmerge.plan; bad = [m for m in ('dask', 'distributed', 'zarr', 'astropy', 'numpy') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("n_pix", "rows", "pix"), [
    (3000, 1024, 3000),      # typical: (1024, N_pix)
    (4096, 1024, 4096),      # exactly 16 MiB
    (4650, 512, 4650),       # 1024 rows would exceed 16 MiB: halve
    (8575, 256, 8575),       # APOGEE-like
    (16384, 256, 16384),
    (16385, 256, 4096),      # high-resolution: (256, 4096)
    (313_000, 256, 4096),
])
def test_default_chunks(n_pix, rows, pix):
    assert choose_chunks(n_pix, None) == (rows, pix)
    assert rows * pix * 4 <= 16 * 2**20


def test_requested_chunk_rows_over_16_mib_is_refused():
    with pytest.raises(PlanError, match="16 MiB"):
        choose_chunks(8000, 1024)
    assert choose_chunks(8000, 512) == (512, 8000)


def test_a_store_smaller_than_a_chunk_gets_chunks_of_its_rows():
    """One chunk either way; without the fill rows that zarr would compress and the gate decompress."""
    few = [scan(f"/s{i}", 3, n_pix=4000) for i in range(5)]  # 15 spectra
    plan = make_plan(few)
    assert plan.chunks_2d == (15, 4000) and plan.n_row_chunks == 1 and len(plan.shards) == 1
    assert plan.rowwise_chunk_rows >= 15
    many = [scan(f"/s{i}", 300, n_pix=4000) for i in range(5)]  # 1500 spectra: the spec's default
    assert make_plan(many).chunks_2d == (1024, 4000)
    assert make_plan([scan("/h", 1, n_pix=20_000)]).chunks_2d == (1, 4096)  # high-resolution too
    # asked-for rows keep the chunk rows they were checked against
    assert make_plan(few, LayoutRequest(chunk_rows=8)).chunks_2d == (8, 4000)
    assert make_plan(few, LayoutRequest(shard_rows=2048)).chunks_2d == (1024, 4000)
    assert make_plan(few, LayoutRequest(zarr_shard_rows=2048)).chunks_2d == (1024, 4000)


def test_shard_rows_must_be_whole_chunks():
    assert choose_shard_rows(64, 100, 100, 256, n_spec=10**6) == 256
    with pytest.raises(PlanError, match="positive multiple of 64 .the rows of one chunk"):
        choose_shard_rows(64, 100, 100, 100, n_spec=10**6)
    default = choose_shard_rows(1024, 4000, 4000, None, n_spec=10**6)
    assert default % 1024 == 0 and default > 0


def test_a_small_store_gets_smaller_shards_so_that_many_workers_share_it():
    """16 MiB of flux per shard, but at least MIN_SHARDS shards where chunks allow: 46k spectra of 2000 px
    made 23 shards, two waves on 16 workers with the second half empty."""
    assert choose_shard_rows(1024, 2000, 2000, None, n_spec=10**7) == 2048  # a survey: 16 MiB shards
    assert choose_shard_rows(1024, 2000, 2000, None, n_spec=46_000) == 1024  # 45 shards, not 23
    assert choose_shard_rows(1024, 2000, 2000, None, n_spec=100) == 1024  # never below one chunk
    assert choose_shard_rows(1024, 2000, 2000, None, n_spec=MIN_SHARDS * 2048) == 2048
    assert choose_shard_rows(1024, 2000, 2000, None, n_spec=(2 * MIN_SHARDS - 1) * 1024) == 1024
    assert choose_shard_rows(1024, 2000, 2000, 4096, n_spec=46_000) == 4096  # asked for: kept
    plan = make_plan([scan(f"/s{i:03d}", 500, n_pix=2000) for i in range(92)])  # 46k spectra
    assert plan.shard_rows == 1024 and len(plan.shards) == 45


def test_shards_start_longest_first():
    """A shard of many one-spectrum files (astropy's per-file cost) outlasts one of a few images."""
    files = [scan(f"/a/one{i:04d}", 1, n_pix=2000) for i in range(1024)]  # shard 0: 1024 files
    files += [scan(f"/b/img{i}", 512, n_pix=2000) for i in range(4)]  # shards 1, 2: two files each
    files += [scan(f"/c/one{i:04d}", 1, n_pix=2000) for i in range(300)]  # shard 3: 300 files, fewer rows
    plan = make_plan(files)
    assert [s.file_hi - s.file_lo for s in plan.shards] == [1024, 2, 2, 300]
    assert longest_first(plan.shards, plan.n_pix) == [0, 3, 1, 2]  # equal estimates keep shard order
    assert longest_first((), 2000) == []


def test_row_order_is_sorted_paths_then_index_in_file():
    scans = [scan("/d/b.fits", 3), scan("/d/a.fits", 2), scan("/c/z.fits", 1)]
    plan = make_plan(scans, LayoutRequest(chunk_rows=2, shard_rows=2))
    rows = [(seg.path, seg.first + k, seg.row + k) for s in plan.shards for seg in plan.segments(s)
            for k in range(seg.count)]
    assert rows == [("/c/z.fits", 0, 0), ("/d/a.fits", 0, 1), ("/d/a.fits", 1, 2),
                    ("/d/b.fits", 0, 3), ("/d/b.fits", 1, 4), ("/d/b.fits", 2, 5)]
    assert plan == make_plan(list(reversed(scans)), LayoutRequest(chunk_rows=2, shard_rows=2))


def test_n_pix_is_longest_and_grid_sharing():
    same = make_plan([scan("/a", 2), scan("/b", 1)])
    assert same.n_pix == 100 and same.wavelength_shared
    differ = make_plan([scan("/a", 1), scan("/b", 1, grid="g1")])
    assert not differ.wavelength_shared
    shorter = make_plan([scan("/a", 1, n_pix=90, grid="g0"), scan("/b", 1, n_pix=100, grid="g0")])
    assert shorter.n_pix == 100 and not shorter.wavelength_shared


def test_units_keys_and_formats_are_collected():
    plan = make_plan([scan("/a", 2, unit="x", header_keys=("h0_b", "h1_a")), scan("/b", 1, unit="y",
                                                                                  header_keys=("h0_a",))])
    assert plan.flux_units == ("x", "y")
    assert plan.header_keys == ("h0_a", "h0_b", "h1_a")
    assert plan.files_per_format == (("wcs-1d", 2),) and plan.spectra_per_format == (("wcs-1d", 3),)


def test_fingerprint_follows_inputs_and_layout():
    base = make_plan([scan("/a", 2)])
    assert base.fingerprint == make_plan([scan("/a", 2)]).fingerprint
    touched = replace(scan("/a", 2), mtime_ns=2)
    assert make_plan([touched]).fingerprint != base.fingerprint
    assert make_plan([scan("/a", 2)], LayoutRequest(chunk_rows=8)).fingerprint != base.fingerprint


def test_shard_keys_change_only_where_inputs_changed():
    """Resume: a rerun reuses every shard whose key it finds, so a key must change exactly when the
    shard's bytes would."""
    req = LayoutRequest(chunk_rows=4, shard_rows=4)
    files = [scan(f"/d/f{i}", 3) for i in range(6)]  # 18 rows: shards [0,4) [4,8) [8,12) [12,16) [16,18)
    keys = [s.key for s in make_plan(files, req).shards]
    assert len(set(keys)) == 5 and all(len(k) == 16 for k in keys)

    edited = files[:]
    edited[2] = replace(files[2], mtime_ns=5)  # rows 6..8: shards 1 and 2
    after = [s.key for s in make_plan(edited, req).shards]
    assert [a == b for a, b in zip(keys, after, strict=True)] == [True, False, False, True, True]

    appended = [s.key for s in make_plan([*files, scan("/d/f9", 3)], req).shards]
    assert appended[:4] == keys[:4] and appended[4] != keys[4]  # only the last, now longer, shard differs

    removed = [s.key for s in make_plan(files[:3] + files[4:], req).shards]  # rows 9..11 go
    assert removed[:2] == keys[:2] and not set(removed[2:]) & set(keys)  # rows from the gap on moved

    assert not {s.key for s in make_plan(files, LayoutRequest(chunk_rows=2, shard_rows=4)).shards} & set(keys)
    wider = [s.key for s in make_plan([*files, scan("/d/f9", 1, n_pix=200)], req).shards]
    assert not set(wider) & set(keys)  # N_pix changed: every shard's arrays are wider


def test_refusals():
    with pytest.raises(PlanError, match="no input"):
        make_plan([])
    with pytest.raises(PlanError, match="no spectra"):
        make_plan([scan("/a", 0)])
    with pytest.raises(PlanError, match="listed twice"):
        make_plan([scan("/a", 1), scan("/a", 1)])


def test_spec_id_is_relative_to_common_root():
    plan = make_plan([scan("/data/x/a.fits"), scan("/data/y/b.fits")])
    assert plan.common_root == "/data"
    assert spec_id(plan.common_root, "/data/x/a.fits", 3) == "x/a.fits#3"


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=25),
    chunk_rows=st.integers(min_value=1, max_value=16),
    shard_chunks=st.integers(min_value=1, max_value=5),
)
def test_shards_tile_rows_on_chunk_boundaries(counts, chunk_rows, shard_chunks):
    if sum(counts) == 0:
        return
    scans = [scan(f"/s/{i:03d}.fits", n) for i, n in enumerate(counts)]
    plan = make_plan(scans, LayoutRequest(chunk_rows=chunk_rows, shard_rows=chunk_rows * shard_chunks))
    assert plan.n_spec == sum(counts)
    # shards are contiguous, cover 0..N_spec, start on chunk boundaries, hold whole chunks except the last
    assert plan.shards[0].row_start == 0 and plan.shards[-1].row_stop == plan.n_spec
    for a, b in zip(plan.shards, plan.shards[1:], strict=False):
        assert a.row_stop == b.row_start
    for s in plan.shards:
        assert s.row_start % chunk_rows == 0
        assert s.n_rows == plan.shard_rows or s is plan.shards[-1]
        # segments fill the shard exactly, in row order
        row = s.row_start
        for seg in plan.segments(s):
            assert seg.row == row and seg.count > 0
            row += seg.count
        assert row == s.row_stop
        for r in range(s.row_start, s.row_stop):
            assert plan.shard_of_row(r) == s.index
    # every spectrum of every file appears exactly once, in file order
    seen: dict[str, list[int]] = {}
    for s in plan.shards:
        for seg in plan.segments(s):
            seen.setdefault(seg.path, []).extend(range(seg.first, seg.first + seg.count))
    for sc in scans:
        assert seen.get(sc.path, []) == list(range(sc.n_spectra))


def _survey_shape(n_spec: int, n_pix: int = 4000, zarr_format: int = 3):
    """A survey of one-spectrum files with uncertainties and 18 projected header cards, as make_plan sees it."""
    from shardmerge.plan import StoreShape
    from shardmerge.schema import arrays_for, rowwise_arrays

    arrays = arrays_for(frozenset({"uncertainty"}))
    header_keys = tuple(f"h0_key{k:02d}" for k in range(18))
    return StoreShape(n_spec, n_pix, *choose_chunks(n_pix, None), len(arrays), True,
                      len(rowwise_arrays(("u",), (), header_keys, ())), zarr_format,
                      n_pix * sum(a.itemsize for a in arrays))


def test_a_survey_of_ten_million_spectra_fits_the_file_budget():
    from shardmerge.config import MAX_WRITE_BLOCK_BYTES, STORE_FILE_BUDGET
    from shardmerge.plan import choose_file_layout

    shape = _survey_shape(10**7)
    assert shape.files(0, 1024 * 16) > 55_000  # the layout before the budget: one file per chunk
    zarr_rows, rowwise_rows = choose_file_layout(shape, LayoutRequest())
    assert shape.files(zarr_rows, rowwise_rows) <= STORE_FILE_BUDGET
    assert (zarr_rows, rowwise_rows) == (4096, 1 << 16)  # 4 chunk rows per Zarr shard, 64 Ki rows per 1-D chunk
    assert zarr_rows * shape.row_bytes <= MAX_WRITE_BLOCK_BYTES  # a shard task's block stays bounded
    # below the budget nothing changes: a store of 10^5 spectra keeps one file per chunk
    small = _survey_shape(10**5)
    assert choose_file_layout(small, LayoutRequest()) == (0, 1024 * 16)
    # asked for: no Zarr sharding (0), an explicit size, Zarr v2; an asked-for --shard-rows bounds the doubling
    assert choose_file_layout(shape, LayoutRequest(zarr_shard_rows=0))[0] == 0
    assert choose_file_layout(shape, LayoutRequest(zarr_shard_rows=2048))[0] == 2048
    assert choose_file_layout(_survey_shape(10**7, zarr_format=2), LayoutRequest(zarr_format=2))[0] == 0
    assert choose_file_layout(shape, LayoutRequest(shard_rows=2048))[0] == 2048
    # high-resolution spectra: one Zarr shard per chunk row spans its 74 pixel chunks; the write block, already
    # 1.2 GB at 256 rows of 300k px, stops the doubling
    wide = _survey_shape(10**6, n_pix=300_000)
    assert choose_file_layout(wide, LayoutRequest())[0] == 256
    mid = _survey_shape(10**7, n_pix=16_000)  # 1024 rows x 16k px: a 256 MB block, doubled once is the limit
    rows, _ = choose_file_layout(mid, LayoutRequest())
    assert rows * mid.row_bytes <= MAX_WRITE_BLOCK_BYTES < 2 * rows * mid.row_bytes
    assert mid.files(rows, 1 << 16) > STORE_FILE_BUDGET  # not met: describe() and the run's log say so


@pytest.mark.parametrize(("start", "n", "shard_rows", "verifier_row"), [
    (0, 40, 16, 0),  # 16, 16, 8: the first of equals
    (1, 40, 16, 16),  # 15, 16, 9
    (10, 10, 16, 10),  # 6, 4
    (14, 10, 16, 16),  # 2, 8
    (5, 3, 16, 5),  # not split: the one segment
])
def test_the_segment_holding_most_of_a_split_file_verifies_it(start, n, shard_rows, verifier_row):
    from shardmerge.plan import FileSegment

    segments = []
    at = start
    while at < start + n:
        end = min(start + n, (at // shard_rows + 1) * shard_rows)
        segments.append(FileSegment("/f.fits", "image-2d", at - start, end - at, at, 1, 1, (), n))
        at = end
    assert [s.row for s in segments if s.verifies_file(shard_rows)] == [verifier_row]


def test_row_bounds_are_a_range_for_one_spectrum_files_and_the_file_table_is_the_same(tmp_path):
    """One spectrum a file (a survey of 10^7 files: 76 MiB less of the driver's memory): the rows are a
    range, and the file table and every shard's segments are those an array of the same bounds gives."""
    import dataclasses
    from array import array

    import pyarrow as pa

    from shardmerge.plan import row_bounds
    from shardmerge.shardstore import write_file_table

    assert row_bounds(array("q", [1] * 5)) == range(6)
    assert row_bounds(array("q", [1, 3, 0, 2])) == array("q", [0, 1, 4, 4, 6])
    plan = make_plan([scan(f"/d/f{i:04d}.fits") for i in range(2500)], LayoutRequest(shard_rows=512, chunk_rows=256))
    assert isinstance(plan.files.row_bounds, range)
    as_array = dataclasses.replace(plan, files=dataclasses.replace(plan.files, row_bounds=array("q", range(2501))))
    assert as_array.files == plan.files
    tables = []
    for p, where in ((plan, "range"), (as_array, "array")):
        (tmp_path / where).mkdir()
        with pa.memory_map(write_file_table(p, str(tmp_path / where))) as f:
            tables.append(pa.ipc.open_file(f).read_all())
    assert tables[0].equals(tables[1])
    assert tables[0].column("first_row").to_pylist() == list(range(2500))
    assert [plan.files.segments(s) for s in plan.shards] == [as_array.files.segments(s) for s in plan.shards]
