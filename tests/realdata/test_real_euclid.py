"""Real Euclid Q1 combined spectra as the archive serves them, one object a file (a table named by the
object id, FSCALE = 1e-16): read by euclid-sir, so the scale is in the unit (not a flux 10^16 times too
large) and the mask is read by the SIR convention; values bit-exact against astropy."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr
from astropy.io import fits

from tests.helpers import run_cli
from tests.realdata.fetch import EUCLID_FILES, fetch_or_skip

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def real():
    return fetch_or_skip(sorted(EUCLID_FILES))


def test_euclid_q1_one_object_files(tmp_path, real, dask_scheduler):
    folder = tmp_path / "q1"
    folder.mkdir()
    for path in real.values():
        os.symlink(path, folder / path.name)
    out, rep = tmp_path / "q1.zarr", tmp_path / "q1.json"
    r = run_cli("ingest", folder, "-o", out, "--scheduler", dask_scheduler, "--report", rep)
    assert r.exit_code == 0, r.output
    report = json.loads(rep.read_text())
    assert report["counts"]["spectra"] == len(real)
    g = zarr.open_group(out, mode="r")
    assert g["signal/flux_raw"].attrs["units"] == "1e-16 erg / (Angstrom s cm2)"
    assert g["signal/mask_raw"].attrs["source_conventions"] == ["Euclid SIR MASK"]
    names = [os.path.basename(str(p)) for p in g["metadata/source_path"][:]]
    for row, name in enumerate(names):
        assert str(g["metadata/format"][row]) == "euclid-sir"
        assert str(g["metadata/sir_spectrum"][row]) == "combined"
        with fits.open(real[name]) as h:
            d = h[1].data
            assert str(g["metadata/object_id"][row]) == h[1].header["EXTNAME"] == str(h[1].header["SOURC_ID"])
            wave, signal, var, mask = (np.asarray(d[c]) for c in ("WAVELENGTH", "SIGNAL", "VAR", "MASK"))
        n = wave.size
        np.testing.assert_array_equal(g["signal/flux_raw"][row, :n], signal.astype(np.float32))
        np.testing.assert_array_equal(g["signal/mask_raw"][row, :n], mask)
        good = var > 0
        np.testing.assert_allclose(g["signal/uncertainty_raw"][row, :n][good], np.sqrt(var[good]), rtol=1e-6)
        wave_row = g["signal/wavelength"][row, :n] if g["signal/wavelength"].ndim == 2 else g["signal/wavelength"][:n]
        np.testing.assert_allclose(wave_row, wave.astype(np.float64), rtol=1e-7)
    assert run_cli("validate", out).exit_code == 0
