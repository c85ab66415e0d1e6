"""HARPS (and HARPS-N) DRS `*_e2ds_A.fits`: a primary image of 72 (69 for HARPS-N) extracted echelle
orders × 4096 pixels. Each order's wavelength (Angstrom, air) is a polynomial in the 0-based pixel index
whose coefficients are the header cards `HIERARCH ESO DRS CAL TH COEFF LL{order * (deg + 1) + j}`, j = 0..deg,
with deg from `ESO DRS CAL TH DEG LL`. One stored spectrum per order, never stitched; `metadata/order` is
the order's index in the image (0 = bluest)."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from .base import Layout, Reader, SpectraBlock
from .fitsio import image_shape, is_image
from .values import as_float32

_DEG = "ESO DRS CAL TH DEG LL"
_COEFF = "ESO DRS CAL TH COEFF LL{}"


class HarpsE2dsReader(Reader):
    name = "harps-e2ds"
    priority = 34
    description = "HARPS/HARPS-N DRS e2ds: one row per echelle order, wavelength from the DRS polynomial cards"

    def identify(self, hdul: fits.HDUList) -> bool:
        h = hdul[0].header
        return is_image(hdul[0]) and h.get("NAXIS") == 2 and _DEG in h and _COEFF.format(0) in h

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        h = hdul[0].header
        n_orders, n_pix = image_shape(h)
        deg = int(h[_DEG])
        x = np.arange(n_pix, dtype=np.float64)
        grids = []
        for o in range(n_orders):
            keys = [_COEFF.format(o * (deg + 1) + j) for j in range(deg + 1)]
            missing = [k for k in keys if k not in h]
            if missing:
                raise BadFileError(path, f"order {o}: wavelength coefficient card(s) {', '.join(missing)} missing "
                                         f"(degree {deg} needs {deg + 1} per order)")
            coeffs = [float(h[k]) for k in keys]
            wave = np.polynomial.polynomial.polyval(x, coeffs)
            if not np.all(np.diff(wave) > 0):
                raise BadFileError(path, f"order {o}: the DRS polynomial does not give an increasing wavelength")
            grids.append(wave)
        unit = str(h.get("BUNIT", "")).strip()
        return Layout(n_orders, grids, np.arange(n_orders, dtype=np.int64), unit, (0,), 0, metadata_keys=("order",))

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        flux = as_float32(hdul[0].data[first : first + count])  # only these orders' rows are read
        return SpectraBlock(flux=flux, uncertainty=np.full_like(flux, np.nan))

    def row_metadata(self, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> list[dict]:
        rows = super().row_metadata(hdul, layout, first, count)
        for k, r in enumerate(rows):
            r["order"] = str(first + k)
        return rows
