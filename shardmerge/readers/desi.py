"""DESI `coadd-*` and `spectra-*` files: a FIBERMAP table (one row per target, or per exposure in spectra
files), then for each arm B, R, Z the images `{arm}_WAVELENGTH [n_pix]`, `{arm}_FLUX`, `{arm}_IVAR` and
`{arm}_MASK [n_target × n_pix]`. The arms overlap in wavelength and are never stitched: each (target, arm)
is its own row, target by target, arms in B, R, Z order; `metadata/arm` says which. Scalar FIBERMAP
columns go to `metadata/fibermap_<column>` as text (TARGETID exceeds float64's exact integers).
A (target, arm) whose inverse variance is 0 at every pixel carries no data and is left out (counted in
the run report); `source_row` keeps the index target × n_arms + arm either way. A row's `source_hdu` is its
arm's `{arm}_FLUX` image and `metadata/source_hdu_row` its target's row there. Not stored, by design:
EXP_FIBERMAP, SCORES, REDSHIFTS and the `{arm}_RESOLUTION` matrices."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..units import wavelength_factor
from .base import Layout, Reader, SpectraBlock
from .values import as_float32, as_mask, to_sigma

ARMS = ("B", "R", "Z")
# HDUs of DESI files that hold no spectrum and are not stored: per-exposure fibre maps, redrock's scores
# and redshifts, and each arm's resolution matrix (`{arm}_RESOLUTION`, diagonals: no flux)
_IGNORED = ("EXP_FIBERMAP", "SCORES", "REDSHIFTS", "REDSHIFT", "ZCATALOG")
_IGNORED_SUFFIXES = ("_RESOLUTION",)


def _extensions(hdul: fits.HDUList) -> dict[str, int]:
    """EXTNAME → HDU index, in one pass over the headers (the first of a name wins)."""
    out: dict[str, int] = {}
    for i, hdu in enumerate(hdul):
        out.setdefault(str(hdu.header.get("EXTNAME", "")).strip().upper(), i)
    return out


def _arms(ext: dict[str, int]) -> list[str]:
    return [a for a in ARMS if f"{a}_FLUX" in ext and f"{a}_WAVELENGTH" in ext]


def _fibermap_columns(hdul: fits.HDUList, ext: dict[str, int]) -> list[str]:
    fm = hdul[ext["FIBERMAP"]]
    return [c.name for c in fm.columns if c.format.repeat == 1 or c.format.format == "A"]


class DesiReader(Reader):
    name = "desi"
    priority = 12
    description = "DESI coadd/spectra: FIBERMAP + B/R/Z arms; one row per (target, arm), arms not stitched"

    def identify(self, hdul: fits.HDUList) -> bool:
        ext = _extensions(hdul)
        return "FIBERMAP" in ext and bool(_arms(ext))

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        ext = _extensions(hdul)
        arms = _arms(ext)
        if "FIBERMAP" not in ext or not arms:
            raise BadFileError(path, "not a DESI file: needs FIBERMAP and at least one of B/R/Z_FLUX, _WAVELENGTH")
        grids = []
        n_target = None
        for a in arms:
            wh = hdul[ext[f"{a}_WAVELENGTH"]]
            unit = str(wh.header.get("BUNIT", "")).strip() or "Angstrom"
            factor = wavelength_factor(unit)
            if factor is None:
                raise BadFileError(path, f"{a}_WAVELENGTH unit {unit!r} is not one shardmerge recognises")
            grids.append(np.asarray(wh.data, dtype=np.float64) * factor)
            shape = hdul[ext[f"{a}_FLUX"]].shape
            if len(shape) != 2 or shape[1] != grids[-1].shape[0]:
                raise BadFileError(path, f"{a}_FLUX has shape {shape}, wavelength {grids[-1].shape[0]} pixels")
            if n_target is not None and shape[0] != n_target:
                raise BadFileError(path, f"{a}_FLUX has {shape[0]} rows, another arm {n_target}")
            n_target = shape[0]
        fm_rows = int(hdul[ext["FIBERMAP"]].header.get("NAXIS2", 0))
        if fm_rows != n_target:
            raise BadFileError(path, f"FIBERMAP has {fm_rows} rows, the flux images {n_target}")
        # (target, arm) pairs with inverse variance 0 at every pixel carry no data (unassigned or broken
        # fibres; their flux is 0 or meaningless): leave them out, keeping the source index of the rest
        alive = np.concatenate([[np.any(np.asarray(hdul[ext[f"{a}_IVAR"]].data[t]) > 0) for a in arms]
                                for t in range(n_target)]) if n_target else np.zeros(0, dtype=bool)
        kept = np.flatnonzero(alive)
        grid_of = np.tile(np.arange(len(arms), dtype=np.int64), n_target)[kept]
        has_mask = all(f"{a}_MASK" in ext for a in arms)
        unit = str(hdul[ext[f"{arms[0]}_FLUX"]].header.get("BUNIT", "")).strip()
        columns = _fibermap_columns(hdul, ext)
        keys = ("arm", *(f"fibermap_{c.lower()}" for c in columns))
        target, arm = np.divmod(kept, len(arms))
        flux_hdus = np.array([ext[f"{a}_FLUX"] for a in arms], dtype=np.int64)
        read = [ext[f"{a}_{kind}"] for a in arms for kind in ("WAVELENGTH", "IVAR", "MASK") if f"{a}_{kind}" in ext]
        ignored = [i for name, i in ext.items() if name in _IGNORED or name.endswith(_IGNORED_SUFFIXES)]
        return Layout(kept.size, grids, grid_of, unit, (ext[f"{arms[0]}_FLUX"],),
                      ext[f"{arms[0]}_FLUX"], mask_convention="DESI specmask" if has_mask else "",
                      metadata_keys=keys, source_index=kept, dropped=int(alive.size - kept.size),
                      state={"ext": ext, "arms": arms, "fibermap_columns": columns},
                      source_hdus=flux_hdus[arm], source_rows=target, aux_hdus=(ext["FIBERMAP"], *read),
                      ignored_hdus=tuple(ignored))

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        ext, arms = layout.state["ext"], layout.state["arms"]
        width = max(g.shape[0] for g in layout.grids)
        flux = np.full((count, width), np.nan, dtype=np.float32)
        unc = np.full((count, width), np.nan, dtype=np.float32)
        has_mask = bool(layout.mask_convention)
        mask = np.zeros((count, width), dtype=np.uint32) if has_mask else None
        cache: dict[str, np.ndarray] = {}

        def image(name: str) -> np.ndarray:
            if name not in cache:
                cache[name] = np.asarray(hdul[ext[name]].data)
            return cache[name]

        for k in range(count):
            target, a = divmod(int(layout.source_index[first + k]), len(arms))
            arm = arms[a]
            n = layout.grids[a].shape[0]
            flux[k, :n] = as_float32(image(f"{arm}_FLUX")[target])
            unc[k, :n] = to_sigma(image(f"{arm}_IVAR")[target], "ivar")
            if mask is not None:
                mask[k, :n] = as_mask(path, image(f"{arm}_MASK")[target])
        return SpectraBlock(flux=flux, uncertainty=unc, mask=mask)

    def row_metadata(self, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> list[dict]:
        base = super().row_metadata(hdul, layout, first, count)
        arms, names = layout.state["arms"], layout.state["fibermap_columns"]
        fm = hdul[layout.state["ext"]["FIBERMAP"]].data
        upper = {n.upper(): n for n in names}
        for k, row in enumerate(base):
            target, a = divmod(int(layout.source_index[first + k]), len(arms))
            row["arm"] = arms[a]
            for n in names:
                row[f"fibermap_{n.lower()}"] = _text(fm[n][target])
            if "TARGET_RA" in upper:
                row["ra"] = float(fm[upper["TARGET_RA"]][target])
                row["dec"] = float(fm[upper["TARGET_DEC"]][target])
            if "TARGETID" in upper:
                row["object"] = str(int(fm[upper["TARGETID"]][target]))
        return base


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip()
    if isinstance(value, np.integer):
        return str(int(value))
    if isinstance(value, np.floating):
        return repr(float(value))
    return str(value).strip()
