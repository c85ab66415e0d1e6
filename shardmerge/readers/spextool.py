"""The IRTF Spextool convention (SpeX, uSpeX, iSHELL; written by Spextool, pySpextool and many reduction
tools that copy it): a primary image whose rows are wavelength, flux and uncertainty (1-sigma), and with
pySpextool a fourth row of pixel flags. Units are in `XUNITS` (wavelength) and `YUNITS` (flux); the row
meaning is the convention itself (Spextool restates it in the header's HISTORY). One order is a
(3 | 4, pixels) image; several orders and apertures are a cube of (orders × apertures, 3 | 4, pixels),
order by order, apertures within each order (`NORDERS`, `NAPS`, order numbers in `ORDERS`), each plane
NaN-padded past its own last pixel.

One stored spectrum per order and aperture, never stitched: `metadata/order` is the echelle order number
(from `ORDERS`), `metadata/aperture` the 1-based aperture. Each plane's grid is its finite wavelength
pixels (the padding is not stored); a plane whose wavelength row is all NaN holds no spectrum and is left
out (counted as dropped). Flags (the fourth row) are the pixel mask, as the file gives them.

An image without `XUNITS` is not claimed (a bare 3-row array has no convention to assume units from: see
the refusal), nor one that carries a linear WCS on axis 1 but no Spextool cards (the WCS readers own it)."""

from __future__ import annotations

import re

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..units import wavelength_factor
from .base import Layout, Reader, SpectraBlock, check_grid
from .fitsio import image_shape, is_image
from .values import as_float32, as_mask, to_sigma

ROWS_PER_SPECTRUM = (3, 4)  # wavelength, flux, uncertainty [, flags]
MASK_CONVENTION = "Spextool flags"

# Spextool's own flux spellings (IDL Spextool writes units without separators), as astropy reads them
_YUNITS = {
    "wm-2um-1": "W m-2 um-1",
    "wm-2hz-1": "W m-2 Hz-1",
    "ergss-1cm-2a-1": "erg s-1 cm-2 Angstrom-1",
    "ergs-1cm-2a-1": "erg s-1 cm-2 Angstrom-1",
    "ergss-1cm-2hz-1": "erg s-1 cm-2 Hz-1",
    "ergs-1cm-2hz-1": "erg s-1 cm-2 Hz-1",
    "dn/s": "adu/s",
    "dns-1": "adu/s",
}


def spextool_flux_unit(yunits: str) -> str:
    """The flux unit of a YUNITS card in a spelling `units.normalise_flux_unit` reads (Spextool's compact
    `Wm-2um-1`, `ergss-1cm-2A-1`, `DN / s`); any other spelling is passed on as the file writes it."""
    text = " ".join(str(yunits).split())
    return _YUNITS.get(re.sub(r"\s+", "", text).lower(), text)


def _is_spextool(h: fits.Header) -> bool:
    if "XUNITS" not in h or "YUNITS" not in h:
        return False
    shape = image_shape(h)
    if len(shape) not in (2, 3) or shape[-2] not in ROWS_PER_SPECTRUM or shape[-1] < 2:
        return False
    spextool_cards = any(k in h for k in ("NORDERS", "NAPS", "ORDERS"))
    has_wcs = "CRVAL1" in h and ("CDELT1" in h or "CD1_1" in h)
    return spextool_cards or not has_wcs


def _orders(path: str, h: fits.Header, n_planes: int) -> list[tuple[str, str]]:
    """(order number, aperture) of each plane, from NORDERS, NAPS and ORDERS; refused when they disagree
    with the data's shape (which plane is which order would be a guess)."""
    naps = int(h.get("NAPS", 1) or 1)
    norders = int(h.get("NORDERS", n_planes // naps if naps else n_planes) or 0)
    if naps < 1 or norders * naps != n_planes:
        raise BadFileError(path, f"the Spextool cards say NORDERS = {h.get('NORDERS')!r} x NAPS = {h.get('NAPS')!r} "
                                 f"spectra, the image holds {n_planes}: which plane is which order is ambiguous; "
                                 "correct NORDERS/NAPS, or split the file into one image per order")
    text = str(h.get("ORDERS", "")).strip()
    numbers = [x.strip() for x in text.split(",") if x.strip()] if text else []
    if numbers and len(numbers) != norders:
        raise BadFileError(path, f"ORDERS = {text!r} names {len(numbers)} orders, NORDERS = {norders}: which plane "
                                 "is which order is ambiguous; correct ORDERS or NORDERS")
    if not numbers:
        numbers = [str(k + 1) for k in range(norders)]
    return [(numbers[p // naps], str(p % naps + 1)) for p in range(n_planes)]


def _span(path: str, wave: np.ndarray, plane: int) -> tuple[int, int] | None:
    """[first, last] pixel of a plane's finite wavelengths, None when there are none; NaN inside the span
    (not padding) is refused."""
    finite = np.flatnonzero(np.isfinite(wave))
    if finite.size == 0:
        return None
    a, b = int(finite[0]), int(finite[-1])
    if finite.size != b - a + 1:
        gap = int(np.flatnonzero(~np.isfinite(wave[a : b + 1]))[0]) + a
        raise BadFileError(path, f"plane {plane}: the wavelength row is NaN at pixel {gap}, inside pixels {a}-{b}: "
                                 "not the NaN padding of the Spextool convention (a damaged or re-written file)")
    return a, b


class SpextoolReader(Reader):
    name = "spextool"
    priority = 35
    description = ("IRTF Spextool image (SpeX, iSHELL): rows wavelength, flux, error [, flags], units in XUNITS/"
                   "YUNITS; one row per order and aperture")

    def identify(self, hdul: fits.HDUList) -> bool:
        return is_image(hdul[0]) and _is_spextool(hdul[0].header)

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        h = hdul[0].header
        if not self.identify(hdul):
            raise BadFileError(path, "not a Spextool image (a primary image of 3 or 4 rows per spectrum, with XUNITS "
                                     "and YUNITS)")
        shape = image_shape(h)
        n_planes = 1 if len(shape) == 2 else shape[0]
        xunits = str(h["XUNITS"]).strip()
        factor = wavelength_factor(xunits)
        if factor is None:
            raise BadFileError(path, f"XUNITS = {xunits!r} is not a wavelength unit (a file not yet wavelength-"
                                     "calibrated, or a frequency axis): only wavelength-calibrated Spextool spectra "
                                     "are read")
        labels = _orders(path, h, n_planes)
        data = np.asarray(hdul[0].data).reshape(n_planes, shape[-2], shape[-1])
        kept, spans, grids = [], [], []
        for p in range(n_planes):
            span = _span(path, np.asarray(data[p, 0], dtype=np.float64), p)
            if span is None:
                continue
            wave = np.asarray(data[p, 0, span[0] : span[1] + 1], dtype=np.float64) * factor
            check_grid(path, wave)
            kept.append(p)
            spans.append(span)
            grids.append(wave)
        if not kept:
            raise BadFileError(path, "every plane's wavelength row is NaN: the file holds no spectrum")
        if all(g.shape == grids[0].shape and np.array_equal(g, grids[0]) for g in grids):
            grids, grid_of = [grids[0]], np.zeros(len(kept), dtype=np.int64)
        else:
            grid_of = np.arange(len(kept), dtype=np.int64)
        flags = shape[-2] == 4
        return Layout(len(kept), grids, grid_of, spextool_flux_unit(h["YUNITS"]), (0,), 0,
                      mask_convention=MASK_CONVENTION if flags else "", metadata_keys=("order", "aperture"),
                      source_index=np.asarray(kept, dtype=np.int64), dropped=n_planes - len(kept),
                      state={"spans": spans, "labels": [labels[p] for p in kept]})

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        if first < 0 or count <= 0 or first + count > layout.n_spectra:
            raise BadFileError(path, f"spectra {first}..{first + count - 1} outside 0..{layout.n_spectra - 1}")
        shape = image_shape(hdul[0].header)
        data = hdul[0].data.reshape(-1, shape[-2], shape[-1])
        spans = layout.state["spans"]
        width = max(spans[first + k][1] - spans[first + k][0] + 1 for k in range(count))
        flux = np.full((count, width), np.nan, dtype=np.float32)
        unc = np.full((count, width), np.nan, dtype=np.float32)
        mask = np.zeros((count, width), dtype=np.uint32) if layout.mask_convention else None
        for k in range(count):
            plane = int(layout.source_index[first + k])
            a, b = spans[first + k]
            n = b - a + 1
            rows = np.asarray(data[plane])  # only this plane is read
            flux[k, :n] = as_float32(rows[1, a : b + 1])
            unc[k, :n] = to_sigma(rows[2, a : b + 1], "sigma")
            if mask is not None:
                mask[k, :n] = as_mask(path, rows[3, a : b + 1])
        return SpectraBlock(flux=flux, uncertainty=unc, mask=mask)

    def row_metadata(self, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> list[dict]:
        rows = super().row_metadata(hdul, layout, first, count)
        for k, r in enumerate(rows):
            r["order"], r["aperture"] = layout.state["labels"][first + k]
        return rows
