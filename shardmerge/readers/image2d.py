"""Layout (b): a 2-D image with one spectrum per row sharing one linear or log-linear WCS along axis 1
(SDSS spPlate-like), with an IVAR, VAR or ERR image of the same shape."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from .base import (
    Layout,
    Reader,
    SpectraBlock,
    as_float32,
    find_uncertainty_hdu,
    image_shape,
    is_image,
    linear_wcs_wavelength,
    to_sigma,
)


def _flux_hdu(hdul: fits.HDUList) -> int | None:
    for i, hdu in enumerate(hdul):
        h = hdu.header
        if is_image(hdu) and h.get("NAXIS") == 2 and "CRVAL1" in h and ("CDELT1" in h or "CD1_1" in h):
            return i
    return None


class Image2DReader(Reader):
    name = "image-2d"
    description = "2-D image, one spectrum per row, shared linear/log-linear WCS (spPlate-like)"

    def identify(self, hdul: fits.HDUList) -> bool:
        return _flux_hdu(hdul) is not None

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        i = _flux_hdu(hdul)
        if i is None:
            raise BadFileError(path, "no 2-D image HDU with a wavelength WCS on axis 1")
        header = hdul[i].header
        n_rows, n_pix = image_shape(header)
        wave = linear_wcs_wavelength(path, header, n_pix)
        unit = str(header.get("BUNIT", hdul[0].header.get("BUNIT", ""))).strip()
        return Layout(n_rows, [wave], np.zeros(n_rows, dtype=np.int64), unit, (i,), i)

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        if first < 0 or first + count > layout.n_spectra:
            raise BadFileError(path, f"rows {first}..{first + count - 1} outside 0..{layout.n_spectra - 1}")
        rows = slice(first, first + count)
        flux = as_float32(hdul[layout.flux_hdu].data[rows])
        found = find_uncertainty_hdu(hdul, (layout.n_spectra, flux.shape[1]))
        if found is None:
            unc = np.full_like(flux, np.nan)
        else:
            j, kind = found
            unc = to_sigma(hdul[j].data[rows], kind)
        return SpectraBlock(flux=flux, uncertainty=unc)
