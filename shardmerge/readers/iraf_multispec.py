"""IRAF multispec images (`CTYPE1 = 'MULTISPE'`): each image row is an aperture, and its dispersion is in
`specN = "ap beam dtype w1 dw nw z aplow aphigh ..."`, written across `WAT2_001`, `WAT2_002`, … cards of 68
characters that must be concatenated without trimming. dtype 0 is linear, 1 log-linear (log10); dtype 2
(Chebyshev, Legendre, splines) is refused. A 3-D image holds bands (BANDIDn): band 1 is the spectrum,
a band whose BANDID says sigma/error/uncertainty is its 1-sigma. Every multispec image of the first one's
EXTNAME (EXTVER 1..n) is stored, each row saying its HDU and its aperture there."""

from __future__ import annotations

import re

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..exactmath import exp10  # 10**x: the same bits on every CPU
from ..units import wavelength_factor
from .base import Layout, Reader, SpectraBlock
from .fitsio import image_shape, is_image
from .science import describe, one_unit, same_kind
from .values import as_float32, to_sigma


def _hdu(hdul: fits.HDUList) -> int | None:
    return next((i for i, hdu in enumerate(hdul) if _is_multispec(hdu)), None)


def wat_string(header: fits.Header, axis: int) -> str:
    """WAT{axis}_001… concatenated. Each card holds exactly 68 characters; astropy strips trailing spaces
    of string values, which may be meaningful, so pad them back."""
    parts = []
    k = 1
    while (key := f"WAT{axis}_{k:03d}") in header:
        parts.append(str(header[key]).ljust(68))
        k += 1
    return "".join(parts)


def parse_multispec(path: str, header: fits.Header) -> tuple[dict[int, list[float]], str]:
    """{aperture row (1-based spec number): [ap, beam, dtype, w1, dw, nw, z, ...]} and the unit label."""
    wat2 = wat_string(header, 2)
    specs = {}
    for m in re.finditer(r"spec(\d+)\s*=\s*\"([^\"]*)\"", wat2):
        try:
            specs[int(m.group(1))] = [float(x) for x in m.group(2).split()]
        except ValueError as exc:
            raise BadFileError(path, f"WAT2 spec{m.group(1)} is not a list of numbers: {m.group(2)!r}") from exc
    if not specs:
        raise BadFileError(path, "CTYPE1 = 'MULTISPE' but no specN = \"...\" entries in the WAT2_nnn cards")
    wat1 = wat_string(header, 1)
    units = "angstroms"  # IRAF's default
    m = re.search(r"units\s*=\s*(\S+)", wat1)
    if m:
        units = m.group(1)
    return specs, units


class IrafMultispecReader(Reader):
    name = "iraf-multispec"
    priority = 60
    description = "IRAF multispec image (CTYPE1 MULTISPE, WAT2_nnn specN): one spectrum per aperture"

    def identify(self, hdul: fits.HDUList) -> bool:
        return _hdu(hdul) is not None

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        first = _hdu(hdul)
        if first is None:
            raise BadFileError(path, "no image with CTYPE1 = 'MULTISPE'")
        science = same_kind(path, hdul, first, _is_multispec, "a multispec image (CTYPE1 = 'MULTISPE')")
        grids: list[np.ndarray] = []
        source_hdus, source_rows, parts = [], [], []
        units: dict[str, list[int]] = {}
        for i in science:
            h = hdul[i].header
            shape = image_shape(h)
            n_pix = shape[-1]
            n_ap = shape[-2] if len(shape) >= 2 else 1
            specs, wave_units = parse_multispec(path, h)
            factor = wavelength_factor(wave_units)
            if factor is None:
                raise BadFileError(path, f"WAT1 units={wave_units!r} of {describe(hdul, i)} is not a wavelength "
                                         "unit shardmerge recognises")
            parts.append((i, len(grids), n_ap))
            for row in range(1, n_ap + 1):
                if row not in specs:
                    raise BadFileError(path, f"aperture row {row} of {describe(hdul, i)} has no spec{row} in WAT2")
                grids.append(_dispersion(path, row, specs[row], n_pix) * factor)
            units.setdefault(str(h.get("BUNIT", "")).strip(), []).append(i)
            source_hdus.append(np.full(n_ap, i, dtype=np.int64))
            source_rows.append(np.arange(n_ap, dtype=np.int64))
        several = len(science) > 1
        return Layout(len(grids), grids, np.arange(len(grids), dtype=np.int64), one_unit(path, units),
                      tuple(science), first, state={"parts": parts},
                      source_hdus=np.concatenate(source_hdus) if several else None,
                      source_rows=np.concatenate(source_rows) if several else None)

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        parts = layout.state.get("parts") or self.layout(path, hdul).state["parts"]
        width = max(layout.n_pix(r) for r in range(first, first + count))
        flux = np.full((count, width), np.nan, dtype=np.float32)
        unc = np.full((count, width), np.nan, dtype=np.float32)
        for i, start, n_ap in parts:
            lo, hi = max(first, start), min(first + count, start + n_ap)
            if lo >= hi:
                continue
            rows, out = slice(lo - start, hi - start), slice(lo - first, hi - first)
            f, u = _image_rows(hdul[i], rows)
            flux[out, : f.shape[1]] = f
            unc[out, : u.shape[1]] = u
        for k in range(count):  # nw < NAXIS1: pixels past nw are not part of that aperture
            w = layout.n_pix(first + k)
            flux[k, w:] = np.nan
            unc[k, w:] = np.nan
        return SpectraBlock(flux=flux, uncertainty=unc)


def _is_multispec(hdu: object) -> bool:
    h = hdu.header
    return is_image(hdu) and str(h.get("CTYPE1", "")).strip().upper() == "MULTISPE" and h.get("NAXIS", 0) >= 1


def _image_rows(hdu: object, rows: slice) -> tuple[np.ndarray, np.ndarray]:
    """(flux, 1-sigma) of aperture rows `rows` of a multispec image: band 1, and the band whose BANDID says
    sigma/error/uncertainty (all NaN when none does)."""
    h = hdu.header
    data = np.asarray(hdu.data)
    if data.ndim == 1:
        data = data[np.newaxis, np.newaxis, :]
    elif data.ndim == 2:
        data = data[np.newaxis, :, :]
    flux = as_float32(data[0, rows])
    sigma_band = None
    for b in range(2, data.shape[0] + 1):
        band = str(h.get(f"BANDID{b}", "")).lower()
        if any(w in band for w in ("sigma", "error", "uncertainty")):
            sigma_band = b
            break
    unc = to_sigma(data[sigma_band - 1, rows], "sigma") if sigma_band else np.full_like(flux, np.nan)
    return flux, unc


def _dispersion(path: str, row: int, spec: list[float], n_pix: int) -> np.ndarray:
    if len(spec) < 7:
        raise BadFileError(path, f"spec{row} has {len(spec)} values; needs ap beam dtype w1 dw nw z")
    dtype, w1, dw, nw, z = int(spec[2]), spec[3], spec[4], int(spec[5]), spec[6]
    if dtype == 2:
        raise BadFileError(path, f"spec{row} has a non-linear dispersion (dtype 2: Chebyshev/Legendre/spline "
                                 "function); shardmerge reads linear (0) and log-linear (1) only; resample "
                                 "the file or describe it with --format mapping")
    if dtype not in (0, 1, -1):
        raise BadFileError(path, f"spec{row} has dispersion type {dtype}; only 0 and 1 are read")
    if not 0 < nw <= n_pix:
        raise BadFileError(path, f"spec{row} claims {nw} pixels, the image rows have {n_pix}")
    axis = w1 + dw * np.arange(nw, dtype=np.float64)
    wave = exp10(axis) if dtype == 1 else axis
    return wave / (1.0 + z)
