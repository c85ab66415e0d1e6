"""IRAF `apall` equispec output with bands: a linear or log-linear WCS on axis 1 (CRVAL1/CDELT1, DC-FLAG)
and a third axis of bands named by BANDIDn ("spectrum - background fit, …", "raw - …", "background - …",
"sigma - …"); axis 2 holds the apertures. A one-aperture extraction can also come as a 2-D image whose
rows are the bands. The spectrum is the band whose BANDID says "spectrum" (band 1 by IRAF's convention),
the 1-sigma the band that says "sigma"; one stored spectrum per aperture. Every such image of the first
one's EXTNAME (EXTVER 1..n) is stored, each row saying its HDU and its aperture there."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from .base import Layout, Reader, SpectraBlock
from .fitsio import image_shape, is_image
from .science import ImageRows, describe, one_unit, same_kind
from .values import as_float32, to_sigma
from .wcs import wcs_axis


def band_ids(header: fits.Header) -> list[str]:
    """BANDID1, BANDID2, … as long as they run, lowercased."""
    out = []
    while (key := f"BANDID{len(out) + 1}") in header:
        out.append(str(header[key]).strip().lower())
    return out


def _geometry(hdu: object) -> tuple[int, int, int] | None:
    """(bands, apertures, pixels) of an image with bands, else None."""
    h = hdu.header
    if not is_image(hdu) or "CRVAL1" not in h or not ("CDELT1" in h or "CD1_1" in h):
        return None
    if str(h.get("CTYPE1", "")).strip().upper() == "MULTISPE":
        return None  # the multispec reader's
    shape = image_shape(h)
    bands = band_ids(h)
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    if len(shape) == 2 and len(bands) >= 2 and len(bands) == shape[0]:
        return shape[0], 1, shape[1]
    return None


def _band(bands: list[str], word: str) -> int | None:
    return next((b for b, label in enumerate(bands) if label.startswith(word)), None)


class IrafEquispecReader(Reader):
    name = "iraf-equispec"
    priority = 65
    description = "IRAF apall equispec output with bands (BANDIDn): spectrum and sigma bands, one row per aperture"

    def _hdu(self, hdul: fits.HDUList) -> int | None:
        return next((i for i, hdu in enumerate(hdul) if _geometry(hdu) is not None), None)

    def identify(self, hdul: fits.HDUList) -> bool:
        return self._hdu(hdul) is not None

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        first = self._hdu(hdul)
        if first is None:
            raise BadFileError(path, "no image with a band axis (NAXIS3 or BANDIDn rows) and a wavelength WCS")
        science = same_kind(path, hdul, first, lambda hdu: _geometry(hdu) is not None,
                            "an image with a band axis and a wavelength WCS")
        rows = ImageRows()
        for i in science:
            n_bands, n_ap, n_pix = _geometry(hdul[i])
            header = hdul[i].header
            bands = band_ids(header)
            if bands and _band(bands, "spectrum") is None and n_bands > 1:
                raise BadFileError(path, f"no band of {n_bands} of {describe(hdul, i)} says it is the spectrum "
                                         f"(BANDIDn: {bands}); describe the file with --format mapping")
            rows.add(hdul, i, i, wcs_axis(path, header, n_pix), n_ap)
        return Layout(rows.n_total, rows.grids, np.concatenate(rows.grid_of), one_unit(path, rows.units),
                      tuple(science), first, notes=tuple(rows.notes), state={"parts": rows.parts},
                      **rows.provenance(len(science) > 1))

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        parts = layout.state.get("parts") or self.layout(path, hdul).state["parts"]
        width = max(layout.n_pix(i) for i in range(first, first + count))
        flux = np.full((count, width), np.nan, dtype=np.float32)
        unc = np.full((count, width), np.nan, dtype=np.float32)
        for i, axis, start, n_ap in parts:
            lo, hi = max(first, start), min(first + count, start + n_ap)
            if lo >= hi:
                continue
            rows, out = slice(lo - start, hi - start), slice(lo - first, hi - first)
            hdu = hdul[i]
            n_bands, n_ap_here, n_pix = _geometry(hdu)
            data = np.asarray(hdu.data).reshape(n_bands, n_ap_here, n_pix)
            bands = band_ids(hdu.header)
            spectrum = _band(bands, "spectrum") if bands else 0
            sigma = _band(bands, "sigma")
            f = axis.in_store_order(as_float32(data[spectrum or 0, rows]))
            flux[out, : f.shape[1]] = f
            if sigma is not None:
                unc[out, : f.shape[1]] = axis.in_store_order(to_sigma(data[sigma, rows], "sigma"))
        return SpectraBlock(flux=flux, uncertainty=unc)
