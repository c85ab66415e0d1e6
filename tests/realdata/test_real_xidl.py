"""Real XIDL flux/error pairs (linetools' test spectra: a HIRES `_f`/`_e` pair and a MagE normalised
`_nF`/`_nE` pair): two rows, each error file the uncertainty of its flux file, bit-exact; no error
spectrum stored as a science row."""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr
from astropy.io import fits

from tests.helpers import run_cli
from tests.realdata.fetch import XIDL_FILES, fetch_or_skip

pytestmark = pytest.mark.realdata

PAIRS = {"PH957_f.fits": "PH957_e.fits", "UM184_nF.fits": "UM184_nE.fits"}


def test_xidl_pairs_give_each_flux_file_its_uncertainty(tmp_path, dask_scheduler):
    real = fetch_or_skip(sorted(XIDL_FILES))
    folder = tmp_path / "xidl"
    folder.mkdir()
    for path in real.values():
        os.symlink(path, folder / path.name)
    out = tmp_path / "xidl.zarr"
    r = run_cli("ingest", folder, "-o", out, "--scheduler", dask_scheduler)
    assert r.exit_code == 0, r.output
    g = zarr.open_group(out, mode="r")
    names = [os.path.basename(str(p)) for p in g["metadata/source_path"][:]]
    assert sorted(names) == sorted(PAIRS)
    for row, name in enumerate(names):
        flux, err = fits.getdata(real[name]), fits.getdata(real[PAIRS[name]])
        np.testing.assert_array_equal(g["signal/flux_raw"][row, : flux.size], flux.astype(np.float32))
        np.testing.assert_array_equal(g["signal/uncertainty_raw"][row, : err.size], err.astype(np.float32))
    assert run_cli("validate", out).exit_code == 0
