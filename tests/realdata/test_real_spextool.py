"""Real IRTF Spextool images shipped in packages (fetched at test time, pinned by SHA-256): every spectrum
they hold is stored, one row per order, values equal to an astropy reading (wavelength in Angstrom,
NaN padding left out); a bare 3-row array without units is refused, not guessed."""

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

NAMES = ["10001_10443.fits.gz", "10032_10787.fits.gz", "10002_10782.fits.gz", "ShortXD_wavecalinfo.fits",
         "atran100.fits"]


@pytest.fixture(scope="module")
def real():
    return fetch_or_skip(NAMES)


def _ingest(tmp_path, path, ok=True):
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    os.symlink(path, d / path.name)
    out, rep = tmp_path / "out.zarr", tmp_path / "report.json"
    r = run_cli("ingest", d, "-o", out, "--workers", "0", "--report", rep)
    if not ok:
        assert r.exit_code == 3, r.output
        assert not out.exists()
        return r.output
    assert r.exit_code == 0, r.output
    assert run_cli("validate", out).exit_code == 0
    return zarr.open_group(out, mode="r"), json.loads(rep.read_text())


def _astropy_planes(path):
    """(wave in Angstrom, flux, error, flags or None, order number) per plane with data, by astropy alone."""
    with fits.open(path) as h:
        data, header = h[0].data.astype(np.float64), h[0].header
    data = data.reshape(-1, data.shape[-2], data.shape[-1])
    factor = {"um": 1e4, "microns": 1e4}[str(header["XUNITS"]).strip()]
    orders = [x.strip() for x in str(header["ORDERS"]).split(",")]
    out = []
    for p, plane in enumerate(data):
        good = np.isfinite(plane[0])
        if good.any():
            out.append((plane[0, good] * factor, plane[1, good], plane[2, good],
                        plane[3, good] if plane.shape[0] == 4 else None, orders[p // int(header["NAPS"])]))
    return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("name", "unit", "rows"), [
    ("10001_10443.fits.gz", "W / (um m2)", 1),
    ("10032_10787.fits.gz", "erg / (Angstrom s cm2)", 1),
    ("ShortXD_wavecalinfo.fits", "adu / s", 6),
    ("atran100.fits", "1", 1),
])
def test_every_order_of_a_spextool_image_is_stored_as_astropy_reads_it(tmp_path, real, name, unit, rows):
    g, report = _ingest(tmp_path, real[name])
    planes = _astropy_planes(real[name])
    assert len(planes) == rows == g["signal/flux_raw"].shape[0]
    assert g["signal/flux_raw"].attrs["units"] == unit
    wave = g["signal/wavelength"]
    for row, (w, f, e, flags, order) in enumerate(planes):
        n = w.size
        np.testing.assert_allclose(wave[:n] if wave.ndim == 1 else wave[row, :n], w, rtol=1e-12)
        np.testing.assert_array_equal(g["signal/flux_raw"][row, :n], f.astype(np.float32))
        np.testing.assert_allclose(g["signal/uncertainty_raw"][row, :n], e.astype(np.float32), rtol=1e-7)
        if flags is not None:
            np.testing.assert_array_equal(g["signal/mask_raw"][row, :n], flags.astype(np.uint32))
        assert g["metadata/order"][row] == order
        if wave.ndim == 2:
            assert np.all(np.isnan(wave[row, n:]))  # the padding is not stored as pixels


def test_a_three_row_array_without_units_is_refused_not_guessed(tmp_path, real):
    output = _ingest(tmp_path, real["10002_10782.fits.gz"], ok=False)
    assert "10002_10782.fits.gz" in output
