"""Spectra as separate images of one shape: flux (EXTNAME `FLUX`, or the primary), wavelength (`WAVELENGTH`,
`WAVE`, `LAMBDA`), and optionally an uncertainty (`ERROR`, `IVAR`, `VAR`, … by the names of
`base.uncertainty_kind`) and a continuum (`CONTINUUM`, `CONT`). linetools and many hand-made files write
this. A 1-D flux is one spectrum; a 2-D flux one per row, with a 1-D (shared) or 2-D wavelength.

The wavelength unit comes from the wavelength image's BUNIT/CUNIT1 or linetools' `UNITS` card (JSON with a
"wave" key); without one the file is refused: an array of numbers has no convention to assume.

Every flux image of the file's kind (`FLUX` EXTVER 1..n) is stored, each with the wavelength, uncertainty,
mask (`DQ`, `MASK`, …) and continuum images of its EXTVER (one wavelength image alone is shared by all);
what cannot be paired refuses the file, naming it (`science.pair_extensions`)."""

from __future__ import annotations

import json

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..units import wavelength_factor
from .base import Layout, Reader, SpectraBlock
from .fitsio import hdu_label, image_shape, is_image
from .science import describe, mask_convention, one_unit, pair_extensions, same_kind
from .values import as_float32, as_mask, to_sigma

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
        first = _flux_hdu(hdul)
        science = same_kind(path, hdul, first, lambda hdu: len(image_shape(hdu.header)) in (1, 2),
                            "a 1-D or 2-D image")
        images = pair_extensions(path, hdul, science)
        grids: list[np.ndarray] = []
        grid_of, source_hdus, source_rows, parts, read = [], [], [], [], []
        units: dict[str, list[int]] = {}
        n_total = 0
        for image in images:
            f = image.hdu
            shape = image_shape(hdul[f].header)
            n_spec = 1 if len(shape) == 1 else shape[0]
            w = _paired(path, hdul, f, _WAVE_NAMES, len(images), required=True)
            ws = image_shape(hdul[w].header)
            if not (ws == shape or (len(shape) == 2 and ws == shape[1:])):
                raise BadFileError(path, f"the wavelength image {describe(hdul, w)} has shape {ws}, its flux "
                                         f"{describe(hdul, f)} {shape}: they cannot be paired")
            wave = np.asarray(hdul[w].data, dtype=np.float64).reshape(-1, shape[-1]) * self._factor(path, hdul, w)
            if wave.shape[0] == 1:
                grid_of.append(np.full(n_spec, len(grids), dtype=np.int64))
                grids.append(wave[0])
            else:
                grid_of.append(np.arange(len(grids), len(grids) + n_spec, dtype=np.int64))
                grids.extend(wave)
            unit = str(hdul[f].header.get("BUNIT", "")).strip() or self._units_card(hdul).get("flux", "")
            units.setdefault(unit, []).append(f)
            cont = _paired(path, hdul, f, _CONT_NAMES, len(images))
            source_hdus.append(np.full(n_spec, f, dtype=np.int64))
            source_rows.append(np.arange(n_spec, dtype=np.int64))
            parts.append((image, cont, n_total, n_spec))
            read += [j for j in (w, *image.companions, cont) if j is not None and j not in read]
            n_total += n_spec
        conts = [c for _, c, _, _ in parts]
        if any(c is not None for c in conts) and None in conts:
            raise BadFileError(path, f"{sum(c is not None for c in conts)} of its {len(conts)} flux images have a "
                                     "continuum image of their EXTVER, the others not: one file's spectra are stored "
                                     "alike; split the file")
        several = len(images) > 1
        return Layout(n_total, grids, np.concatenate(grid_of), one_unit(path, units), tuple(science), first,
                      aux_hdus=tuple(read), mask_convention=mask_convention(hdul, images, path),
                      provides=frozenset({"continuum"} if conts[0] is not None else ()), state={"parts": parts},
                      source_hdus=np.concatenate(source_hdus) if several else None,
                      source_rows=np.concatenate(source_rows) if several else None)

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
        parts = layout.state.get("parts") or self.layout(path, hdul).state["parts"]
        width = max(layout.n_pix(i) for i in range(first, first + count))
        flux = np.full((count, width), np.nan, dtype=np.float32)
        unc = np.full((count, width), np.nan, dtype=np.float32)
        mask = np.zeros((count, width), dtype=np.uint32) if layout.mask_convention else None
        block = SpectraBlock(flux=flux, uncertainty=unc, mask=mask)
        if "continuum" in layout.provides:
            block.continuum = np.full((count, width), np.nan, dtype=np.float32)
        for image, cont, start, n_spec in parts:
            lo, hi = max(first, start), min(first + count, start + n_spec)
            if lo >= hi:
                continue
            rows, out = slice(lo - start, hi - start), slice(lo - first, hi - first)
            f = as_float32(_rows(hdul, image.hdu, rows))
            flux[out, : f.shape[1]] = f
            if image.uncertainty is not None:
                unc[out, : f.shape[1]] = to_sigma(_rows(hdul, image.uncertainty[0], rows), image.uncertainty[1])
            if mask is not None and image.mask is not None:
                mask[out, : f.shape[1]] = as_mask(path, _rows(hdul, image.mask, rows))
            if block.continuum is not None and cont is not None:
                block.continuum[out, : f.shape[1]] = as_float32(_rows(hdul, cont, rows))
                block.continuum_method = f"source ({str(hdul[cont].header.get('EXTNAME', '')).strip()} extension)"
        return block


def _rows(hdul: fits.HDUList, hdu: int, rows: slice) -> np.ndarray:
    """Rows `rows` of an image as (rows, pixels): reads only these rows."""
    data = hdul[hdu].data
    return np.asarray(data.reshape(-1, data.shape[-1])[rows])


def _paired(path: str, hdul: fits.HDUList, flux: int, names: tuple[str, ...], n_flux: int,
            required: bool = False) -> int | None:
    """The image named one of `names` that goes with flux image `flux`: the first such (one flux image, or
    only one such image in the file, shared), else the one of the flux's EXTVER; a required one missing, or
    two of one EXTVER, refuse the file."""
    found = [i for i, hdu in enumerate(hdul) if is_image(hdu) and hdu_label(hdu)[0].upper() in names]
    if n_flux == 1 or len(found) <= 1:
        return found[0] if found else None
    ver = hdu_label(hdul[flux])[1]
    mine = [i for i in found if hdu_label(hdul[i])[1] == ver]
    if len(mine) == 1:
        return mine[0]
    if mine or required:
        raise BadFileError(path, f"{len(mine)} {names[0]} images have the EXTVER of flux image {describe(hdul, flux)} "
                                 f"(of {len(found)}: {', '.join(describe(hdul, i) for i in found)}): its "
                                 f"{names[0].lower()} cannot be paired; give each flux image one of its EXTVER, or "
                                 "describe the file with --format mapping")
    return None
