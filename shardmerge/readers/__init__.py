"""Readers, one module per FITS layout, behind the interface in `base`, registered in `registry`.

The registry (and astropy with it) is imported on first use of one of its names, not with this package:
the driver of a cluster run uses `readers.oddities` and never opens a FITS file itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .registry import READERS, Layout, Reader, SpectraBlock, detect, get_reader, open_fits, reader_names

__all__ = ["READERS", "Layout", "Reader", "SpectraBlock", "detect", "get_reader", "open_fits", "reader_names"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from . import registry

        value = getattr(registry, name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
