"""Stage 4: the one writer. Preallocates every array of `<OUT>.tmp` with its final shape, copies the
shard stores in chunk-aligned blocks, writes row-wise metadata, provenance and index.parquet.

Memory stays at a few chunks whatever N_spec is: 2-D data moves one chunk at a time, row-wise values
one row-wise chunk at a time, index.parquet is streamed shard by shard."""

from __future__ import annotations

import errno
import functools
import heapq
import itertools
import json
import logging
import math
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

from .durable import boot_id, crc32, file_checksum, remove_tree, stat_key, storage_errors
from .errors import ShardError
from .failpoints import failpoint
from .plan import Plan, ShardSpec, StoreLayout
from .publish import claim_tmp, unmark_tmp
from .schema import (
    ARRAY_BY_NAME,
    INDEX_COLUMNS,
    MASK_ARRAY,
    REQUIRED_GROUPS,
    WAVELENGTH_UNITS,
    arrays_for,
    flux_unit_attrs,
    rowwise_arrays,
)
from .shardstore import (
    ROWS_FILE,
    ROWWISE_FILE,
    load_manifest,
    manifest_matches,
    read_index_rows,
    shard_arrays,
    spectral_specs,
)
from .threads import Background
from .zarrio import (
    MetadataInMemory,
    RawChunks,
    StringChunks,
    array_spec,
    create_arrays,
    create_groups,
    storage_grid,
    storage_grid_shape,
    write_block,
    write_slabs,
)

INDEX_FILE = "index.parquet"

log = logging.getLogger("shardmerge")


@dataclass
class _Piece:
    """One shard's rows of one row-wise array, waiting for its chunk: their bytes before compression
    (`items`, with `offsets` of each string item: shardstore.rowwise_piece) or their values."""

    n: int
    items: memoryview | None = None
    offsets: np.ndarray | None = None  # strings: n + 1 item offsets into items
    values: object = None  # a numpy array, or an Arrow array of strings

    def split(self, rows: int, itemsize: int) -> tuple[_Piece, _Piece]:
        """(its first `rows` rows, the others)."""
        if self.items is None:
            return _Piece(rows, values=self.values[:rows]), _Piece(self.n - rows, values=self.values[rows:])
        if self.offsets is None:
            cut = rows * itemsize
            return _Piece(rows, self.items[:cut]), _Piece(self.n - rows, self.items[cut:])
        cut = int(self.offsets[rows] - self.offsets[0])
        return (_Piece(rows, self.items[:cut], self.offsets[: rows + 1]),
                _Piece(self.n - rows, self.items[cut:], self.offsets[rows:]))

    def as_values(self, strings: bool, dtype: np.dtype | None):
        """Its values, for zarr's path (a chunk of which some shard gave no piece)."""
        if self.items is None:
            return self.values
        if not strings:
            return np.frombuffer(self.items, dtype=dtype)
        raw, at = bytes(self.items), (self.offsets - self.offsets[0]).tolist()
        return pa.array([raw[a + 4 : b].decode() for a, b in zip(at[:-1], at[1:], strict=True)], pa.large_string())


class _RowWiseWriter:
    """Buffers row-wise values and writes them in whole row-wise chunks (a chunk spans many shards). Each
    shard gives its rows of each array as the bytes a chunk holds before compression (its `rowwise.bin`),
    which become chunks by concatenation and the array's compressor (zarrio.RawChunks), several arrays at
    once on a few threads: nothing is decoded. An array or a chunk that cannot go that way (codecs other
    than shardmerge's, a shard that gave no piece) is written from values as before: strings by
    `zarrio.StringChunks` where the codecs allow, the others through zarr."""

    def __init__(self, arrays: dict[str, zarr.Array], chunk: int, store_root: str):
        self.arrays = arrays
        self.chunk = chunk
        self.root = store_root
        self.raw = {k: w for k, a in arrays.items() if (w := RawChunks.for_array(a, store_root)) is not None}
        self.strings = {k: w for k, a in arrays.items()
                        if a.dtype.kind in "OTU" and (w := StringChunks.for_array(a, store_root)) is not None}
        self.is_str = {k: a.dtype.kind in "OTU" for k, a in arrays.items()}
        self.dtype = {k: None if self.is_str[k] else np.dtype(a.dtype).newbyteorder("<") for k, a in arrays.items()}
        self.pending: dict[str, list[_Piece]] = {k: [] for k in arrays}
        self.start = 0
        self.count = 0
        self.checksums: dict[str, list[int]] = {}  # {path in the store: [size, crc32]} of chunks written raw
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: list[tuple[str, Future]] = []  # (array, its chunk being compressed and written), in order

    def add(self, n: int, pieces: dict[str, _Piece], table: Callable[[], pa.Table]) -> None:
        """The next shard's `n` rows: its pieces, and `table()` (its rows.parquet, read only if needed) for
        the arrays it gave none of."""
        for k in self.arrays:
            piece = pieces.get(k) if k in self.raw else None
            if piece is None:
                column = table().column(k)
                piece = _Piece(n, values=column if self.is_str[k] else column.to_numpy(zero_copy_only=False))
            self.pending[k].append(piece)
        self.count += n
        if self.count >= self.chunk:
            self._write(self.count - self.count % self.chunk)

    def close(self) -> None:
        """Write the last rows, and wait for every chunk (raising the first error)."""
        if self.count:
            self._write(self.count)
        self._collect(0)
        self.abort()

    def abort(self) -> None:
        """Wait for the chunks being written, their errors dropped (the run is failing, or close raised them)."""
        for _, job in self._inflight:
            job.exception()
        self._inflight = []
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _collect(self, keep: int) -> None:
        """Take the checksums of the chunks written, in order, waiting until at most `keep` are in flight."""
        while self._inflight and (len(self._inflight) > keep or self._inflight[0][1].done()):
            k, job = self._inflight[0]
            key, sums = job.result()
            self._inflight.pop(0)
            self.checksums[os.path.join(*self.arrays[k].path.split("/"), *key.split("/"))] = sums

    def _take(self, k: str, n: int) -> list[_Piece]:
        """The pending pieces of array `k` that hold its next `n` rows (the last one split)."""
        pending, out, got = self.pending[k], [], 0
        itemsize = self.dtype[k].itemsize if self.dtype[k] is not None else 0
        while got < n:
            piece = pending.pop(0)
            if got + piece.n > n:
                piece, rest = piece.split(n - got, itemsize)
                pending.insert(0, rest)
            out.append(piece)
            got += piece.n
        return out

    def _write(self, n: int) -> None:
        jobs, writes = [], []
        for k, arr in self.arrays.items():
            pieces = self._take(k, n)
            if k in self.raw and all(p.items is not None for p in pieces):
                jobs += self._raw_jobs(k, pieces)
                continue
            parts = [p.as_values(self.is_str[k], self.dtype[k]) for p in pieces]
            if k in self.strings:
                # one type whatever each shard's table inferred (an all-null column is typed null)
                values = pa.chunked_array([c.cast(pa.large_string()) for column in parts
                                           for c in (column.chunks if isinstance(column, pa.ChunkedArray)
                                                     else [column])], type=pa.large_string()).combine_chunks()
                if self.strings[k].write(self.start, values):
                    continue
                values = values.to_numpy(zero_copy_only=False)  # nulls: zarr's path, as before
            else:
                values = np.concatenate(parts)
            writes.append((arr, self.start, values))
        if jobs:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max(1, min(RAW_WRITE_THREADS, os.cpu_count() or 1)),
                                                thread_name_prefix="shardmerge-rowwise")
            # not waited for: the merge thread goes on with the next shard while they compress (the GIL is
            # released), RAW_BACKLOG chunks behind at most (each holds its shards' rowwise.bin bytes)
            self._inflight += [(k, self._pool.submit(self.raw[k].write, *rest)) for k, *rest in jobs]
            self._collect(RAW_BACKLOG)
        if writes:
            write_slabs(writes)
        self.start += n
        self.count -= n

    def _raw_jobs(self, k: str, pieces: list[_Piece]) -> list[tuple]:
        """(array, chunk index, parts, items) of each chunk of these pieces (rows self.start on, whole chunks)."""
        jobs, first, parts, rows = [], self.start // self.chunk, [], 0
        for piece in pieces:
            left = piece
            while left.n:
                take = min(left.n, self.chunk - rows)
                head, left = left.split(take, self.dtype[k].itemsize if self.dtype[k] is not None else 0) \
                    if take < left.n else (left, _Piece(0, left.items[:0], None))
                parts.append(head.items)
                rows += take
                if rows == self.chunk:
                    jobs.append((k, first + len(jobs), parts, rows))
                    parts, rows = [], 0
        if rows:
            jobs.append((k, first + len(jobs), parts, rows))
        return jobs


RAW_WRITE_THREADS = 4  # row-wise chunks compressed at once (blosc and zstd release the GIL)
RAW_BACKLOG = 128  # row-wise chunks in flight at most (~3 rounds of ~40 arrays)


def create_layout(root: zarr.Group, layout: StoreLayout
                  ) -> tuple[dict[str, zarr.Array], zarr.Array, dict[str, zarr.Array]]:
    """Preallocate everything with its final shape. Returns (2-D arrays, wavelength, row-wise arrays)."""
    groups = create_groups(root, REQUIRED_GROUPS)
    fmt, codec = layout.zarr_format, layout.codec
    flux_attrs = flux_unit_attrs(layout.flux_units, layout.flux_unit_sources)
    attrs_2d = {a.name: {**(flux_attrs if a.units == "flux" else {"units": a.units} if a.units else {}),
                         "description": a.description}
                for a in arrays_for(layout.capabilities)}
    if MASK_ARRAY in attrs_2d:
        attrs_2d[MASK_ARRAY].update({"flags": "bitmask", "padding_bit": 31,
                                     "source_conventions": list(layout.mask_conventions)})
    names_2d = shard_arrays(layout)
    wave_attrs = {"units": WAVELENGTH_UNITS, "description": "wavelength (converted to Angstrom from the source unit)"}
    specs = spectral_specs(layout, layout.n_spec, lambda name: groups["signal" if name == "wavelength" else
                                                                      ARRAY_BY_NAME[name].group],
                           attrs=attrs_2d, wave_attrs=wave_attrs)
    rchunk = (min(layout.rowwise_chunk_rows, max(layout.n_spec, 1)),)
    row_arrays = rowwise_arrays(layout.flux_units, layout.metadata_keys, layout.header_keys, layout.param_keys,
                                layout.flux_unit_sources)
    specs += [array_spec(groups[r.group], r.name, shape=(layout.n_spec,), chunks=rchunk,
                         dtype=str if r.dtype == "str" else r.dtype, codec=codec, zarr_format=fmt, attrs=r.attrs)
              for r in row_arrays]
    created = create_arrays(specs)  # in specs' order: the 2-D arrays, wavelength, the row-wise arrays
    n = len(names_2d)
    data = dict(zip(names_2d, created[:n], strict=True))
    wave = created[n]
    rows = {r.column: a for r, a in zip(row_arrays, created[n + 1:], strict=True)}
    return data, wave, rows


@dataclass
class MergeResult:
    """What the merge wrote, as the gate takes it (and the run report shows it)."""

    # {path in the store: [size, crc32]} of every file: for chunks copied from shards, the values their shard
    # task recorded, so the gate can prove that what it passes is what the workers wrote
    checksums: dict[str, list[int]]
    # {"all_nan": rows, "all_zero": rows} of flux_raw as the shard tasks computed them; None unless every flux
    # chunk was copied raw from a checksum-verified shard (the gate then decodes only a sample)
    flux_rows: dict[str, list[int]] | None
    raw_chunks: int  # chunk files copied (or linked) without decoding
    recoded_arrays: int  # shard arrays decoded and re-encoded (a layout that does not line up)
    unverified_flux_shards: int  # shards whose flux rows were not taken from their manifest
    seconds: float
    # {path in the store: [inode, size, ctime_ns]} of chunk files hard-linked from a shard after their crc32
    # was checked here: the gate proves them unchanged from a stat, not a second read of the same bytes
    linked: dict[str, list[int]] = field(default_factory=dict)

    def stats(self) -> dict:
        out = {"raw_chunks": self.raw_chunks, "recoded_arrays": self.recoded_arrays}
        if self.unverified_flux_shards:
            out["unverified_flux_shards"] = self.unverified_flux_shards
        return {**out, "seconds": self.seconds}


def materialize(plan: Plan, scratch_shards: Sequence[str], tmp: str, provenance: dict,
                progress: Callable[[int], None] | None = None, link_chunks: bool = False) -> MergeResult:
    """Phase A: write the whole store at `tmp` (which must not exist), every shard already written.
    `link_chunks`: hard-link shard chunk files instead of copying them (only when the shards are deleted
    after the publish, so nothing else can ever reach those files)."""
    if len(scratch_shards) != len(plan.shards):
        raise ShardError(f"{len(scratch_shards)} shard stores for a plan of {len(plan.shards)} shards")
    merger = Merger(plan, tmp, link_chunks)
    try:
        for shard, path in zip(plan.shards, scratch_shards, strict=True):
            merger.add(shard, path)
            if progress:
                progress(1)
        return merger.finish(provenance)
    finally:
        merger.close()


class Merger:
    """The merge in steps, so that it can run while later shards are still being written: created with the
    store's arrays (every one with its final shape), `add` puts the next shard in row order in place, and
    `finish` writes what needs every shard (the last row-wise chunk, index.parquet, provenance,
    consolidated metadata, the checksums of what it wrote itself)."""

    def __init__(self, plan: Plan, tmp: str, link_chunks: bool = False):
        t0 = time.perf_counter()
        self.plan, self.tmp, self.link = plan, tmp, link_chunks
        self.checksums: dict[str, list[int]] = {}
        self.linked: dict[str, list[int]] = {}
        self.flux_rows: dict[str, list[int]] = {"all_nan": [], "all_zero": []}
        self.stats = {"raw_chunks": 0, "recoded_arrays": 0}
        self.added = 0  # shards whose rows are in (in row order)
        self.placed: set[int] = set()  # shards whose chunk files are in (any order)
        claim_tmp(tmp)  # first: a crash from here on leaves a .tmp the next run knows as ours
        # the arrays' documents are made in memory and written behind the merge thread; the root's, which
        # says whose the store is, at the end with the provenance and consolidated metadata
        self.meta = MetadataInMemory(tmp, plan.zarr_format)
        data, wave, rows = create_layout(self.meta.group, plan.layout)
        self.data = {name: self.meta.bind(arr) for name, arr in data.items()}
        self.wave = self.meta.bind(wave)
        rows = {name: self.meta.bind(arr) for name, arr in rows.items()}
        self.dst_meta = {name: _v3_array(self.meta.document(f"{arr.path}/zarr.json"))
                         for name, arr in {**self.data, "wavelength": self.wave}.items()}
        self.rows = rows
        self.rowwise = _RowWiseWriter(rows, rows["spec_id"].chunks[0], tmp)
        self.index_schema: pa.Schema | None = None
        self.writer: pq.ParquetWriter | None = None
        self.partial_index = os.path.join(tmp, INDEX_FILE + ".partial")
        self._manifests: dict[int, dict] = {}  # {shard index: its manifest}, read by place, used by add_rows
        # behind the merge thread: the chunk folders (a mkdir is ~0.2 ms on a VM's ext4, a metadata round
        # trip on Lustre; one per chunk row per 2-D array) and index.parquet's row groups, in row order
        self._behind = ThreadPoolExecutor(BEHIND_THREADS, thread_name_prefix="shardmerge-behind")
        self._index_writer = ThreadPoolExecutor(1, thread_name_prefix="shardmerge-index")
        self._index_writes: list = []
        self._placer = ThreadPoolExecutor(PUT_THREADS, thread_name_prefix="shardmerge-place")
        self._puts: list[Future] = []  # each shard's chunk files being put in place
        self._documents = self._behind.submit(self.meta.write, self.meta.changed(lambda key: "/" in key))
        self.folders: set[str] = set()  # chunk folders made: place links into them without a mkdir
        # {storage row: (its folders, the job making them)}, submitted in row order: shards come roughly so
        self._folder_jobs = {row: (part, self._behind.submit(_make_folders, part)) for row, part in
                             _chunk_folders([*self.data.values(), self.wave, *rows.values()], tmp).items()}
        self.seconds = time.perf_counter() - t0  # time spent merging, not waiting for shards

    def add(self, shard: ShardSpec, path: str) -> None:
        """Put shard `shard` (the next in row order) in place from its store at `path`."""
        if shard.index not in self.placed:
            self.place(shard, path)
        self.add_rows(shard, path)

    def place(self, shard: ShardSpec, path: str, prechecked: _ReadAhead | None = None) -> None:
        """A shard's 2-D chunk files, in place in any order (each covers its own chunk rows): checked
        against its manifest (with the sums in `prechecked` where a file is unchanged since: ShardPrecheck),
        then linked or copied on a helper thread (_put_files; `finish` waits for them). Its row-wise values
        wait for `add_rows`."""
        t0 = time.perf_counter()
        manifest = prechecked.manifest if prechecked is not None else load_manifest(path)
        if not manifest_matches(manifest, shard):
            raise ShardError(f"{path}: missing manifest, or it is not shard {shard.index} of this plan")
        self._manifests[shard.index] = manifest
        outer = self.plan.write_rows
        self._await_folders(range(shard.row_start // outer, -(-shard.row_stop // outer)))
        stats = self.stats
        raw_before = stats["raw_chunks"]
        puts: list[tuple[str, str, str, list[int]]] = []
        _copy_2d(self.plan, shard, path, manifest["files"], self.data, self.wave, self.dst_meta, self.tmp, stats,
                 puts, self.checksums, prechecked, self.folders)
        if puts:  # linked (or copied) behind the merge thread, which goes on with the next shard
            self._puts.append(self._placer.submit(_put_files, puts, self.link, path))
            self._collect_puts(PUT_BACKLOG)
        if stats["raw_chunks"] > raw_before and isinstance(manifest.get("flux_rows"), dict):
            for kind in self.flux_rows:
                self.flux_rows[kind].extend(manifest["flux_rows"].get(kind, []))
        else:
            stats["unverified_flux_shards"] = stats.get("unverified_flux_shards", 0) + 1
        self.placed.add(shard.index)
        self.seconds += time.perf_counter() - t0

    def add_rows(self, shard: ShardSpec, path: str, rows: _RowsAhead | None = None) -> None:
        """The next shard in row order, placed already: its shared wavelength grid (one grid, written by
        shard 0), row-wise values and index rows."""
        t0 = time.perf_counter()
        expected = self.plan.shards[self.added].index
        if shard.index != expected:
            raise ShardError(f"{path}: shard {shard.index} given where shard {expected} comes next")
        if shard.index not in self.placed:
            raise ShardError(f"{path}: shard {shard.index}'s rows given before its chunks were placed")
        manifest = self._manifests.pop(shard.index, None) or load_manifest(path) or {}
        if self.plan.wavelength_shared:
            _check_shared_grid(shard, path, self.wave, manifest.get("files", {}))
        if rows is None:  # else read ahead (ShardPrecheck.submit_rows)
            rows = _read_rows(path)
        rowwise = rows.rowwise
        _check_rowwise(path, manifest, rows)
        listed = manifest.get("rowwise_index")
        table = read_index_rows(rowwise, listed) if rowwise is not None else None
        if table is None and listed is not None:
            raise _corrupt_shard(path, f"its manifest's rowwise_index {listed!r} names no part of its {ROWWISE_FILE}"
                                 + ("" if rowwise is not None else f" (there is no {ROWWISE_FILE})"))
        if table is None:  # a shard written before its index rows were in rowwise.bin
            table = _read_rows_file(path, manifest, list(INDEX_COLUMNS))
        _check_rows(shard, path, table)
        pieces = _pieces(path, manifest, rowwise, shard.n_rows, self.rowwise)
        whole: list[pa.Table] = []

        def full_table() -> pa.Table:  # only for a column no piece holds
            if not whole:
                whole.append(_read_rows_file(path, manifest))
                _check_rows(shard, path, whole[0])
            return whole[0]

        self.rowwise.add(shard.n_rows, pieces, full_table)
        index = table.select(list(INDEX_COLUMNS))
        if self.writer is None:
            self.index_schema = index.schema
            self.writer = pq.ParquetWriter(self.partial_index, self.index_schema)
        if not index.schema.equals(self.index_schema):  # cast imports pyarrow.compute (0.08 s): only when needed
            index = index.cast(self.index_schema)
        self._write_index(index)
        self.added += 1
        self.seconds += time.perf_counter() - t0
        failpoint("merge-copied-shard")

    def finish(self, provenance: dict) -> MergeResult:
        t0 = time.perf_counter()
        if self.added != len(self.plan.shards):
            raise ShardError(f"merged {self.added} of {len(self.plan.shards)} shards")
        self.rowwise.close()
        self.checksums.update(self.rowwise.checksums)
        self._await_folders(list(self._folder_jobs))
        _results(self._index_writes)  # a failed write raises here, not in close
        self._collect_puts(0)
        self.checksums.update(self._documents.result())
        self.close()
        os.replace(self.partial_index, os.path.join(self.tmp, INDEX_FILE))
        self.meta.group.attrs.update(provenance)
        self.meta.consolidate()
        self.checksums.update(self.meta.write(self.meta.changed()))
        unmark_tmp(self.tmp)  # the root attrs say whose it is now; the published store holds no marker
        checksums = self.checksums
        arrays = [*self.data.values(), self.wave, *self.rows.values()]
        for rel in _unsummed_files(self.tmp, arrays, checksums):  # what neither a shard nor this writer summed
            if rel not in checksums:
                checksums[rel] = file_checksum(os.path.join(self.tmp, rel))
        unverified = self.stats.get("unverified_flux_shards", 0)
        self.seconds += time.perf_counter() - t0
        return MergeResult(checksums=checksums, flux_rows=None if unverified else self.flux_rows,
                           raw_chunks=self.stats["raw_chunks"], recoded_arrays=self.stats["recoded_arrays"],
                           unverified_flux_shards=unverified, seconds=round(self.seconds, 4), linked=self.linked)

    def close(self) -> None:
        """Wait for what the helper threads are writing (their errors are `finish`'s to raise), then close the
        index writer (its file stays `.partial` unless `finish` renames it). Nothing writes into the store after."""
        self.rowwise.abort()
        for job in [*(f for _, f in self._folder_jobs.values()), *self._index_writes, self._documents, *self._puts]:
            exc = job.exception()  # waits; an error was raised by finish, or the run is failing for its own
            if isinstance(exc, _ChangedSinceChecked):  # not collected: its shard is still removed, for the rerun
                remove_tree(exc.shard_root)
        self._folder_jobs, self._index_writes, self._puts = {}, [], []
        self._behind.shutdown()
        self._placer.shutdown()
        self._index_writer.shutdown()
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _await_folders(self, rows: Sequence[int]) -> None:
        """Wait for the chunk folders of these storage rows, made up front (raising a mkdir's error)."""
        for row in rows:
            if row in self._folder_jobs:
                part, job = self._folder_jobs[row]
                job.result()
                self.folders.update(part)
                del self._folder_jobs[row]

    def _collect_puts(self, keep: int) -> None:
        """Take what the shards' puts linked, in order, raising a failed put's error, waiting until at most
        `keep` are in flight."""
        while self._puts and (len(self._puts) > keep or self._puts[0].done()):
            try:
                self.linked.update(self._puts.pop(0).result())
            except _ChangedSinceChecked as exc:  # removed here, on the merge thread, which may be reading it
                raise _corrupt_shard(exc.shard_root, exc.what) from None

    def _write_index(self, index: pa.Table) -> None:
        """Append a shard's index rows (one row group) on the index thread, at most INDEX_BACKLOG behind."""
        pending = []
        for write in self._index_writes:
            if write.done():
                write.result()  # a failed write raises now
            else:
                pending.append(write)
        self._index_writes = pending
        if len(self._index_writes) >= INDEX_BACKLOG:
            self._index_writes.pop(0).result()
        self._index_writes.append(self._index_writer.submit(self.writer.write_table, index))


BEHIND_THREADS = 4  # mkdirs at once (a parallel filesystem serves them concurrently)
PUT_THREADS = 2  # shards whose chunk files are being linked at once
PUT_BACKLOG = 64  # shards' puts in flight at most (each a list of paths)
INDEX_BACKLOG = 8  # shards' index rows waiting for the index thread at most


def _results(jobs: Sequence) -> list:
    """Every job's result, in order, once all have ended (the first error raised then)."""
    for job in jobs:
        job.exception()
    return [job.result() for job in jobs]


def _chunk_folders(arrays: Sequence[zarr.Array], root: str) -> dict[int, list[str]]:
    """{storage row: the folders below the 2-D arrays' own that its storage files go in} in row order (one a
    row and array under the default key encoding "c/<row>/<col>", none under v2's "." separator), then
    {-1: those of the 1-D arrays} (their "c", which their own writes make too if they come first)."""
    rows: dict[int, list[str]] = {}
    flat: list[str] = []
    for arr in arrays:
        base = os.path.join(root, *arr.path.split("/"))
        n = -(-arr.shape[0] // storage_grid_shape(arr)[0]) if arr.ndim > 1 else min(1, arr.shape[0])
        for r in range(n):
            key = arr.metadata.encode_chunk_key((r, *(0,) * (arr.ndim - 1)))
            folder = os.path.dirname(os.path.join(base, *key.split("/")))
            if folder != base:
                (rows.setdefault(r, []) if arr.ndim > 1 else flat).append(folder)
    return {**dict(sorted(rows.items())), **({-1: flat} if flat else {})}


def _unsummed_files(root: str, arrays: Sequence[zarr.Array], checksums: Mapping[str, list[int]]) -> Iterator[str]:
    """The files below `root` that `checksums` may not hold, without listing every chunk folder (one a chunk
    row and 2-D array): every file of the folders that are no array's (the root's, the groups'), and every
    file of each array whose storage files `checksums` does not all hold (one written through zarr)."""
    folders = {os.path.join(*a.path.split("/")): math.prod(storage_grid(a)) for a in arrays}
    held = dict.fromkeys(folders, 0)
    for rel in checksums:
        folder = os.path.dirname(rel)
        while folder and folder not in held:
            folder = os.path.dirname(folder)
        if folder and os.path.basename(rel) not in METADATA_FILES:
            held[folder] += 1
    walk = [""]
    while walk:
        prefix = walk.pop()
        with os.scandir(os.path.join(root, prefix) if prefix else root) as entries:
            for entry in entries:
                rel = os.path.join(prefix, entry.name) if prefix else entry.name
                if not entry.is_dir(follow_symlinks=False):
                    yield rel
                elif rel not in folders:
                    walk.append(rel)  # a group's folder
                elif held[rel] != folders[rel]:
                    yield from _store_files(root, rel)


METADATA_FILES = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata")


def _store_files(root: str, prefix: str = "") -> Iterator[str]:
    """The path of every file below `root`, relative to it (os.walk's, without a relpath a file)."""
    with os.scandir(os.path.join(root, prefix) if prefix else root) as entries:
        for entry in entries:
            rel = f"{prefix}{os.sep}{entry.name}" if prefix else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from _store_files(root, rel)
            else:
                yield rel


def _make_folders(folders: Sequence[str]) -> None:
    for folder in folders:
        os.makedirs(folder, exist_ok=True)


@dataclass
class _ReadAhead:
    """What ShardPrecheck read of a written shard for `place`: its manifest, the v3 zarr.json of each of its
    arrays (None: not v3), and {rel: ([size, crc32], stat key)} of its other files."""

    manifest: dict | None
    metas: dict[str, dict | None]
    sums: dict[str, tuple[list[int], list[int]]]


class ShardPrecheck:
    """Reads ahead for the merge thread, on helper threads. The crc32 of each shard's files, as soon as
    the shard is written, so that placing its chunk files costs the merge thread a stat a file, not a
    read: the checksums were 80 % of placement and a third of the merge thread's time with every shard
    written at once (benchmarks/merge_writer.py). Each sum comes with the file's stat key before and
    after it was read; `place` uses it only if the file's key is still the same, else reads the file
    itself. And the next shard's `rowwise.bin` in row order, while the merge thread adds the current
    one's rows. The crc32 (ISA-L's or zlib's), the reads and pyarrow's decoding release the GIL. A job that failed (the
    store is gone: the run is failing) is simply not used. Daemon threads, as the merge thread's: one
    stuck on a hung disk must not keep the process from exiting, and `close` releases whoever waits in
    `take`."""

    THREADS = 2  # one crc32 thread runs at ~2 GB/s, several times the chunk bytes one merge thread places

    def __init__(self) -> None:
        # the next shard's rows go first: the merge thread waits for them now, and sums are needed later
        self._todo: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._done: dict[tuple, object] = {}  # (kind, k): what was read, or the exception that stopped it
        self._submitted: set[tuple] = set()
        self._closed = False
        self._cond = threading.Condition()
        for i in range(self.THREADS):
            threading.Thread(target=self._work, name=f"shardmerge-precheck-{i}", daemon=True).start()

    def submit(self, k: int, path: str, written_here: bool = False) -> None:
        """Read shard k's sums ahead (its store is written; `written_here`: by this run, stat_proof)."""
        self._submit(("sums", k), functools.partial(_sums_ahead, written_here=written_here), path, priority=1)

    def submit_rows(self, k: int, path: str) -> None:
        """Read shard k's rowwise.bin ahead: only the next shard in row order (one held at most)."""
        self._submit(("rows", k), _read_rows, path, priority=0)

    def take(self, k: int) -> _ReadAhead | None:
        """What was read of shard k (waiting for it if it is being read), or None."""
        result = self._take(("sums", k))
        return result if isinstance(result, _ReadAhead) else None

    def take_rows(self, k: int) -> _RowsAhead | None:
        result = self._take(("rows", k))
        return result if isinstance(result, _RowsAhead) else None

    def _submit(self, key: tuple, fn: Callable, path: str, priority: int) -> None:
        with self._cond:
            if self._closed or key in self._submitted:
                return
            self._submitted.add(key)
        self._todo.put((priority, next(self._order), (key, fn, path)))

    def _take(self, key: tuple) -> object:
        with self._cond:
            if key not in self._submitted:
                return None
            self._cond.wait_for(lambda: key in self._done or self._closed)
            self._submitted.discard(key)
            return self._done.pop(key, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for _ in range(self.THREADS):
            self._todo.put((-1, next(self._order), None))  # ahead of any job left

    def _work(self) -> None:
        while (item := self._todo.get()[2]) is not None:
            key, fn, path = item
            if self._closed:
                continue
            try:
                result: object = fn(path)
            except Exception as exc:  # noqa: BLE001 - the merge thread does it itself, and says what is wrong
                result = exc
            with self._cond:
                self._done[key] = result
                self._cond.notify_all()


@dataclass
class _RowsAhead:
    """A shard's rowwise.bin, read ahead of add_rows, with its [size, crc32] (None: the shard has none).
    Summed where it was read: off the merge thread when read ahead."""

    rowwise: bytes | None
    checksum: list[int] | None


def _read_rows(path: str) -> _RowsAhead:
    try:
        with open(os.path.join(path, ROWWISE_FILE), "rb") as f:
            rowwise = f.read()
    except FileNotFoundError:
        return _RowsAhead(None, None)
    return _RowsAhead(rowwise, [len(rowwise), crc32(rowwise)])


def _check_rowwise(path: str, manifest: dict, rows: _RowsAhead) -> None:
    """A shard's rowwise.bin must be, byte for byte, what its shard task recorded (and there, if it
    recorded one)."""
    listed = manifest.get("files", {}).get(ROWWISE_FILE)
    if rows.rowwise is None:
        if listed is not None:
            raise _corrupt_shard(path, f"{ROWWISE_FILE} is missing")
    elif listed != rows.checksum:
        raise _corrupt_shard(path, f"{ROWWISE_FILE} does not match its manifest checksum")


def _read_rows_file(path: str, manifest: dict, columns: list[str] | None = None) -> pa.Table:
    """A shard's rows.parquet, checked against the crc32 its shard task recorded before it is decoded."""
    try:
        with open(os.path.join(path, ROWS_FILE), "rb") as f:
            data = f.read()
    except FileNotFoundError as exc:
        raise _corrupt_shard(path, f"{ROWS_FILE} is missing") from exc
    if manifest.get("files", {}).get(ROWS_FILE) != [len(data), crc32(data)]:
        raise _corrupt_shard(path, f"{ROWS_FILE} does not match its manifest checksum")
    return pq.ParquetFile(pa.BufferReader(data)).read(columns=columns)


def _pieces(path: str, manifest: dict, rowwise: bytes | None, n: int, writer: _RowWiseWriter) -> dict[str, _Piece]:
    """The row-wise pieces a shard's manifest lists, from its rowwise.bin bytes (checked against the crc32
    its shard task recorded by the caller), each checked against its row count."""
    listed = manifest.get("rowwise")
    if not isinstance(listed, dict) or rowwise is None:
        return {}
    view, out = memoryview(rowwise), {}
    for column, (at, size, off_at, off_size) in listed.items():
        if column not in writer.arrays:
            continue
        items = view[at : at + size]
        offsets = None if off_at < 0 else np.frombuffer(rowwise, dtype="<i8", count=off_size // 8, offset=off_at)
        dtype = writer.dtype[column]
        good = (len(offsets) == n + 1 and offsets[-1] - offsets[0] == size) if offsets is not None else \
            (dtype is not None and size == n * dtype.itemsize)
        if not good or len(items) != size:
            raise _corrupt_shard(path, f"{ROWWISE_FILE}: the piece of {column} does not hold {n} rows")
        out[column] = _Piece(n, items, offsets)
    return out


def _sums_ahead(path: str, written_here: bool = False) -> _ReadAhead:
    """A shard store's manifest, its arrays' zarr.json, and the sums of its files but the manifest and rows,
    each read while its stat key stayed the same, or proven by it (stat_proof). A zarr.json is read once
    for its sum and its document."""
    manifest = load_manifest(path)
    files = (manifest or {}).get("files", {})
    proven = stat_proof(manifest, written_here)
    metas, sums = {}, {}
    for rel in files:
        if rel in (ROWS_FILE, ROWWISE_FILE):
            continue
        full = os.path.join(path, rel)
        before = stat_key(full)
        if rel.count("/") == 1 and rel.endswith("/zarr.json"):
            with open(full, "rb") as f:
                doc = f.read()
            got = [len(doc), crc32(doc)]
            if got == files[rel]:  # else the merge thread reads it, and says what is wrong
                metas[rel[: -len("/zarr.json")]] = _v3_array_doc(doc)
        elif proven.get(rel) == before:
            sums[rel] = (files[rel], before)
            continue
        else:
            got = file_checksum(full)
        if stat_key(full) == before:
            sums[rel] = (got, before)
    return _ReadAhead(manifest, metas, sums)


def stat_proof(manifest: dict | None, written_here: bool) -> dict[str, list[int]]:
    """{file: the stat key recorded as its bytes were summed} of a shard written in this run
    (`written_here`) by a process of this kernel (the manifest's boot id is ours): by its shard task, or by
    the keeper of a fetched node-local store, which writes each file from bytes it has just checked. A
    file whose key is still that one is unchanged since (any write, truncation or new link sets its
    ctime), and a second read would come from the same page cache, so its sum is taken as recorded. Empty
    for any other shard: one reused from an earlier run, or written by another node's kernel, is read and
    summed whole (what is read then may come from the disk, and the sum checks that too)."""
    ours = boot_id()
    if not written_here or not manifest or ours is None or manifest.get("boot_id") != ours:
        return {}
    stats = manifest.get("file_stats")
    return stats if isinstance(stats, dict) else {}


@functools.lru_cache(maxsize=256)
def _v3_array_doc(doc: bytes) -> dict | None:
    """_v3_array of a zarr.json's bytes, parsed once for the many shards whose array documents are the same
    bytes (same rows, same layout). The dict is shared: not to be changed."""
    return _v3_array(json.loads(doc))


ABANDON_WAIT_S = 30  # how long a failed run waits for the merge thread to stop before it goes on without it


class StreamedMerge:
    """The merge on a thread of its own while the shard tasks run. Each shard's chunk files are put in
    place as soon as it is written; its row-wise values and index rows once shards 0..k all are (they go
    in row order). When the last shard is written only its own merge, the row-wise values of the shards
    that waited on it, and `finish` are left: on many cores the one writer no longer runs alone after the
    workers are done. Errors are raised in the caller's thread, by
    `raise_error` (call it as shards finish: a failed merge stops the run then) or by `finish`."""

    def __init__(self, plan: Plan, scratch_shards: Sequence[str], tmp: str, link_chunks: bool = False,
                 progress: Callable[[int], None] | None = None):
        if len(scratch_shards) != len(plan.shards):
            raise ShardError(f"{len(scratch_shards)} shard stores for a plan of {len(plan.shards)} shards")
        self.plan, self.paths, self.tmp = plan, list(scratch_shards), tmp
        self._link, self._progress = link_chunks, progress
        self._ready = [False] * len(plan.shards)
        self._written: list[int] = []  # a heap of the positions of written shards, their chunks maybe not placed
        self._position = {shard.index: k for k, shard in enumerate(plan.shards)}
        self._cond = threading.Condition()
        self._stopped = False
        self._merger: Merger | None = None
        self._precheck = ShardPrecheck()
        self._thread = Background(self._run, name="shardmerge-merge")

    def shard_written(self, shard_index: int, written_here: bool = False) -> None:
        """Shard `shard_index`'s store is final (written, or reused). Any thread. `written_here`: this run
        wrote it where the merge reads it, on this host (a shard task, or the keeper of a fetched node-local
        store; not reused): see stat_proof."""
        k = self._position[shard_index]
        self._precheck.submit(k, self.paths[k], written_here)
        with self._cond:
            self._ready[k] = True
            heapq.heappush(self._written, k)
            self._cond.notify()

    def _run(self) -> None:
        with storage_errors(self.tmp, device_errors=True):
            merger = self._merger = Merger(self.plan, self.tmp, self._link)
            shards, n = self.plan.shards, len(self.plan.shards)
            placed = [False] * n
            k = 0  # the next shard in row order, for the row-wise step
            while k < n:
                with self._cond:
                    # the next shard's rows if it is written, else another written shard's chunks: shards
                    # started longest first finish out of row order, and the chunks of those waiting
                    # behind a slow one go in place meanwhile, not all at the end
                    while self._written and placed[self._written[0]]:
                        heapq.heappop(self._written)
                    self._cond.wait_for(lambda k=k: self._stopped or self._ready[k] or bool(self._written))
                    if self._stopped:
                        return
                    j = k if self._ready[k] else heapq.heappop(self._written)
                if not placed[j]:
                    merger.place(shards[j], self.paths[j], self._precheck.take(j))
                    placed[j] = True
                if j == k:
                    if k + 1 < n and self._ready[k + 1]:  # its rows read while these are added
                        self._precheck.submit_rows(k + 1, self.paths[k + 1])
                    merger.add_rows(shards[k], self.paths[k], self._precheck.take_rows(k))
                    k += 1
                    if self._progress:
                        self._progress(1)

    def raise_error(self) -> None:
        """Raise what the merge raised, if it has (without waiting for it)."""
        self._thread.raise_error()

    def finish(self, provenance: dict) -> MergeResult:
        """Every shard written: wait for the merge of the last ones, then write what needs them all."""
        if not all(self._ready):
            raise ShardError(f"the merge was asked to finish with {self._ready.count(False)} shard(s) not written")
        try:
            self._thread.result()
        finally:  # its helper threads end whether the merge succeeded or not
            self._precheck.close()
        assert self._merger is not None
        try:
            return self._merger.finish(provenance)
        finally:
            self._merger.close()

    def abandon(self) -> None:
        """Stop the merge (after the shard it is copying) and remove what it wrote: the run failed, or its
        plan changed (files left out as damaged)."""
        self._precheck.close()
        with self._cond:
            self._stopped = True
            self._cond.notify()
        # bounded: an interrupted run must end even if the merge is stuck (a hung disk); what it writes
        # later stays in .tmp, which the next run removes under the lock before anything else
        if not self._thread.stopped_within(ABANDON_WAIT_S):
            log.warning("the merge did not stop within %d s; removing %s without it (what it still writes there "
                        "is removed by the next run). It was at:\n%s", ABANDON_WAIT_S, self.tmp, self._thread.stack())
            try:
                remove_tree(self.tmp)
            except OSError as exc:  # it is still writing there: the run's own error matters more
                log.warning("could not remove %s (%s); the next run removes it", self.tmp, exc)
            return
        if self._merger is not None:
            try:
                self._merger.close()
            except OSError as exc:  # the footer of an index on a full disk: the run's own error matters more
                log.warning("could not close %s (%s); it is removed with the store", self._merger.partial_index,
                            exc.strerror or exc)
        if os.path.lexists(self.tmp):
            remove_tree(self.tmp)


def _copy_2d(plan: Plan, shard: ShardSpec, path: str, shard_sums: dict[str, list[int]],  # noqa: PLR0913 - one shard's copy: its plan, paths, sums and the writer's state
             data: dict[str, zarr.Array], wave: zarr.Array, dst_meta: dict[str, dict | None], tmp: str,
             stats: dict[str, int], puts: list[tuple[str, str, str, list[int]]], checksums: dict[str, list[int]],
             prechecked: _ReadAhead | None = None, made: set[str] | None = None) -> None:
    # Each shard array's zarr.json is read as JSON, not opened through zarr: that took ~14 ms a shard of
    # the merge thread, holding the GIL beside an in-process scheduler. zarr opens an array only where
    # it has no v3 zarr.json or is re-encoded. `dst_meta`: the final arrays' zarr.json, read once.
    cr, cp = plan.chunks_2d
    pairs = dict(data) if plan.wavelength_shared else {**data, "wavelength": wave}
    ahead = prechecked.metas if prechecked is not None else {}
    metas = {name: ahead[name] if name in ahead else _array_json(path, name, shard_sums) for name in pairs}
    sums_ahead = prechecked.sums if prechecked is not None else None
    checked = [name for name, m in metas.items() if m is None]  # no v3 document: zarr reads its own, checked first
    for name in checked:
        _check_array_files(path, name, shard_sums, sums_ahead)
    opened = {name: zarr.open_array(os.path.join(path, name), mode="r") for name in checked}
    for name in pairs:  # every shape before anything is copied
        shape = tuple(metas[name]["shape"]) if metas[name] else opened[name].shape
        if shape != (shard.n_rows, plan.n_pix):  # its files are the ones its task summed: it wrote them wrong
            raise _corrupt_shard(path, f"{name}: shape {shape}, expected {(shard.n_rows, plan.n_pix)}")
    outer = plan.write_rows  # rows of one storage file (a chunk, or a Zarr shard)
    for name, d in pairs.items():
        meta = metas[name]
        if meta and same_encoding(meta, dst_meta.get(name)) and shard.row_start % outer == 0:
            stats["raw_chunks"] += _copy_chunk_files(path, name, (shard.n_rows, plan.n_pix), tmp, d,
                                                     shard.row_start // outer, shard_sums, puts, checksums,
                                                     sums_ahead, made)
            continue
        if name not in checked:
            _check_array_files(path, name, shard_sums, sums_ahead)
        s = opened.get(name) or zarr.open_array(os.path.join(path, name), mode="r")
        for r in range(0, shard.n_rows, cr):  # decode and re-encode, one chunk at a time
            for c in range(0, plan.n_pix, cp):
                write_block(d, (shard.row_start + r, c), s[r : r + cr, c : c + cp])
        stats["recoded_arrays"] += 1


def _check_array_files(path: str, name: str, shard_sums: dict[str, list[int]],
                       prechecked: dict[str, tuple[list[int], list[int]]] | None = None) -> None:
    """Every file of shard array `name` as its manifest lists it (with the sums in `prechecked` where a
    file is unchanged since), before zarr decodes the array: a damaged chunk may still decompress, into
    other values."""
    prefix = f"{name}/"
    for rel in shard_sums:
        if rel.startswith(prefix):
            _checked_file(path, rel, shard_sums, prechecked, rel)


def _checked_file(shard_root: str, rel: str, shard_sums: dict[str, list[int]],
                  prechecked: dict[str, tuple[list[int], list[int]]] | None, what: str) -> tuple[list[int], list[int]]:
    """([size, crc32], stat key) of shard file `rel`, equal to its manifest's or the shard is removed
    (`what` names the file in the error). The sum read ahead is taken while the file's stat key is the one
    it was read with; else the file is read here, and must keep its key while it is."""
    source = os.path.join(shard_root, rel)
    try:
        key = stat_key(source)
        ahead = prechecked.get(rel) if prechecked else None
        if ahead and key == ahead[1]:
            actual = ahead[0]
        else:
            actual = file_checksum(source)
            if stat_key(source) != key:
                raise _corrupt_shard(shard_root, f"{what} changed while it was checked")
    except FileNotFoundError as exc:
        raise _corrupt_shard(shard_root, f"{what} is missing") from exc
    if shard_sums.get(rel) != actual:
        raise _corrupt_shard(shard_root, f"{what} does not match its manifest checksum")
    return actual, key


def _check_shared_grid(shard: ShardSpec, path: str, wave: zarr.Array, shard_sums: dict[str, list[int]]) -> None:
    """One wavelength grid for every row: shard 0 writes it, every later shard must hold the same."""
    _check_array_files(path, "wavelength", shard_sums)
    grid = zarr.open_array(os.path.join(path, "wavelength"), mode="r")[:]
    if shard.index == 0:
        write_block(wave, (0,), grid)
    elif not np.array_equal(grid, wave[:], equal_nan=True):
        raise ShardError(f"{path}: its wavelength grid differs from shard 0's, though the plan found one grid")


def _array_json(path: str, name: str, shard_sums: dict[str, list[int]]) -> dict | None:
    """Shard array `name`'s Zarr v3 metadata document, as its shard task wrote it (checked against the
    manifest's crc32); None for any other (a v2 array has no zarr.json)."""
    listed = shard_sums.get(f"{name}/zarr.json")
    try:
        with open(os.path.join(path, name, "zarr.json"), "rb") as f:
            doc = f.read()
    except FileNotFoundError:
        if listed is not None:  # its task wrote one: gone since
            raise _corrupt_shard(path, f"{name}/zarr.json is missing") from None
        return None
    if listed != [len(doc), crc32(doc)]:
        raise _corrupt_shard(path, f"{name}/zarr.json does not match its manifest checksum")
    return _v3_array_doc(doc)


def _v3_array(meta: dict | None) -> dict | None:
    return meta if meta is not None and meta.get("zarr_format") == 3 and meta.get("node_type") == "array" else None


def same_encoding(src: dict | None, dst: dict | None) -> bool:
    """True when a chunk file of the array described by `src` (a v3 zarr.json document) is, byte for
    byte, the chunk file the array of `dst` would write: same dtype, chunk grid, key encoding, codecs
    and fill value. Shape and attributes may differ. Both documents are written by this zarr, so equal
    settings serialise equally."""
    if src is None or dst is None:
        return False
    ignored = ("shape", "attributes")
    return {k: v for k, v in src.items() if k not in ignored} == {k: v for k, v in dst.items() if k not in ignored}


def _copy_chunk_files(src_root: str, name: str, shape: tuple[int, ...], dst_root: str, dst: zarr.Array,  # noqa: PLR0913 - source and target of a raw chunk copy, each side named
                      row_offset: int, shard_sums: dict[str, list[int]], puts: list[tuple[str, str, str, list[int]]],
                      checksums: dict[str, list[int]],
                      prechecked: dict[str, tuple[list[int], list[int]]] | None = None,
                      made: set[str] | None = None) -> int:
    """Check the compressed chunk files of shard array `name` (of `shape`) for their place in the final
    array, shifted down by `row_offset` chunk rows, and add (source, target, path in the store) of each to
    `puts` (_put_files puts them there). The two arrays encode alike (same_encoding), so `dst`'s key
    encoding and storage grid name the shard's files too. No decode, no encode, but each file's size and
    crc32 must equal the shard manifest's (a chunk damaged in scratch since its shard was written is
    caught here, not published). `prechecked`: {rel: ([size, crc32], stat key)} computed ahead by
    ShardPrecheck; a file whose stat key is unchanged since is taken as read then, any other is read here.
    `made`: folders known to exist (Merger makes them up front), added to as this makes others."""
    grid = tuple(-(-n // c) for n, c in zip(shape, storage_grid_shape(dst), strict=True))
    dst_dir = os.path.join(dst_root, *dst.path.split("/"))
    made = made if made is not None else set()
    for coords in np.ndindex(*grid):
        key_src = dst.metadata.encode_chunk_key(coords)
        key_dst = dst.metadata.encode_chunk_key((coords[0] + row_offset, *coords[1:]))
        target = os.path.join(dst_dir, *key_dst.split("/"))
        folder = os.path.dirname(target)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        rel = os.path.join(name, *key_src.split("/"))
        source = os.path.join(src_root, rel)
        actual, key = _checked_file(src_root, rel, shard_sums, prechecked, f"chunk {rel}")
        rel_target = os.path.join(*dst.path.split("/"), *key_dst.split("/"))  # = relpath(target, dst_root)
        checksums[rel_target] = actual
        puts.append((source, target, rel_target, key))
    return int(np.prod(grid))


def _put_files(puts: Sequence[tuple[str, str, str, list[int]]], link: bool, shard_root: str) -> dict[str, list[int]]:
    """Put checked chunk files in place: (source, target, path in the store, its stat key when its sum was
    checked) each. With `link`, hard-link where the filesystem allows: shard files are never modified
    after their rename, and the caller deletes the scratch afterwards. A file whose key is no longer the
    one it was checked with was written since (this runs behind the check): its shard is refused, and the
    link must be that same file. Returns {path in the store: [inode, size, ctime_ns]} of the files linked
    (the gate proves them unchanged from a stat); a copied file the gate reads and sums."""
    linked = {}
    for source, target, rel_target, key in puts:
        if link:
            if stat_key(source) != key:
                raise _ChangedSinceChecked(shard_root, f"{os.path.relpath(source, shard_root)} changed after its "
                                           "crc32 was checked")
            try:
                os.link(source, target)
                st = os.stat(target)
            except OSError:
                link = False  # another filesystem, or links not allowed: copy from now on
            else:
                if [st.st_ino, st.st_size, st.st_mtime_ns] != key[:3]:  # the link sets the ctime, not these
                    raise _ChangedSinceChecked(shard_root, f"{os.path.relpath(source, shard_root)} changed as it "
                                               "was linked")
                linked[rel_target] = [st.st_ino, st.st_size, st.st_ctime_ns]
                continue
        try:
            shutil.copyfile(source, target)  # in the kernel (copy_file_range/sendfile), from the page cache
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:  # the copy's error names its source; what is full is the store's disk
                raise OSError(exc.errno, exc.strerror, target) from exc
            raise
    return linked


_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class _ChangedSinceChecked(Exception):
    """A put found a chunk file written since the merge thread checked it: that thread removes the shard
    (`_corrupt_shard`) when it collects the put, so no read of the shard it is making meets it half gone."""

    def __init__(self, shard_root: str, what: str):
        super().__init__(f"{shard_root}: {what}")
        self.shard_root, self.what = shard_root, what


def _corrupt_shard(path: str, what: str) -> ShardError:
    """Remove a damaged shard so that rerunning the same command recomputes it (and only it)."""
    remove_tree(path)
    return ShardError(f"{path}: {what}; the shard store was removed, rerun the same command to recompute it")


def _check_rows(shard: ShardSpec, path: str, table: pa.Table) -> None:
    rows = table.column("row").to_numpy()
    if rows.shape[0] != shard.n_rows or not np.array_equal(rows, np.arange(shard.row_start, shard.row_stop)):
        raise ShardError(f"{path}/{ROWS_FILE}: rows are not {shard.row_start}..{shard.row_stop - 1}")
