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
wins over the 2-D image it was extracted from in the same file.

Every table of the first one's kind (its EXTNAME) is read: a file of repeated exposures, one table each
(EXTVER 1..n, as HST STIS/COS `x1d` products carry them), stores every table's spectra, each row saying its
HDU (`metadata/source_hdu`, `source_extname`, `source_extver`) and its row there (`source_hdu_row`). A table
of another EXTNAME is not read and is said in the run report (`unread-extension`)."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..exactmath import exp10  # 10**x: the same bits on every CPU
from ..units import wavelength_factor
from .base import Layout, Reader, SpectraBlock
from .columns import find_roles
from .fitsio import hdu_label, is_table
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

    def _tables(self, hdul: fits.HDUList) -> list[tuple[int, dict[str, str]]]:
        """Every table with wavelength and flux columns of the first such table's kind (its EXTNAME: the
        EXTVER 1..n of repeated exposures, e.g. HST x1d `SCI` tables), with its columns by role."""
        found: list[tuple[int, dict[str, str]]] = []
        kind = None
        for i, hdu in enumerate(hdul):
            if kind is not None and hdu_label(hdu)[0].upper() != kind:
                continue
            if (cols := _columns(hdu)) is not None:
                found.append((i, cols))
                kind = hdu_label(hdu)[0].upper()
        return found

    def identify(self, hdul: fits.HDUList) -> bool:
        return any(_columns(hdu) is not None for hdu in hdul)

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        found = self._tables(hdul)
        if not found:
            raise BadFileError(path, "no table with wavelength and flux columns of one shape")
        grids: list[np.ndarray] = []
        grid_of: list[np.ndarray] = []
        source_hdus: list[np.ndarray] = []
        source_rows: list[np.ndarray] = []
        units: dict[str, list[int]] = {}
        parts = []  # (hdu, columns, array columns?, index of its first spectrum in the file, its spectra)
        n_total = 0
        for i, cols in found:
            hdu = hdul[i]
            per_row = hdu.columns[cols["flux"]].format.repeat > 1  # array columns: a spectrum per table row
            n_spec = int(hdu.header["NAXIS2"]) if per_row else 1
            wave = self._wavelength(path, hdu, cols)
            wave = wave.reshape(n_spec, -1) if per_row else wave.reshape(1, -1)
            if np.all(wave == wave[0]):
                grid_of.append(np.full(n_spec, len(grids), dtype=np.int64))
                grids.append(wave[0])
            else:
                grid_of.append(np.arange(len(grids), len(grids) + n_spec, dtype=np.int64))
                grids.extend(wave)
            unit = str(hdu.columns[cols["flux"]].unit or hdul[0].header.get("BUNIT", "")).strip()
            units.setdefault(unit, []).append(i)
            source_hdus.append(np.full(n_spec, i, dtype=np.int64))
            source_rows.append(np.arange(n_spec, dtype=np.int64))
            parts.append((i, cols, per_row, n_total, n_spec))
            n_total += n_spec
        if len(units) > 1:
            said = "; ".join(f"{u or '(none)'!r} in HDU {', '.join(map(str, hdus))}" for u, hdus in units.items())
            raise BadFileError(path, f"its {len(found)} spectrum tables give their flux in different units ({said}): "
                                     "one file's spectra share one unit in the store; split the file, or describe "
                                     "one table with --format mapping ([flux] hdu = N)")
        masks = {f"{cols['mask']} column" for _, cols in found if "mask" in cols}
        if len(masks) > 1:
            raise BadFileError(path, f"its {len(found)} spectrum tables name their mask columns differently "
                                     f"({', '.join(sorted(masks))}): one file's spectra share one mask convention")
        first_hdu = found[0][0]
        return Layout(n_total, grids, np.concatenate(grid_of), next(iter(units)), tuple(i for i, _ in found),
                      first_hdu, mask_convention=next(iter(masks), ""), state={"parts": parts},
                      source_hdus=np.concatenate(source_hdus), source_rows=np.concatenate(source_rows))

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
        width = max(layout.n_pix(i) for i in range(first, first + count))
        flux = np.full((count, width), np.nan, dtype=np.float32)
        unc = np.full((count, width), np.nan, dtype=np.float32)
        mask = np.zeros((count, width), dtype=np.uint32) if layout.mask_convention else None
        for hdu_index, cols, per_row, start, n_spec in layout.state["parts"]:
            lo, hi = max(first, start), min(first + count, start + n_spec)
            if lo >= hi:
                continue
            data, rows = hdul[hdu_index].data, slice(lo - start, hi - start)  # rows of this table
            f = as_float32(_spectra(data, cols["flux"], per_row, rows))
            out = slice(lo - first, hi - first)
            flux[out, : f.shape[1]] = f
            kind = next((k for k in ("sigma", "ivar", "var") if k in cols), None)
            if kind:
                unc[out, : f.shape[1]] = to_sigma(_spectra(data, cols[kind], per_row, rows), kind)
            if mask is not None and "mask" in cols:
                mask[out, : f.shape[1]] = as_mask(path, _spectra(data, cols["mask"], per_row, rows))
        return SpectraBlock(flux=flux, uncertainty=unc, mask=mask)


def _spectra(data: object, column: str, per_row: bool, rows: slice) -> np.ndarray:
    """The `rows` spectra of a column: a table row each (array columns), or the whole column as one."""
    v = np.asarray(data[column])
    return v.reshape(v.shape[0], -1)[rows] if per_row else v.reshape(1, -1)[rows]
