"""Generic 1-D spectra in a binary table, the layout of CALSPEC/STSDAS standards, HST HLSPs, Spextool and
spectral templates (one table row per pixel, scalar columns), of JWST extracted spectra (`EXTRACT1D`,
msaexp `SPEC1D`) and of many hand-made files (array columns, one spectrum per table row).

Columns are found by unit and UCD first, by name second (`columns.find_roles`): wavelength (`em.wl`, a
length unit, or `WAVE`, `WAVELENGTH`, `LAMBDA`, …; `LOGLAM` is log10 Angstrom), flux (a spectral flux
density unit or `phot.flux*`/`phot.fluDens*`, or `FLUX`, `FLAM`, `SIGNAL`, …), an optional uncertainty
(in the flux's unit, squared or inverse squared; or `ERROR`, `FLUX_ERROR`, … as 1-sigma, `IVAR`, `VAR`) and
an optional integer `MASK` column, the pixel mask. A
wavelength column without a unit is refused: a table has no convention to fall back on (917-1005 is
far-UV Angstrom or near-IR nm). Detection runs before the image readers, so that an extracted 1-D spectrum
wins over the 2-D image it was extracted from in the same file."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..exactmath import exp10  # 10**x: the same bits on every CPU
from ..units import wavelength_factor
from .base import Layout, Reader, SpectraBlock
from .columns import find_roles
from .fitsio import is_table
from .values import as_float32, as_mask, to_sigma


def _columns(hdu: object) -> dict[str, str] | None:
    """{"wave" | "loglam", "flux", and "sigma" | "ivar" | "var", "mask" when present} → column names, for a
    table whose wavelength and flux columns have the same shape (`columns.find_roles`: by unit and UCD
    first, by name second); else None."""
    if not is_table(hdu) or not hdu.header.get("NAXIS2"):
        return None
    return find_roles(hdu)


class Table1DReader(Reader):
    name = "table-1d"
    priority = 50
    description = ("binary table: wavelength, flux, uncertainty, mask columns found by unit, UCD or name (row per "
                   "pixel, or array columns)")

    def _table(self, hdul: fits.HDUList) -> tuple[int, dict[str, str]] | None:
        """The first table with wavelength and flux columns, and its columns by role."""
        for i, hdu in enumerate(hdul):
            if (cols := _columns(hdu)) is not None:
                return i, cols
        return None

    def identify(self, hdul: fits.HDUList) -> bool:
        return self._table(hdul) is not None

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        found = self._table(hdul)
        if found is None:
            raise BadFileError(path, "no table with wavelength and flux columns of one shape")
        i, cols = found
        hdu = hdul[i]
        per_row = hdu.columns[cols["flux"]].format.repeat > 1  # array columns: a spectrum per table row
        n_spec = int(hdu.header["NAXIS2"]) if per_row else 1
        wave = self._wavelength(path, hdu, cols)
        wave = wave.reshape(n_spec, -1) if per_row else wave.reshape(1, -1)
        if np.all(wave == wave[0]):
            grids, grid_of = [wave[0]], np.zeros(n_spec, dtype=np.int64)
        else:
            grids, grid_of = list(wave), np.arange(n_spec, dtype=np.int64)
        flux_unit = str(hdu.columns[cols["flux"]].unit or hdul[0].header.get("BUNIT", "")).strip()
        mask = f"{cols['mask']} column" if "mask" in cols else ""
        return Layout(n_spec, grids, grid_of, flux_unit, (i,), i, mask_convention=mask, state={"columns": cols})

    def _wavelength(self, path: str, hdu: fits.BinTableHDU, cols: dict[str, str]) -> np.ndarray:
        if "loglam" in cols:  # SDSS's convention: log10 of vacuum Angstrom
            return exp10(np.asarray(hdu.data[cols["loglam"]], dtype=np.float64))
        col = hdu.columns[cols["wave"]]
        unit = str(col.unit or "").strip()
        if not unit:
            values = np.asarray(hdu.data[col.name], dtype=np.float64)
            raise BadFileError(path, f"wavelength column {col.name!r} has no unit (TUNITn) and a table has no "
                                     f"convention to assume one: its values {np.nanmin(values):.6g}-"
                                     f"{np.nanmax(values):.6g} could be Angstrom, nm or micron. Say which with "
                                     "--format mapping and a mapping file: [wavelength] column = "
                                     f"\"{col.name}\", unit = \"Angstrom\" (or \"nm\", \"um\")")
        factor = wavelength_factor(unit)
        if factor is None:
            raise BadFileError(path, f"wavelength column {col.name!r} has unit {unit!r}, which is not a "
                                     "wavelength unit: say which with --format mapping ([wavelength] column = "
                                     f"\"{col.name}\", unit = \"Angstrom\")")
        return np.asarray(hdu.data[col.name], dtype=np.float64) * factor

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        hdu = hdul[layout.flux_hdu]
        cols = layout.state["columns"]
        rows = slice(first, first + count)

        def values(name: str) -> np.ndarray:
            v = np.asarray(hdu.data[name])
            return v.reshape(v.shape[0], -1)[rows] if v.ndim > 1 else v.reshape(1, -1)[rows]

        flux = as_float32(values(cols["flux"]))
        kind = next((k for k in ("sigma", "ivar", "var") if k in cols), None)
        unc = to_sigma(values(cols[kind]), kind) if kind else np.full_like(flux, np.nan)
        mask = as_mask(path, values(cols["mask"])) if "mask" in cols else None
        return SpectraBlock(flux=flux, uncertainty=unc, mask=mask)
