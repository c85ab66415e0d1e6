"""Stage 1: learn, from headers, what each input file holds (`discover` finds the files).

`scan_files` is the Dask task (tasks.scan_batch): it takes paths and one ScanJob and returns, per file, either
a FileScan or the reason the file is bad (so --on-bad-file skip can list it and go on), as one columnar ScanBatch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .config import MAX_PIXELS, MAX_TABLE_BYTES, FormatChoice
from .errors import BadFileError
from .filescan import BadFile, FileScan
from .filetable import ScanBatch, is_utf8_path, printable_path, stat_id
from .headers import HeaderRules
from .jobs import ScanJob
from .readers import detect, get_reader, open_fits
from .readers.base import Layout, check_grid
from .readers.fitsio import data_summary, hdu_label
from .readers.oddities import UNKNOWN_UNIT, UNREAD_EXTENSION, Oddities, parse_unread, unread_note
from .units import normalise_flux_unit


def scan_file(path: str, choice: FormatChoice | None, rules: HeaderRules,
              strict: frozenset[str] = frozenset(), exact_grids: bool = False) -> FileScan:
    """Format, counts, grids and header keys, from the header blocks alone (plus a data unit a reader needs
    to learn the grid: a WAVELENGTH image, a table's wavelength column unless the reader can describe it
    from headers: `Reader.scan_layout`; `exact_grids` reads it all the same); a gzip'd file is inflated
    as a stream (`inflate.GzipSource`). A header announcing a spectrum longer than `choice.max_pixels` is
    refused before anything is allocated. The data units are read, and their CHECKSUM/DATASUM verified,
    once, by the shard task that stores them (`open_verified`); here, a file must hold every byte its
    headers announce. What was odd but accepted is in the scan's `notes`; `strict` names the kinds of
    oddity to refuse instead."""
    if not is_utf8_path(path):  # the store, the file table and the report hold paths as UTF-8 text
        raise BadFileError(printable_path(path), "the file name is not valid UTF-8 (its bytes are shown as \\xNN); "
                           "rename it to ingest it: the store records every source path as UTF-8 text")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise BadFileError(path, f"cannot stat ({exc.strerror})") from exc
    if st.st_size == 0:
        raise BadFileError(path, "file is empty")
    oddities = Oddities(path, strict)
    max_pixels = choice.max_pixels if choice else MAX_PIXELS  # before the reader allocates a grid
    max_table_bytes = choice.max_table_bytes if choice else MAX_TABLE_BYTES  # before astropy reads a table whole
    with open_fits(path, oddities=oddities, headers_only=True, max_pixels=max_pixels,
                   max_table_bytes=max_table_bytes) as hdul:
        chosen = choice.name if choice else None
        reader = get_reader(chosen, choice.mapping) if chosen else detect(path, hdul)
        if chosen and not reader.identify(hdul):
            expected = f" ({reader.description})" if reader.description else ""
            raise BadFileError(path, f"does not have the layout of --format {chosen}{expected}")
        layout = reader.layout(path, hdul) if exact_grids else reader.scan_layout(path, hdul)
        flux_unit, n_pix, used = _checked_layout(path, hdul, layout, oddities)
        header_keys = tuple(sorted(reader.projected_headers(hdul, layout, rules)))
        scan = FileScan(
            path=path,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            stat_id=stat_id(st),
            format=reader.name,
            n_spectra=layout.n_spectra,
            n_pix_max=max(n_pix[g] for g in used),
            n_pix_min=min(n_pix[g] for g in used),
            grid_keys=tuple(sorted({layout.grid_key(g) for g in used})),
            flux_unit=flux_unit,
            flux_unit_source=layout.flux_unit,
            header_keys=header_keys,
            param_keys=layout.param_keys,
            mask_convention=layout.mask_convention,
            metadata_keys=layout.metadata_keys,
            join_key=layout.join_key,
            companion=layout.companion,
            dropped=layout.dropped,
            provides=tuple(sorted(layout.provides)),
        )
    return replace(scan, notes=tuple(oddities.notes)) if oddities.notes else scan  # warnings: known on close


def _checked_layout(path: str, hdul: object, layout: Layout, oddities: Oddities) -> tuple[str, list[int], list[int]]:
    """The layout's notes, an unknown flux unit and unread HDUs recorded as oddities; a file with no spectra,
    or a spectrum with no pixels, or (where the grids are read) a bad grid refused. Returns the normalised
    flux unit, each grid's pixels and the grids the spectra use."""
    for kind, text in layout.notes:
        oddities.add(kind, text)
    flux_unit, unit_oddity = normalise_flux_unit(layout.flux_unit)
    if unit_oddity:
        oddities.add(UNKNOWN_UNIT, unit_oddity)
    for text in unread_hdus(hdul, layout):
        oddities.add(UNREAD_EXTENSION, text)
    if layout.n_spectra <= 0:
        raise BadFileError(path, "holds no spectra")
    n_pix = [int(g.shape[0]) for g in layout.grids]
    if min(n_pix) <= 0:
        raise BadFileError(path, "a spectrum has no pixels")
    if not layout.grid_hints:  # else the grids are placeholders: the shard task checks the real ones
        for g in layout.grids:
            check_grid(path, g)
    return flux_unit, n_pix, sorted({int(x) for x in np.unique(layout.grid_of)})


def unread_hdus(hdul: object, layout: Layout) -> list[str]:
    """The `unread-extension` texts of the HDUs with data (an image with pixels, a table with rows) that the
    reader neither read (`Layout.consumed`: the spectra's HDUs, those read beside them, those it documents
    as not stored) nor already said it leaves unread (its own notes): data a file holds is never dropped
    without a word in the run report, and `--strict unread-extension` refuses such a file."""
    said = {e["hdu"] for kind, text in layout.notes if kind == UNREAD_EXTENSION and (e := parse_unread(text))}
    consumed = layout.consumed()
    out = []
    for i, hdu in enumerate(hdul):
        if i in consumed or i in said or not (what := data_summary(hdu.header)):
            continue
        extname, extver = hdu_label(hdu)
        out.append(unread_note(i, extname, extver, what, "holds data no reader of this layout reads: not stored "
                               "(to store it, describe the file with --format mapping)"))
    return out


def scan_files(paths: Sequence[str], job: ScanJob) -> ScanBatch:
    """Dask task (tasks.scan_batch): scan many files in one task (per-task overhead dwarfs one small file's
    parse), each by the one job description of the pass. The results come back as one columnar ScanBatch,
    a FileScan or the reason it is bad per path, in their order: what the driver folds by the column."""
    out = ScanBatch()
    for path in paths:
        try:
            out.add(scan_file(path, job.choice, job.rules, job.strict, job.exact_grids))
        except BadFileError as exc:
            out.add(BadFile(exc.path, exc.reason))
    return out
