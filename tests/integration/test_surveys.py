"""A mixed folder of every synthetic survey layout ingests into one valid store, each value where the truth
says, masks with their padding flagged, the aspcapStar joined to its apStar; `plan` lists the formats."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr

from shardmerge.schema import MASK_PADDING
from shardmerge.testing import surveys as ss
from tests.helpers import run_cli


@pytest.fixture
def survey_folder(tmp_path):
    root = tmp_path / "surveys"
    return root, {str(p): truth for p, truth in ss.make_survey_folder(root)}


def test_plan_lists_every_format_with_its_file_count(survey_folder):
    root, _ = survey_folder
    r = run_cli("plan", root, "--workers", "0", "--json")
    assert r.exit_code == 0, r
    formats = json.loads(r.stdout)["formats"]
    assert {k: v["files"] for k, v in formats.items()} == {
        "apogee-apstar": 1, "apogee-aspcapstar": 1, "eso-sdp": 2, "espresso-s1d": 1, "iraf-multispec": 1,
        "lamost": 3, "sdss-spplate": 1, "sdss-spspec": 1, "wcs-1d": 3, "harps-e2ds": 1, "table-1d": 2,
        "iraf-equispec": 1}
    assert formats["apogee-aspcapstar"]["spectra"] == 0  # its spectrum is the apStar's row
    text = run_cli("plan", root, "--workers", "0").output
    assert "format          lamost: 3 files, 8 spectra" in text


def test_mixed_survey_folder_round_trips(tmp_path, survey_folder, dask_scheduler):
    root, truths = survey_folder
    out = tmp_path / "surveys.zarr"
    r = run_cli("ingest", root, "-o", out, "--scheduler", dask_scheduler)
    assert r.exit_code == 0, r
    assert run_cli("validate", out).exit_code == 0
    g = zarr.open_group(out, mode="r")
    n_spec, n_pix = g["signal/flux_raw"].shape
    assert n_pix == 20_000 and n_spec == sum(len(t) for p, t in truths.items() if "aspcapStar" not in p)
    mask = g["signal/mask_raw"]
    assert mask.dtype == np.uint32 and mask.attrs["padding_bit"] == 31
    assert set(mask.attrs["source_conventions"]) == {"APOGEE PIXMASK", "ESO SDP QUAL", "ESPRESSO DRS quality",
                                                    "LAMOST andmask", "SDSS and_mask", "SDSS DR7 spSpec mask"}
    paths = [str(p) for p in g["metadata/source_path"][:]]
    source_rows = g["metadata/source_row"][:]
    wave2d = g["signal/wavelength"]
    checked = 0
    for row in range(n_spec):
        t = truths[paths[row]][int(source_rows[row])]
        n = t["wave"].shape[0]
        np.testing.assert_allclose(wave2d[row, :n], t["wave"], rtol=1e-12)
        np.testing.assert_array_equal(g["signal/flux_raw"][row, :n], np.asarray(t["flux"], dtype=np.float32))
        m = mask[row]
        assert np.all(m[n:] == MASK_PADDING)
        if t.get("mask") is not None:
            np.testing.assert_array_equal(m[:n], t["mask"])
        else:
            assert np.all(m[:n] == 0)
        if t.get("sigma") is not None:
            np.testing.assert_allclose(g["signal/uncertainty_raw"][row, :n], t["sigma"], rtol=1e-6, equal_nan=True)
        checked += 1
    assert checked == n_spec

    # the aspcapStar's normalized spectrum sits on its apStar's combined row, and only there
    norm_truth = truths[str(root / "apogee" / "aspcapStar-2M1.fits")][0]
    rows = [r for r in range(n_spec) if paths[r].endswith("apStar-2M1.fits")]
    labels = [str(g["metadata/apogee_row"][r]) for r in rows]
    assert labels == ["combined", "combined-1", "visit-1", "visit-2"]
    norm = g["representations/normalized_flux"]
    np.testing.assert_array_equal(norm[rows[0], :8575], norm_truth["normalized"])
    np.testing.assert_array_equal(g["representations/normalized_uncertainty"][rows[0], :8575],
                                  norm_truth["normalized_sigma"])
    assert all(np.all(np.isnan(norm[r])) for r in rows[1:])
    # ESO CONTNORM = T: FLUX is both the raw flux and the normalized representation
    r = paths.index(str(root / "eso" / "ADP.norm.fits"))
    np.testing.assert_array_equal(norm[r], g["signal/flux_raw"][r])
    assert str(g["metadata/flux_unit"][r]) == "1"  # dimensionless, normalised (units.DIMENSIONLESS)
    assert str(g["metadata/flux_unit_source"][r]) == "dimensionless (continuum-normalized)"
    # continuum from the source, and its method
    r = paths.index(str(root / "sdss" / "spSpec-51602-0266-031.fits"))
    assert str(g["continuum/method"][r]).startswith("source: spSpec")
    assert os.path.basename(str(g["metadata/spec_id"][r])) == "spSpec-51602-0266-031.fits#0"
    plate = [r for r in range(n_spec) if paths[r].endswith("spPlate-0266-51602.fits")]
    assert [str(g["metadata/objtype"][r]) for r in plate[:3]] == \
        [t["objtype"] for t in truths[paths[plate[0]]][:3]]
