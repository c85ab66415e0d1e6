"""What the scan learns about each input file: plain records, shared by the scan (which makes them), the file
table (which folds them into columns), the plan (which reads them) and the readers (GRID_HINT).

A module of its own, importing nothing of the package, so that none of those import each other for it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FileScan:
    """What the scan learned about one input file, from its headers (and, for tabular formats, the
    wavelength column). Everything the plan needs and nothing more."""

    path: str  # absolute
    size: int
    mtime_ns: int
    format: str
    n_spectra: int
    n_pix_max: int
    n_pix_min: int
    grid_keys: tuple[str, ...]  # distinct wavelength-grid fingerprints of the file's spectra
    flux_unit: str  # normalised (units.normalise_flux_unit): parses with astropy.units; "" = unknown
    header_keys: tuple[str, ...] = ()  # projected h{hdu}_{kw} names this file provides
    param_keys: tuple[str, ...] = ()
    mask_convention: str = ""  # non-empty: the file gives pixel masks, and whose bits they are (reader's words)
    metadata_keys: tuple[str, ...] = ()  # format-specific row-wise strings
    join_key: str = ""  # a companion attaches to the (non-companion) file with the same key
    companion: bool = False  # adds arrays to the rows of the file with the same join_key; no rows of its own
    dropped: int = 0  # spectra the reader left out because they carry no data (ivar 0 everywhere)
    notes: tuple[str, ...] = ()  # what was odd but accepted ("<kind>: <text>", see readers/oddities.py)
    provides: tuple[str, ...] = ()  # capabilities (schema.ARRAYS) the file provides, sorted
    stat_id: int = 0  # filetable.stat_id: its inode and ctime, what size and mtime do not tell
    flux_unit_source: str = ""  # the flux unit as the file spells it


@dataclass(frozen=True)
class BadFile:
    """A file the scan refused, and why (--on-bad-file skip lists it and goes on)."""

    path: str
    reason: str


GRID_HINT = "hdr:"  # a grid key a reader made from headers (Reader.scan_layout), not from the grid's values


def grid_keys_unsure(keys: Iterable[str]) -> bool:
    """Whether these keys leave open if the grids are one: equal header hints may be different grids."""
    return any(k.startswith(GRID_HINT) for k in keys)
