"""End to end on a real LocalCluster: a mixed corpus of the three layouts, every value checked."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from astropy.io import fits

from shardmerge.testing.spectra import make_wcs1d
from tests.helpers import run_cli, run_cli_process
from tests.integration.independent import assert_store_matches_sources, spectra_of
from tests.storecmp import chunk_files


def test_mixed_corpus_round_trips(tmp_path, mixed_corpus, dask_scheduler):
    out = tmp_path / "survey.zarr"
    report = tmp_path / "report.json"
    r = run_cli("ingest", mixed_corpus, "-o", out, "--scheduler", dask_scheduler, "--chunk-rows", "16",
                "--shard-rows", "32", "--report", report)
    assert r.exit_code == 0, r
    assert "published" in r.output
    assert not os.path.exists(f"{out}.tmp") and not os.path.exists(f"{out}.lock")

    root = zarr.open_group(out, mode="r")
    n_files = 10 + 3 + 6
    n_spec = 10 + 3 * 40 + 6
    assert root["signal/flux_raw"].shape == (n_spec, 4000)
    assert root["signal/flux_raw"].chunks == (16, 4000)
    assert root["signal/wavelength"].shape == (n_spec, 4000)  # grids differ: 2-D
    assert assert_store_matches_sources(out) == n_spec

    # provenance, units, continuum and representations
    attrs = root.attrs.asdict()
    assert attrs["schema_version"] == "2.0" and attrs["ingest_pipeline"].startswith("shardmerge ")
    assert attrs["git_commit"] not in ("", "unknown") and attrs["input_files"] == n_files
    assert attrs["created_at"].endswith("Z")
    assert root["signal/wavelength"].attrs["units"] == "Angstrom"
    assert root["signal/flux_raw"].attrs["units_column"] == "metadata/flux_unit"
    assert "units" not in root["signal/flux_raw"].attrs
    units = root["metadata/flux_unit"][:]
    assert set(units) == {"erg / (Angstrom s cm2)", "1e-17 erg / (Angstrom s cm2)"}  # normalised (units.py)
    assert set(root["metadata/flux_unit_source"][:]) == {"erg/cm2/s/A", "1E-17 erg/cm^2/s/Ang"}
    assert np.isnan(root["continuum/continuum_model"][:]).all()
    assert list(set(root["continuum/method"][:])) == ["none"]
    assert "normalized_flux" not in root["representations"]
    assert len(list(root["params"].keys())) == 0

    # metadata: identity, canonical fields and projected headers
    spec_ids = root["metadata/spec_id"][:]
    assert len(set(spec_ids)) == n_spec
    paths = root["metadata/source_path"][:]
    assert list(paths) == sorted(paths)  # global order: sorted paths, then index within the file
    keys = set(root["metadata"].keys())
    assert {"h0_airmass", "h0_airmass_2", "h0_eso_tel_airm_start", "h0_object", "h0_date_obs"} <= keys
    assert not any("drs_cal" in k or "ins_temp" in k or "comment" in k or "history" in k or "eso_det" in k
                   for k in keys)
    for row in (0, n_spec // 2, n_spec - 1):
        with fits.open(paths[row]) as h:
            hdr = h[0].header
            if "OBJECT" in hdr:
                assert root["metadata/object"][row] == hdr["OBJECT"]
                assert root["metadata/h0_object"][row] == hdr["OBJECT"]
                airmasses = [c.value for c in hdr.cards if c.keyword == "AIRMASS"]
                assert root["metadata/h0_airmass_2"][row] == str(airmasses[1])
                ra = hdr["RA"].split(":")
                assert root["metadata/ra"][row] == pytest.approx(
                    15 * (int(ra[0]) + int(ra[1]) / 60 + float(ra[2]) / 3600))
            else:
                assert root["metadata/h0_object"][row] == ""
                assert root["metadata/ra"][row] == pytest.approx(hdr["PLUG_RA"])

    # index.parquet
    index = pq.read_table(out / "index.parquet")
    assert index.num_rows == n_spec
    assert index.column("row").to_pylist() == list(range(n_spec))
    assert index.column("spec_id").to_pylist() == list(spec_ids)
    assert set(index.column("shard").to_pylist()) == set(range(math.ceil(n_spec / 32)))

    # the run report
    rep = json.loads(report.read_text())
    assert rep["status"] == "published" and rep["counts"]["spectra"] == n_spec
    assert rep["counts"]["shards_total"] == math.ceil(n_spec / 32) and rep["counts"]["shards_reused"] == 0
    assert set(rep["seconds"]) >= {"cluster_start", "scan", "plan", "shard", "merge", "validate", "publish",
                                   "cluster_close"}
    assert rep["cluster"]["close_s"] >= 0  # the close ran beside the merge, and was waited for
    assert rep["bytes"]["store"] > 0 and rep["skipped_files"] == []
    assert all(v == "pass" for v in rep["checks"].values())

    v = run_cli("validate", out)
    assert v.exit_code == 0 and "17/18 checks passed, 1 skipped" in v.output
    # scratch shard stores are removed after the publish
    assert not any((tmp_path / "scratch").glob("*/shard-*"))


def test_shared_grid_gives_1d_wavelength_and_gz_inputs(tmp_path, dask_scheduler):
    from shardmerge.testing.spectra import gzip_file

    d = tmp_path / "in"
    files = [make_wcs1d(d / f"s{i}.fits", i=i, n_pix=500, seed=i) for i in range(5)]
    gzip_file(files[0])
    out = tmp_path / "shared.zarr"
    r = run_cli("ingest", d, "-o", out, "--scheduler", dask_scheduler)
    assert r.exit_code == 0, r
    root = zarr.open_group(out, mode="r")
    assert root["signal/wavelength"].shape == (500,)
    np.testing.assert_allclose(root["signal/wavelength"][:], spectra_of(str(files[1]))[0]["wave"])
    assert str(root["metadata/source_path"][0]).endswith("s0.fits.gz")
    assert_store_matches_sources(out)


def _sdss_with_loglam(path, edit) -> None:
    """Rewrite an SDSS spec file with its loglam column edited and its header (COEFF0/COEFF1) as it was."""
    with fits.open(path) as h:
        hdus = fits.HDUList([fits.PrimaryHDU(header=h[0].header),
                             fits.BinTableHDU(h[1].data.copy(), header=h[1].header, name="COADD")])
    edit(hdus[1].data["loglam"])
    hdus.writeto(path, overwrite=True, checksum=True)


def test_sdss_grids_are_planned_from_headers_and_shared_only_when_their_values_are_one(tmp_path, dask_scheduler):
    """The scan takes an SDSS spec file's grid from COEFF0/COEFF1 without reading the loglam column. One grid
    by the headers is checked against the columns before the wavelength is stored once: files whose
    headers agree but whose columns differ get a 2-D wavelength of each file's own grid."""
    from shardmerge.testing.spectra import make_sdss_coadd

    one = tmp_path / "one"
    make_sdss_coadd(one / "spec-a.fits", i=0, n_pix=300, seed=0)
    make_sdss_coadd(one / "spec-b.fits", i=1, n_pix=300, seed=1)
    r = run_cli("ingest", one, "-o", tmp_path / "one.zarr", "--scheduler", dask_scheduler)
    assert r.exit_code == 0, r
    root = zarr.open_group(tmp_path / "one.zarr", mode="r")
    assert root["signal/wavelength"].shape == (300,)  # the columns confirmed the headers' one grid
    assert_store_matches_sources(tmp_path / "one.zarr")

    differ = tmp_path / "differ"
    make_sdss_coadd(differ / "spec-a.fits", i=0, n_pix=300, seed=0)
    b = make_sdss_coadd(differ / "spec-b.fits", i=1, n_pix=300, seed=1)

    def shift(loglam):
        loglam += np.float32(2e-5)

    _sdss_with_loglam(b, shift)  # the header still says the grid of spec-a
    r = run_cli("ingest", differ, "-o", tmp_path / "differ.zarr", "--scheduler", dask_scheduler)
    assert r.exit_code == 0, r
    root = zarr.open_group(tmp_path / "differ.zarr", mode="r")
    assert root["signal/wavelength"].shape == (2, 300)
    with fits.open(b) as h:
        np.testing.assert_allclose(root["signal/wavelength"][1], 10.0 ** h[1].data["loglam"].astype(np.float64))
    assert_store_matches_sources(tmp_path / "differ.zarr")


def test_an_sdss_grid_that_steps_back_is_found_by_the_shard_task(tmp_path, dask_scheduler):
    """The scan saw only the header's grid; the shard task reads the column, refuses it (exit 3, named), or
    leaves the file out under --on-bad-file skip."""
    from shardmerge.testing.spectra import make_sdss_coadd

    d = tmp_path / "in"
    good = make_wcs1d(d / "s0.fits", i=0, n_pix=300, seed=0)
    bad = make_sdss_coadd(d / "spec-b.fits", i=1, n_pix=300, seed=1)

    def step_back(loglam):
        loglam[40] = loglam[39] - np.float32(1e-4)

    _sdss_with_loglam(bad, step_back)
    r = run_cli("ingest", d, "-o", tmp_path / "out.zarr", "--scheduler", dask_scheduler)
    assert r.exit_code == 3, r
    assert f"{bad}: wavelength grid is not strictly increasing: pixel 39" in r.output, r
    r = run_cli("ingest", d, "-o", tmp_path / "out.zarr", "--scheduler", dask_scheduler, "--on-bad-file", "skip")
    assert r.exit_code == 0, r
    sources = zarr.open_group(tmp_path / "out.zarr", mode="r")["metadata/source_path"][:]
    assert list(map(str, sources)) == [str(good)]


def test_list_file_with_relative_paths(tmp_path, dask_scheduler):
    d = tmp_path / "data" / "sub"
    for i in range(3):
        make_wcs1d(d / f"s{i}.fits", i=i, n_pix=200, seed=i)
    lst = tmp_path / "data" / "inputs.txt"
    lst.write_text("# my selection\nsub/s0.fits\n\nsub/s2.fits\n")
    out = tmp_path / "list.zarr"
    r = run_cli("ingest", f"@{lst}", "-o", out, "--scheduler", dask_scheduler)
    assert r.exit_code == 0, r
    root = zarr.open_group(out, mode="r")
    assert [os.path.basename(p) for p in root["metadata/source_path"][:]] == ["s0.fits", "s2.fits"]
    lst.write_text("sub/nope.fits\n")
    r = run_cli("ingest", f"@{lst}", "-o", tmp_path / "x.zarr", "--scheduler", dask_scheduler)
    assert r.exit_code == 2 and "nope.fits" in r.output and "inputs.txt line 1" in r.output


def test_plan_command_writes_nothing(tmp_path, mixed_corpus):
    before = sorted(p for p in tmp_path.rglob("*"))
    r = run_cli("plan", mixed_corpus, "--workers", "0", "--chunk-rows", "16")
    assert r.exit_code == 0, r
    assert "N_spec          136" in r.output and "N_pix           4000" in r.output
    assert "sdss-coadd: 6 files, 6 spectra" in r.output and "image-2d: 3 files, 120 spectra" in r.output
    assert "(16, 4000)" in r.output and "estimated size" in r.output
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_default_local_cluster_from_a_real_process(tmp_path):
    """The README's path: a separate CLI process that starts its own 2-worker LocalCluster."""
    d = tmp_path / "in"
    for i in range(4):
        make_wcs1d(d / f"s{i}.fits", i=i, n_pix=300, seed=i)
    out = tmp_path / "local.zarr"
    r = run_cli_process("ingest", d, "-o", out, "--workers", "2", "--chunk-rows", "2", "--report",
                        tmp_path / "r.json")
    assert r.exit_code == 0, r
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["workers"] == 2 and rep["scheduler"].startswith("tcp://127.0.0.1:")
    assert rep["cluster"]["results_from"] == "workers"  # straight from each worker: no second hop, no copies
    assert_store_matches_sources(out)


def test_asked_for_workers_are_not_started_for_one_small_file(tmp_path):
    """One small file is one scan task and one shard: workers could not run anything at once, and starting
    them costs more than the work. The run report says it ran in this process."""
    make_wcs1d(tmp_path / "in" / "s0.fits", i=0, n_pix=300, seed=0)
    r = run_cli("ingest", tmp_path / "in", "-o", tmp_path / "one.zarr", "--workers", "2",
                "--report", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r.json").read_text())
    assert (rep["workers"], rep["scheduler"], rep["cluster"]) == (0, "inline", {"kind": "inline"})
    assert_store_matches_sources(tmp_path / "one.zarr")


def test_merge_copies_chunk_files_and_output_does_not_depend_on_workers(tmp_path, mixed_corpus, dask_scheduler):
    one, two = tmp_path / "one.zarr", tmp_path / "two.zarr"
    r1 = run_cli("ingest", mixed_corpus, "-o", one, "--workers", "0", "--chunk-rows", "16", "--shard-rows", "48",
                 "--report", tmp_path / "r1.json")
    r2 = run_cli("ingest", mixed_corpus, "-o", two, "--scheduler", dask_scheduler, "--chunk-rows", "16",
                 "--shard-rows", "16", "--report", tmp_path / "r2.json")
    assert r1.exit_code == 0 and r2.exit_code == 0, (r1, r2)
    merge = json.loads((tmp_path / "r2.json").read_text())["merge"]
    # an existing scheduler's workers on 127.0.0.1 answer the probe: results come straight from them
    assert json.loads((tmp_path / "r2.json").read_text())["cluster"]["results_from"] == "workers"
    assert merge["raw_chunks"] > 0 and merge["recoded_arrays"] == 0
    a, b = chunk_files(one), chunk_files(two)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert pq.read_table(one / "index.parquet").drop(["shard"]).equals(
        pq.read_table(two / "index.parquet").drop(["shard"]))


def test_rerun_reuses_finished_shards(tmp_path, mixed_corpus, dask_scheduler):
    out = tmp_path / "out.zarr"
    args = [mixed_corpus, "--scheduler", dask_scheduler, "--chunk-rows", "16", "--shard-rows", "32", "-o", out]
    r = run_cli("ingest", *args, "--keep-scratch", "--report", tmp_path / "r1.json")
    assert r.exit_code == 0, r
    first = chunk_files(out)
    r = run_cli("ingest", *args, "--overwrite", "--report", tmp_path / "r2.json")
    assert r.exit_code == 0, r
    counts = json.loads((tmp_path / "r2.json").read_text())["counts"]
    assert counts["shards_reused"] == counts["shards_total"] == 5
    assert chunk_files(out) == first
    assert not any((tmp_path / "scratch").glob("*/shard-*"))  # removed after the second publish


def test_quiet_prints_only_the_result_and_batch_logs_get_phase_lines(tmp_path, mixed_corpus):
    r = run_cli_process("ingest", mixed_corpus, "-o", tmp_path / "q.zarr", "--workers", "0", "--quiet")
    assert r.exit_code == 0, r
    assert r.output.strip().splitlines() == [r.output.strip()] and r.output.startswith("published ")
    r = run_cli_process("ingest", mixed_corpus, "-o", tmp_path / "l.zarr", "--workers", "0")
    for phase in ("scan: 19/19 files", "shard: 1/1 shards", "merge: 1/1 shards", "gate: 18/18 checks passed"):
        assert phase in r.output, r  # not a terminal: plain log lines, no bar
    assert "\r" not in r.output


def test_zarr_sharding_keeps_values_and_cuts_file_counts(tmp_path, mixed_corpus, dask_scheduler):
    plain, sharded = tmp_path / "plain.zarr", tmp_path / "sharded.zarr"
    args = [mixed_corpus, "--scheduler", dask_scheduler, "--chunk-rows", "16"]
    assert run_cli("ingest", *args, "-o", plain, "--shard-rows", "64").exit_code == 0
    rep = tmp_path / "r.json"
    r = run_cli("ingest", *args, "-o", sharded, "--zarr-shard-rows", "64", "--shard-rows", "64", "--report", rep)
    assert r.exit_code == 0, r
    report = json.loads(rep.read_text())
    assert report["merge"]["raw_chunks"] > 0 and report["merge"]["recoded_arrays"] == 0  # shard files copied
    a, b = zarr.open_group(plain, mode="r"), zarr.open_group(sharded, mode="r")
    for name in ("signal/flux_raw", "signal/uncertainty_raw", "signal/wavelength", "signal/mask_raw"):
        np.testing.assert_array_equal(a[name][:], b[name][:])
        assert b[name].chunks == (16, 4000) and b[name].shards == (64, 4000)
    files = {s: sum(len(f) for _, _, f in os.walk(s / "signal" / "flux_raw" / "c")) for s in (plain, sharded)}
    assert files == {plain: 9, sharded: 3}  # 136 rows: 9 chunk files, or 3 shard files
    assert run_cli("validate", sharded).exit_code == 0
    r = run_cli("ingest", *args, "-o", tmp_path / "bad.zarr", "--zarr-shard-rows", "24")
    assert r.exit_code == 2 and "--zarr-shard-rows 24 must be a multiple of the chunk rows (16)" in r.output


def _files_in(store) -> int:
    return sum(len(names) for _, _, names in os.walk(store))


def test_the_store_file_budget_picks_zarr_sharding_and_the_plan_counts_the_files(tmp_path, mixed_corpus,
                                                                                 dask_scheduler):
    """The rule that keeps a survey of 10^7 spectra within 20k files, at a small scale: the same rule, a
    budget under what the default layout needs. The plan's count is what the store holds."""
    plain, budgeted = tmp_path / "plain.zarr", tmp_path / "budget.zarr"
    args = [mixed_corpus, "--scheduler", dask_scheduler, "--chunk-rows", "16"]
    rep = tmp_path / "plain.json"
    assert run_cli("ingest", *args, "-o", plain, "--report", rep).exit_code == 0
    before = json.loads(rep.read_text())["plan"]
    assert before["zarr_shard_rows"] == 0 and before["store_files"] <= before["max_store_files"] == 20_000
    assert _files_in(plain) == before["store_files"]  # every chunk of this corpus holds data: exact
    budget = before["store_files"] - 1
    rep = tmp_path / "budget.json"
    r = run_cli("ingest", *args, "-o", budgeted, "--max-store-files", str(budget), "--report", rep)
    assert r.exit_code == 0, r
    after = json.loads(rep.read_text())["plan"]
    assert after["zarr_shard_rows"] == 32  # the fewest chunk rows (16, doubled) per Zarr shard that fit
    assert _files_in(budgeted) == after["store_files"] <= budget
    a, b = zarr.open_group(plain, mode="r"), zarr.open_group(budgeted, mode="r")
    for name in ("signal/flux_raw", "signal/uncertainty_raw", "signal/wavelength", "signal/mask_raw",
                 "metadata/spec_id"):
        np.testing.assert_array_equal(a[name][:], b[name][:])
    assert b["signal/flux_raw"].shards == (32, 4000)
    never = json.loads(run_cli("plan", *args[:1], "--json", "--workers", "0", "--chunk-rows", "16",
                               "--max-store-files", str(budget), "--zarr-shard-rows", "0").output)
    assert never["zarr_shard_rows"] == 0 and never["store_files"] == before["store_files"]  # 0: never shard
    rep = tmp_path / "v2.json"
    r = run_cli("ingest", *args, "-o", tmp_path / "v2.zarr", "--zarr-format", "2", "--max-store-files", str(budget),
                "--report", rep)
    assert r.exit_code == 0, r
    v2 = json.loads(rep.read_text())["plan"]
    assert v2["zarr_shard_rows"] == 0  # Zarr v2 has no sharding: the budget is a target it cannot meet
    assert _files_in(tmp_path / "v2.zarr") == v2["store_files"] > budget


def test_a_small_input_runs_without_starting_a_cluster(tmp_path):
    d = tmp_path / "in"
    for i in range(3):
        make_wcs1d(d / f"s{i}.fits", i=i, n_pix=300, seed=i)
    rep = tmp_path / "r.json"
    r = run_cli_process("ingest", d, "-o", tmp_path / "o.zarr", "--report", rep)
    assert r.exit_code == 0, r
    assert "small input (3 files): running in this process" in r.output
    assert "started a local Dask cluster" not in r.output
    assert json.loads(rep.read_text())["scheduler"] == "inline"


def test_plan_previews_exactly_the_layout_ingest_writes(tmp_path, mixed_corpus):
    """plan and ingest share every layout option: the preview's fingerprint is the ingest's."""
    layout = ["--chunk-rows", "16", "--shard-rows", "32", "--clevel", "7", "--zarr-shard-rows", "32"]
    preview = run_cli("plan", mixed_corpus, "--json", "--workers", "0", *layout)
    assert preview.exit_code == 0, preview
    planned = json.loads(preview.output)
    assert planned["codec"]["clevel"] == 7 and planned["zarr_shard_rows"] == 32
    rep = tmp_path / "r.json"
    r = run_cli("ingest", mixed_corpus, "-o", tmp_path / "o.zarr", "--workers", "0", "--report", rep, *layout)
    assert r.exit_code == 0, r
    assert json.loads(rep.read_text())["plan"]["plan_fingerprint"] == planned["plan_fingerprint"]
    default = json.loads(run_cli("plan", mixed_corpus, "--json", "--workers", "0", "--chunk-rows", "16",
                                 "--shard-rows", "32").output)
    assert default["plan_fingerprint"] != planned["plan_fingerprint"]  # the codec level is part of the layout
