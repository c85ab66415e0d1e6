"""Real spectral-axis conventions (issue 26), fetched at test time and pinned by SHA-256: a MaStar
template's 'WAVE-LOG' axis whose CRVAL1 is log10(Angstrom), compared with an independent reading (astropy
for the header and data, numpy's 10**x for the axis)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from shardmerge.reading import open_store
from tests.helpers import run_cli
from tests.realdata.fetch import fetch_or_skip

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def real():
    return fetch_or_skip(["MaStarHC_00.fits"])


@pytest.mark.timeout(600)
def test_a_mastar_wave_log_template_is_stored_on_its_log10_axis(real, tmp_path):
    path = real["MaStarHC_00.fits"]
    (tmp_path / "in").mkdir()
    os.symlink(path, tmp_path / "in" / path.name)
    out = tmp_path / "out.zarr"
    r = run_cli("ingest", tmp_path / "in", "-o", out, "--workers", "0", "--report", tmp_path / "r.json")
    assert r.exit_code == 0, r
    with fits.open(path) as hdul:
        h, data = hdul[0].header, np.asarray(hdul[0].data, dtype=np.float32)
    assert h["CTYPE1"] == "WAVE-LOG" and 3.5 < h["CRVAL1"] < 3.6
    pix = np.arange(1, h["NAXIS1"] + 1, dtype=np.float64)
    expected = 10.0 ** (h["CRVAL1"] + (pix - h.get("CRPIX1", 1.0)) * h["CDELT1"])
    flux = data.reshape(-1, h["NAXIS1"])
    with open_store(out) as store:
        assert len(store) == flux.shape[0]
        for i in (0, flux.shape[0] - 1):
            row = store[i]
            np.testing.assert_allclose(row.wavelength[: h["NAXIS1"]], expected, rtol=1e-13)
            np.testing.assert_array_equal(row.flux[: h["NAXIS1"]], flux[i])
    assert 3600 < expected[0] < 3650
    assert "wave-log10" in (tmp_path / "r.json").read_text()
