"""The registry of readers, one module per FITS layout, behind the interface in `base`. Detection tries
them by ascending priority (Reader.priority), most specific first."""

from __future__ import annotations

from astropy.io import fits

from ..errors import InputError, UnknownFormatError
from .apogee import ApStarReader, ApVisitReader, AspcapStarReader
from .base import Layout, Reader, SpectraBlock
from .desi import DesiReader
from .eso_sdp import EsoSdpReader
from .espresso_s1d import EspressoS1DReader
from .euclid_sir import EuclidSirReader
from .fitsio import open_fits
from .harps_e2ds import HarpsE2dsReader
from .image2d import Image2DReader
from .image_arrays import ImageArraysReader
from .iraf_equispec import IrafEquispecReader
from .iraf_multispec import IrafMultispecReader
from .lamost import LamostReader
from .mapping import mapping_reader
from .sdss_coadd import SdssCoaddReader
from .sdss_plate import SdssPlateReader, SdssSpSpecReader
from .spextool import SpextoolReader
from .table1d import Table1DReader
from .wcs1d import WcsImage1DReader


def _registry(*readers: Reader) -> tuple[Reader, ...]:
    """The readers in detection order (ascending Reader.priority); names and priorities must be unique."""
    for attr in ("name", "priority"):
        seen: dict[object, str] = {}
        for r in readers:
            key = getattr(r, attr)
            if key in seen:
                raise RuntimeError(f"readers {seen[key]} and {type(r).__name__} share the {attr} {key!r}")
            seen[key] = type(r).__name__
    return tuple(sorted(readers, key=lambda r: r.priority))


READERS: tuple[Reader, ...] = _registry(
    EsoSdpReader(), EspressoS1DReader(), DesiReader(), ApStarReader(), ApVisitReader(), AspcapStarReader(),
    LamostReader(), SdssPlateReader(), SdssSpSpecReader(), SdssCoaddReader(), HarpsE2dsReader(), SpextoolReader(),
    EuclidSirReader(), Table1DReader(),
    ImageArraysReader(), IrafMultispecReader(), IrafEquispecReader(), Image2DReader(), WcsImage1DReader(),
)
_BY_NAME = {r.name: r for r in READERS}

__all__ = ["READERS", "Layout", "Reader", "SpectraBlock", "detect", "get_reader", "open_fits", "reader_names"]


def reader_names() -> list[str]:
    """Names for --format: every built-in reader, and `mapping` (with --mapping FILE)."""
    return sorted([*_BY_NAME, "mapping"])


def get_reader(name: str, mapping: tuple[str, str] = ()) -> Reader:
    """The reader of a format name; `mapping` is the (path, hash) of the mapping file for "mapping"."""
    if name == "mapping":
        if not mapping:
            raise InputError("--format mapping needs --mapping FILE")
        return mapping_reader(*mapping)
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InputError(f"--format {name!r} is not a known format; known: {', '.join(reader_names())}") from None


def detect(path: str, hdul: fits.HDUList) -> Reader:
    for reader in READERS:
        if reader.identify(hdul):
            return reader
    from .survey import refusal  # only a refused file pays for the analysis

    raise UnknownFormatError(path, refusal(path, hdul) + f"\n  Known formats: {', '.join(reader_names())}")
