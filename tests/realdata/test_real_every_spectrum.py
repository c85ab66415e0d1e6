"""Real multi-extension files store every spectrum they hold: HST STIS echelle x1d products (stisblazefix's
test data) carry one SCI table per exposure (EXTVER 1..n), a row per order; each stored row is compared with
an independent astropy reading (wavelength in Angstrom, flux and error values), and names its HDU and row."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr
from astropy.io import fits

from tests.helpers import run_cli
from tests.realdata.fetch import fetch_or_skip

pytestmark = pytest.mark.realdata

NAMES = ["ocb6f1020_x1d.fits", "o3zx02070_x1d.fits"]


@pytest.fixture(scope="module")
def real():
    return fetch_or_skip(NAMES)


def _astropy_spectra(path) -> list[dict]:
    """Every (SCI table, row) of an x1d, read with astropy alone."""
    out = []
    with fits.open(path) as h:
        for i, hdu in enumerate(h):
            if hdu.header.get("EXTNAME") != "SCI":
                continue
            assert hdu.columns["WAVELENGTH"].unit == "Angstroms"
            for r, row in enumerate(hdu.data):
                out.append({"hdu": i, "extver": int(hdu.header["EXTVER"]), "row": r,
                            "wave": np.asarray(row["WAVELENGTH"], dtype=np.float64),
                            "flux": np.asarray(row["FLUX"], dtype=np.float32),
                            "error": np.asarray(row["ERROR"], dtype=np.float32)})
    return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", NAMES)
def test_every_exposure_and_order_of_a_stis_x1d_is_stored(tmp_path, real, name):
    d = tmp_path / "in"
    d.mkdir()
    os.symlink(real[name], d / name)
    out, rep = tmp_path / "out.zarr", tmp_path / "report.json"
    r = run_cli("ingest", d, "-o", out, "--workers", "0", "--report", rep)
    assert r.exit_code == 0, r
    assert run_cli("validate", out).exit_code == 0
    truth = _astropy_spectra(real[name])
    g = zarr.open_group(out, mode="r")
    assert g["signal/flux_raw"].shape[0] == len(truth)  # the sum over SCI tables of their rows
    if name == "ocb6f1020_x1d.fits":
        assert len(truth) == 102 and {t["extver"] for t in truth} == {1, 2}
        assert list(g["metadata/source_extver"][:]) == [str(t["extver"]) for t in truth]
        assert list(g["metadata/source_hdu_row"][:]) == [str(t["row"]) for t in truth]
    np.testing.assert_array_equal(g["metadata/source_hdu"][:], [t["hdu"] for t in truth])
    wave, flux, unc = g["signal/wavelength"], g["signal/flux_raw"], g["signal/uncertainty_raw"]
    for row, t in enumerate(truth):
        n = t["wave"].size
        np.testing.assert_allclose(wave[row, :n] if wave.ndim == 2 else wave[:n], t["wave"], rtol=1e-12)
        np.testing.assert_array_equal(flux[row, :n], t["flux"])
        np.testing.assert_array_equal(unc[row, :n], t["error"])
    assert json.loads(rep.read_text())["unread"] == []


@pytest.mark.timeout(300)
def test_desi_rows_name_their_arms_flux_hdu(tmp_path):
    """A DESI coadd's (target, arm) rows come from the arm's {arm}_FLUX image, row = the target."""
    path = fetch_or_skip(["coadd-sv3-dark-26065.fits"])["coadd-sv3-dark-26065.fits"]
    d = tmp_path / "in"
    d.mkdir()
    os.symlink(path, d / path.name)
    out = tmp_path / "out.zarr"
    assert run_cli("ingest", d, "-o", out, "--workers", "0").exit_code == 0
    g = zarr.open_group(out, mode="r")
    with fits.open(path) as h:
        index = {str(x.header.get("EXTNAME", "")): i for i, x in enumerate(h)}
        for row, (arm, hdu, target) in enumerate(zip(g["metadata/arm"][:], g["metadata/source_hdu"][:],
                                                    g["metadata/source_hdu_row"][:], strict=True)):
            assert hdu == index[f"{arm}_FLUX"]
            flux = h[int(hdu)].data[int(target)]
            np.testing.assert_array_equal(g["signal/flux_raw"][row, : flux.size], flux.astype(np.float32))
