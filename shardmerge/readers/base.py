"""The one interface every FITS layout implements: what a file holds (`Layout`), the values of some of its
spectra (`SpectraBlock`), and the `Reader` that answers three questions about an open file: is this my
layout (`identify`, headers only), what does it hold (`layout`, headers and at most a wavelength column),
and what are the values of spectra [first, first + count) (`read`). Adding a layout means adding a module
and registering it (readers/registry.py), never touching the pipeline.

The helpers readers share live beside this by concern: `fitsio` (strict opening, gzip, checksums, HDU
structure), `values` (uncertainty kinds, masks, float32), `wcs` (wavelength axes, uncertainty extensions)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from astropy.io import fits

from ..errors import BadFileError
from ..filescan import GRID_HINT
from ..headers import HeaderRules, canonical_fields, project_header
from .fitsio import hdu_label


@dataclass
class Layout:
    """What one file holds. `grids` are the distinct wavelength grids (Angstrom, ascending as stored),
    `grid_of[i]` the grid of spectrum i."""

    n_spectra: int
    grids: list[np.ndarray]
    grid_of: np.ndarray  # (n_spectra,) int
    flux_unit: str
    hdus: tuple[int, ...]  # HDUs the spectra come from (their headers are projected, with the primary's)
    flux_hdu: int
    param_keys: tuple[str, ...] = ()
    mask_convention: str = ""  # non-empty when the file gives pixel masks: whose bits they are
    metadata_keys: tuple[str, ...] = ()  # format-specific row-wise strings (metadata/<key>)
    join_key: str = ""  # companion files (aspcapStar) attach to the file with this key
    companion: bool = False  # this file adds arrays to another file's rows and has no rows of its own
    companion_rows: tuple[int, ...] = ()  # rows of this file that a companion's spectra 0, 1, … belong to
    # a companion's (store array it fills in its host's rows, its own array read for it) beyond the arrays
    # the schema marks `companion`: an XIDL error file's flux is the uncertainty of its flux file
    companion_arrays: tuple[tuple[str, str], ...] = ()
    # when a reader leaves out spectra that carry no data at all (DESI: inverse variance 0 everywhere), the
    # source's own index of each spectrum kept (for spec_id and source_row), and how many it left out
    source_index: np.ndarray | None = None
    dropped: int = 0
    notes: tuple[tuple[str, str], ...] = ()  # (oddity kind, text): accepted, said in the report (oddities.py)
    # capabilities (schema.ARRAYS) this file provides: "continuum", "normalized", "mask" (implied by a
    # mask_convention), or any other row's, e.g. "sky"; a store holds an array when some input provides it
    provides: frozenset[str] = frozenset()
    # what the reader learned about this file while working out its layout (HDU indices, the catalogue HDU,
    # the fibre table), for its read() and row_metadata() of the same open file to reuse: per file, never
    # shipped between processes (a shard task works out the layout again)
    state: dict[str, Any] = field(default_factory=dict)
    # from `Reader.scan_layout` only: per grid, a fingerprint of what the headers say it is (GRID_HINT
    # prefix), when the grid itself is in a data unit the scan did not read; `grids` are then NaN
    # placeholders of the right lengths
    grid_hints: tuple[str, ...] = ()
    # a file whose spectra come from several HDUs (repeated exposures as EXTVER 1..n of one EXTNAME, the
    # tables of a LAMOST MRS file, DESI's arms): per spectrum, the HDU it comes from (`metadata/source_hdu`)
    # and its row within that HDU (`metadata/source_hdu_row`); None: every spectrum is flux_hdu's, and its
    # row there is its index in the file. Spanning several HDUs adds metadata/source_extname, _extver and
    # _hdu_row (SOURCE_KEYS), from each row's own HDU
    source_hdus: np.ndarray | None = None
    source_rows: np.ndarray | None = None
    # HDUs with data that the reader reads beside the spectra's own (an uncertainty, a mask, a wavelength
    # image, a catalogue row), and those it knows hold no spectrum and documents as not stored (calibration
    # and fit tables): neither is "unread data" to the scan (`unread_hdus`)
    aux_hdus: tuple[int, ...] = ()
    ignored_hdus: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.provides = frozenset(self.provides) | ({"mask"} if self.mask_convention else set())
        if self.source_hdus is not None:
            self.source_hdus = np.asarray(self.source_hdus, dtype=np.int64)
            self.source_rows = np.asarray(self.source_rows if self.source_rows is not None
                                          else np.zeros(self.n_spectra), dtype=np.int64)
            if self.source_hdus.shape != (self.n_spectra,) or self.source_rows.shape != (self.n_spectra,):
                raise ValueError(f"source_hdus/source_rows have shapes {self.source_hdus.shape}/"
                                 f"{self.source_rows.shape}, expected ({self.n_spectra},)")
            if self.spans_hdus:
                self.metadata_keys = (*self.metadata_keys, *(k for k in SOURCE_KEYS if k not in self.metadata_keys))

    @property
    def spans_hdus(self) -> bool:
        """Whether the spectra come from more than one HDU."""
        return self.source_hdus is not None and np.unique(self.source_hdus).size > 1

    def hdu_of(self, i: int) -> int:
        """The HDU spectrum i comes from."""
        return int(self.source_hdus[i]) if self.source_hdus is not None else self.flux_hdu

    def consumed(self) -> set[int]:
        """Every HDU the reader accounts for: the spectra's, those read beside them, those it ignores."""
        spectra = set() if self.source_hdus is None else {int(h) for h in np.unique(self.source_hdus)}
        return {*self.hdus, self.flux_hdu, *spectra, *self.aux_hdus, *self.ignored_hdus}

    def n_pix(self, i: int) -> int:
        return int(self.grids[int(self.grid_of[i])].shape[0])

    def grid_key(self, g: int) -> str:
        return self.grid_hints[g] if self.grid_hints else grid_fingerprint(self.grids[g])


@dataclass
class SpectraBlock:
    """Values of consecutive spectra of one file, each row padded with NaN to the block's width."""

    flux: np.ndarray  # (n, w) float32, the source's values
    uncertainty: np.ndarray  # (n, w) float32, 1-sigma; all-NaN when the source has none
    continuum: np.ndarray | None = None
    continuum_uncertainty: np.ndarray | None = None
    continuum_method: str = "none"
    normalized_flux: np.ndarray | None = None
    normalized_uncertainty: np.ndarray | None = None
    mask: np.ndarray | None = None  # (n, w) uint32, 0 = good; None when the source has no mask
    params: dict[str, np.ndarray] = field(default_factory=dict)
    # any other array of the store's table (schema.ARRAYS), by its name; its capability in Layout.provides
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray | None:
        """The values for the store array `name` (schema.ARRAYS), or None when the source has none."""
        attr = _BLOCK_FIELDS.get(name)
        return getattr(self, attr) if attr else self.arrays.get(name)

    def put(self, name: str, values: np.ndarray) -> None:
        attr = _BLOCK_FIELDS.get(name)
        if attr:
            setattr(self, attr, values)
        else:
            self.arrays[name] = values


# the store arrays every reader deals with have short fields of their own (flux=, uncertainty=, …)
_BLOCK_FIELDS = {"flux_raw": "flux", "uncertainty_raw": "uncertainty", "continuum_model": "continuum",
                 "continuum_uncertainty": "continuum_uncertainty", "normalized_flux": "normalized_flux",
                 "normalized_uncertainty": "normalized_uncertainty", "mask_raw": "mask"}


# metadata of a layout spanning several HDUs: each row's HDU's EXTNAME and EXTVER, and its row within that HDU
SOURCE_KEYS = ("source_extname", "source_extver", "source_hdu_row")


def grid_fingerprint(wavelength: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(wavelength, dtype="<f8").tobytes()).hexdigest()[:20]


def grid_hint(*described_by: object) -> str:
    """A grid key from the header values that describe a grid (e.g. COEFF0, COEFF1, the pixel count)."""
    return GRID_HINT + hashlib.sha256(repr(described_by).encode()).hexdigest()[:20]


def placeholder_grid(n_pix: int) -> np.ndarray:
    """A grid of `n_pix` NaN for a Layout with grid_hints: its length is all the scan uses."""
    return np.broadcast_to(np.float64(np.nan), (n_pix,))


def check_grid(path: str, grid: np.ndarray) -> None:
    """A wavelength grid must be finite and strictly increasing, else the file is refused (by the scan, or
    by the shard task when the scan learned the grid from headers)."""
    if not np.all(np.isfinite(grid)):
        raise BadFileError(path, "wavelength grid has non-finite values")
    steps = np.diff(grid)
    if steps.size and not np.all(steps > 0):
        k = int(np.flatnonzero(~(steps > 0))[0])
        raise BadFileError(path, f"wavelength grid is not strictly increasing: pixel {k} is {grid[k]:.6g} A, "
                                 f"pixel {k + 1} {grid[k + 1]:.6g} A (a misread or damaged axis: check its "
                                 "header, or describe the file with --format mapping)")


class Reader:
    """Base class of the per-format readers."""

    name: ClassVar[str]
    description: ClassVar[str]
    # detection tries readers by ascending priority: specific layouts (10-49) before generic tables (50-59)
    # before generic images (60-99), so a generic reader never claims an apStar, a spPlate or a JWST
    # product whose extracted 1-D table must win over its 2-D images; unique, checked by the registry
    priority: ClassVar[int] = 100

    def identify(self, hdul: fits.HDUList) -> bool:
        raise NotImplementedError

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        raise NotImplementedError

    def scan_layout(self, path: str, hdul: fits.HDUList) -> Layout:
        """What the scan plans with: `layout`, unless the reader can describe a grid that is a data unit from
        headers alone (then `Layout.grid_hints`), so the scan reads header blocks only and the shard task,
        which reads the data anyway, reads the grid and checks it."""
        return self.layout(path, hdul)

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        raise NotImplementedError

    # Shared by all formats: canonical fields from the primary header then the data HDU's.
    # A layout spanning several HDUs: each row's from the primary and its own HDU's header, and which HDU
    # (EXTNAME, EXTVER) and row of it the spectrum is.
    def row_metadata(self, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> list[dict]:
        if not layout.spans_hdus:
            row = canonical_fields(HeaderChain([hdul[i].header for i in (0, *layout.hdus)]))
            return [dict(row) for _ in range(count)]
        per_hdu: dict[int, dict] = {}
        out = []
        for i in range(first, first + count):
            h = layout.hdu_of(i)
            if h not in per_hdu:
                name, ver = hdu_label(hdul[h])
                per_hdu[h] = {**canonical_fields(HeaderChain([hdul[0].header, hdul[h].header])),
                              "source_extname": name, "source_extver": str(ver)}
            out.append({**per_hdu[h], "source_hdu_row": str(int(layout.source_rows[i]))})
        return out

    def projected_headers(self, hdul: fits.HDUList, layout: Layout, rules: HeaderRules) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in sorted({0, *layout.hdus}):
            # parsing a card's value costs far more than its keyword: parse only the cards kept
            cards = ((c.keyword, c.value) for c in hdul[i].header.cards if rules.keeps(c.keyword))
            out.update(project_header(cards, i, rules))
        return out


class HeaderChain(Mapping):
    """Keyword lookups over several headers, the first that has the keyword winning. Parses only the
    cards asked for (astropy parses a card's value lazily)."""

    def __init__(self, headers: list[fits.Header]):
        self.headers = headers

    def __getitem__(self, key: str) -> object:
        for h in self.headers:
            if key in h:
                return h[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for h in self.headers:
            for k in h:
                if k not in seen:
                    seen.add(k)
                    yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)
