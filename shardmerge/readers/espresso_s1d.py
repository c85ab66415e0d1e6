"""ESPRESSO DRS S1D products (`*_S1D_A.fits`): a binary table with one row per pixel and scalar columns
`wavelength` (vacuum, Angstrom), `wavelength_air`, `flux`, `error`, `quality` (and calibrated variants).
One spectrum per file; `quality` is the DRS's pixel-quality bitmask."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..units import wavelength_factor
from .base import Layout, Reader, SpectraBlock
from .fitsio import is_table
from .values import as_float32, as_mask, to_sigma

_REQUIRED = ("wavelength", "flux", "error")


def _table(hdul: fits.HDUList) -> int | None:
    for i, hdu in enumerate(hdul):
        if not is_table(hdu):
            continue
        cols = {str(c.name).lower(): c for c in hdu.columns}
        if all(n in cols for n in _REQUIRED) and all(cols[n].format.repeat == 1 for n in _REQUIRED):
            return i
    return None


class EspressoS1DReader(Reader):
    name = "espresso-s1d"
    priority = 11
    description = "ESPRESSO S1D: table, one row per pixel (wavelength, flux, error, quality)"

    def identify(self, hdul: fits.HDUList) -> bool:
        h = hdul[0].header  # the header first: parsing every table's columns costs ~2 ms a file
        catg = str(h.get("HIERARCH ESO PRO CATG", "")).upper()
        if "ESPRESSO" not in str(h.get("INSTRUME", "")).upper() and "S1D" not in catg:
            return False
        return _table(hdul) is not None

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        i = _table(hdul)
        if i is None:
            raise BadFileError(path, "no table with scalar wavelength, flux and error columns")
        col = hdul[i].columns[_name(hdul[i], "wavelength")]
        unit = str(col.unit or "").strip() or "Angstrom"  # the DRS writes Angstrom
        factor = wavelength_factor(unit)
        if factor is None:
            raise BadFileError(path, f"wavelength unit {unit!r} is not one shardmerge recognises")
        wave = np.asarray(hdul[i].data[col.name], dtype=np.float64) * factor
        has_q = _name(hdul[i], "quality") is not None
        flux_unit = str(hdul[i].columns[_name(hdul[i], "flux")].unit or hdul[0].header.get("BUNIT", "")).strip()
        return Layout(1, [wave], np.zeros(1, dtype=np.int64), flux_unit, (i,), i,
                      mask_convention="ESPRESSO DRS quality" if has_q else "")

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        if (first, count) != (0, 1):
            raise BadFileError(path, f"holds one spectrum, asked for {count} from index {first}")
        hdu = hdul[layout.flux_hdu]
        block = SpectraBlock(flux=as_float32(hdu.data[_name(hdu, "flux")])[np.newaxis, :],
                             uncertainty=to_sigma(hdu.data[_name(hdu, "error")], "sigma")[np.newaxis, :])
        if (q := _name(hdu, "quality")) is not None:
            block.mask = as_mask(path, hdu.data[q])[np.newaxis, :]
        return block


def _name(hdu: fits.BinTableHDU, lower: str) -> str | None:
    for c in hdu.columns:
        if str(c.name).lower() == lower:
            return str(c.name)
    return None
