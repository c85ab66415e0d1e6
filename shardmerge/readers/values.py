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
