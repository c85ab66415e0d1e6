"""SDSS plate-era files with a log-linear grid in `COEFF0`/`COEFF1` (log10 Angstrom at pixel 0, per pixel).

- `spPlate`: primary image flux `[fibres × n_pix]`, HDU 1 inverse variance, HDU 2 and-mask, then a
  PLUGMAP table whose object holes (FIBERID ≥ 1, by fibre) give per-fibre RA, DEC and OBJTYPE.
- `spSpec` (DR7 and earlier): a primary image of rows flux, continuum-subtracted flux, 1-sigma error,
  mask (and sky); the continuum is flux minus the continuum-subtracted flux.

Not stored, by design (not "unread data" in the run report): spPlate's per-fibre images after the and-mask
(or-mask, wavelength dispersion, sky) and spSpec's tables (the pipeline's line and redshift fits).
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..exactmath import exp10  # 10**x: the same bits on every CPU
from .base import Layout, Reader, SpectraBlock
from .fitsio import image_shape, is_image, is_table
from .values import as_float32, as_mask, to_sigma


def _coeff_grid(path: str, h: fits.Header, n_pix: int) -> np.ndarray:
    if "COEFF0" not in h or "COEFF1" not in h:
        raise BadFileError(path, "no COEFF0/COEFF1 log-linear wavelength solution in the primary header")
    return exp10(float(h["COEFF0"]) + float(h["COEFF1"]) * np.arange(n_pix, dtype=np.float64))


def _plugmap(hdul: fits.HDUList) -> int | None:
    for i, hdu in enumerate(hdul):
        if not is_table(hdu):
            continue
        names = {c.upper() for c in hdu.columns.names}
        if str(hdu.header.get("EXTNAME", "")).strip().upper() == "PLUGMAP" or {"RA", "DEC", "FIBERID",
                                                                              "OBJTYPE"} <= names:
            return i
    return None


def _sdss_image(hdul: fits.HDUList) -> bool:
    h = hdul[0].header
    return is_image(hdul[0]) and h.get("NAXIS") == 2 and "COEFF0" in h and "COEFF1" in h \
        and "LAMOST" not in str(h.get("TELESCOP", "")).upper()


class SdssPlateReader(Reader):
    name = "sdss-spplate"
    priority = 31
    description = "SDSS spPlate: flux/ivar/and-mask images [fibres x pixels] + PLUGMAP (RA, DEC, OBJTYPE)"

    def identify(self, hdul: fits.HDUList) -> bool:
        return _sdss_image(hdul) and _plugmap(hdul) is not None and len(hdul) > 2

    def _fibres(self, path: str, hdul: fits.HDUList, n_rows: int) -> np.ndarray:
        """PLUGMAP row index of each image row: the object holes, in fibre order."""
        pm = hdul[_plugmap(hdul)].data
        names = {c.upper(): c for c in pm.columns.names}
        fiber = np.asarray(pm[names["FIBERID"]])
        keep = np.flatnonzero(fiber >= 1)
        if "HOLETYPE" in names:
            hole = np.char.strip(np.asarray(pm[names["HOLETYPE"]]).astype(str))
            keep = keep[hole[keep] == "OBJECT"]
        keep = keep[np.argsort(fiber[keep], kind="stable")]
        if keep.size != n_rows:
            raise BadFileError(path, f"PLUGMAP has {keep.size} object fibres, the flux image {n_rows} rows")
        return keep

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        n_rows, n_pix = image_shape(hdul[0].header)
        for k in (1, 2):
            if image_shape(hdul[k].header) != (n_rows, n_pix):
                raise BadFileError(path, f"HDU {k} has shape {image_shape(hdul[k].header)}, flux {(n_rows, n_pix)}")
        fibres = self._fibres(path, hdul, n_rows)  # checked here, reused by row_metadata
        return Layout(n_rows, [_coeff_grid(path, hdul[0].header, n_pix)], np.zeros(n_rows, dtype=np.int64),
                      str(hdul[0].header.get("BUNIT", "")).strip(), (0,), 0, mask_convention="SDSS and_mask",
                      metadata_keys=("objtype", "fiberid"), state={"fibres": fibres}, aux_hdus=(1, 2, _plugmap(hdul)),
                      ignored_hdus=tuple(k for k, x in enumerate(hdul) if k > 2 and is_image(x)
                                         and image_shape(x.header)[:1] == (n_rows,)))

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        rows = slice(first, first + count)
        return SpectraBlock(flux=as_float32(hdul[0].data[rows]), uncertainty=to_sigma(hdul[1].data[rows], "ivar"),
                            mask=as_mask(path, hdul[2].data[rows]))

    def row_metadata(self, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> list[dict]:
        rows = super().row_metadata(hdul, layout, first, count)
        pm = hdul[_plugmap(hdul)].data
        names = {c.upper(): c for c in pm.columns.names}
        fibres = layout.state["fibres"]
        for k, r in enumerate(rows):
            j = fibres[first + k]
            r["ra"], r["dec"] = float(pm[names["RA"]][j]), float(pm[names["DEC"]][j])
            r["objtype"] = str(pm[names["OBJTYPE"]][j]).strip()
            r["fiberid"] = str(int(pm[names["FIBERID"]][j]))
        return rows


class SdssSpSpecReader(Reader):
    name = "sdss-spspec"
    priority = 32
    description = "SDSS DR7 spSpec: primary image rows flux, continuum-subtracted flux, error, mask"

    def identify(self, hdul: fits.HDUList) -> bool:
        return _sdss_image(hdul) and image_shape(hdul[0].header)[0] in (4, 5) and _plugmap(hdul) is None \
            and "FIBERID" in hdul[0].header

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        n_pix = image_shape(hdul[0].header)[1]
        return Layout(1, [_coeff_grid(path, hdul[0].header, n_pix)], np.zeros(1, dtype=np.int64),
                      str(hdul[0].header.get("BUNIT", "")).strip() or "1E-17 erg/cm^2/s/Ang", (0,), 0,
                      provides=frozenset({"continuum"}), mask_convention="SDSS DR7 spSpec mask",
                      ignored_hdus=tuple(k for k, x in enumerate(hdul) if is_table(x)))

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        if (first, count) != (0, 1):
            raise BadFileError(path, f"holds one spectrum, asked for {count} from index {first}")
        d = np.asarray(hdul[0].data, dtype=np.float64)
        return SpectraBlock(flux=as_float32(d[0])[np.newaxis, :], uncertainty=to_sigma(d[2], "sigma")[np.newaxis, :],
                            continuum=as_float32(d[0] - d[1])[np.newaxis, :],
                            continuum_method="source: spSpec flux minus its continuum-subtracted row",
                            mask=as_mask(path, hdul[0].data[3])[np.newaxis, :])
