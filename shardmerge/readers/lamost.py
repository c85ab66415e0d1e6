"""LAMOST spectra (`TELESCOP = 'LAMOST'`), in the three layouts the survey has published:

- LRS before DR8: the primary image has 5 rows: flux, inverse variance, wavelength, andmask, ormask.
- LRS DR8 and later: HDU 1 is a one-row table with array columns FLUX, IVAR, WAVELENGTH, ANDMASK, ORMASK.
- MRS: tables `COADD_B`, `COADD_R` and one per epoch (`B-<MJM>`, `R-<MJM>`), each one row of the same
  columns; every table is a spectrum (`metadata/lamost_hdu` names it).

Wavelengths are vacuum Angstrom; `andmask` is stored as the pixel mask."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from .base import Layout, Reader, SpectraBlock
from .fitsio import image_shape, is_image, is_table
from .values import as_float32, as_mask, to_sigma

_COLUMNS = ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK")
MASK_CONVENTION = "LAMOST andmask"


def _is_lamost(hdul: fits.HDUList) -> bool:
    return "LAMOST" in str(hdul[0].header.get("TELESCOP", "")).upper()


def _tables(hdul: fits.HDUList) -> list[int]:
    """Table HDUs holding a spectrum (one row of the LAMOST array columns)."""
    out = []
    for i, hdu in enumerate(hdul):
        if is_table(hdu) and {c.upper() for c in hdu.columns.names} >= set(_COLUMNS):
            out.append(i)
    return out


def _col(hdu: fits.BinTableHDU, name: str) -> np.ndarray:
    real = next(c for c in hdu.columns.names if c.upper() == name)
    return np.asarray(hdu.data[real])[0]


class LamostReader(Reader):
    name = "lamost"
    priority = 30
    description = "LAMOST LRS (5-row image, or DR8+ one-row table) and MRS (COADD_B/R + epoch tables)"

    def identify(self, hdul: fits.HDUList) -> bool:
        if not _is_lamost(hdul):
            return False
        return bool(_tables(hdul)) or (is_image(hdul[0]) and len(image_shape(hdul[0].header)) == 2
                                       and image_shape(hdul[0].header)[0] >= 4)

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        tables = _tables(hdul)
        unit = str(hdul[0].header.get("BUNIT", "")).strip()
        if tables:
            grids = [np.asarray(_col(hdul[i], "WAVELENGTH"), dtype=np.float64) for i in tables]
            return Layout(len(tables), grids, np.arange(len(tables), dtype=np.int64), unit, tuple(tables), tables[0],
                          mask_convention=MASK_CONVENTION, metadata_keys=("lamost_hdu",), state={"tables": tables},
                          source_hdus=np.array(tables), source_rows=np.zeros(len(tables)))
        if not self.identify(hdul):
            raise BadFileError(path, "not a LAMOST spectrum (5-row primary image or FLUX/IVAR/WAVELENGTH table)")
        wave = np.asarray(hdul[0].data[2], dtype=np.float64)
        return Layout(1, [wave], np.zeros(1, dtype=np.int64), unit, (0,), 0, mask_convention=MASK_CONVENTION,
                      metadata_keys=("lamost_hdu",), state={"tables": []})

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        tables = layout.state["tables"]
        width = max(g.shape[0] for g in layout.grids)
        flux = np.full((count, width), np.nan, dtype=np.float32)
        unc = np.full((count, width), np.nan, dtype=np.float32)
        mask = np.zeros((count, width), dtype=np.uint32)
        for k in range(count):
            if tables:
                hdu = hdul[tables[first + k]]
                f, iv, m = _col(hdu, "FLUX"), _col(hdu, "IVAR"), _col(hdu, "ANDMASK")
            else:
                data = hdul[0].data
                f, iv, m = data[0], data[1], data[3]
            n = f.shape[0]
            flux[k, :n] = as_float32(f)
            unc[k, :n] = to_sigma(iv, "ivar")
            mask[k, :n] = as_mask(path, m)
        return SpectraBlock(flux=flux, uncertainty=unc, mask=mask)

    def row_metadata(self, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> list[dict]:
        rows = super().row_metadata(hdul, layout, first, count)
        tables = layout.state["tables"]
        for k, r in enumerate(rows):
            r["lamost_hdu"] = str(hdul[tables[first + k]].header.get("EXTNAME", "")).strip() if tables else "PRIMARY"
        return rows
