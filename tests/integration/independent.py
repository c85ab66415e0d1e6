"""An independent reading of the synthetic and real sources with astropy alone (no shardmerge reader
code), to compare stored values against."""

from __future__ import annotations

import numpy as np
from astropy.io import fits


def _wcs(header, n: int) -> np.ndarray:
    pix = np.arange(1, n + 1, dtype=np.float64)
    cdelt = header.get("CDELT1", header.get("CD1_1"))
    axis = header["CRVAL1"] + (pix - header.get("CRPIX1", 1.0)) * cdelt
    return 10.0**axis if header.get("DC-FLAG", 0) == 1 else axis


def _sigma(hdul, shape) -> np.ndarray:
    for h in hdul[1:]:
        if not isinstance(h, fits.ImageHDU) or h.data is None or h.data.shape != shape:
            continue
        name = h.name.upper()
        d = h.data.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            if name == "IVAR":
                return np.where(d > 0, 1 / np.sqrt(d), np.nan).astype(np.float32)
            if name == "VAR":
                return np.sqrt(d).astype(np.float32)
            if name in ("ERR", "SIGMA"):
                return d.astype(np.float32)
    return np.full(shape, np.nan, dtype=np.float32)


def spectra_of(path: str) -> list[dict]:
    """[{wave, flux, sigma}] per spectrum in file order."""
    with fits.open(path) as hdul:
        names = [h.name.upper() for h in hdul]
        if "COADD" in names:
            t = hdul["COADD"].data
            with np.errstate(divide="ignore"):
                sigma = np.where(t["ivar"] > 0, 1 / np.sqrt(t["ivar"].astype(np.float64)), np.nan)
            return [{"wave": 10.0 ** t["loglam"].astype(np.float64), "flux": t["flux"].astype(np.float32),
                     "sigma": sigma.astype(np.float32)}]
        data = hdul[0].data
        if data.ndim == 1:
            return [{"wave": _wcs(hdul[0].header, data.shape[0]), "flux": data.astype(np.float32),
                     "sigma": _sigma(hdul, data.shape)}]
        sig = _sigma(hdul, data.shape)
        wave = _wcs(hdul[0].header, data.shape[1])
        return [{"wave": wave, "flux": data[r].astype(np.float32), "sigma": sig[r]} for r in range(data.shape[0])]


def assert_store_matches_sources(store) -> int:
    """Every row of the store equals its source spectrum (bit-exact flux, NaN padding after it).
    Returns the number of rows checked."""
    import zarr

    root = zarr.open_group(store, mode="r")
    flux, unc, wave = root["signal/flux_raw"], root["signal/uncertainty_raw"], root["signal/wavelength"]
    paths = root["metadata/source_path"][:]
    src_rows = root["metadata/source_row"][:]
    n_spec, n_pix = flux.shape
    cache: dict[str, list[dict]] = {}
    for row in range(n_spec):
        path = str(paths[row])
        spec = cache.setdefault(path, spectra_of(path))[int(src_rows[row])]
        n = spec["flux"].shape[0]
        f = flux[row]
        np.testing.assert_array_equal(f[:n], spec["flux"], err_msg=f"flux row {row} from {path}")
        assert np.isnan(f[n:]).all(), f"row {row}: padding after {n} pixels is not NaN"
        np.testing.assert_array_equal(unc[row][:n], spec["sigma"], err_msg=f"uncertainty row {row}")
        w = wave[:] if wave.ndim == 1 else wave[row]
        np.testing.assert_allclose(w[:n], spec["wave"], rtol=1e-12, err_msg=f"wavelength row {row}")
        assert np.isnan(w[n:]).all()
        if len(cache) > 64:
            cache.clear()
    return n_spec
