"""Layout (a): one spectrum per file in a 1-D image with a linear or log-linear WCS; the uncertainty,
if any, in an image extension named ERR/SIGMA/STD (1-sigma), IVAR or VAR."""

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
        if is_image(hdu) and h.get("NAXIS") == 1 and "CRVAL1" in h and ("CDELT1" in h or "CD1_1" in h):
            return i
    return None


class WcsImage1DReader(Reader):
    name = "wcs-1d"
    description = "1-D image spectrum with a linear or log-linear (DC-FLAG=1) WCS"

    def identify(self, hdul: fits.HDUList) -> bool:
        return _flux_hdu(hdul) is not None

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        i = _flux_hdu(hdul)
        if i is None:
            raise BadFileError(path, "no 1-D image HDU with a wavelength WCS")
        header = hdul[i].header
        (n_pix,) = image_shape(header)
        wave = linear_wcs_wavelength(path, header, n_pix)
        unit = str(header.get("BUNIT", hdul[0].header.get("BUNIT", ""))).strip()
        return Layout(1, [wave], np.zeros(1, dtype=np.int64), unit, (i,), i)

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        if (first, count) != (0, 1):
            raise BadFileError(path, f"holds one spectrum, asked for {count} from index {first}")
        flux = as_float32(hdul[layout.flux_hdu].data)[np.newaxis, :]
        unc = np.full_like(flux, np.nan)
        found = find_uncertainty_hdu(hdul, flux.shape[1:])
        if found is not None:
            j, kind = found
            unc = to_sigma(hdul[j].data, kind)[np.newaxis, :]
        return SpectraBlock(flux=flux, uncertainty=unc)
