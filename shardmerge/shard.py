"""Stage 3: one Dask task per shard turns a contiguous run of global rows into an immutable shard store.

The task takes paths and plain values, never the client. It writes `<shard>.<uuid>.partial`, then the
manifest (last), then renames into place; when another attempt got there first, it removes its own
partial and reports the existing shard."""

from __future__ import annotations

import errno
import os
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from .durable import boot_id, fsync_path, fsync_tree, remove_tree, storage_errors
from .errors import BadFileError, BadFilesError, ShardError
from .failpoints import failpoint
from .filetable import stat_id
from .headers import HeaderRules
from .jobs import ShardJob
from .plan import Companion, FileSegment, Plan, ShardSpec, spec_id
from .readers import get_reader
from .readers.base import Layout, SpectraBlock, check_grid, grid_fingerprint
from .readers.fitsio import open_rows, open_verified, whole_file_verdict
from .readers.inflate import inflating_once
from .readers.oddities import Oddities, kind_of
from .readers.splitsums import segment_sums
from .schema import ARRAY_BY_NAME, ARRAYS, INDEX_COLUMNS, META_PREFIX, METADATA_CANONICAL, PARAM_PREFIX, rowwise_arrays
from .shardstore import (
    ROWS_FILE,
    SHARD_FORMAT,
    load_manifest,
    manifest_matches,
    node_scratch,
    read_segments,
    shard_arrays,
    shard_path,
    spectral_specs,
    write_manifest,
    write_rowwise_pieces,
)
from .store import flux_row_faults
from .units import normalise_flux_unit
from .zarrio import BlockChunks, RepeatedFiles, create_arrays, encoders, write_slab


@dataclass
class _RowBlock:
    """A chunk-row block being filled before it is written as whole chunks. Only the arrays a source has
    written into are held (`arrays`); each other one holds its absent value over each row's width and its
    padding past it, which `widths` says in full (`derived`)."""

    start: int  # shard-local row of the block's first row
    n: int
    n_pix: int
    wavelength: np.ndarray | None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    widths: np.ndarray = field(init=False)  # each filled row's pixels
    filled: int = 0

    def __post_init__(self) -> None:
        self.widths = np.zeros(self.n, dtype=np.int64)

    def derived(self, name: str) -> np.ndarray:
        """The values of an array no source has written into: absent over each filled row's width."""
        spec = ARRAY_BY_NAME[name]
        arr = spec.blank((self.n, self.n_pix))
        if _ABSENT_DIFFERS[name]:
            arr[np.arange(self.n_pix) < self.widths[:, None]] = spec.absent  # rows not filled have width 0
        return arr

    def written(self, name: str) -> np.ndarray:
        """`name`'s values, held from now on (a source is about to write into them)."""
        arr = self.arrays.get(name)
        if arr is None:
            arr = self.arrays[name] = self.derived(name)
        return arr

    def values_key(self, name: str) -> object:
        """What the values of an array no source wrote into depend on (RepeatedFiles.content_key): its
        padding and absent values (its name says them) and, where they differ, the rows' widths."""
        return (name, "blank") if not _ABSENT_DIFFERS[name] else (name, self.widths.tobytes())


@dataclass
class _RowTable:
    columns: dict[str, list] = field(default_factory=dict)

    def add(self, name: str, values: list) -> None:
        self.columns.setdefault(name, []).extend(values)


# arrays whose value over a source's pixels, when the source lacks them, is not their padding (the mask's 0)
_ABSENT_DIFFERS = {a.name: not np.array_equal(a.absent, a.padding, equal_nan=True) for a in ARRAYS}
_REPEATED = RepeatedFiles()  # the storage files of arrays no source filled, written again where they recur


def write_shard(shard: ShardSpec, plan: Plan, scratch: str, rules: HeaderRules,
                strict: frozenset[str] = frozenset()) -> dict:
    """`write_shard_job` on shared scratch, its job spelled out (for callers in this process)."""
    return write_shard_job(shard, ShardJob(layout=plan, scratch=scratch, rules=rules, strict=strict))


def _task_scratch(job: ShardJob) -> str:
    """Where this task writes its shard: this worker's own disk (node-local), else the driver's scratch,
    which must be mounted here (a node that does not mount it never writes locally instead)."""
    if job.node_local:
        return node_scratch(job.scratch)
    if not os.path.isdir(job.scratch):
        raise ShardError(f"scratch {job.scratch} does not exist on {os.uname().nodename}; --scratch must be a "
                         "folder every node mounts at the same path")
    return job.scratch


def write_shard_job(shard: ShardSpec, job: ShardJob) -> dict:
    """Dask task (tasks.write_shard). `job.layout` is the plan's context (Plan.context()): the shard reads its
    files from the plan's file table, or, node-local (`job.transport`: scratch on this worker's own disk,
    shardstore.node_scratch), from the segments the shard carries. Returns the shard's manifest, with the
    address of the worker that holds the store (`worker`).

    This is where each input's data is read, once, and verified before use (`open_verified`): damage found
    here raises a BadFileError naming the file (the pipeline leaves it out under --on-bad-file skip). The
    oddities found on the way (a placeholder DATASUM, a stale CHECKSUM) travel in the manifest's `notes`;
    `job.strict` refuses them, for a reused shard too. A file split with other shards is the exception: this
    shard reads only its rows and records its part of the file's sums (`split_sums`), which the ingest
    adds up and judges, by the same policy, before anything can be published.

    Dask may run two attempts of one shard at once (a worker that stopped heartbeating keeps writing after
    its task was rescheduled). Each attempt writes its own `<store>.<uuid>.partial`, fsyncs it, writes the
    manifest last, then renames; the first rename wins and a later attempt drops its partial."""
    plan, strict = job.layout, job.strict
    scratch = _task_scratch(job)
    final = shard_path(scratch, shard)
    existing = load_manifest(final)
    here = _worker_address()
    if manifest_matches(existing, shard):
        _refuse_strict(existing, strict)
        return {**existing, "reused": True, "worker": here}
    if os.path.lexists(final):  # no manifest: not a finished shard, whatever wrote it
        raise ShardError(f"{final} exists without a valid manifest; delete it (or rerun with --restart)")
    partial = f"{final}.{uuid.uuid4().hex}.partial"
    t0 = time.perf_counter()
    try:
        with storage_errors(scratch):
            failpoint("shard-start")
            segments = shard.segments or read_segments(plan, shard)
            with inflating_once(scratch) as inflations:  # a gzip'd file split between shards: inflated once
                try:
                    manifest = _materialize(plan, shard, segments, partial, job)
                except BadFileError as first:  # name every damaged file of the shard, not only the first
                    others = _damage_after(segments, first.path, strict)
                    if not others:
                        raise
                    raise BadFilesError([(first.path, first.reason), *others]) from first
            manifest["inflated_bytes"] = inflations.inflated_bytes
            # with the key of each file as summed: the merge on this host in this run takes a file whose key
            # is unchanged as summed (merge.stat_proof), without reading it again from the same page cache
            manifest["file_stats"] = {}
            manifest["files"] = fsync_tree(partial, checksums=True, stats=manifest["file_stats"])
            manifest["boot_id"] = boot_id()
            manifest["seconds"] = round(time.perf_counter() - t0, 4)
            write_manifest(partial, manifest)
            failpoint("shard-before-rename")
            won = _rename_first_wins(partial, final)
            fsync_path(scratch, directory=True)
    except BaseException:
        remove_tree(partial)
        raise
    if not won:
        winner = load_manifest(final)
        if not manifest_matches(winner, shard):
            raise ShardError(f"{final} appeared during this attempt but its manifest is not this shard's")
        return {**winner, "reused": False, "worker": here}
    return {**manifest, "reused": False, "worker": here}


def _worker_address() -> str:
    """The Dask worker running this task ("" outside one): where a node-local shard can be fetched from."""
    if "distributed" not in sys.modules:  # no worker imported it: this is the ingest's process (0.3 s saved)
        return ""
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:
        return ""


def _damage_after(segments: tuple[FileSegment, ...], bad_path: str, strict: frozenset[str]
                  ) -> list[tuple[str, str]]:
    """The shard's inputs after the damaged one, verified (not stored): each damaged one, with its reason."""
    paths = [s.path for s in segments]
    later = list(dict.fromkeys(paths[paths.index(bad_path) + 1:])) if bad_path in paths else []
    verdicts = ((path, whole_file_verdict(path, strict)[0]) for path in later)
    return [(path, reason) for path, reason in verdicts if reason]


def _refuse_strict(manifest: dict, strict: frozenset[str]) -> None:
    """A shard written by a run without --strict KIND holds files that this run's --strict refuses."""
    refused = []
    for path, notes in sorted(manifest.get("notes", {}).items()):
        first = next((n for n in notes if kind_of(n) in strict), None)
        if first is not None:
            refused.append((path, f"{first.partition(': ')[2]} (refused: --strict {kind_of(first)})"))
    if len(refused) == 1:
        raise BadFileError(*refused[0])
    if refused:
        raise BadFilesError(refused)


def _rename_first_wins(partial: str, final: str) -> bool:
    """rename(2) of a folder onto an existing non-empty folder fails (ENOTEMPTY or EEXIST, depending
    on the filesystem): so exactly one attempt's rename succeeds. The loser removes its partial."""
    try:
        os.rename(partial, final)
        return True
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    remove_tree(partial)
    return False


def _materialize(plan: Plan, shard: ShardSpec, segments: tuple[FileSegment, ...], path: str, job: ShardJob) -> dict:
    """Write the shard store at `path` (a partial, renamed into place by the caller): each segment read and
    verified, copied into whole storage files of rows; returns its manifest (without the file list)."""
    group = zarr.open_group(path, mode="w-", zarr_format=plan.zarr_format)
    names = shard_arrays(plan.layout)
    *created, wave_arr = create_arrays(spectral_specs(plan.layout, shard.n_rows, lambda name: group))
    rows = _ShardRows(plan, dict(zip(names, created, strict=True)), wave_arr, shard.n_rows, path)
    table = _RowTable()
    shared_grid: list[np.ndarray] = []
    notes: dict[str, list[str]] = {}
    split_sums: dict[str, dict] = {}  # per file split with other shards: this shard's part of its sums
    for seg in segments:
        layout, values, meta, projected = _read_segment(plan, seg, job, notes, split_sums)
        _add_rows(plan, shard, seg, layout, meta, projected, values, table)
        if plan.wavelength_shared:
            _check_shared_grid(seg, layout, shared_grid)
        rows.add(seg, values, layout)
    if rows.local != shard.n_rows:
        raise ShardError(f"{shard.name}: filled {rows.local} rows, expected {shard.n_rows}")
    if plan.wavelength_shared:
        _write_shared(wave_arr, shared_grid[0])
    row_table = pa.table(table.columns)
    pq.write_table(row_table, os.path.join(path, ROWS_FILE))
    rowwise, index_rows = write_rowwise_pieces(path, row_table, {r.column: r.dtype for r in plan_rowwise_arrays(plan)},
                                               INDEX_COLUMNS)
    return {
        "key": shard.key,
        "format": SHARD_FORMAT,
        "rowwise": rowwise,  # the row-wise values as chunk bytes, in rowwise.bin (shardstore.rowwise_piece)
        "rowwise_index": index_rows,  # the index.parquet columns, an Arrow IPC stream in rowwise.bin
        "plan": plan.fingerprint,
        "shard": shard.index,
        "row_start": shard.row_start,
        "row_stop": shard.row_stop,
        "arrays": names,
        # rows (global) whose flux is all NaN / whose finite flux is all 0: the gate's check 6 can rely on
        # these for raw-copied, checksum-verified chunks, decoding only a sample to confirm them
        "flux_rows": {k: [shard.row_start + r for r in v] for k, v in rows.stats.items()},
        "n_inputs": len(segments),  # which ones: the key hashes them (no path lists: 10^4 manifests are kept)
        "notes": notes,  # per input: the oddities found while reading its data (checksum habits)
        "split_sums": split_sums,  # the ingest verifies a split file once all of its shards are written
        "created_at": time.time(),
        "host": os.uname().nodename,
        "pid": os.getpid(),
    }


def plan_rowwise_arrays(plan: Plan) -> list:
    """The store's row-wise arrays, as the merge creates them (schema.rowwise_arrays of the plan's keys)."""
    return rowwise_arrays(plan.flux_units, plan.metadata_keys, plan.header_keys, plan.param_keys,
                          plan.flux_unit_sources)


def _read_segment(plan: Plan, seg: FileSegment, job: ShardJob, notes: dict[str, list[str]],
                  split_sums: dict[str, dict]) -> tuple[Layout, SpectraBlock, list[dict], dict[str, str]]:
    """One segment's spectra, read and verified (a whole file's sums, or this part's into `split_sums`), its
    companions joined, its oddities added to `notes`: (layout, values, row metadata, projected headers)."""
    _check_unchanged(seg)
    reader = get_reader(seg.format, plan.mapping)
    oddities = Oddities(seg.path, job.strict)
    opened = open_rows(seg.path, oddities, verifies=seg.verifies_file(plan.shard_rows)) if seg.part_of_file else \
        open_verified(seg.path, oddities)
    with opened as hdul:
        layout = reader.layout(seg.path, hdul)
        if seg.first + seg.count > layout.n_spectra:
            raise BadFileError(seg.path, f"now holds {layout.n_spectra} spectra; the plan expected at least "
                                         f"{seg.first + seg.count}")
        for g in np.unique(layout.grid_of[seg.first : seg.first + seg.count]):  # the scan may have seen
            check_grid(seg.path, layout.grids[int(g)])  # only a header's description of a grid
        values = reader.read(seg.path, hdul, layout, seg.first, seg.count)
        _check_block(seg, values, layout)
        for comp in seg.companions:
            _join_companion(seg, layout, values, comp, job.strict, notes)
        meta = reader.row_metadata(hdul, layout, seg.first, seg.count)
        projected = reader.projected_headers(hdul, layout, job.rules)
        if seg.part_of_file:
            sums = segment_sums(hdul, seg.first, seg.count, seg.file_spectra)
            if sums is not None:
                split_sums[seg.path] = sums
    _add_notes(notes, oddities)
    return layout, values, meta, projected


class _ShardRows:
    """The shard's 2-D arrays filled segment by segment through chunk-row blocks, each flushed as whole
    storage files once full; the gate's flux-row statistics taken on the way (`stats`)."""

    def __init__(self, plan: Plan, arrays: dict[str, zarr.Array], wave_arr: zarr.Array, n_rows: int,
                 store_root: str) -> None:
        self.plan, self.arrays, self.wave_arr, self.n_rows = plan, arrays, wave_arr, n_rows
        self.folders = {name: os.path.join(store_root, *arr.path.split("/")) for name, arr in arrays.items()}
        self.direct = {name: BlockChunks.for_array(arr, store_root) for name, arr in arrays.items()}
        self.wave_direct = BlockChunks.for_array(wave_arr, store_root) if wave_arr.ndim == 2 else None
        self.stats: dict[str, list[int]] = {"all_nan": [], "all_zero": []}
        self.local = 0  # shard-local rows filled so far
        self.block = _new_block(plan, 0, n_rows)

    def add(self, seg: FileSegment, values: SpectraBlock, layout: Layout) -> None:
        done = 0
        while done < seg.count:
            block = self.block
            take = min(seg.count - done, block.n - block.filled)
            _fill(block, values, layout, seg, done, take, self.arrays)
            block.filled += take
            done += take
            self.local += take
            if block.filled == block.n:
                _flux_row_stats(block, self.stats)
                self._flush(block)
                self.block = _new_block(self.plan, self.local, self.n_rows)

    def _flush(self, block: _RowBlock) -> None:
        """The block's rows as whole storage files; an array no source wrote into, from the files of the
        last block that held the same values when there was one (_REPEATED)."""
        row = block.start // self.plan.write_rows  # the storage-file row (blocks are whole storage files)
        for name, arr in self.arrays.items():
            held = block.arrays.get(name)
            if held is not None:
                _write_block(arr, self.direct[name], block.start, held)
                continue
            key = _REPEATED.content_key(arr, block.n, block.values_key(name))
            if not _REPEATED.write(arr, self.folders[name], row, key):
                _write_block(arr, self.direct[name], block.start, block.derived(name))
                _REPEATED.keep(arr, self.folders[name], row, key)
        if block.wavelength is not None:
            _write_block(self.wave_arr, self.wave_direct, block.start, block.wavelength)


def _write_block(arr: zarr.Array, direct: BlockChunks | None, start: int, values: np.ndarray) -> None:
    if direct is None:
        write_slab(arr, start, values)
    else:
        direct.write(start, values, encoders())


def _write_shared(wave_arr: zarr.Array, grid: np.ndarray) -> None:
    if grid.shape != wave_arr.shape:
        raise ShardError(f"shared wavelength grid has {grid.shape[0]} pixels, the plan {wave_arr.shape[0]}")
    wave_arr[:] = grid


def _new_block(plan: Plan, start: int, n_rows: int) -> _RowBlock:
    n = min(plan.write_rows, n_rows - start)  # whole storage files only: Zarr shards are never half-written
    wave = None if plan.wavelength_shared else np.full((n, plan.n_pix), np.nan, dtype=np.float64)
    return _RowBlock(start, n, plan.n_pix, wave)


def _fill(block: _RowBlock, values: SpectraBlock, layout: Layout, seg: FileSegment, done: int,  # noqa: PLR0913 - one copy: where from, where to
          take: int, names: Iterable[str]) -> None:
    """Rows [done, done + take) of the segment's values into the block. An array the source lacks is
    written only where the block holds it already (a source before wrote into it); elsewhere the row's
    width says it (_RowBlock.derived)."""
    src = {name: values.get(name) for name in names}
    rows = slice(block.filled, block.filled + take)
    first = seg.first + done  # index within the file of the first spectrum copied
    grid_ids = layout.grid_of[first : first + take]
    if (grid_ids == grid_ids[0]).all():  # the common case: one grid, one width, copy the rows at once
        width = layout.n_pix(first)
        block.widths[rows] = width
        for name, values_of in src.items():
            if values_of is not None:
                block.written(name)[rows, :width] = values_of[done : done + take, :width]
            elif _ABSENT_DIFFERS[name] and name in block.arrays:
                block.arrays[name][rows, :width] = ARRAY_BY_NAME[name].absent  # a mask: none flags no pixel
        if block.wavelength is not None:
            block.wavelength[rows, :width] = layout.grids[int(grid_ids[0])]
        return
    for k in range(take):
        i = done + k  # index within the segment's block of values
        dst = block.filled + k
        width = layout.n_pix(seg.first + i)
        block.widths[dst] = width
        for name, values_of in src.items():
            if values_of is not None:
                block.written(name)[dst, :width] = values_of[i, :width]
            elif _ABSENT_DIFFERS[name] and name in block.arrays:
                block.arrays[name][dst, :width] = ARRAY_BY_NAME[name].absent
        if block.wavelength is not None:
            block.wavelength[dst, :width] = layout.grids[int(layout.grid_of[seg.first + i])]


def _flux_row_stats(block: _RowBlock, stats: dict[str, list[int]]) -> None:
    """The gate's check 6 on the rows of a block, computed while they are in memory anyway."""
    for kind in ("all_nan", "all_zero"):
        stats[kind].extend(block.start + int(r) for r in flux_row_faults(block.written("flux_raw"), kind))


def _check_unchanged(f: FileSegment | Companion) -> None:
    try:
        st = os.stat(f.path)
    except OSError as exc:
        raise BadFileError(f.path, f"disappeared after the scan ({exc.strerror})") from exc
    if (st.st_size, st.st_mtime_ns, stat_id(st)) != (f.size, f.mtime_ns, f.stat_id):
        raise BadFileError(f.path, "changed after the scan (size, modification time, inode or change time differ; "
                                   "a chmod or rename changes the change time too); rerun")


def _check_block(seg: FileSegment, values: SpectraBlock, layout: Layout) -> None:
    n = seg.count
    widest = max(layout.n_pix(seg.first + i) for i in range(n))
    for spec in ARRAYS:
        name, arr = spec.name, values.get(spec.name)
        if arr is not None and (arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < widest):
            raise BadFileError(seg.path, f"{name} has shape {arr.shape}, expected ({n}, >= {widest})")


def _add_notes(notes: dict[str, list[str]], oddities: Oddities) -> None:
    if oddities.notes:
        kept = notes.setdefault(oddities.path, [])
        kept.extend(n for n in oddities.notes if n not in kept)  # a file split over segments says it once


def _join_companion(seg: FileSegment, layout: Layout, values: SpectraBlock, comp: Companion,
                    strict: frozenset[str], notes: dict[str, list[str]]) -> None:
    """Put a companion file's arrays (those the schema marks `companion`) into the rows of this segment
    that its layout names (`companion_rows`); rows without one stay NaN."""
    _check_unchanged(comp)
    reader = get_reader(comp.format)
    oddities = Oddities(comp.path, strict)
    with open_verified(comp.path, oddities) as hdul:
        clayout = reader.layout(comp.path, hdul)
        extra = reader.read(comp.path, hdul, clayout, 0, clayout.n_spectra)
    _add_notes(notes, oddities)
    targets = [r for r in layout.companion_rows if seg.first <= r < seg.first + seg.count]
    if len(layout.companion_rows) != clayout.n_spectra:
        raise BadFileError(comp.path, f"holds {clayout.n_spectra} spectra; {seg.path} takes "
                                      f"{len(layout.companion_rows)} from it")
    given = {spec.name: spec.name for spec in ARRAYS if spec.companion} | dict(clayout.companion_arrays)
    for spec in ARRAYS:
        name, src = spec.name, extra.get(given[spec.name]) if spec.name in given else None
        if src is None:
            continue
        dst = values.get(name)
        if dst is None:
            dst = np.full(values.flux.shape, spec.absent, dtype=spec.dtype)
            values.put(name, dst)
        for r in targets:
            k = layout.companion_rows.index(r)
            width = min(dst.shape[1], src.shape[1])
            if src.shape[1] != layout.n_pix(r):
                raise BadFileError(comp.path, f"{name} has {src.shape[1]} pixels, {seg.path} row {r} has "
                                              f"{layout.n_pix(r)}: not the same wavelength grid")
            dst[r - seg.first, :width] = src[k, :width]
    if extra.continuum is not None and values.continuum_method == "none":
        values.continuum_method = extra.continuum_method


def _check_shared_grid(seg: FileSegment, layout: Layout, shared: list[np.ndarray]) -> None:
    for g in np.unique(layout.grid_of[seg.first : seg.first + seg.count]):  # each distinct grid once
        grid = layout.grids[int(g)]
        if not shared:
            shared.append(grid)
        elif grid is not shared[0] and (grid.shape != shared[0].shape
                                        or grid_fingerprint(grid) != grid_fingerprint(shared[0])):
            raise BadFileError(seg.path, "wavelength grid differs from the one the scan found for every input")


def _add_rows(plan: Plan, shard: ShardSpec, seg: FileSegment, layout: Layout, meta: list[dict],  # noqa: PLR0913 - one segment's row-wise values, from what its read returned
              projected: dict[str, str], values: SpectraBlock, table: _RowTable) -> None:
    n = seg.count
    idx = range(seg.first, seg.first + n)
    if layout.source_index is not None:  # the reader left out empty spectra: name the source's own index
        idx = [int(layout.source_index[i]) for i in idx]
    table.add("row", list(range(seg.row, seg.row + n)))
    table.add("shard", [shard.index] * n)
    prefix = spec_id(plan.common_root, seg.path, 0)[:-1]  # "relative/path#": one relpath per segment
    table.add("spec_id", [f"{prefix}{i}" for i in idx])
    table.add("source_path", [seg.path] * n)
    table.add("source_hdu", [layout.hdu_of(i) for i in range(seg.first, seg.first + n)])  # per row: several HDUs
    table.add("source_row", list(idx))
    table.add("format", [seg.format] * n)
    table.add("flux_unit", [normalise_flux_unit(layout.flux_unit)[0]] * n)  # as the scan normalised it
    table.add("flux_unit_source", [layout.flux_unit] * n)
    table.add("continuum_method", [values.continuum_method or "none"] * n)
    for name in METADATA_CANONICAL:
        table.add(name, [m[name] for m in meta])
    for key in plan.header_keys:
        table.add(key, [projected.get(key, "")] * n)
    for key in plan.metadata_keys:
        table.add(META_PREFIX + key, [str(m.get(key, "")) for m in meta])
    for key in plan.param_keys:
        p = values.params.get(key)
        table.add(PARAM_PREFIX + key, [float(x) for x in p] if p is not None else [float("nan")] * n)
