"""Issue 25: one very long file among many short spectra silently made every row its width. The plan now says
so (Plan.wide_rows, Plan.warnings, describe()["warnings"]), naming the file(s), the typical length, the size
with and without them, and how to proceed; `shardmerge plan` prints it and the ingest's report carries it."""

from __future__ import annotations

import json

import pytest

from shardmerge.plan import WIDE_ROW_FACTOR, FileScan, describe, make_plan
from shardmerge.testing.spectra import make_image2d, make_wcs1d
from tests.helpers import run_cli


def scan(path: str, n: int = 1, n_pix: int = 500) -> FileScan:
    return FileScan(path=path, size=1000, mtime_ns=1, format="wcs-1d", n_spectra=n, n_pix_max=n_pix,
                    n_pix_min=n_pix, grid_keys=(f"g{n_pix}",), flux_unit="u")


def test_the_issue_case_one_20000_pixel_file_among_27000_short_spectra():
    scans = [scan(f"/d/s{i:05d}.fits", n=100, n_pix=3000 + (i % 7) * 100) for i in range(270)]
    scans.append(scan("/d/zz-long.fits", n_pix=20_000))
    plan = make_plan(scans)
    assert plan.n_pix == 20_000 and plan.n_spec == 27_001
    wide = plan.wide_rows
    assert wide is not None
    assert wide.files == (("/d/zz-long.fits", 20_000, 1),) and wide.n_files == 1 and wide.n_spectra == 1
    assert wide.typical == 3600  # 99% of the spectra are at most 3600 px long
    assert wide.estimated_bytes == plan.estimated_bytes()
    assert wide.estimated_bytes_without < wide.estimated_bytes / 5
    assert wide.padding > 0.8
    (message,) = plan.warnings
    for part in ("N_pix 20000 is set by 1 file(s)", "/d/zz-long.fits (20000 px)", "at most 3600 px",
                 "--max-pixels 3600 --on-bad-file skip", "a store of their own", "uncompressed"):
        assert part in message, message
    d = describe(plan)
    assert d["warnings"] == [message] and d["wide_rows"]["typical"] == 3600
    json.dumps(d)  # the run report and plan --json carry it as it is


@pytest.mark.parametrize(("long_share", "warned"), [(0.005, True), (0.02, False), (0.5, False)])
def test_only_few_long_spectra_warn(long_share, warned):
    """Two genuine populations (2% or half of the spectra long) are no oddity; under 1% are."""
    n = 1000
    n_long = max(1, int(n * long_share))
    scans = [scan(f"/d/s{i:04d}.fits", n_pix=20_000 if i < n_long else 400) for i in range(n)]
    plan = make_plan(scans)
    assert (plan.wide_rows is not None) is warned
    assert bool(plan.warnings) is warned
    if warned:
        assert plan.wide_rows.n_files == n_long and plan.wide_rows.typical == 400


def test_longest_within_the_factor_does_not_warn():
    scans = [scan(f"/d/s{i:04d}.fits", n_pix=1000) for i in range(500)]
    scans.append(scan("/d/long.fits", n_pix=1000 * WIDE_ROW_FACTOR))  # exactly the factor: no warning
    assert make_plan(scans).wide_rows is None
    scans[-1] = scan("/d/long.fits", n_pix=1000 * WIDE_ROW_FACTOR + 1)
    assert make_plan(scans).wide_rows is not None


def test_many_long_files_are_named_longest_first_and_counted():
    scans = [scan(f"/d/s{i:05d}.fits", n=10, n_pix=300) for i in range(1000)]
    scans += [scan(f"/d/long{i}.fits", n_pix=5000 + i) for i in range(8)]
    wide = make_plan(scans).wide_rows
    assert wide.n_files == 8 and [f[0] for f in wide.files] == [f"/d/long{i}.fits" for i in (7, 6, 5, 4, 3)]
    assert "and 3 more" in wide.message()


@pytest.mark.timeout(120)
def test_plan_and_ingest_say_it(tmp_path, dask_scheduler):
    d = tmp_path / "in"
    make_image2d(d / "a_plate.fits", n_rows=200, n_pix=300)  # 200 short spectra
    long_file = make_wcs1d(d / "b_long.fits", n_pix=3000)  # one 10x longer
    r = run_cli("plan", d)
    assert r.exit_code == 0, r
    assert f"WARNING         wide rows: N_pix 3000 is set by 1 file(s) (1 of 201 spectra) far longer than the " \
           f"rest: {long_file} (3000 px)" in r.output, r.output
    assert "--max-pixels 300 --on-bad-file skip" in r.output
    plan_json = json.loads(run_cli("plan", d, "--json").stdout)
    assert len(plan_json["warnings"]) == 1 and str(long_file) in plan_json["warnings"][0]

    rep = tmp_path / "report.json"
    r = run_cli("ingest", d, "-o", tmp_path / "o.zarr", "--scheduler", dask_scheduler, "--report", rep)
    assert r.exit_code == 0, r
    assert "WARNING wide rows: N_pix 3000 is set by 1 file(s)" in r.output  # the log line
    report = json.loads(rep.read_text())
    assert report["warnings"] == plan_json["warnings"] == report["plan"]["warnings"]

    # as the plan suggests: the long file left out, no warning
    r = run_cli("plan", d, "--max-pixels", "300", "--on-bad-file", "skip", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["warnings"] == [] and json.loads(r.stdout)["n_pix"] == 300, r
