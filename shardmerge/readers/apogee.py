"""SDSS APOGEE products.

- `apStar`: HDU 1-3 are flux, error and pixel bitmask `[rows × 8575]` on one log-linear grid
  (`CRVAL1`, `CDELT1` in log10 Angstrom). The first rows are combined spectra (two when there are
  visits to combine), the rest one per visit (`NVISITS`). Every row is a spectrum; `metadata/apogee_row`
  says which. A single-visit file's second row is an all-zero placeholder and is left out.
- `apVisit`: three chips × 4096 pixels in HDU 1-3 (flux, error, bitmask) with an explicit wavelength
  image in HDU 4, in descending order; stored as one spectrum of 12288 pixels in ascending order.
- `aspcapStar`: HDU 1 is the continuum-normalized spectrum, HDU 2 its error, on the apStar grid. It has
  no raw flux: it is a companion that gives `representations/normalized_*` to the combined row of the
  apStar of the same star (`APOGEE_ID`) among the inputs, and is refused alone.

Not stored, by design (not "unread data" in the run report): the HDUs after the bitmask of apStar (sky,
sky error, telluric, telluric error, LSF coefficients, the RV and visit tables) and apVisit (the same, and
the wavelength and LSF coefficients), and aspcapStar's best-fit model and ASPCAP table.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..exactmath import exp10  # 10**x: the same bits on every CPU
from .base import Layout, Reader, SpectraBlock
from .fitsio import image_shape, is_image, is_table
from .values import as_float32, as_mask, to_sigma

MASK_CONVENTION = "APOGEE PIXMASK"


def _unit(h: fits.Header) -> str:
    return str(h.get("BUNIT", "")).strip()


def _loglinear_grid(path: str, h: fits.Header, n_pix: int) -> np.ndarray:
    crval, cdelt = h.get("CRVAL1"), h.get("CDELT1")
    if crval is None or cdelt is None:
        raise BadFileError(path, "APOGEE spectrum HDU has no CRVAL1/CDELT1")
    crpix = float(h.get("CRPIX1", 1.0))
    return exp10(float(crval) + (np.arange(1, n_pix + 1, dtype=np.float64) - crpix) * float(cdelt))


def _apogee_id(hdul: fits.HDUList) -> str:
    h = hdul[0].header
    return str(h.get("APOGEE_ID", h.get("OBJID", ""))).strip()


class ApStarReader(Reader):
    name = "apogee-apstar"
    priority = 20
    description = "APOGEE apStar: flux/error/bitmask [combined + visit rows x 8575], log-linear"

    def identify(self, hdul: fits.HDUList) -> bool:
        if len(hdul) < 4 or "NVISITS" not in hdul[0].header:
            return False
        h = hdul[1].header
        return (is_image(hdul[1]) and h.get("NAXIS") == 2 and "LOG" in str(h.get("CTYPE1", "")).upper()
                and _unit(h).lower().startswith("flux"))

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        h = hdul[1].header
        n_rows, n_pix = image_shape(h)
        for k in (2, 3):
            if image_shape(hdul[k].header) != (n_rows, n_pix):
                raise BadFileError(path, f"HDU {k} has shape {image_shape(hdul[k].header)}, flux {(n_rows, n_pix)}")
        # a single-visit apStar keeps an all-zero placeholder row (flux and error 0): it holds no spectrum
        flux, err = np.asarray(hdul[1].data), np.asarray(hdul[2].data)
        kept = np.flatnonzero(np.any(flux != 0, axis=1) | np.any(err != 0, axis=1))
        return Layout(kept.size, [_loglinear_grid(path, h, n_pix)], np.zeros(kept.size, dtype=np.int64), _unit(h),
                      (1,), 1, mask_convention=MASK_CONVENTION, metadata_keys=("apogee_id", "apogee_row"),
                      join_key=_apogee_id(hdul), companion_rows=(0,) if kept.size and kept[0] == 0 else (),
                      source_index=kept, dropped=int(n_rows - kept.size), aux_hdus=(2, 3),
                      ignored_hdus=tuple(range(4, len(hdul))))

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        rows = layout.source_index[first : first + count]
        return SpectraBlock(flux=as_float32(hdul[1].data[rows]), uncertainty=to_sigma(hdul[2].data[rows], "sigma"),
                            mask=as_mask(path, hdul[3].data[rows]))

    def row_metadata(self, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> list[dict]:
        rows = super().row_metadata(hdul, layout, first, count)
        n_visits = int(hdul[0].header.get("NVISITS", 0))
        n_rows = image_shape(hdul[1].header)[0]
        n_combined = max(n_rows - n_visits, 1) if n_visits > 1 else 1  # 2 combined rows above 1 visit, else 1
        labels = ["combined" if k == 0 else f"combined-{k}" for k in range(n_combined)]
        labels += [f"visit-{k + 1}" for k in range(n_rows - n_combined)]
        for k, r in enumerate(rows):
            r["apogee_id"] = layout.join_key
            r["apogee_row"] = labels[int(layout.source_index[first + k])]
            r["object"] = r["object"] or layout.join_key
        return rows


class ApVisitReader(Reader):
    name = "apogee-apvisit"
    priority = 21
    description = "APOGEE apVisit: 3 chips x 4096 with a wavelength HDU (descending), stored ascending"

    def identify(self, hdul: fits.HDUList) -> bool:
        if len(hdul) < 5 or not all(is_image(hdul[k]) for k in range(1, 5)):
            return False
        shape = image_shape(hdul[1].header)
        return (len(shape) == 2 and image_shape(hdul[4].header) == shape
                and _unit(hdul[4].header).lower().startswith("wavelength")
                and _unit(hdul[1].header).lower().startswith("flux"))

    def _order(self, path: str, hdul: fits.HDUList) -> tuple[np.ndarray, np.ndarray]:
        wave = np.asarray(hdul[4].data, dtype=np.float64).ravel()
        if not np.all(np.isfinite(wave)):
            raise BadFileError(path, "wavelength HDU 4 has non-finite values")
        order = np.argsort(wave, kind="stable")
        if np.any(np.diff(wave[order]) <= 0):
            raise BadFileError(path, "wavelength HDU 4 repeats a value: the chips overlap")
        return wave[order], order

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        wave, _ = self._order(path, hdul)
        return Layout(1, [wave], np.zeros(1, dtype=np.int64), _unit(hdul[1].header), (1,), 1,
                      mask_convention=MASK_CONVENTION, metadata_keys=("apogee_id", "apogee_row"), aux_hdus=(2, 3, 4),
                      ignored_hdus=tuple(range(5, len(hdul))))

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        if (first, count) != (0, 1):
            raise BadFileError(path, f"holds one spectrum, asked for {count} from index {first}")
        _, order = self._order(path, hdul)

        def flat(k: int) -> np.ndarray:
            return np.asarray(hdul[k].data).ravel()[order][np.newaxis, :]

        return SpectraBlock(flux=as_float32(flat(1)), uncertainty=to_sigma(flat(2), "sigma"),
                            mask=as_mask(path, flat(3)))

    def row_metadata(self, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> list[dict]:
        rows = super().row_metadata(hdul, layout, first, count)
        rows[0]["apogee_id"] = _apogee_id(hdul)
        rows[0]["apogee_row"] = "visit"
        rows[0]["object"] = rows[0]["object"] or rows[0]["apogee_id"]
        return rows


class AspcapStarReader(Reader):
    name = "apogee-aspcapstar"
    priority = 22
    description = "APOGEE aspcapStar: normalized flux and error; joins the apStar of the same APOGEE_ID"

    def identify(self, hdul: fits.HDUList) -> bool:
        if len(hdul) < 3 or not (is_image(hdul[1]) and is_image(hdul[2])):
            return False
        h = hdul[1].header
        return (h.get("NAXIS") == 1 and "CRVAL1" in h and float(h.get("CRVAL1", 99)) < 5.0
                and bool(_apogee_id(hdul)) and "NVISITS" not in hdul[0].header
                and any(is_table(x) and "APOGEE_ID" in [c.upper() for c in x.columns.names]
                        for x in hdul[3:]))

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        (n_pix,) = image_shape(hdul[1].header)
        return Layout(1, [_loglinear_grid(path, hdul[1].header, n_pix)], np.zeros(1, dtype=np.int64),
                      "dimensionless (continuum-normalized)", (1,), 1, provides=frozenset({"normalized"}),
                      join_key=_apogee_id(hdul), companion=True, aux_hdus=(2,), ignored_hdus=tuple(range(3, len(hdul))))

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        norm = as_float32(hdul[1].data)[np.newaxis, :]
        return SpectraBlock(flux=np.full_like(norm, np.nan), uncertainty=np.full_like(norm, np.nan),
                            normalized_flux=norm, normalized_uncertainty=to_sigma(hdul[2].data, "sigma")[np.newaxis, :])
