"""The planning pass: plain data in (what the scan learned per file), plain data out (the layout).

Pure by design, like rechunker's algorithm: no dask, zarr or astropy here, no I/O, so every mapping
between global rows, shards and chunks is unit-testable on its own."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace

from .config import (
    DEFAULT_CHUNK_ROWS,
    HIGH_RES_CHUNK,
    HIGH_RES_NPIX,
    MAX_FLUX_CHUNK_BYTES,
    ROWWISE_CHUNK_FACTOR,
    SCHEMA_VERSION,
    TARGET_SHARD_BYTES,
    CodecConfig,
    LayoutRequest,
)
from .errors import PlanError
from .schema import arrays_for

FLUX_ITEMSIZE = 4  # float32


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
    flux_unit: str
    header_keys: tuple[str, ...] = ()  # projected h{hdu}_{kw} names this file provides
    param_keys: tuple[str, ...] = ()
    mask_convention: str = ""  # non-empty: the file gives pixel masks, and whose bits they are (reader's words)
    metadata_keys: tuple[str, ...] = ()  # format-specific row-wise strings
    join_key: str = ""  # a companion attaches to the (non-companion) file with the same key
    companion: bool = False  # adds arrays to the rows of the file with the same join_key; no rows of its own
    dropped: int = 0  # spectra the reader left out because they carry no data (ivar 0 everywhere)
    notes: tuple[str, ...] = ()  # what was odd but accepted ("<kind>: <text>", see readers/oddities.py)
    provides: tuple[str, ...] = ()  # capabilities (schema.ARRAYS) the file provides, sorted


@dataclass(frozen=True, slots=True)
class Companion:
    path: str
    format: str
    size: int
    mtime_ns: int


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


@dataclass(frozen=True)
class ShardSpec:
    index: int
    row_start: int
    row_stop: int
    segments: tuple[FileSegment, ...]
    key: str = ""  # hash of the layout and of this shard's segments (path, size, mtime): its content's identity

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
class Plan:
    n_spec: int
    n_pix: int
    chunk_rows: int
    chunk_pix: int
    rowwise_chunk_rows: int
    shard_rows: int
    wavelength_shared: bool  # one 1-D grid for every spectrum, else a 2-D wavelength array
    flux_units: tuple[str, ...]  # distinct, sorted; more than one means metadata/flux_unit is written
    header_keys: tuple[str, ...]
    param_keys: tuple[str, ...]
    mask_conventions: tuple[str, ...]  # distinct, sorted; empty: no input has a mask (no mask_raw array)
    metadata_keys: tuple[str, ...]  # format-specific row-wise strings, metadata/<key>
    files_per_format: tuple[tuple[str, int], ...]
    spectra_per_format: tuple[tuple[str, int], ...]
    common_root: str  # spec_id is the source path relative to this, plus the spectrum's index
    codec: CodecConfig
    zarr_format: int
    shards: tuple[ShardSpec, ...]
    input_bytes: int
    fingerprint: str = field(default="")
    zarr_shard_rows: int = 0  # Zarr v3 sharding of the 2-D arrays: rows per storage file; 0 = one file per chunk
    provides: tuple[str, ...] = ()  # union of every input's capabilities (companions' too), sorted
    mapping: tuple[str, ...] = ()  # (path, content hash) of the --mapping file the "mapping" reader reads

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

    def context(self) -> Plan:
        """The plan without its shard list: what every shard task needs, small enough to ship to each."""
        return replace(self, shards=())

    def shard_of_row(self, row: int) -> int:
        if not 0 <= row < self.n_spec:
            raise IndexError(f"row {row} outside 0..{self.n_spec - 1}")
        return row // self.shard_rows

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


def choose_shard_rows(chunk_rows: int, chunk_pix: int, n_pix: int, requested: int | None) -> int:
    """Rows per shard: a whole number of chunk rows, so every shard covers whole chunks of the output."""
    if requested is not None:
        if requested <= 0 or requested % chunk_rows:
            raise PlanError(
                f"--shard-rows {requested} must be a positive multiple of {chunk_rows} (the rows of one chunk, or "
                "of one Zarr shard with --zarr-shard-rows), so that each shard covers whole files of the output"
            )
        return requested
    del chunk_pix  # the default depends on the full row width only
    row_bytes = n_pix * FLUX_ITEMSIZE
    return chunk_rows * max(1, TARGET_SHARD_BYTES // (chunk_rows * row_bytes))


def check_zarr_shard_rows(request: LayoutRequest, chunk_rows: int) -> int:
    """Zarr v3 sharding (many chunks per file, for filesystems where file counts hurt): a whole number of
    chunk rows, Zarr v3 only. Shards of the plan then cover whole Zarr shards, so the merge still copies
    files without decoding."""
    rows = request.zarr_shard_rows
    if not rows:
        return 0
    if request.zarr_format != 3:
        raise PlanError("--zarr-shard-rows needs --zarr-format 3 (Zarr v2 has no sharding)")
    if rows % chunk_rows:
        raise PlanError(f"--zarr-shard-rows {rows} must be a multiple of the chunk rows ({chunk_rows})")
    return rows


def _common_root(paths: Sequence[str]) -> str:
    if not paths:
        return ""
    dirs = [os.path.dirname(p) for p in paths]
    return os.path.commonpath(dirs) if len(set(dirs)) > 1 else dirs[0]


def spec_id(common_root: str, path: str, index_in_file: int) -> str:
    """Stable spectrum id: the file relative to the inputs' common folder, then the spectrum's index."""
    rel = os.path.relpath(path, common_root) if common_root else path
    return f"{rel}#{index_in_file}"


def assign_rows(scans: Sequence[FileScan]) -> list[tuple[FileScan, int]]:
    """Deterministic global order: sorted paths, then the spectrum's index in its file.
    Returns each file with the global row of its first spectrum."""
    ordered = sorted(scans, key=lambda s: s.path)
    out, row = [], 0
    for s in ordered:
        out.append((s, row))
        row += s.n_spectra
    return out


def cut_shards(placed: Sequence[tuple[FileScan, int]], n_spec: int, shard_rows: int,
               companions: dict[str, tuple[Companion, ...]] | None = None) -> tuple[ShardSpec, ...]:
    """Split the global row range into contiguous shards of `shard_rows` (the last may be shorter),
    each listing the file segments that fill it."""
    shards: list[ShardSpec] = []
    it = iter(placed)
    current = next(it, None)
    consumed = 0  # spectra of `current` already given to earlier shards
    for index, start in enumerate(range(0, n_spec, shard_rows)):
        stop = min(start + shard_rows, n_spec)
        segments: list[FileSegment] = []
        row = start
        while row < stop and current is not None:
            scan, _ = current
            take = min(scan.n_spectra - consumed, stop - row)
            if take > 0:
                segments.append(FileSegment(scan.path, scan.format, consumed, take, row, scan.size, scan.mtime_ns,
                                            (companions or {}).get(scan.path, ())))
                row += take
                consumed += take
            if consumed >= scan.n_spectra:
                current, consumed = next(it, None), 0
        shards.append(ShardSpec(index, start, stop, tuple(segments)))
    return tuple(shards)


def make_plan(scans: Iterable[FileScan], request: LayoutRequest | None = None, mapping: tuple[str, str] = ()
              ) -> Plan:
    request = request or LayoutRequest()
    every = list(scans)
    if not every:
        raise PlanError("no input files to plan")
    scans, companions = _attach_companions(every)
    placed = assign_rows(scans)
    n_spec = sum(s.n_spectra for s in scans)
    if n_spec == 0:
        raise PlanError(f"the {len(scans)} input file(s) hold no spectra")
    n_pix = max(s.n_pix_max for s in scans)
    chunk_rows, chunk_pix = choose_chunks(n_pix, request.chunk_rows)
    zarr_shard_rows = check_zarr_shard_rows(request, chunk_rows)
    shard_rows = choose_shard_rows(zarr_shard_rows or chunk_rows, chunk_pix, n_pix, request.shard_rows)
    grid_keys = {k for s in scans for k in s.grid_keys}
    shared = len(grid_keys) == 1 and all(s.n_pix_min == n_pix for s in scans)
    paths = [s.path for s, _ in placed]
    if len(set(paths)) != len(paths):
        dup = [p for p, c in Counter(paths).items() if c > 1][0]
        raise PlanError(f"{dup} is listed twice among the inputs")
    plan = Plan(
        n_spec=n_spec,
        n_pix=n_pix,
        chunk_rows=chunk_rows,
        chunk_pix=chunk_pix,
        rowwise_chunk_rows=chunk_rows * ROWWISE_CHUNK_FACTOR,
        shard_rows=shard_rows,
        wavelength_shared=shared,
        flux_units=tuple(sorted({s.flux_unit for s in scans})),
        header_keys=tuple(sorted({k for s in scans for k in s.header_keys}, key=_header_sort_key)),
        param_keys=tuple(sorted({k for s in scans for k in s.param_keys})),
        mask_conventions=tuple(sorted({s.mask_convention for s in scans if s.mask_convention})),
        provides=tuple(sorted({c for s in every for c in s.provides})),
        mapping=tuple(mapping),
        metadata_keys=tuple(sorted({k for s in scans for k in s.metadata_keys})),
        files_per_format=tuple(sorted(Counter(s.format for s in every).items())),
        spectra_per_format=tuple(sorted(_sum_by(every, "format").items())),
        common_root=_common_root(paths),
        codec=request.codec,
        zarr_format=request.zarr_format,
        zarr_shard_rows=zarr_shard_rows,
        shards=cut_shards(placed, n_spec, shard_rows, companions),
        input_bytes=sum(s.size for s in every),
    )
    return _with_fingerprint(plan, every)


def _attach_companions(scans: list[FileScan]) -> tuple[list[FileScan], dict[str, tuple[Companion, ...]]]:
    """Split companion files off and attach each to the one file with its join key. A companion with no
    such file, or with several, is refused: it has no raw flux of its own to make rows from."""
    own = [s for s in scans if not s.companion]
    by_key: dict[str, list[FileScan]] = {}
    for s in own:
        if s.join_key:
            by_key.setdefault(s.join_key, []).append(s)
    attached: dict[str, list[Companion]] = {}
    for c in (s for s in scans if s.companion):
        hosts = by_key.get(c.join_key, [])
        if len(hosts) != 1:
            what = "no file" if not hosts else f"{len(hosts)} files ({', '.join(h.path for h in hosts)})"
            raise PlanError(f"{c.path}: a {c.format} file adds to the rows of another file of the same object "
                            f"({c.join_key!r}), but {what} among the inputs has that key; it has no raw flux of "
                            "its own to ingest")
        attached.setdefault(hosts[0].path, []).append(Companion(c.path, c.format, c.size, c.mtime_ns))
    for host, comps in attached.items():
        if len(comps) > 1:
            raise PlanError(f"{host}: {len(comps)} companion files attach to it ({', '.join(c.path for c in comps)});"
                            " keep one")
    return own, {k: tuple(v) for k, v in attached.items()}


def _sum_by(scans: Sequence[FileScan], attr: str) -> dict[str, int]:
    out: Counter[str] = Counter()
    for s in scans:
        out[getattr(s, attr)] += 0 if s.companion else s.n_spectra  # a companion's spectra are another's rows
    return dict(out)


def _header_sort_key(key: str) -> tuple[int, str]:
    hdu, _, rest = key[1:].partition("_")
    return (int(hdu) if hdu.isdigit() else 0, rest)


def _digest(doc: object) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _with_fingerprint(plan: Plan, scans: Sequence[FileScan]) -> Plan:
    """The plan's fingerprint hashes everything that decides the store's bytes: inputs (path, size,
    mtime) and the layout. Each shard's key hashes the layout and only its own segments, so after an
    input changes, a rerun recomputes just the shards that read it (when the layout itself changed,
    every key changes and nothing stale can be reused)."""
    # what a shard's bytes depend on besides its own segments (not N_spec: appending files keeps keys)
    layout = {
        "schema": SCHEMA_VERSION,
        "layout": [plan.n_pix, plan.chunk_rows, plan.chunk_pix, plan.shard_rows, plan.wavelength_shared,
                   plan.zarr_format, plan.common_root, plan.zarr_shard_rows],
        "codec": asdict(plan.codec),
        "keys": [plan.header_keys, plan.param_keys, plan.flux_units, plan.provides, plan.mask_conventions,
                 plan.metadata_keys, *([plan.mapping[1]] if plan.mapping else [])],  # an edited mapping: new keys
    }
    shards = tuple(
        replace(s, key=_digest({"layout": layout, "rows": [s.row_start, s.row_stop],
                                "segments": [[g.path, g.format, g.first, g.count, g.row, g.size, g.mtime_ns,
                                              [[c.path, c.size, c.mtime_ns] for c in g.companions]]
                                             for g in s.segments]}))
        for s in plan.shards
    )
    digest = _digest({**layout, "n_spec": plan.n_spec,
                      "inputs": sorted((s.path, s.size, s.mtime_ns, s.format) for s in scans)})
    return replace(plan, shards=shards, fingerprint=digest)


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
        "flux_units": list(plan.flux_units),
        "header_fields": len(plan.header_keys),
        "masks": list(plan.mask_conventions),
        "capabilities": list(plan.provides),
        "estimated_uncompressed_bytes": plan.estimated_bytes(),
        "input_bytes": plan.input_bytes,
        "codec": asdict(plan.codec),
        "zarr_format": plan.zarr_format,
        "plan_fingerprint": plan.fingerprint,
    }
