"""Readers, one module per FITS layout, behind the interface in `base`. Detection tries them in order,
most specific first."""

from __future__ import annotations

from astropy.io import fits

from ..errors import InputError, UnknownFormatError
from .base import Layout, Reader, SpectraBlock, open_fits
from .image2d import Image2DReader
from .sdss_coadd import SdssCoaddReader
from .wcs1d import WcsImage1DReader

READERS: tuple[Reader, ...] = (SdssCoaddReader(), Image2DReader(), WcsImage1DReader())
_BY_NAME = {r.name: r for r in READERS}

__all__ = ["READERS", "Layout", "Reader", "SpectraBlock", "detect", "get_reader", "open_fits", "reader_names"]


def reader_names() -> list[str]:
    return sorted(_BY_NAME)


def get_reader(name: str) -> Reader:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InputError(f"--format {name!r} is not a known format; known: {', '.join(reader_names())}") from None


def detect(path: str, hdul: fits.HDUList) -> Reader:
    for reader in READERS:
        if reader.identify(hdul):
            return reader
    summary = ", ".join(
        f"{i}:{type(h).__name__}({str(h.header.get('EXTNAME', '')).strip() or '-'})" for i, h in enumerate(hdul)
    )
    raise UnknownFormatError(
        path, f"no reader recognises this layout (HDUs {summary}); known formats: {', '.join(reader_names())}"
    )
