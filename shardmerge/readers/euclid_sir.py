"""Euclid NISP/SIR 1-D spectra (the SIR processing function's combined and per-dither extracted spectra): one
binary table per spectrum, a row per pixel, EXTNAME `<object id>_COMBINED1D_SIGNAL` (the combined spectrum),
`<object id>_DITH1D_<dither>_SIGNAL` (one dither) or, in the files of one object each that the archive serves
(Q1), the object id alone (with FSCALE and the columns below), columns `WAVELENGTH` (Angstrom, the data
model's unit when TUNIT is absent), `SIGNAL` (the flux, in its TUNIT times the HDU's `FSCALE`), `VAR` (its
variance, in the same scaled unit squared), `MASK` (the SIR pixel mask bits: odd or >= 64 is "do not use"),
and `QUALITY`, `NDITH` (not stored). A file holds many objects' tables: every one is stored, one row each,
with `metadata/object_id`, `metadata/sir_spectrum` (`combined` or `dither <n>`) and `metadata/sir_hdu` (its
HDU index and EXTNAME).

Values are the file's (bit-exact); the scale FSCALE is written into the unit (`1e-16 erg / (Angstrom cm2
s)`), as IRSA's VOTable serving of these spectra does. The files hold one flux unit: tables whose FSCALE
or SIGNAL unit differ are refused, naming the values. A single SIR table without these EXTNAMEs (and not
named by its object id) is read by `table-1d` (its columns are found by unit)."""

from __future__ import annotations

import re

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..headers import canonical_fields
from ..units import wavelength_factor
from .base import HeaderChain, Layout, Reader, SpectraBlock, check_grid, grid_fingerprint
from .columns import find_roles
from .fitsio import is_table
from .values import as_float32, as_mask, to_sigma

MASK_CONVENTION = "Euclid SIR MASK"
_COMBINED = re.compile(r"^(.+?)_COMBINED1D_SIGNAL$", re.IGNORECASE)
_DITHER = re.compile(r"^(.+?)_DITH1D_(.+?)_SIGNAL$", re.IGNORECASE)
_OBJECT_ID = re.compile(r"^-?\d+$")
_SIR_COLUMNS = {"WAVELENGTH", "SIGNAL", "VAR", "MASK"}


def _sir_kind(hdu: object) -> tuple[str, str] | None:
    """(object id, "combined" | "dither <n>") of a SIR spectrum table, from its EXTNAME; None otherwise.
    A table named by its object id alone, with the SIR columns and FSCALE, is a combined spectrum as the
    archive serves them one object a file (Q1: EXTNAME = SOURC_ID)."""
    if not is_table(hdu):
        return None
    extname = str(hdu.header.get("EXTNAME", "")).strip()
    if m := _COMBINED.match(extname):
        return m.group(1), "combined"
    if m := _DITHER.match(extname):
        return m.group(1), f"dither {m.group(2)}"
    if (_OBJECT_ID.match(extname) and "FSCALE" in hdu.header
            and {str(n).upper() for n in hdu.columns.names} >= _SIR_COLUMNS):
        return extname, "combined"
    return None


def _sir_hdus(hdul: fits.HDUList) -> list[int]:
    out = []
    for i, hdu in enumerate(hdul):
        if _sir_kind(hdu) is not None and "SIGNAL" in {str(n).upper() for n in hdu.columns.names}:
            out.append(i)
    return out


def _fscale(path: str, header: fits.Header, i: int) -> float:
    value = header.get("FSCALE", 1.0)
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise BadFileError(path, f"HDU {i}: FSCALE = {value!r} is not a number") from None
    if not np.isfinite(scale) or scale <= 0:
        raise BadFileError(path, f"HDU {i}: FSCALE = {value!r} is not a positive scale")
    return scale


class EuclidSirReader(Reader):
    name = "euclid-sir"
    priority = 36
    description = ("Euclid NISP/SIR 1-D spectra: a table per object (*_COMBINED1D_SIGNAL, *_DITH1D_*_SIGNAL) of "
                   "WAVELENGTH/SIGNAL/VAR/MASK, FSCALE in the unit; every table a row")

    def identify(self, hdul: fits.HDUList) -> bool:
        return any(_sir_kind(hdu) is not None for hdu in hdul[1:]) and bool(_sir_hdus(hdul))

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        hdus = _sir_hdus(hdul)
        if not hdus:
            raise BadFileError(path, "no Euclid SIR spectrum table (EXTNAME *_COMBINED1D_SIGNAL or *_DITH1D_*_SIGNAL "
                                     "with a SIGNAL column)")
        grids: list[np.ndarray] = []
        by_print: dict[tuple[int, str], int] = {}
        grid_of, columns, units = [], [], set()
        for i in hdus:
            hdu = hdul[i]
            roles = find_roles(hdu)
            if roles is None or "wave" not in roles:
                names = ", ".join(f"{c.name} [{c.unit or 'no unit'}]" for c in hdu.columns)
                raise BadFileError(path, f"HDU {i} ({hdu.header.get('EXTNAME')}): no WAVELENGTH and SIGNAL columns of "
                                         f"one shape among {names}")
            col = hdu.columns[roles["wave"]]
            unit = str(col.unit or "").strip() or "Angstrom"  # the SIR data model's unit
            factor = wavelength_factor(unit)
            if factor is None:
                raise BadFileError(path, f"HDU {i}: wavelength column {col.name!r} has unit {unit!r}, not a "
                                         "wavelength unit")
            wave = np.asarray(hdu.data[col.name], dtype=np.float64).reshape(-1) * factor
            check_grid(path, wave)
            key = (wave.size, grid_fingerprint(wave))
            if key not in by_print:
                by_print[key] = len(grids)
                grids.append(wave)
            grid_of.append(by_print[key])
            flux_unit = str(hdu.columns[roles["flux"]].unit or "").strip()
            units.add((flux_unit, _fscale(path, hdu.header, i)))
            columns.append(roles)
        if len(units) > 1:
            shown = ", ".join(f"{u or 'no unit'} x FSCALE {s:g}" for u, s in sorted(units))
            raise BadFileError(path, f"the SIR tables' flux units differ ({shown}): one file is stored in one unit; "
                                     "split the file so each part has one FSCALE")
        unit, scale = units.pop()
        flux_unit = unit if scale == 1.0 or not unit else f"{scale:.17g} {unit}"
        has_mask = all("mask" in c for c in columns)
        return Layout(len(hdus), grids, np.asarray(grid_of, dtype=np.int64), flux_unit, (hdus[0],), hdus[0],
                      mask_convention=MASK_CONVENTION if has_mask else "",
                      metadata_keys=("object_id", "sir_spectrum", "sir_hdu"),
                      state={"hdus": hdus, "columns": columns})

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        if first < 0 or count <= 0 or first + count > layout.n_spectra:
            raise BadFileError(path, f"spectra {first}..{first + count - 1} outside 0..{layout.n_spectra - 1}")
        width = max(layout.n_pix(first + k) for k in range(count))
        flux = np.full((count, width), np.nan, dtype=np.float32)
        unc = np.full((count, width), np.nan, dtype=np.float32)
        mask = np.zeros((count, width), dtype=np.uint32) if layout.mask_convention else None
        for k in range(count):
            i = layout.state["hdus"][first + k]
            cols = layout.state["columns"][first + k]
            data = hdul[i].data
            n = layout.n_pix(first + k)
            flux[k, :n] = as_float32(np.asarray(data[cols["flux"]]).reshape(-1))
            kind = next((x for x in ("sigma", "var", "ivar") if x in cols), None)
            if kind:
                unc[k, :n] = to_sigma(np.asarray(data[cols[kind]]).reshape(-1), kind)
            if mask is not None:
                mask[k, :n] = as_mask(path, np.asarray(data[cols["mask"]]).reshape(-1))
        return SpectraBlock(flux=flux, uncertainty=unc, mask=mask)

    def row_metadata(self, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> list[dict]:
        rows = []
        for k in range(count):
            i = layout.state["hdus"][first + k]
            row = canonical_fields(HeaderChain([hdul[0].header, hdul[i].header]))  # this spectrum's own header
            object_id, kind = _sir_kind(hdul[i])
            row.update(object_id=object_id, sir_spectrum=kind,
                       sir_hdu=f"{i} {str(hdul[i].header.get('EXTNAME', '')).strip()}")
            rows.append(row)
        return rows
