"""Spectra as separate images of one shape: flux (EXTNAME `FLUX`, or the primary), wavelength (`WAVELENGTH`,
`WAVE`, `LAMBDA`), and optionally an uncertainty (`ERROR`, `IVAR`, `VAR`, … by the names of
`base.uncertainty_kind`) and a continuum (`CONTINUUM`, `CONT`). linetools and many hand-made files write
this. A 1-D flux is one spectrum; a 2-D flux one per row, with a 1-D (shared) or 2-D wavelength.

The wavelength unit comes from the wavelength image's BUNIT/CUNIT1 or linetools' `UNITS` card (JSON with a
"wave" key); without one the file is refused: an array of numbers has no convention to assume."""

from __future__ import annotations

import json

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..units import wavelength_factor
from .base import Layout, Reader, SpectraBlock
from .fitsio import image_shape, is_image
from .values import as_float32, to_sigma
from .wcs import find_uncertainty_hdu

_WAVE_NAMES = ("WAVELENGTH", "WAVE", "LAMBDA")
_CONT_NAMES = ("CONTINUUM", "CONT")


def _named(hdul: fits.HDUList, names: tuple[str, ...]) -> int | None:
    for i, hdu in enumerate(hdul):
        if is_image(hdu) and str(hdu.header.get("EXTNAME", "")).strip().upper() in names:
            return i
    return None


def _flux_hdu(hdul: fits.HDUList) -> int | None:
    i = _named(hdul, ("FLUX",))
    if i is None and is_image(hdul[0]) and hdul[0].header.get("NAXIS", 0) in (1, 2):
        i = 0
    return i


class ImageArraysReader(Reader):
    name = "image-arrays"
    priority = 55
    description = "separate images of one shape: FLUX (or primary), WAVELENGTH, optional ERROR/IVAR/VAR, CONTINUUM"

    def identify(self, hdul: fits.HDUList) -> bool:
        f, w = _flux_hdu(hdul), _named(hdul, _WAVE_NAMES)
        if f is None or w is None or f == w:
            return False
        fs, ws = image_shape(hdul[f].header), image_shape(hdul[w].header)
        return len(fs) in (1, 2) and (ws == fs or (len(fs) == 2 and ws == fs[1:]))

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        if not self.identify(hdul):
            raise BadFileError(path, "no flux image with a WAVELENGTH image of the same shape")
        f, w = _flux_hdu(hdul), _named(hdul, _WAVE_NAMES)
        shape = image_shape(hdul[f].header)
        n_spec = 1 if len(shape) == 1 else shape[0]
        wave = np.asarray(hdul[w].data, dtype=np.float64).reshape(-1, shape[-1]) * self._factor(path, hdul, w)
        if wave.shape[0] == 1:
            grids, grid_of = [wave[0]], np.zeros(n_spec, dtype=np.int64)
        else:
            grids, grid_of = list(wave), np.arange(n_spec, dtype=np.int64)
        unit = str(hdul[f].header.get("BUNIT", "")).strip() or self._units_card(hdul).get("flux", "")
        cont = _named(hdul, _CONT_NAMES)
        unc = find_uncertainty_hdu(hdul, shape)
        read = (w, *([unc[0]] if unc else []), *([cont] if cont is not None else []))
        return Layout(n_spec, grids, grid_of, unit, (f,), f, aux_hdus=read,
                      provides=frozenset({"continuum"} if cont is not None else ()))

    def _units_card(self, hdul: fits.HDUList) -> dict:
        """linetools writes UNITS = '{"wave": "Angstrom", "flux": "..."}' in the primary header."""
        text = hdul[0].header.get("UNITS")
        try:
            doc = json.loads(text) if isinstance(text, str) else {}
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def _factor(self, path: str, hdul: fits.HDUList, w: int) -> float:
        h = hdul[w].header
        unit = str(h.get("BUNIT", "") or h.get("CUNIT1", "")).strip() or str(self._units_card(hdul).get("wave", ""))
        if not unit:
            raise BadFileError(path, f"the wavelength image (HDU {w}) has no unit (BUNIT, CUNIT1, or a UNITS card): "
                                     "say which with --format mapping ([wavelength] hdu = "
                                     f"{w}, unit = \"Angstrom\")")
        factor = wavelength_factor(unit)
        if factor is None:
            raise BadFileError(path, f"the wavelength image's unit {unit!r} (HDU {w}) is not a wavelength unit: say "
                                     f"which with --format mapping ([wavelength] hdu = {w}, unit = \"Angstrom\")")
        return factor

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        shape = image_shape(hdul[layout.flux_hdu].header)
        rows = slice(first, first + count)

        def rows_of(i: int) -> np.ndarray:
            return np.asarray(hdul[i].data.reshape(-1, shape[-1])[rows])  # reads only these rows

        flux = as_float32(rows_of(layout.flux_hdu))
        found = find_uncertainty_hdu(hdul, shape)
        unc = to_sigma(rows_of(found[0]), found[1]) if found else np.full_like(flux, np.nan)
        block = SpectraBlock(flux=flux, uncertainty=unc)
        if (c := _named(hdul, _CONT_NAMES)) is not None:
            block.continuum = as_float32(rows_of(c))
            block.continuum_method = f"source ({str(hdul[c].header.get('EXTNAME', '')).strip()} extension)"
        return block
