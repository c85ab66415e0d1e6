"""What the image layouts with a linear or log-linear dispersion on axis 1 share: find the flux image,
its wavelength grid and an uncertainty extension of the same shape. A 1-D image is one row of a 2-D one.

Every science image of the first one's kind (its EXTNAME: `SCI` EXTVER 1..n of repeated exposures) is
stored, each with its own WCS (one grid per image unless they agree), its uncertainty and its mask (`DQ`,
`MASK`, … of its EXTVER: `science.pair_extensions`); each row says its HDU (`metadata/source_hdu`,
`source_extname`, `source_extver`) and its row there (`source_hdu_row`). Images giving their flux in
different units refuse the file, naming them."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from .base import Layout, Reader, SpectraBlock
from .fitsio import image_shape, is_image
from .oddities import UNREAD_EXTENSION
from .science import ImageRows, mask_convention, one_unit, pair_extensions, same_kind
from .values import as_float32, as_mask, to_sigma
from .wcs import unread_same_shape_hdus, wcs_axis


class WcsImageReader(Reader):
    naxis: ClassVar[int]

    def _flux_hdu(self, hdul: fits.HDUList) -> int | None:
        return next((i for i, hdu in enumerate(hdul) if self._readable(hdu)), None)

    def _readable(self, hdu: object) -> bool:
        h = hdu.header
        return is_image(hdu) and h.get("NAXIS") == self.naxis and "CRVAL1" in h and ("CDELT1" in h or "CD1_1" in h)

    def identify(self, hdul: fits.HDUList) -> bool:
        return self._flux_hdu(hdul) is not None

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        first = self._flux_hdu(hdul)
        if first is None:
            raise BadFileError(path, f"no {self.naxis}-D image HDU with a wavelength WCS on axis 1")
        science = same_kind(path, hdul, first, self._readable, f"a {self.naxis}-D image with a wavelength WCS")
        images = pair_extensions(path, hdul, science)
        rows = ImageRows()
        for image in images:
            i = image.hdu
            header = hdul[i].header
            shape = image_shape(header)
            n_rows, n_pix = (1, shape[0]) if self.naxis == 1 else shape
            if self.naxis == 2:
                refuse_labelled_rows(path, header, n_rows, i)
            rows.add(hdul, i, image, wcs_axis(path, header, n_pix), n_rows)
        read = {s.hdu for s in images} | {j for s in images for j in s.companions}
        # an unnamed image of the flux's shape may be an uncertainty: said when nothing reads it
        unread = unread_same_shape_hdus(hdul, image_shape(hdul[first].header), read)
        return Layout(rows.n_total, rows.grids, np.concatenate(rows.grid_of), one_unit(path, rows.units),
                      tuple(science), first, mask_convention=mask_convention(hdul, images, path),
                      notes=(*rows.notes, *((UNREAD_EXTENSION, text) for text in unread)),
                      aux_hdus=tuple(j for s in images for j in s.companions), state={"parts": rows.parts},
                      **rows.provenance(len(images) > 1))

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        if first < 0 or count <= 0 or first + count > layout.n_spectra:
            raise BadFileError(path, f"spectra {first}..{first + count - 1} outside 0..{layout.n_spectra - 1}")
        parts = layout.state.get("parts") or self.layout(path, hdul).state["parts"]
        width = max(layout.n_pix(i) for i in range(first, first + count))
        flux = np.full((count, width), np.nan, dtype=np.float32)
        unc = np.full((count, width), np.nan, dtype=np.float32)
        mask = np.zeros((count, width), dtype=np.uint32) if layout.mask_convention else None
        for image, axis, start, n_rows in parts:
            lo, hi = max(first, start), min(first + count, start + n_rows)
            if lo >= hi:
                continue
            rows, out = slice(lo - start, hi - start), slice(lo - first, hi - first)
            f = axis.in_store_order(as_float32(_rows(hdul, image.hdu, rows)))  # a frequency axis: reversed
            flux[out, : f.shape[1]] = f
            if image.uncertainty is not None:
                j, kind = image.uncertainty
                unc[out, : f.shape[1]] = axis.in_store_order(to_sigma(_rows(hdul, j, rows), kind))
            if mask is not None and image.mask is not None:
                mask[out, : f.shape[1]] = axis.in_store_order(as_mask(path, _rows(hdul, image.mask, rows)))
        return SpectraBlock(flux=flux, uncertainty=unc, mask=mask)


def _rows(hdul: fits.HDUList, hdu: int, rows: slice) -> np.ndarray:
    """Rows `rows` of an image HDU's data as (rows, pixels)."""
    data = hdul[hdu].data
    return data.reshape(-1, data.shape[-1])[rows]


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
