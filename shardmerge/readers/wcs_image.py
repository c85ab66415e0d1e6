"""What the image layouts with a linear or log-linear dispersion on axis 1 share: find the flux image,
its wavelength grid and an uncertainty extension of the same shape. A 1-D image is one row of a 2-D one."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from .base import Layout, Reader, SpectraBlock
from .fitsio import image_shape, is_image
from .oddities import UNREAD_EXTENSION
from .values import as_float32, to_sigma
from .wcs import find_uncertainty_hdu, unread_same_shape_hdus, wcs_axis


class WcsImageReader(Reader):
    naxis: ClassVar[int]

    def _flux_hdu(self, hdul: fits.HDUList) -> int | None:
        for i, hdu in enumerate(hdul):
            h = hdu.header
            if is_image(hdu) and h.get("NAXIS") == self.naxis and "CRVAL1" in h and ("CDELT1" in h or "CD1_1" in h):
                return i
        return None

    def identify(self, hdul: fits.HDUList) -> bool:
        return self._flux_hdu(hdul) is not None

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        i = self._flux_hdu(hdul)
        if i is None:
            raise BadFileError(path, f"no {self.naxis}-D image HDU with a wavelength WCS on axis 1")
        header = hdul[i].header
        shape = image_shape(header)
        n_rows, n_pix = (1, shape[0]) if self.naxis == 1 else shape
        if self.naxis == 2:
            refuse_labelled_rows(path, header, n_rows, i)
        axis = wcs_axis(path, header, n_pix)
        unit = str(header.get("BUNIT", hdul[0].header.get("BUNIT", ""))).strip()
        found = find_uncertainty_hdu(hdul, shape)
        unread = unread_same_shape_hdus(hdul, shape, {i, *([found[0]] if found else [])})
        return Layout(n_rows, [axis.wavelength], np.zeros(n_rows, dtype=np.int64), unit, (i,), i,
                      notes=axis.notes + tuple((UNREAD_EXTENSION, text) for text in unread),
                      aux_hdus=(found[0],) if found else (), state={"axis": axis})

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        if first < 0 or count <= 0 or first + count > layout.n_spectra:
            raise BadFileError(path, f"spectra {first}..{first + count - 1} outside 0..{layout.n_spectra - 1}")
        rows = slice(first, first + count)
        data = hdul[layout.flux_hdu].data
        axis = layout.state.get("axis") or wcs_axis(path, hdul[layout.flux_hdu].header, data.shape[-1])
        flux = axis.in_store_order(as_float32(data.reshape(-1, data.shape[-1])[rows]))  # a frequency axis: reversed
        found = find_uncertainty_hdu(hdul, data.shape)
        if found is None:
            return SpectraBlock(flux=flux, uncertainty=np.full_like(flux, np.nan))
        j, kind = found
        unc = hdul[j].data
        return SpectraBlock(flux=flux, uncertainty=axis.in_store_order(
            to_sigma(unc.reshape(-1, unc.shape[-1])[rows], kind)))


def refuse_labelled_rows(path: str, header: fits.Header, n_rows: int, hdu: int) -> None:
    """A 2-D image whose rows the header names as different quantities (popler's ARRAYn: flux, error,
    continuum, status, chi-squared) is not one spectrum per row: refused, naming the way to read it."""
    # the header's ARRAYn cards, not n_rows lookups: a header may announce 2**52 rows
    found = {int(key[5:]): str(header.get(key, "")).strip() for key in header
             if key.startswith("ARRAY") and key[5:].isdigit() and 1 <= int(key[5:]) <= n_rows}
    named = [(k, x) for k, x in sorted(found.items()) if x]
    if len(named) >= 2 and len({x for _, x in named}) >= 2:
        shown = ", ".join(f"ARRAY{k} = {x!r}" for k, x in named[:4]) + (", ..." if len(named) > 4 else "")
        raise BadFileError(path, f"the image's rows are different quantities ({shown}), not one spectrum per "
                                 f"row: describe which row is what with --format mapping ([flux] hdu = {hdu}, row = 0; "
                                 f"[uncertainty] hdu = {hdu}, row = 1; [wavelength] wcs = true)")
