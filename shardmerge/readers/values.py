"""Turning a source's arrays into the store's: 1-sigma uncertainties from error, inverse variance or
variance; pixel masks as uint32; flux as float32, bit-exact."""

from __future__ import annotations

import numpy as np

from ..errors import BadFileError
from ..schema import MASK_MAX


def to_sigma(values: np.ndarray, kind: str) -> np.ndarray:
    """1-sigma uncertainty as float32 from an error, inverse-variance or variance array. What cannot be an
    uncertainty means "no information" and becomes NaN: a non-positive inverse variance, a negative variance
    or sigma (pipelines write -1 or -1e32 as sentinels)."""
    if kind == "sigma":
        out = np.asarray(values).astype(np.float32)
        if out.size and np.nanmin(out, initial=0.0) < 0:  # one pass in the usual case of no sentinel
            out[out < 0] = np.nan
        return out
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # in place: 1/sqrt over a plate is most of a read
        if kind == "ivar":
            out = np.sqrt(v)
            np.divide(1.0, out, out=out)
            out[~(v > 0)] = np.nan
        elif kind == "var":
            out = np.sqrt(v)
            out[~(v >= 0)] = np.nan
        else:
            raise ValueError(f"unknown uncertainty kind {kind!r}")
    return out.astype(np.float32)


def as_mask(path: str, values: np.ndarray) -> np.ndarray:
    """A source's integer pixel mask as uint32, refused (naming the file) when a value is negative or
    uses bit 31, which the store reserves for padding."""
    v = np.asarray(values)
    if v.dtype.kind not in "iub" and not (np.all(np.isfinite(v)) and np.array_equal(v, np.round(v))):
        raise BadFileError(path, f"pixel mask has non-integer values (dtype {v.dtype})")
    if v.size and (v.min() < 0 or v.max() > MASK_MAX):
        raise BadFileError(path, f"pixel mask values must lie in 0..2**31-1, found {v.min()}..{v.max()}")
    return v.astype(np.uint32)


def as_float32(values: np.ndarray) -> np.ndarray:
    """Native-endian float32; bit-exact for float32 sources."""
    return np.asarray(values).astype(np.float32, copy=False)


_SCALING_CARDS = ("BSCALE", "BZERO")


def numeric_scaling(path: str, hdul: object, oddities: object | None = None) -> None:
    """Make string-valued BSCALE/BZERO (`'1'`, `'32768'`: written by some archive tools) the numbers they
    spell, so an image's values are scaled as with numeric cards (the unsigned-integer convention included);
    said as a `string-scaling` oddity. A string that spells no number is refused, naming the card: astropy
    would fail with a bare numpy UFuncTypeError when the data is read. Only astropy's image HDUs carry these
    cards (the fast path leaves scaled images to astropy)."""
    from astropy.io.fits.hdu.image import _ImageBaseHDU

    from .oddities import STRING_SCALING

    for i, hdu in enumerate(hdul):
        if not isinstance(hdu, _ImageBaseHDU):
            continue
        for key in _SCALING_CARDS:
            value = hdu.header.get(key)
            if not isinstance(value, str):
                continue
            number = _number(value)
            if number is None:
                raise BadFileError(path, f"HDU {i}: {key} = {value!r} is a string that spells no number: the image's "
                                         f"values cannot be scaled (FITS wants {key} a number)")
            # astropy took the card as it was when it built the HDU: its scaling attributes, not the header
            # (the header stays as the source wrote it, for the projected headers)
            if key == "BSCALE":
                hdu._bscale = hdu._orig_bscale = number
            else:
                hdu._bzero = hdu._orig_bzero = number
            if oddities is not None:
                oddities.add(STRING_SCALING, f"HDU {i}: {key} = {value!r} is a string: read as the number {number!r}")


def _number(text: str) -> int | float | None:
    """The int or float a FITS string value spells (`'32768'`, `' 1.0 '`, `'1D0'`), or None."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text.replace("D", "E").replace("d", "e"))
    except ValueError:
        return None
    return number if np.isfinite(number) else None
