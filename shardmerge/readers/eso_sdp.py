"""ESO Phase 3 science data products (SDP), `PRODCATG = 'SCIENCE.SPECTRUM'`: HDU 1 is a binary table whose
array columns hold one spectrum per row (almost always one row). Columns are found by their IVOA
utype (TUTYPn), UCD (TUCDn) or name, as the ESO SDP standard lets products name them differently
(HARPS, X-shooter, UVES, MUSE, LEGA-C). `CONTNORM = T` means FLUX is continuum-normalized."""

from __future__ import annotations

import re

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..units import wavelength_factor
from .base import Layout, Reader, SpectraBlock
from .fitsio import hdu_label, is_table
from .oddities import UNREAD_EXTENSION, unread_note
from .values import as_float32, as_mask, to_sigma

# role → (utype endings, UCD prefixes, names), all compared case-insensitively
_ROLES = {
    "wave": (("spectralaxis.value",), ("em.wl",), ("WAVE", "WAVELENGTH", "LAMBDA")),
    "flux": (("fluxaxis.value",), ("phot.flux.density", "phot.flux"), ("FLUX", "FLUX_REDUCED")),
    "err": (("fluxaxis.accuracy.staterror",), ("stat.error",), ("ERR", "ERR_FLUX", "ERROR", "ERR_REDUCED")),
    "qual": (("fluxaxis.quality",), ("meta.code.qual",), ("QUAL", "QUALITY")),
    "continuum": ((), (), ("CONTINUUM", "CONT")),
}


def _is_sdp(hdul: fits.HDUList) -> bool:
    catg = str(hdul[0].header.get("PRODCATG", "")).strip().upper()
    return catg.startswith("SCIENCE.SPECTRUM") and len(hdul) > 1 and is_table(hdul[1])


def find_columns(hdu: fits.BinTableHDU) -> dict[str, int]:
    """role → 1-based column number. The utype wins over the UCD, which wins over the name."""
    h = hdu.header
    n = int(h.get("TFIELDS", 0))
    found: dict[str, int] = {}
    for role, (utypes, ucds, names) in _ROLES.items():
        for rule in ("utype", "ucd", "name"):
            for k in range(1, n + 1):
                # some products write the utype with commas ("FluxAxis,Accuracy,StatError")
                utype = str(h.get(f"TUTYP{k}", "")).strip().lower().replace(",", ".")
                ucd = str(h.get(f"TUCD{k}", "")).strip().lower()
                name = str(h.get(f"TTYPE{k}", "")).strip().upper()
                hit = ((rule == "utype" and utype and any(utype.endswith(u) for u in utypes))
                       or (rule == "ucd" and ucd and any(ucd.split(";")[0] == u for u in ucds)
                           and not (role == "flux" and "stat.error" in ucd))
                       or (rule == "name" and name in names))
                if hit and k not in found.values():
                    found[role] = k
                    break
            if role in found:
                break
    return found


class EsoSdpReader(Reader):
    name = "eso-sdp"
    priority = 10
    description = "ESO Phase 3 spectrum (PRODCATG SCIENCE.SPECTRUM): one-row table of WAVE/FLUX/ERR/QUAL arrays"

    def identify(self, hdul: fits.HDUList) -> bool:
        return _is_sdp(hdul) and {"wave", "flux"} <= set(find_columns(hdul[1]))

    def _columns(self, path: str, hdul: fits.HDUList) -> dict[str, int]:
        if not _is_sdp(hdul):
            raise BadFileError(path, "not an ESO SDP spectrum (PRODCATG SCIENCE.SPECTRUM with a table HDU 1)")
        cols = find_columns(hdul[1])
        for role in ("wave", "flux"):
            if role not in cols:
                raise BadFileError(path, f"HDU 1 has no {role} column (by TUTYP, TUCD or name)")
        return cols

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        cols = self._columns(path, hdul)
        h = hdul[1].header
        k = cols["wave"]
        unit = str(h.get(f"TUNIT{k}", "")).strip() or "Angstrom"  # the SDP standard's default
        factor = wavelength_factor(unit)
        if factor is None:
            raise BadFileError(path, f"wavelength column unit TUNIT{k} = {unit!r} is not one shardmerge recognises")
        wave = np.asarray(hdul[1].data.field(k - 1), dtype=np.float64) * factor
        if wave.ndim == 1:  # a single spectrum written as one value per row
            wave = wave[np.newaxis, :]
        grids, grid_of = _distinct_rows(wave)
        contnorm = bool(hdul[0].header.get("CONTNORM", False))
        flux_unit = "dimensionless (continuum-normalized)" if contnorm else str(
            h.get(f"TUNIT{cols['flux']}", "")).strip()
        return Layout(wave.shape[0], grids, grid_of, flux_unit, (1,), 1,
                      provides=frozenset({*(["continuum"] if "continuum" in cols else []),
                                          *(["normalized"] if contnorm else [])}),
                      mask_convention="ESO SDP QUAL" if "qual" in cols else "",
                      notes=_unread_columns(hdul[1], cols))

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        cols = self._columns(path, hdul)
        data = hdul[1].data

        def column(role: str) -> np.ndarray | None:
            if role not in cols:
                return None
            v = np.asarray(data.field(cols[role] - 1))
            return (v[np.newaxis, :] if v.ndim == 1 else v)[first : first + count]

        flux = as_float32(column("flux"))
        err = column("err")
        block = SpectraBlock(flux=flux, uncertainty=to_sigma(err, "sigma") if err is not None
                             else np.full_like(flux, np.nan))
        if (qual := column("qual")) is not None:
            block.mask = as_mask(path, qual)
        if (cont := column("continuum")) is not None:
            block.continuum = as_float32(cont)
            name = str(hdul[1].header.get(f"TTYPE{cols['continuum']}", "CONTINUUM")).strip()
            block.continuum_method = f"source: {name} column of the ESO SDP"
        if "normalized" in layout.provides:  # CONTNORM = T: FLUX is the normalized flux, and stays the raw flux too
            block.normalized_flux = flux
            block.normalized_uncertainty = block.uncertainty
        return block


_TFORM = re.compile(r"^\s*(\d*)\s*([A-Z])")


def _repeat(tform: str) -> int | None:
    """Values a row of a column of this TFORM holds; None for a variable-length (P, Q) column."""
    m = _TFORM.match(tform.upper())
    if m is None or m.group(2) in "PQ":
        return None
    return int(m.group(1) or 1)


def _unread_columns(hdu: fits.BinTableHDU, cols: dict[str, int]) -> tuple[tuple[str, str], ...]:
    """An `unread-extension` note naming the spectrum table's per-pixel columns (as many values a row as
    FLUX) that no role takes: X-shooter's telluric-corrected FLUX_TELL_CORR and its error beside FLUX. They
    are not stored, and the run report says so rather than drop them without a word."""
    h = hdu.header
    width = _repeat(str(h.get(f"TFORM{cols['flux']}", "")))
    used = set(cols.values())
    left = [str(h.get(f"TTYPE{k}", "")).strip() or f"column {k}" for k in range(1, int(h.get("TFIELDS", 0)) + 1)
            if k not in used and width is not None and _repeat(str(h.get(f"TFORM{k}", ""))) == width]
    if not left:
        return ()
    extname, extver = hdu_label(hdu)
    what = f"column{'s' if len(left) > 1 else ''} {', '.join(left)}, {width} values a row as FLUX"
    return ((UNREAD_EXTENSION, unread_note(1, extname, extver, what, "not read by this layout: not stored (to "
                                           "store one, describe the file with --format mapping)")),)


def _distinct_rows(wave: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    grids: list[np.ndarray] = []
    grid_of = np.zeros(wave.shape[0], dtype=np.int64)
    for i, row in enumerate(wave):
        for g, grid in enumerate(grids):
            if np.array_equal(grid, row):
                grid_of[i] = g
                break
        else:
            grids.append(np.array(row, dtype=np.float64))
            grid_of[i] = len(grids) - 1
    return grids, grid_of
