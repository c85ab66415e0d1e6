"""Every science image of a file, and the extensions that go with each: what the image readers share so
that a file of repeated exposures (EXTNAME `SCI`, EXTVER 1..n, each with its `ERR` and `DQ` of the same
EXTVER, as HST and JWST calibrated products carry them) stores every exposure, never only the first.

The science images are the first image a reader recognises and every later image of the same non-empty
EXTNAME (`same_kind`): an image of that name the reader cannot read refuses the file, naming it, rather than
being left behind. With several science images, an uncertainty or mask extension belongs to the image of its
EXTVER (`pair_extensions`); a file where that pairing fails (an `ERR` for one exposure only, two `ERR`s of
one EXTVER, science images sharing an EXTVER) is refused, naming what could not be paired. One science image
pairs as it always did: the first uncertainty extension of its shape, and the mask of its EXTVER."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from .fitsio import data_summary, hdu_label, image_shape, is_image
from .wcs import find_uncertainty_hdu, uncertainty_kind

# integer image extensions that are a pixel mask of the science image of their EXTVER (HST/JWST `DQ`, ESO and
# hand-made `MASK`, `QUALITY`): stored as mask_raw, their bits as the source has them
MASK_EXTNAMES = ("DQ", "MASK", "QUALITY", "QUAL", "FLAGS", "BPM", "BADPIX")


@dataclass(frozen=True)
class ScienceImage:
    """One science image, the (HDU, kind) of its uncertainty and the HDU of its mask (None: none)."""

    hdu: int
    uncertainty: tuple[int, str] | None = None
    mask: int | None = None

    @property
    def companions(self) -> tuple[int, ...]:
        """The HDUs read beside the science image (Layout.aux_hdus)."""
        return (*([self.uncertainty[0]] if self.uncertainty else []), *([self.mask] if self.mask is not None else []))


def describe(hdul: fits.HDUList, i: int) -> str:
    """'HDU 3 (SCI, EXTVER 2)': an HDU as a refusal names it."""
    name, ver = hdu_label(hdul[i])
    return f"HDU {i} ({name or 'no EXTNAME'}, EXTVER {ver})"


def same_kind(path: str, hdul: fits.HDUList, first: int, readable: Callable[[object], bool], what: str) -> list[int]:
    """`first` and every later image HDU of its EXTNAME (case-insensitive; an image without EXTNAME has no
    kind and is alone). Such an image with data that `readable` rejects refuses the file: it is a science
    image of the file's kind that this reader cannot read (`what`: what `readable` asks for, for the text)."""
    kind = hdu_label(hdul[first])[0].upper()
    if not kind:
        return [first]
    out = [first]
    for i in range(first + 1, len(hdul)):
        hdu = hdul[i]
        if not is_image(hdu) or hdu_label(hdu)[0].upper() != kind:
            continue
        if readable(hdu):
            out.append(i)
        elif data_summary(hdu.header):
            raise BadFileError(path, f"{describe(hdul, i)} is a {kind} image like {describe(hdul, first)} but not "
                                     f"{what} ({data_summary(hdu.header)}): its spectra would not be stored; split "
                                     f"the file, or describe it with --format mapping ([flux] hdu = {first})")
    return out


def pair_extensions(path: str, hdul: fits.HDUList, science: list[int]) -> list[ScienceImage]:
    """Each science image with its uncertainty and mask extensions (of its shape; by EXTVER when there are
    several science images), or the file refused naming what could not be paired."""
    if len(science) == 1:
        i = science[0]
        shape = image_shape(hdul[i].header)
        masks = _masks(hdul, shape, hdu_label(hdul[i])[1])
        return [ScienceImage(i, find_uncertainty_hdu(hdul, shape), masks[0] if len(masks) == 1 else None)]
    versions = [hdu_label(hdul[i])[1] for i in science]
    uncertainties = {j: k for j in range(1, len(hdul)) if is_image(hdul[j]) and (k := uncertainty_kind(hdul[j]))}
    masks_any = [j for j in range(1, len(hdul)) if _is_mask(hdul[j])]
    if len(set(versions)) < len(versions) and (uncertainties or masks_any):
        twice = sorted({v for v in versions if versions.count(v) > 1})
        raise BadFileError(path, f"its {len(science)} science images ({', '.join(describe(hdul, i) for i in science)}) "
                                 f"share EXTVER {', '.join(map(str, twice))}, so their uncertainty and mask extensions "
                                 "cannot be paired with them by EXTVER: give each exposure its own EXTVER, or split "
                                 "the file")
    out = []
    for i, ver in zip(science, versions, strict=True):
        shape = image_shape(hdul[i].header)
        unc = [j for j, _ in uncertainties.items() if hdu_label(hdul[j])[1] == ver and
               image_shape(hdul[j].header) == shape]
        masks = _masks(hdul, shape, ver)
        for what, found in (("uncertainty", unc), ("mask", masks)):
            if len(found) > 1:
                raise BadFileError(path, f"{describe(hdul, i)} has {len(found)} {what} extensions of its EXTVER and "
                                         f"shape ({', '.join(describe(hdul, j) for j in found)}): which one is its "
                                         f"{what} is ambiguous; describe the file with --format mapping")
        out.append(ScienceImage(i, (unc[0], uncertainties[unc[0]]) if unc else None, masks[0] if masks else None))
    for what, has in (("uncertainty", [s.uncertainty is not None for s in out]), ("mask", [s.mask is not None
                                                                                          for s in out])):
        if any(has) and not all(has):
            lacking = ", ".join(describe(hdul, s.hdu) for s, h in zip(out, has, strict=True) if not h)
            raise BadFileError(path, f"{sum(has)} of its {len(out)} science images have an {what} extension of their "
                                     f"EXTVER and shape, {lacking} not: one file's spectra are stored alike, so "
                                     f"its {what} cannot be paired; split the file, or describe it with --format "
                                     "mapping")
    return out


def _is_mask(hdu: object) -> bool:
    return (is_image(hdu) and hdu_label(hdu)[0].upper() in MASK_EXTNAMES
            and int(hdu.header.get("BITPIX", 0)) > 0)  # integers only: a float QUALITY is no bit mask


def _masks(hdul: fits.HDUList, shape: tuple[int, ...], ver: int) -> list[int]:
    return [j for j in range(1, len(hdul)) if _is_mask(hdul[j]) and hdu_label(hdul[j])[1] == ver
            and image_shape(hdul[j].header) == shape]


def mask_convention(hdul: fits.HDUList, images: list[ScienceImage], path: str) -> str:
    """'DQ extension' when the science images have masks (all of one EXTNAME), "" when none has."""
    names = sorted({hdu_label(hdul[s.mask])[0].upper() for s in images if s.mask is not None})
    if len(names) > 1:
        raise BadFileError(path, f"its science images' masks are extensions of different names ({', '.join(names)}): "
                                 "one file's spectra share one mask convention")
    return f"{names[0]} extension" if names else ""


def one_unit(path: str, units: dict[str, list[int]]) -> str:
    """The flux unit the science images share ({unit: their HDUs}), else the file refused naming them."""
    if len(units) > 1:
        said = "; ".join(f"{u or '(none)'!r} in HDU {', '.join(map(str, hdus))}" for u, hdus in units.items())
        raise BadFileError(path, f"its {sum(map(len, units.values()))} science images give their flux in different "
                                 f"units ({said}): one file's spectra share one unit in the store; split the file, "
                                 "or describe one image with --format mapping ([flux] hdu = N)")
    return next(iter(units))


@dataclass
class ImageRows:
    """The rows of a file's science images as a Layout wants them, image by image: the distinct grids (an
    image whose wavelength equals an earlier one's shares its grid), each row's grid, HDU and row in its
    HDU, the flux units by HDU (for `one_unit`), and `parts`: (part, axis, first row, rows) per image."""

    grids: list[np.ndarray] = field(default_factory=list)
    grid_of: list[np.ndarray] = field(default_factory=list)
    source_hdus: list[np.ndarray] = field(default_factory=list)
    source_rows: list[np.ndarray] = field(default_factory=list)
    units: dict[str, list[int]] = field(default_factory=dict)
    parts: list[tuple] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    n_total: int = 0

    def add(self, hdul: fits.HDUList, i: int, part: object, axis: object, n_rows: int) -> None:
        """Image HDU `i`'s `n_rows` spectra on `axis` (wcs.SpectralAxis); `part` is what `read` needs of it."""
        header = hdul[i].header
        self.notes += [n for n in axis.notes if n not in self.notes]
        wave = axis.wavelength
        g = next((k for k, x in enumerate(self.grids) if x.shape == wave.shape and np.array_equal(x, wave)), None)
        if g is None:
            g = len(self.grids)
            self.grids.append(wave)
        self.grid_of.append(np.full(n_rows, g, dtype=np.int64))
        self.units.setdefault(str(header.get("BUNIT", hdul[0].header.get("BUNIT", ""))).strip(), []).append(i)
        self.source_hdus.append(np.full(n_rows, i, dtype=np.int64))
        self.source_rows.append(np.arange(n_rows, dtype=np.int64))
        self.parts.append((part, axis, self.n_total, n_rows))
        self.n_total += n_rows

    def provenance(self, several: bool) -> dict:
        """Layout's per-row source_hdus and source_rows, given only when the rows come from several HDUs."""
        if not several:
            return {"source_hdus": None, "source_rows": None}
        return {"source_hdus": np.concatenate(self.source_hdus), "source_rows": np.concatenate(self.source_rows)}

