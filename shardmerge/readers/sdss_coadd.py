"""Layout (c): SDSS/BOSS `spec-*.fits`. HDU 'COADD' is a table with one row per pixel (flux, loglam,
ivar, …); one spectrum per file. Wavelength is 10**loglam from the column itself: the header's
COEFF0/COEFF1 differ from it by up to ~1e-7 dex."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from .base import Layout, Reader, SpectraBlock, as_float32, to_sigma

# SDSS data model unit, used when the file carries no BUNIT
SDSS_FLUX_UNIT = "1E-17 erg/cm^2/s/Ang"
_REQUIRED = ("flux", "loglam", "ivar")


def _coadd_hdu(hdul: fits.HDUList) -> int | None:
    for i, hdu in enumerate(hdul):
        if isinstance(hdu, fits.BinTableHDU) and str(hdu.header.get("EXTNAME", "")).strip().upper() == "COADD":
            return i
    return None


def _columns(hdu: fits.BinTableHDU) -> dict[str, str]:
    """lower-case name → name as written"""
    return {str(c.name).lower(): str(c.name) for c in hdu.columns}


class SdssCoaddReader(Reader):
    name = "sdss-coadd"
    description = "SDSS/BOSS spec-*.fits: COADD table (flux, loglam, ivar), one spectrum per file"

    def identify(self, hdul: fits.HDUList) -> bool:
        i = _coadd_hdu(hdul)
        return i is not None and all(c in _columns(hdul[i]) for c in _REQUIRED)

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        i = _coadd_hdu(hdul)
        if i is None:
            raise BadFileError(path, "no COADD table HDU")
        cols = _columns(hdul[i])
        missing = [c for c in _REQUIRED if c not in cols]
        if missing:
            raise BadFileError(path, f"COADD table lacks column(s) {', '.join(missing)}")
        loglam = np.asarray(hdul[i].data[cols["loglam"]], dtype=np.float64)
        if loglam.ndim != 1 or loglam.size == 0:
            raise BadFileError(path, f"COADD loglam column has shape {loglam.shape}, expected (n_pix,)")
        wave = 10.0**loglam
        unit = str(hdul[0].header.get("BUNIT", "")).strip() or SDSS_FLUX_UNIT
        return Layout(1, [wave], np.zeros(1, dtype=np.int64), unit, (i,), i)

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        if (first, count) != (0, 1):
            raise BadFileError(path, f"holds one spectrum, asked for {count} from index {first}")
        hdu = hdul[layout.flux_hdu]
        cols = _columns(hdu)
        flux = as_float32(hdu.data[cols["flux"]])[np.newaxis, :]
        unc = to_sigma(hdu.data[cols["ivar"]], "ivar")[np.newaxis, :]
        return SpectraBlock(flux=flux, uncertainty=unc)

    def row_metadata(self, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> list[dict]:
        rows = super().row_metadata(hdul, layout, first, count)
        for r in rows:  # spec files have no OBJECT card; the plate-MJD-fiber name identifies the target
            if not r["object"]:
                h = hdul[0].header
                if all(k in h for k in ("PLATEID", "MJD", "FIBERID")):
                    r["object"] = f"{int(h['PLATEID']):04d}-{int(h['MJD'])}-{int(h['FIBERID']):04d}"
        return rows
