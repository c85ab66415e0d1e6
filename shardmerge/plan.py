"""The planning pass: plain data in (what the scan learned per file), plain data out (the layout).

Pure by design, like rechunker's algorithm: no dask, zarr or astropy here, no I/O, so every mapping
between global rows, shards and chunks is unit-testable on its own."""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import accumulate, compress, repeat
from operator import sub

from .config import (
    DEFAULT_CHUNK_ROWS,
    HIGH_RES_CHUNK,
    HIGH_RES_NPIX,
    MAX_FLUX_CHUNK_BYTES,
    MAX_WRITE_BLOCK_BYTES,
    MIN_SHARDS,
    ROWWISE_CHUNK_FACTOR,
    ROWWISE_MAX_CHUNK_ROWS,
    SCHEMA_VERSION,
    TARGET_SHARD_BYTES,
    CodecConfig,
    LayoutRequest,
)
from .errors import OrphanCompanionsError, PlanError
from .filescan import FileScan, grid_keys_unsure
from .filetable import FileTable, runs
from .schema import REQUIRED_GROUPS, UNITS_LAYOUT, arrays_for, rowwise_arrays

FLUX_ITEMSIZE = 4  # float32


def needs_exact_grids(table: FileTable) -> bool:
    """Every input has one grid by its headers (equal hints): only the grids' values say whether the store's
    wavelength is one shared grid, so the scan must read them (`scan_file(exact_grids=True)`)."""
    keys = {k for p in table.profiles for k in p.grid_keys}
    return len(keys) == 1 and grid_keys_unsure(keys)


@dataclass(frozen=True, slots=True)
class Companion:
    path: str
    format: str
    size: int
    mtime_ns: int
    stat_id: int = 0


@dataclass(frozen=True, slots=True)
class FileSegment:
    """A run of consecutive spectra of one file, placed at global rows [row, row + count)."""

    path: str
    format: str
    first: int  # index of the first spectrum within the file
    count: int
    row: int
    size: int  # the file as scanned; the shard task refuses a file that changed since
    mtime_ns: int
    companions: tuple[Companion, ...] = ()
    file_spectra: int = 0  # the file's spectra in the plan (0: not known); more than count: the file is split
    stat_id: int = 0  # with size and mtime: the file as scanned (filetable.stat_id)

    @property
    def part_of_file(self) -> bool:
        return self.count < self.file_spectra

    def verifies_file(self, shard_rows: int) -> bool:
        """Of the segments a split file falls into (one per shard it spans), whether this one holds the most
        of its spectra (the first of equals). Where astropy reads the file, that one verifies its sums,
        reading it whole, while the others read only their own rows; where the fast path does, each sums
        its own part instead (readers/splitsums.py). Every segment works it out alike from the shard size."""
        start = self.row - self.first
        stop = start + self.file_spectra
        best, at = (start, start), start
        while at < stop:
            end = min(stop, (at // shard_rows + 1) * shard_rows)
            if end - at > best[1] - best[0]:
                best = (at, end)
            at = end
        return best[0] == self.row


@dataclass(frozen=True)
class ShardSpec:
    index: int
    row_start: int
    row_stop: int
    file_lo: int  # the files whose spectra fill it: rows [file_lo, file_hi) of the plan's PlacedFiles
    file_hi: int
    key: str = ""  # hash of the layout and of this shard's files (path, size, mtime, inode, ctime): its identity
    # only where the task cannot read the plan's file table (node-local scratch): the segments themselves
    segments: tuple[FileSegment, ...] = ()

    @property
    def n_rows(self) -> int:
        return self.row_stop - self.row_start

    @property
    def name(self) -> str:
        return f"shard-{self.index:06d}"

    @property
    def store_name(self) -> str:
        """Folder name in scratch. A rerun whose shard has the same key finds and reuses it; a changed
        input changes only the keys of the shards that read it."""
        return f"{self.name}-{self.key}.zarr"


@dataclass(frozen=True)
class StoreLayout:
    """The store's layout: what decides the published store's arrays, chunks, codecs and attributes,
    whichever shards write it (the merge creates the store from this alone)."""

    n_spec: int
    n_pix: int
    chunk_rows: int
    chunk_pix: int
    rowwise_chunk_rows: int
    wavelength_shared: bool  # one 1-D grid for every spectrum, else a 2-D wavelength array
    flux_units: tuple[str, ...]  # normalised, distinct, sorted; more than one: metadata/flux_unit is written
    header_keys: tuple[str, ...]
    param_keys: tuple[str, ...]
    mask_conventions: tuple[str, ...]  # distinct, sorted; empty: no input has a mask (no mask_raw array)
    metadata_keys: tuple[str, ...]  # format-specific row-wise strings, metadata/<key>
    common_root: str  # spec_id is the source path relative to this, plus the spectrum's index
    codec: CodecConfig
    zarr_format: int
    zarr_shard_rows: int = 0  # Zarr v3 sharding of the 2-D arrays: rows per storage file; 0 = one file per chunk
    provides: tuple[str, ...] = ()  # union of every input's capabilities (companions' too), sorted
    mapping: tuple[str, ...] = ()  # (path, content hash) of the --mapping file the "mapping" reader reads
    store_files: int = 0  # files the store will hold (at most: zarr skips chunks that hold only fill values)
    max_store_files: int = 0  # the budget the layout was chosen for
    flux_unit_sources: tuple[str, ...] = ()  # the sources' spellings, distinct, sorted (merge.flux_attrs)

    @property
    def write_rows(self) -> int:
        """Rows a shard task writes at once: a whole storage file (chunk, or Zarr shard) at a time."""
        return self.zarr_shard_rows or self.chunk_rows

    @property
    def zarr_shards_2d(self) -> tuple[int, int] | None:
        return (self.zarr_shard_rows, self.n_pix_chunks * self.chunk_pix) if self.zarr_shard_rows else None

    @property
    def chunks_2d(self) -> tuple[int, int]:
        return (self.chunk_rows, self.chunk_pix)

    @property
    def n_row_chunks(self) -> int:
        return -(-self.n_spec // self.chunk_rows)

    @property
    def n_pix_chunks(self) -> int:
        return -(-self.n_pix // self.chunk_pix)

    @property
    def has_mask(self) -> bool:
        return bool(self.mask_conventions)

    @property
    def capabilities(self) -> frozenset[str]:
        """What the inputs provide, which decides the store's 2-D arrays (schema.arrays_for)."""
        return frozenset(self.provides)

    @property
    def has_normalized(self) -> bool:
        return "normalized" in self.provides

    def estimated_bytes(self) -> int:
        """Uncompressed size of the arrays the merge will write."""
        per_row = sum(a.itemsize for a in arrays_for(self.capabilities))
        wave = self.n_pix * 8 if self.wavelength_shared else self.n_spec * self.n_pix * 8
        return self.n_spec * self.n_pix * per_row + wave


@dataclass(frozen=True)
class Plan:
    """The shard plan: the store's `layout`, and how its rows are cut into shards of the input files (with
    each shard's key and the plan's fingerprint). The layout's fields and properties read through the plan
    too (`plan.n_pix` is `plan.layout.n_pix`), so code that needs only the layout may take a StoreLayout."""

    layout: StoreLayout
    shard_rows: int
    files_per_format: tuple[tuple[str, int], ...]
    spectra_per_format: tuple[tuple[str, int], ...]
    shards: tuple[ShardSpec, ...]
    input_bytes: int
    fingerprint: str = field(default="")
    files: PlacedFiles | None = field(default=None, repr=False)  # the driver's; None in a task's context
    file_table: str = ""  # in a task's context: the file table on scratch its shard reads its files from
    wide_rows: WideRows | None = None  # set when a few files far longer than the rest set N_pix

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the user should know before ingesting this layout (`shardmerge plan` and the ingest say it)."""
        return (self.wide_rows.message(),) if self.wide_rows else ()

    def context(self, file_table: str) -> Plan:
        """The plan without its shard and file lists: what every shard task needs, small enough to ship to
        each. `file_table`: where the tasks read their files (shardstore.write_file_table)."""
        return replace(self, shards=(), files=None, file_table=file_table)

    def segments(self, shard: ShardSpec) -> tuple[FileSegment, ...]:
        """The runs of consecutive spectra, one per file, that fill the shard (driver side)."""
        if self.files is None:
            raise ValueError("a plan's context has no file list: read the shard's files from its file_table")
        return self.files.segments(shard)

    def shard_of_row(self, row: int) -> int:
        if not 0 <= row < self.layout.n_spec:
            raise IndexError(f"row {row} outside 0..{self.layout.n_spec - 1}")
        return row // self.shard_rows


def _read_through(name: str) -> property:
    return property(lambda plan: getattr(plan.layout, name), doc=f"`plan.layout.{name}`")


# the layout's fields, properties and methods, read through the plan (see Plan)
LAYOUT_NAMES = tuple(f.name for f in fields(StoreLayout)) + tuple(
    name for name, value in vars(StoreLayout).items()
    if not name.startswith("_") and (isinstance(value, property) or callable(value)))
for _name in LAYOUT_NAMES:
    setattr(Plan, _name, _read_through(_name))


# A few very long spectra set N_pix for every row. Warn when N_pix is more than WIDE_ROW_FACTOR times the
# length that TYPICAL_SHARE of the spectra fit in (their 99th percentile): then under 1% of the spectra make
# the 2-D arrays at least ~74% padding (0.99 x 3/4), so the store is ~4x the size its other spectra need,
# and leaving those few files out (or giving them a store of their own) costs the rest nothing. A padding
# share alone would also fire on two genuine populations (half short, half long), where no file is odd.
WIDE_ROW_FACTOR = 4
TYPICAL_SHARE = 0.99
WIDE_ROW_FILES_NAMED = 5


@dataclass(frozen=True)
class WideRows:
    """N_pix is set by a few files far longer than the rest: which, and what that costs."""

    n_pix: int
    typical: int  # TYPICAL_SHARE of the spectra are at most this long (their file's longest, an upper bound)
    n_spec: int
    files: tuple[tuple[str, int, int], ...]  # (path, longest spectrum, spectra) longest first, at most a few
    n_files: int  # files longer than `typical`, named or not
    n_spectra: int  # their spectra
    padding: float  # share of the 2-D arrays' cells that are padding, at least
    estimated_bytes: int  # uncompressed, as planned
    estimated_bytes_without: int  # uncompressed, without those files (N_pix = typical)

    def message(self) -> str:
        named = ", ".join(f"{path} ({n_pix} px{f', {n} spectra' if n > 1 else ''})" for path, n_pix, n in self.files)
        more = f" and {self.n_files - len(self.files)} more" if self.n_files > len(self.files) else ""
        return (f"wide rows: N_pix {self.n_pix} is set by {self.n_files} file(s) ({self.n_spectra} of "
                f"{self.n_spec} spectra) far longer than the rest: {named}{more}. {TYPICAL_SHARE:.0%} of the "
                f"spectra have at most {self.typical} px, so at least {self.padding:.0%} of every 2-D array is "
                f"NaN padding: {_size(self.estimated_bytes)} uncompressed, {_size(self.estimated_bytes_without)} "
                f"without those file(s). To proceed: ingest them into a store of their own (list the others in "
                f"an @LIST file), or leave them out with --max-pixels {self.typical} --on-bad-file skip; or go on, "
                f"if one width of {self.n_pix} for every row is what you want.")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _array_bytes(n_spec: int, n_pix: int, row_item_bytes: int, shared: bool) -> int:
    """Uncompressed bytes of the 2-D arrays (`row_item_bytes` per pixel of a row, all of them) and wavelength."""
    return n_spec * n_pix * row_item_bytes + (n_pix * 8 if shared else n_spec * n_pix * 8)


def wide_rows(table: FileTable, n_pix: int, row_item_bytes: int, shared: bool) -> WideRows | None:
    """Whether N_pix is set by few files far longer than the rest (see WIDE_ROW_FACTOR), from the files
    that make rows (`table`). One pass over two columns when it is not (the common case)."""
    n_spec = sum(table.n_spectra)
    needed = -(-n_spec * round(TYPICAL_SHARE * 100) // 100)  # spectra the typical length must cover
    short_max = (n_pix - 1) // WIDE_ROW_FACTOR  # n_pix > FACTOR x typical  <=>  typical <= short_max
    short = sum(compress(table.n_spectra, map(short_max.__ge__, table.n_pix_max)))  # spectra at most short_max long
    if n_spec == 0 or short < needed:
        return None
    lengths = Counter()
    for m, n in zip(table.n_pix_max, table.n_spectra, strict=True):
        lengths[m] += n
    covered, typical = 0, 0
    for length in sorted(lengths):
        covered += lengths[length]
        if covered >= needed:
            typical = length
            break
    long_rows = [i for i, m in enumerate(table.n_pix_max) if m > typical and table.n_spectra[i]]
    long_rows.sort(key=lambda i: (-table.n_pix_max[i], i))
    long_spectra = sum(table.n_spectra[i] for i in long_rows)
    used = sum(m * n for m, n in zip(table.n_pix_max, table.n_spectra, strict=True))
    return WideRows(
        n_pix=n_pix, typical=typical, n_spec=n_spec,
        files=tuple((table.path(i), table.n_pix_max[i], table.n_spectra[i]) for i in long_rows[:WIDE_ROW_FILES_NAMED]),
        n_files=len(long_rows), n_spectra=long_spectra, padding=1 - used / (n_spec * n_pix),
        estimated_bytes=_array_bytes(n_spec, n_pix, row_item_bytes, shared),
        estimated_bytes_without=_array_bytes(n_spec - long_spectra, typical, row_item_bytes, shared),
    )


def choose_chunks(n_pix: int, requested_rows: int | None) -> tuple[int, int]:
    """(rows, pixels) per chunk: (1024, N_pix) for typical spectra, (256, 4096) for high-resolution ones;
    never a float32 flux chunk over MAX_FLUX_CHUNK_BYTES."""
    if n_pix <= 0:
        raise PlanError(f"N_pix must be positive, got {n_pix}")
    if n_pix > HIGH_RES_NPIX:
        default_rows, chunk_pix = HIGH_RES_CHUNK
    else:
        chunk_pix = n_pix
        max_rows = MAX_FLUX_CHUNK_BYTES // (n_pix * FLUX_ITEMSIZE)
        default_rows = min(DEFAULT_CHUNK_ROWS, 1 << (max_rows.bit_length() - 1))
    if requested_rows is None:
        return default_rows, chunk_pix
    if requested_rows <= 0:
        raise PlanError(f"--chunk-rows must be positive, got {requested_rows}")
    chunk_bytes = requested_rows * chunk_pix * FLUX_ITEMSIZE
    if chunk_bytes > MAX_FLUX_CHUNK_BYTES:
        limit = MAX_FLUX_CHUNK_BYTES // (chunk_pix * FLUX_ITEMSIZE)
        raise PlanError(
            f"--chunk-rows {requested_rows} makes a flux chunk of {chunk_bytes / 2**20:.1f} MiB "
            f"({requested_rows} x {chunk_pix} float32); the limit is 16 MiB, so at most {limit} rows here"
        )
    return requested_rows, chunk_pix


def fit_to_store(chunk_rows: int, n_spec: int, request: LayoutRequest) -> int:
    """A store of fewer spectra than one default chunk gets chunks of exactly its rows. It is one chunk per
    2-D array either way, but a padded chunk means compressing, and the gate decompressing, up to 1023
    rows of fill per array (0.3 s of a 1-file ingest, more than its data costs). Asked-for chunk, shard
    or Zarr shard rows keep the chunk rows they were checked against."""
    if request.chunk_rows is not None or request.shard_rows is not None or request.zarr_shard_rows:
        return chunk_rows
    return max(1, min(chunk_rows, n_spec))


def choose_shard_rows(chunk_rows: int, chunk_pix: int, n_pix: int, requested: int | None, *, n_spec: int) -> int:
    """Rows per shard: a whole number of chunk rows, so every shard covers whole chunks of the output.
    By default TARGET_SHARD_BYTES of flux, fewer chunk rows where that makes fewer than MIN_SHARDS shards
    of `n_spec` spectra (never less than one chunk's rows)."""
    if requested is not None:
        if requested <= 0 or requested % chunk_rows:
            raise PlanError(
                f"--shard-rows {requested} must be a positive multiple of {chunk_rows} (the rows of one chunk, or "
                "of one Zarr shard with --zarr-shard-rows), so that each shard covers whole files of the output"
            )
        return requested
    del chunk_pix  # the default depends on the full row width only
    row_bytes = n_pix * FLUX_ITEMSIZE
    by_bytes = max(1, TARGET_SHARD_BYTES // (chunk_rows * row_bytes))
    row_chunks = -(-n_spec // chunk_rows)
    return chunk_rows * max(1, min(by_bytes, row_chunks // MIN_SHARDS))


def check_zarr_shard_rows(request: LayoutRequest, chunk_rows: int) -> int:
    """Zarr v3 sharding asked for (many chunks per file, for filesystems where file counts hurt): a whole
    number of chunk rows, Zarr v3 only. Shards of the plan then cover whole Zarr shards, so the merge still
    copies files without decoding."""
    rows = request.zarr_shard_rows
    if not rows:
        return 0
    if request.zarr_format != 3:
        raise PlanError("--zarr-shard-rows needs --zarr-format 3 (Zarr v2 has no sharding)")
    if rows % chunk_rows:
        raise PlanError(f"--zarr-shard-rows {rows} must be a multiple of the chunk rows ({chunk_rows})")
    return rows


@dataclass(frozen=True)
class StoreShape:
    """What decides how many files a store holds: enough to count them before anything is written."""

    n_spec: int
    n_pix: int
    chunk_rows: int
    chunk_pix: int
    n_2d: int  # 2-D arrays besides the wavelength
    wavelength_shared: bool
    n_rowwise: int
    zarr_format: int
    row_bytes: int  # uncompressed bytes of one row of every 2-D array (wavelength included)

    def files(self, zarr_shard_rows: int, rowwise_chunk_rows: int) -> int:
        """Chunk (or Zarr shard) files, metadata files and index.parquet; every chunk written (an all-fill
        chunk that zarr skips only makes the real count lower)."""
        if zarr_shard_rows:  # a Zarr shard spans every pixel chunk of its rows
            per_2d = -(-self.n_spec // zarr_shard_rows)
        else:
            per_2d = -(-self.n_spec // self.chunk_rows) * -(-self.n_pix // self.chunk_pix)
        n_2d = self.n_2d + (0 if self.wavelength_shared else 1)
        chunks = n_2d * per_2d + (1 if self.wavelength_shared else 0)
        chunks += self.n_rowwise * -(-self.n_spec // min(rowwise_chunk_rows, max(self.n_spec, 1)))
        nodes = self.n_2d + 1 + self.n_rowwise + len(REQUIRED_GROUPS) + 1  # arrays, wavelength, groups, root
        # v3: one zarr.json per node, the consolidated metadata inside the root's; v2: .zarray or .zgroup, .zattrs
        # and one .zmetadata
        metadata = nodes if self.zarr_format == 3 else 2 * nodes + 1
        return chunks + metadata + 1  # and index.parquet


def choose_file_layout(shape: StoreShape, request: LayoutRequest) -> tuple[int, int]:
    """(Zarr shard rows, row-wise chunk rows) that keep the store within `request.max_store_files`: first
    longer row-wise chunks (cheap for readers), then, on Zarr v3 and unless --zarr-shard-rows says
    otherwise, the fewest chunk rows per Zarr shard that fit: doubling, while a shard task's block stays
    under MAX_WRITE_BLOCK_BYTES and divides an asked-for --shard-rows. A budget that cannot be met leaves
    the largest such layout; describe() reports the count."""
    budget = request.max_store_files
    zarr_rows = check_zarr_shard_rows(request, shape.chunk_rows)
    rowwise = shape.chunk_rows * ROWWISE_CHUNK_FACTOR
    while shape.files(zarr_rows, rowwise) > budget and rowwise * 2 <= ROWWISE_MAX_CHUNK_ROWS:
        rowwise *= 2
    if request.zarr_shard_rows is not None or request.zarr_format != 3:
        return zarr_rows, rowwise
    rows = 0
    if shape.n_pix > shape.chunk_pix and shape.files(rows, rowwise) > budget:
        rows = shape.chunk_rows  # one file per chunk row, across its pixel chunks: a shard task's block as before
    while shape.files(rows, rowwise) > budget:
        bigger = 2 * (rows or shape.chunk_rows)
        if (bigger * shape.row_bytes > MAX_WRITE_BLOCK_BYTES or bigger >= 2 * shape.n_spec
                or (request.shard_rows and request.shard_rows % bigger)):
            break
        rows = bigger
    return rows, rowwise


def spec_id(common_root: str, path: str, index_in_file: int) -> str:
    """Stable spectrum id: the file relative to the inputs' common folder, then the spectrum's index."""
    rel = os.path.relpath(path, common_root) if common_root else path
    return f"{rel}#{index_in_file}"


@dataclass(frozen=True, eq=False)
class PlacedFiles:
    """The files that make rows, in row order (sorted paths), each with the global row of its first spectrum;
    companions attached to the file whose rows they add to. Held by the driver only: shard tasks read
    their rows of it from the file table on scratch (shardstore.write_file_table)."""

    table: FileTable
    row_bounds: array | range  # file i holds global rows [row_bounds[i], row_bounds[i + 1]) (see row_bounds)
    companions: dict[int, tuple[Companion, ...]]  # row of the table -> its companion files

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PlacedFiles):
            return NotImplemented
        same_rows = (self.row_bounds == other.row_bounds if type(self.row_bounds) is type(other.row_bounds)
                     else array("q", self.row_bounds) == array("q", other.row_bounds))
        return same_rows and (self.table, self.companions) == (other.table, other.companions)

    __hash__ = None  # type: ignore[assignment]

    def segments(self, shard: ShardSpec) -> tuple[FileSegment, ...]:
        t, b = self.table, self.row_bounds
        out = []
        for i in range(shard.file_lo, shard.file_hi):
            row = max(b[i], shard.row_start)
            count = min(b[i + 1], shard.row_stop) - row
            if count > 0:  # a file with no spectra has no segment
                out.append(FileSegment(t.path(i), t.format(i), row - b[i], count, row, t.size[i], t.mtime_ns[i],
                                       self.companions.get(i, ()), int(b[i + 1] - b[i]), t.stat_id[i]))
        return tuple(out)


def place_files(table: FileTable) -> PlacedFiles:
    """Attach companions to their files and give every other file its rows. A companion with no file of
    its join key, or with several, is refused: it has no raw flux of its own to make rows from."""
    companion_profiles = {i for i, p in enumerate(table.profiles) if p.companion}
    if not companion_profiles:
        own, attached = table, {}
    else:
        is_companion = [p in companion_profiles for p in table.profile]
        own = table.select(not c for c in is_companion)
        hosts_by_key: dict[str, list[int]] = {}
        for row, key in own.join_keys.items():
            hosts_by_key.setdefault(key, []).append(row)
        found: dict[int, list[Companion]] = {}
        orphans: dict[str, str] = {}
        for row in compress(range(len(table)), is_companion):
            path, key = table.path(row), table.join_keys.get(row, "")
            hosts = hosts_by_key.get(key, [])
            if not hosts:  # its file was left out (damaged, under --on-bad-file skip) or not given
                orphans[path] = (f"a {table.format(row)} file that adds to the rows of another file of the same "
                                 f"object ({key!r}), but no file among the inputs has that key; it has no raw flux "
                                 "of its own to ingest: give the file it belongs to as well, or leave it out")
                continue
            if len(hosts) != 1:
                raise PlanError(f"{path}: a {table.format(row)} file adds to the rows of another file of the same "
                                f"object ({key!r}), but {len(hosts)} files ({', '.join(own.path(h) for h in hosts)}) "
                                "among the inputs have that key; it has no raw flux of its own to ingest")
            found.setdefault(hosts[0], []).append(Companion(path, table.format(row), table.size[row],
                                                            table.mtime_ns[row], table.stat_id[row]))
        if orphans:
            raise OrphanCompanionsError(orphans)
        for host, comps in found.items():
            if len(comps) > 1:
                raise PlanError(f"{own.path(host)}: {len(comps)} companion files attach to it "
                                f"({', '.join(c.path for c in comps)}); keep one")
        attached = {k: tuple(v) for k, v in found.items()}
    return PlacedFiles(own, row_bounds(own.n_spectra), attached)


def row_bounds(n_spectra: array) -> array | range:
    """The first global row of each file, then the row count: a range where every file holds one spectrum
    (10^7 one-spectrum files: 76 MiB of the driver's memory less), else an array("q")."""
    if n_spectra.count(1) == len(n_spectra):
        return range(len(n_spectra) + 1)
    return array("q", accumulate(n_spectra, initial=0))


def cut_shards(placed: PlacedFiles, shard_rows: int) -> tuple[ShardSpec, ...]:
    """Split the global row range into contiguous shards of `shard_rows` (the last may be shorter), each
    naming the range of files whose spectra fill it."""
    bounds = placed.row_bounds
    n_files, n_spec = len(bounds) - 1, bounds[-1]
    shards = []
    for index, start in enumerate(range(0, n_spec, shard_rows)):
        stop = min(start + shard_rows, n_spec)
        lo = bisect_right(bounds, start, 0, n_files) - 1  # the file holding row `start` (never an empty one)
        hi = bisect_left(bounds, stop, lo, n_files)  # files that start before `stop`
        shards.append(ShardSpec(index, start, stop, lo, hi))
    return tuple(shards)


# A shard task's cost, for starting the longest first: astropy's open and parse of a small file, and
# reading, converting and compressing one pixel (both measured here on the mixed benchmark corpus, where
# a shard of 2048 one-spectrum files took 4 s and one of four 500-row images 0.75 s).
FILE_SECONDS = 1.5e-3
PIXEL_SECONDS = 0.18e-6


def longest_first(shards: Sequence[ShardSpec], n_pix: int) -> list[int]:
    """Positions in `shards`, longest estimated task first (ties in shard order). Many workers then finish
    together: started in row order, a survey's many-small-file shards could come last and run alone."""
    def seconds(i: int) -> float:
        s = shards[i]
        return (s.file_hi - s.file_lo) * FILE_SECONDS + s.n_rows * n_pix * PIXEL_SECONDS

    return sorted(range(len(shards)), key=lambda i: (-seconds(i), i))


def make_plan(scans: FileTable | Iterable[FileScan], request: LayoutRequest | None = None,
              mapping: tuple[str, str] = ()) -> Plan:
    """`scans`: the scan's FileTable (in path order), or FileScans in any order. A few passes over columns
    and one per shard: ~1 µs per file, so a survey of 10^7 files plans in seconds."""
    request = request or LayoutRequest()
    table = scans if isinstance(scans, FileTable) else FileTable.from_scans(scans)
    if not len(table):
        raise PlanError("no input files to plan")
    placed = place_files(table)
    own = placed.table
    n_spec = placed.row_bounds[-1]
    if n_spec == 0:
        raise PlanError(f"the {len(own)} input file(s) hold no spectra")
    n_pix = max(own.n_pix_max)
    chunk_rows, chunk_pix = choose_chunks(n_pix, request.chunk_rows)
    chunk_rows = fit_to_store(chunk_rows, n_spec, request)
    used = [own.profiles[i] for i in sorted(set(own.profile))]  # the profiles of files that make rows
    grid_keys = {k for p in used for k in p.grid_keys}
    shared = len(grid_keys) == 1 and not grid_keys_unsure(grid_keys) and min(own.n_pix_min) == n_pix
    keys = _union_of_keys(used)
    provides = tuple(sorted({c for p in table.profiles for c in p.provides}))
    arrays_2d = arrays_for(frozenset(provides))
    shape = StoreShape(n_spec, n_pix, chunk_rows, chunk_pix, len(arrays_2d), shared, len(rowwise_arrays(**keys)),
                       request.zarr_format, n_pix * (sum(a.itemsize for a in arrays_2d) + (0 if shared else 8)))
    zarr_shard_rows, rowwise_chunk_rows = choose_file_layout(shape, request)
    shard_rows = choose_shard_rows(zarr_shard_rows or chunk_rows, chunk_pix, n_pix, request.shard_rows,
                                   n_spec=n_spec)
    files_per_format, spectra_per_format = _per_format(table)
    layout = StoreLayout(
        n_spec=n_spec,
        n_pix=n_pix,
        chunk_rows=chunk_rows,
        chunk_pix=chunk_pix,
        rowwise_chunk_rows=rowwise_chunk_rows,
        wavelength_shared=shared,
        mask_conventions=tuple(sorted({p.mask_convention for p in used if p.mask_convention})),
        provides=provides,
        mapping=tuple(mapping),
        **keys,
        common_root=_common_root([own.folders[i] for i in sorted(set(own.folder_of))]),
        codec=request.codec,
        zarr_format=request.zarr_format,
        zarr_shard_rows=zarr_shard_rows,
        store_files=shape.files(zarr_shard_rows, rowwise_chunk_rows),
        max_store_files=request.max_store_files,
    )
    plan = Plan(
        layout=layout,
        shard_rows=shard_rows,
        files_per_format=files_per_format,
        spectra_per_format=spectra_per_format,
        shards=cut_shards(placed, shard_rows),
        input_bytes=sum(table.size),
        files=placed,
        wide_rows=wide_rows(own, n_pix, sum(a.itemsize for a in arrays_2d), shared),
    )
    return _with_fingerprint(plan, table)


def _union_of_keys(used: list) -> dict[str, tuple[str, ...]]:
    """The flux units (normalised and as spelled), metadata, header and parameter keys of the profiles of the
    files that make rows: each distinct and sorted (header keys in the store's order, _header_sort_key)."""
    return {
        "flux_units": tuple(sorted({p.flux_unit for p in used})),
        "flux_unit_sources": tuple(sorted({p.flux_unit_source for p in used})),
        "metadata_keys": tuple(sorted({k for p in used for k in p.metadata_keys})),
        "header_keys": tuple(sorted({k for p in used for k in p.header_keys}, key=_header_sort_key)),
        "param_keys": tuple(sorted({k for p in used for k in p.param_keys})),
    }


def _per_format(table: FileTable) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]:
    """Files and spectra of each format, sorted by format; a companion's spectra are another file's rows,
    so they are not counted."""
    files_per_format: Counter[str] = Counter()
    spectra_per_format: Counter[str] = Counter()
    for profile, n in _per_profile(table).items():
        p = table.profiles[profile]
        files_per_format[p.format] += n[0]
        spectra_per_format[p.format] += 0 if p.companion else n[1]  # a companion's spectra are another's rows
    return tuple(sorted(files_per_format.items())), tuple(sorted(spectra_per_format.items()))


def _per_profile(table: FileTable) -> dict[int, list[int]]:
    """profile -> [files, spectra], by runs of one profile (a slice sum each, not a step a file)."""
    out: dict[int, list[int]] = {}
    spectra = memoryview(table.n_spectra)
    for profile, lo, hi in runs(table.profile):
        entry = out.get(profile)
        if entry is None:
            entry = out[profile] = [0, 0]
        entry[0] += hi - lo
        entry[1] += sum(spectra[lo:hi])
    return out


def _common_root(folders: Sequence[str]) -> str:
    """The deepest folder holding every input (folders: the inputs' distinct folders, each ending in "/")."""
    dirs = [f[:-1] or "/" for f in folders]
    if not dirs:
        return ""
    return os.path.commonpath(dirs) if len(dirs) > 1 else dirs[0]


def _header_sort_key(key: str) -> tuple[int, str]:
    hdu, _, rest = key[1:].partition("_")
    return (int(hdu) if hdu.isdigit() else 0, rest)


HASH_CHUNK = 1 << 20  # name ends converted for the hash this many at a time (a bounded copy)


def _hash_files(h, table: FileTable, lo: int, hi: int) -> None:
    """Feed the identity of files lo..hi (folder, name, size, mtime, stat_id, format, counts) to a hash, column by
    column: nothing here depends on row numbers or interning order, only on the files themselves. Runs and
    zero-copy views of the columns: a survey's 10^7 files hash at C speed."""
    for folder, a, b in runs(table.folder_of, lo, hi):
        h.update(b"D%s\0%d\0" % (table.folders[folder].encode(), b - a))
    for profile, a, b in runs(table.profile, lo, hi):
        h.update(b"F%s\0%d\0" % (table.profiles[profile].format.encode(), b - a))
    base = table.name_ends[lo - 1] if lo else 0
    h.update(memoryview(table.names)[base : table.name_ends[hi - 1] if hi > lo else base])
    ends = memoryview(table.name_ends)
    for a in range(lo, hi, HASH_CHUNK):  # as 8-byte offsets from the first name, whatever the column's width
        b = min(hi, a + HASH_CHUNK)
        h.update(ends[a:b] if base == 0 and ends.itemsize == 8 else array("q", map(sub, ends[a:b], repeat(base))))
    for column in (table.size, table.mtime_ns, table.stat_id, table.n_spectra):
        h.update(memoryview(column)[lo:hi])


def _with_fingerprint(plan: Plan, table: FileTable) -> Plan:
    """The plan's fingerprint hashes everything that decides the store's bytes: inputs (path, size,
    mtime, and inode and ctime as `stat_id`) and the layout. Each shard's key hashes the layout and only
    its own files, so after an input changes, a rerun recomputes just the shards that read it (when the
    layout itself changed, every key changes and nothing stale can be reused). A file rewritten with its
    size and mtime kept has a new ctime (and, written anew and renamed over, a new inode)."""
    # what a shard's bytes depend on besides its own files (not N_spec: appending files keeps keys)
    layout = json.dumps({
        "schema": SCHEMA_VERSION,
        "layout": [plan.n_pix, plan.chunk_rows, plan.chunk_pix, plan.shard_rows, plan.wavelength_shared,
                   plan.zarr_format, plan.common_root, plan.zarr_shard_rows],
        "codec": asdict(plan.codec),
        "keys": [plan.header_keys, plan.param_keys, plan.flux_units, plan.provides, plan.mask_conventions,
                 plan.metadata_keys, *([plan.mapping[1]] if plan.mapping else [])],  # an edited mapping: new keys
        # normalised flux units and their source spellings (rows.parquet's flux_unit, flux_unit_source): a
        # shard written before units were normalised has neither and never matches
        "units": [UNITS_LAYOUT, plan.flux_unit_sources],
    }, sort_keys=True).encode()
    placed = plan.files
    assert placed is not None
    shards = []
    for s in plan.shards:
        h = hashlib.sha256(layout)
        h.update(b"R%d:%d:%d\0" % (s.row_start, s.row_stop, placed.row_bounds[s.file_lo]))
        _hash_files(h, placed.table, s.file_lo, s.file_hi)
        for row in range(s.file_lo, s.file_hi) if placed.companions else ():
            for c in placed.companions.get(row, ()):
                h.update(b"C%d\0%s\0%d\0%d\0%d\0" % (row - s.file_lo, c.path.encode(), c.size, c.mtime_ns,
                                                          c.stat_id))
        shards.append(replace(s, key=h.hexdigest()[:16]))
    h = hashlib.sha256(layout)
    h.update(b"N%d:%d\0" % (plan.n_spec, plan.rowwise_chunk_rows))  # row-wise chunks: the merge's, not a shard's
    _hash_files(h, table, 0, len(table))
    return replace(plan, shards=tuple(shards), fingerprint=h.hexdigest()[:16])


def describe(plan: Plan) -> dict:
    """A JSON-ready summary for `shardmerge plan` and the run report."""
    return {
        "n_spec": plan.n_spec,
        "n_pix": plan.n_pix,
        "formats": {fmt: {"files": n, "spectra": dict(plan.spectra_per_format)[fmt]}
                    for fmt, n in plan.files_per_format},
        "wavelength": "1-D (shared grid)" if plan.wavelength_shared else "2-D (per-spectrum grids)",
        "chunks": list(plan.chunks_2d),
        "row_chunks": plan.n_row_chunks,
        "pixel_chunks": plan.n_pix_chunks,
        "shard_rows": plan.shard_rows,
        "zarr_shard_rows": plan.zarr_shard_rows,
        "shards": len(plan.shards),
        "store_files": plan.store_files,
        "max_store_files": plan.max_store_files,
        "rowwise_chunk_rows": plan.rowwise_chunk_rows,
        "flux_units": list(plan.flux_units),
        "flux_unit_sources": list(plan.flux_unit_sources),
        "header_fields": len(plan.header_keys),
        "masks": list(plan.mask_conventions),
        "capabilities": list(plan.provides),
        "estimated_uncompressed_bytes": plan.estimated_bytes(),
        "input_bytes": plan.input_bytes,
        "codec": asdict(plan.codec),
        "zarr_format": plan.zarr_format,
        "plan_fingerprint": plan.fingerprint,
        "warnings": list(plan.warnings),
        **({"wide_rows": asdict(plan.wide_rows)} if plan.wide_rows else {}),
    }
