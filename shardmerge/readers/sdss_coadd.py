"""Layout (c): SDSS/BOSS `spec-*.fits`. HDU 'COADD' is a table with one row per pixel (flux, loglam,
ivar, and_mask, …); one spectrum per file. Wavelength is 10**loglam from the column itself: the header's
COEFF0/COEFF1 differ from it by up to ~1e-7 dex. The pipeline's catalogue row (HDU 'SPALL' or 'SPECOBJ')
gives redshift, its error, S/N … as params and the class as metadata."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..exactmath import exp10  # 10**x: the same bits on every CPU
from .base import Layout, Reader, SpectraBlock, grid_hint, placeholder_grid
from .fitsio import is_table
from .values import as_float32, as_mask, to_sigma

# SDSS data model unit, used when the file carries no BUNIT
SDSS_FLUX_UNIT = "1E-17 erg/cm^2/s/Ang"
_REQUIRED = ("flux", "loglam", "ivar")


def _coadd_hdu(hdul: fits.HDUList) -> int | None:
    for i, hdu in enumerate(hdul):
        if is_table(hdu) and str(hdu.header.get("EXTNAME", "")).strip().upper() == "COADD":
            return i
    return None


# the spectro-pipeline's catalogue row (HDU 2: SPALL in BOSS files, SPECOBJ in DR9+ files)
_PARAMS = ("Z", "Z_ERR", "ZWARNING", "VDISP", "VDISP_ERR", "SN_MEDIAN_ALL", "RCHI2")
_META = ("CLASS", "SUBCLASS")
# the pipeline's fits, not spectra: not stored, and not "unread data" in the run report. The per-exposure
# tables (`B1-…`, `R1-…`) of a full spec file are spectra the coadd combines: they are not stored either,
# and the run report says so (`unread-extension`)
_FITS_TABLES = ("SPZLINE", "SPZALL", "SPZBEST", "ZLINE", "ZALL", "ZBEST")


def _catalog(hdul: fits.HDUList) -> int | None:
    for i, hdu in enumerate(hdul):
        if is_table(hdu) and str(hdu.header.get("EXTNAME", "")).strip().upper() in (
                "SPALL", "SPECOBJ") and int(hdu.header.get("NAXIS2", 0)) == 1:
            return i
    return None


def _columns_upper(hdu: fits.BinTableHDU) -> dict[str, str]:
    return {str(c.name).upper(): str(c.name) for c in hdu.columns}


def _columns(hdu: fits.BinTableHDU) -> dict[str, str]:
    """lower-case name → name as written"""
    return {str(c.name).lower(): str(c.name) for c in hdu.columns}


class SdssCoaddReader(Reader):
    name = "sdss-coadd"
    priority = 33
    description = "SDSS/BOSS spec-*.fits: COADD table (flux, loglam, ivar), one spectrum per file"

    def identify(self, hdul: fits.HDUList) -> bool:
        i = _coadd_hdu(hdul)
        return i is not None and all(c in _columns(hdul[i]) for c in _REQUIRED)

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        i, cols = self._coadd(path, hdul)
        loglam = np.asarray(hdul[i].data[cols["loglam"]], dtype=np.float64)
        if loglam.ndim != 1 or loglam.size == 0:
            raise BadFileError(path, f"COADD loglam column has shape {loglam.shape}, expected (n_pix,)")
        return self._layout(hdul, i, cols, exp10(loglam))

    def scan_layout(self, path: str, hdul: fits.HDUList) -> Layout:
        """The grid described by the headers (COEFF0, COEFF1, the COADD row count) instead of read from the
        loglam column, which is most of the file: the scan reads header blocks only. The column stays the
        grid the shard task stores and checks; the header is only close to it (~1e-7 dex), so equal hints
        are never taken for one grid."""
        i, cols = self._coadd(path, hdul)
        h = hdul[0].header
        try:
            coeffs, n_pix = (float(h["COEFF0"]), float(h["COEFF1"])), int(hdul[i].header["NAXIS2"])
        except (KeyError, TypeError, ValueError):
            return self.layout(path, hdul)  # no log-linear solution in the header: read the column
        if n_pix <= 0:
            return self.layout(path, hdul)  # refused there, with the reason
        return self._layout(hdul, i, cols, placeholder_grid(n_pix), grid_hint(self.name, *coeffs, n_pix))

    def _coadd(self, path: str, hdul: fits.HDUList) -> tuple[int, dict[str, str]]:
        i = _coadd_hdu(hdul)
        if i is None:
            raise BadFileError(path, "no COADD table HDU")
        cols = _columns(hdul[i])
        missing = [c for c in _REQUIRED if c not in cols]
        if missing:
            raise BadFileError(path, f"COADD table lacks column(s) {', '.join(missing)}")
        return i, cols

    def _layout(self, hdul: fits.HDUList, i: int, cols: dict[str, str], grid: np.ndarray, hint: str = "") -> Layout:
        unit = str(hdul[0].header.get("BUNIT", "")).strip() or SDSS_FLUX_UNIT
        catalog = _catalog(hdul)  # kept for read() and row_metadata()
        params = tuple(k.lower() for k in _PARAMS if catalog is not None and k in _columns_upper(hdul[catalog]))
        meta = tuple(k.lower() for k in _META if catalog is not None and k in _columns_upper(hdul[catalog]))
        return Layout(1, [grid], np.zeros(1, dtype=np.int64), unit, (i,), i, param_keys=params, metadata_keys=meta,
                      mask_convention="SDSS and_mask" if "and_mask" in cols else "", state={"catalog": catalog},
                      grid_hints=(hint,) if hint else (), aux_hdus=(catalog,) if catalog is not None else (),
                      ignored_hdus=tuple(k for k, x in enumerate(hdul) if is_table(x)
                                         and str(x.header.get("EXTNAME", "")).strip().upper() in _FITS_TABLES))

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        if (first, count) != (0, 1):
            raise BadFileError(path, f"holds one spectrum, asked for {count} from index {first}")
        hdu = hdul[layout.flux_hdu]
        cols = _columns(hdu)
        flux = as_float32(hdu.data[cols["flux"]])[np.newaxis, :]
        unc = to_sigma(hdu.data[cols["ivar"]], "ivar")[np.newaxis, :]
        block = SpectraBlock(flux=flux, uncertainty=unc)
        if "and_mask" in cols:
            block.mask = as_mask(path, hdu.data[cols["and_mask"]])[np.newaxis, :]
        catalog = layout.state["catalog"]
        if catalog is not None:
            upper = _columns_upper(hdul[catalog])
            for key in layout.param_keys:
                block.params[key] = np.array([float(hdul[catalog].data[upper[key.upper()]][0])])
        return block

    def row_metadata(self, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> list[dict]:
        rows = super().row_metadata(hdul, layout, first, count)
        catalog = layout.state["catalog"]
        if catalog is not None:
            upper = _columns_upper(hdul[catalog])
            for key in layout.metadata_keys:
                rows[0][key] = str(hdul[catalog].data[upper[key.upper()]][0]).strip()
        for r in rows:  # spec files have no OBJECT card; the plate-MJD-fiber name identifies the target
            if not r["object"]:
                h = hdul[0].header
                if all(k in h for k in ("PLATEID", "MJD", "FIBERID")):
                    r["object"] = f"{int(h['PLATEID']):04d}-{int(h['MJD'])}-{int(h['FIBERID']):04d}"
        return rows
