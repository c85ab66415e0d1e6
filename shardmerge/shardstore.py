"""The shard-store format, shared by the shard task that writes it and the merge that reads it.

A shard store is `<scratch>/<hash of OUT>/shard-NNNNNN-<key>.zarr`: a zarr group with the plan's 2-D arrays
(schema.arrays_for the plan's capabilities) and `wavelength`, in the final dtypes, codec and chunking;
`rows.parquet` with the row-wise values (parameters prefixed `param:`, format-specific metadata `meta:`);
and `manifest.json`, written last and fsynced: key, plan fingerprint, rows, inputs, the flux rows with no
data, and `[size, crc32]` of every file. A folder without a manifest of the current plan is no shard.

Format 2 adds `rowwise.bin`: each row-wise array's values for the shard's rows, already in the bytes a
store chunk holds before compression (numbers little-endian in the array's dtype; strings in the VLenUTF8
item layout, with their item offsets), listed in the manifest's `rowwise`. The merge concatenates these
pieces into whole row-wise chunks and compresses them, decoding nothing (a row-wise chunk spans many
shards, so the compressed bytes cannot come from one). A column a shard cannot give as such bytes (it
holds nulls) has no piece; the merge takes it from `rows.parquet`.

Beside the shard stores, `<scratch>/inflated/` holds the inflated copies of gzip'd files split between
shards (`readers.inflate`: `<path digest>-<identity digest>.fits` and its `.lock`), made by the first shard
task that needs one and read by the others; it goes with the scratch (node-local: with the node's)."""

from __future__ import annotations

import json
import os
import queue
import stat
import tempfile
import threading
from array import array
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from operator import sub

from .durable import boot_id, crc32, fsync_path, remove_tree, stat_key, storage_errors, sync_trees
from .errors import InputError, ShardError
from .failpoints import failpoint
from .plan import Companion, FileSegment, Plan, ShardSpec, StoreLayout
from .schema import ARRAY_BY_NAME, arrays_for

ROWS_FILE = "rows.parquet"  # row-wise values inside a shard store
FILE_TABLE_PREFIX = "files-"  # <scratch>/files-<plan fingerprint>.arrow: the plan's files, read by shard tasks
FILE_TABLE_BATCH_ROWS = 1 << 16  # rows per Arrow record batch: a task decodes only the batches its files are in
MANIFEST_FILE = "manifest.json"  # written last inside a shard store
ROWWISE_FILE = "rowwise.bin"  # row-wise values as chunk bytes before compression (format 2)
SHARD_FORMAT = 2  # of a shard store; a store of another format is no shard of this version (manifest_matches)


def shard_path(scratch: str, shard: ShardSpec) -> str:
    return os.path.join(scratch, shard.store_name)


def shard_arrays(layout: StoreLayout) -> list[str]:
    """The 2-D arrays of this layout's shards (and store), in the schema table's order."""
    return [a.name for a in arrays_for(layout.capabilities)]


def array_dtype(name: str) -> str:
    return ARRAY_BY_NAME[name].dtype


def spectral_specs(layout: StoreLayout, n_rows: int, group_of: Callable[[str], object],
                   attrs: Mapping[str, dict] | None = None, wave_attrs: dict | None = None) -> list:
    """The specs (zarrio.array_spec) of the 2-D arrays, in shard_arrays' order, then `wavelength`, for `n_rows`
    rows: a shard's and the store's are the same arrays, chunking and codec. `group_of(name)`: the group an
    array goes in (a shard's one group, the store's by schema group; "wavelength" for the grid)."""
    from .zarrio import array_spec  # zarr: the task and the merge have it imported already

    fmt, codec, shape2d = layout.zarr_format, layout.codec, (n_rows, layout.n_pix)
    specs = [array_spec(group_of(name), name, shape=shape2d, chunks=layout.chunks_2d, dtype=array_dtype(name),
                        codec=codec, zarr_format=fmt, shards=layout.zarr_shards_2d,
                        **({"attrs": attrs[name]} if attrs else {}))
             for name in shard_arrays(layout)]
    if layout.wavelength_shared:
        specs.append(array_spec(group_of("wavelength"), "wavelength", shape=(layout.n_pix,), chunks=(layout.n_pix,),
                                dims=("pixel",), dtype="float64", codec=codec, zarr_format=fmt, attrs=wave_attrs))
    else:
        specs.append(array_spec(group_of("wavelength"), "wavelength", shape=shape2d, chunks=layout.chunks_2d,
                                dtype="float64", codec=codec, zarr_format=fmt, attrs=wave_attrs,
                                shards=layout.zarr_shards_2d))
    return specs


def load_manifest(path: str) -> dict | None:
    try:
        with open(os.path.join(path, MANIFEST_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def manifest_matches(manifest: dict | None, shard: ShardSpec) -> bool:
    """The shard store holds exactly this shard: same key (layout and inputs), same rows."""
    return (
        manifest is not None
        and manifest.get("key") == shard.key
        and manifest.get("format") == SHARD_FORMAT
        and manifest.get("row_start") == shard.row_start
        and manifest.get("row_stop") == shard.row_stop
        and isinstance(manifest.get("files"), dict)
    )


def rowwise_piece(values, dtype: str) -> tuple[bytes, bytes | None] | None:
    """One shard's values of a row-wise array as the bytes its store chunks hold before compression:
    (items, None) for numbers (little-endian, in `dtype`); (items, offsets) for strings ("str": the VLenUTF8
    items, each length then UTF-8 bytes, and the int64 offset of each item, n + 1 of them, so that a chunk
    boundary inside the shard can cut them). None where zarr's own conversion must decide (nulls, a column
    of no string type): the merge then writes that array's chunk as it always has. `values`: a pyarrow
    array or chunked array."""
    import numpy as np
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if values.null_count:
        return None
    if dtype != "str":
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
                or pa.types.is_boolean(values.type)):
            return None
        return np.ascontiguousarray(values.to_numpy(zero_copy_only=False).astype(np.dtype(dtype).newbyteorder("<"))
                                    ).tobytes(), None
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return None
    values = values.cast(pa.large_string())
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64, count=n + 1, offset=values.offset * 8)
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8, count=int(offsets[-1]))[int(offsets[0]):] if n else \
        np.zeros(0, np.uint8)
    lengths = np.diff(offsets).astype("<u4")
    starts = (offsets[:-1] - offsets[0]) + 4 * np.arange(n, dtype=np.int64)  # where each item's length goes
    items = np.empty(len(data) + 4 * n, dtype=np.uint8)
    heads = (starts[:, None] + np.arange(4)).ravel()
    is_data = np.ones(len(items), dtype=bool)
    is_data[heads] = False
    items[heads] = lengths.view(np.uint8)
    items[is_data] = data
    item_offsets = np.append(starts, len(items)).astype("<i8")
    return items.tobytes(), item_offsets.tobytes()


def write_rowwise_pieces(path: str, table, columns: Mapping[str, str], index_columns: Sequence[str] = ()
                         ) -> tuple[dict[str, list], list[int] | None]:
    """Write `rowwise.bin` in the shard store at `path` from the row table: for each {column: dtype} a piece
    (rowwise_piece), then the `index_columns` of the table as an Arrow IPC stream (the merge's index.parquet
    rows, read back with no decoding: rows.parquet took the merge ~1 ms a shard). Returns (the manifest's
    `rowwise`: {column: [items at, items size, offsets at, offsets size]} (offsets -1, -1 for numbers), a
    column without a piece left out; the manifest's `rowwise_index`: [at, size] of the stream, or None)."""
    import pyarrow as pa

    listed: dict[str, list] = {}
    at = 0
    with open(os.path.join(path, ROWWISE_FILE), "wb") as f:
        for column, dtype in columns.items():
            piece = rowwise_piece(table.column(column), dtype)
            if piece is None:
                continue
            items, offsets = piece
            f.write(items)
            entry = [at, len(items), -1, -1]
            at += len(items)
            if offsets is not None:
                f.write(offsets)
                entry[2:] = [at, len(offsets)]
                at += len(offsets)
            listed[column] = entry
        if not index_columns:
            return listed, None
        index = table.select(list(index_columns))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, index.schema) as stream:
            stream.write_table(index)
        f.write(stream_bytes := sink.getvalue())
    return listed, [at, stream_bytes.size]


def read_index_rows(rowwise: bytes, entry: object):
    """The index rows write_rowwise_pieces put in `rowwise` (a pyarrow Table viewing those bytes), or None
    where the manifest's `entry` names none. Check the bytes' crc32 first."""
    import pyarrow as pa

    if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(v, int) for v in entry)):
        return None
    at, size = entry
    if at < 0 or size <= 0 or at + size > len(rowwise):
        return None
    return pa.ipc.open_stream(pa.py_buffer(rowwise)[at : at + size]).read_all()


def write_manifest(partial: str, manifest: dict) -> None:
    """Last, and durably: a store with a manifest is complete."""
    path = os.path.join(partial, MANIFEST_FILE)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f)
        f.flush()
        os.fsync(f.fileno())
    fsync_path(partial, directory=True)


def write_file_table(plan: Plan, scratch: str) -> str:
    """Write the plan's files (in row order: folder, name, format, size, mtime, stat_id, first row, companion)
    to `<scratch>/files-<fingerprint>.arrow`, once, durably and atomically; return its path. Shard tasks
    carry only a range of its rows, not the files themselves: at 10^7 files the graph stays small. Arrow
    IPC, uncompressed, so a task memory-maps it and reads its ~1000 rows without reading the rest. Written
    a record batch at a time from views of the plan's columns: no column is copied whole (at 10^7 files,
    each is 40-80 MB of the driver's memory)."""
    import pyarrow as pa

    placed = plan.files
    if placed is None:
        raise ValueError("write_file_table needs the driver's plan, not a task's context")
    n = len(placed.table)
    companions = _companion_columns(placed)
    dictionaries = (pa.array(placed.table.folders, pa.string()),
                    pa.array([p.format for p in placed.table.profiles], pa.string()))
    first = _file_table_batch(placed, 0, min(n, FILE_TABLE_BATCH_ROWS), dictionaries, companions)
    schema = first.schema.with_metadata({"rows_per_batch": str(FILE_TABLE_BATCH_ROWS)})
    final = os.path.join(scratch, f"{FILE_TABLE_PREFIX}{plan.fingerprint}.arrow")
    partial = f"{final}.partial"
    try:
        with pa.OSFile(partial, "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            writer.write_batch(pa.RecordBatch.from_arrays(first.columns, schema=schema))
            for lo in range(FILE_TABLE_BATCH_ROWS, n, FILE_TABLE_BATCH_ROWS):
                batch = _file_table_batch(placed, lo, min(n, lo + FILE_TABLE_BATCH_ROWS), dictionaries, companions)
                writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
        fsync_path(partial)  # a failure is a DurabilityError: never retried
        os.replace(partial, final)
        pa.default_memory_pool().release_unused()  # the batches' buffers: ~13 MiB the driver's pool kept at 10^7
    except BaseException:
        if os.path.lexists(partial):
            os.unlink(partial)
        raise
    fsync_path(scratch, directory=True)
    return final


# the file table's companion columns and their Arrow types (all null-typed where no file has a companion)
_COMPANION_COLUMNS = (("companion_path", "path", "string"), ("companion_format", "format", "string"),
                      ("companion_size", "size", "int64"), ("companion_mtime_ns", "mtime_ns", "int64"),
                      ("companion_stat_id", "stat_id", "int64"))


def _companion_columns(placed) -> dict[str, list]:
    """Per companion column, its value for each row (None: no companion); empty when no file has one."""
    comps = [(row, c) for row, cs in placed.companions.items() for c in cs]  # at most one each (the plan checks)
    if not comps:
        return {}
    columns: dict[str, list] = {name: [None] * len(placed.table) for name, _, _ in _COMPANION_COLUMNS}
    for row, c in comps:
        for name, field_name, _ in _COMPANION_COLUMNS:
            columns[name][row] = getattr(c, field_name)
    return columns


def _file_table_batch(placed, lo: int, hi: int, dictionaries: tuple, companions: dict[str, list]):
    """Rows lo..hi of the file table as one Arrow record batch, over views of the plan's columns."""
    import pyarrow as pa

    t, n = placed.table, hi - lo
    if isinstance(placed.row_bounds, array):
        bounds = memoryview(placed.row_bounds)[lo : hi + 1]
    else:  # a range (one spectrum a file: plan.row_bounds), made an array a batch at a time
        bounds = memoryview(array("q", placed.row_bounds[lo : hi + 1]))

    def ints(view: memoryview, kind=None) -> pa.Array:
        return pa.Array.from_buffers(kind or pa.int64(), n, [None, pa.py_buffer(view)])

    base = t.name_ends[lo - 1] if lo else 0
    offsets = array("q", [0])
    offsets.extend(map(sub, memoryview(t.name_ends)[lo:hi], repeat(base)))
    columns = {
        "folder": pa.DictionaryArray.from_arrays(ints(memoryview(t.folder_of)[lo:hi], pa.int32()), dictionaries[0]),
        "name": pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets),
                                                 pa.py_buffer(memoryview(t.names)[base : base + offsets[-1]])),
        "format": pa.DictionaryArray.from_arrays(ints(memoryview(t.profile)[lo:hi], pa.int32()), dictionaries[1]),
        **{name: ints(memoryview(getattr(t, name))[lo:hi]) for name in ("size", "mtime_ns", "stat_id")},
        "first_row": ints(bounds[:n]),
        "row_stop": ints(bounds[1 : n + 1]),
    }
    for name, _, kind in _COMPANION_COLUMNS:  # no companions: null-typed columns, which allocate nothing
        columns[name] = pa.array(companions[name][lo:hi], getattr(pa, kind)()) if companions else pa.nulls(n)
    return pa.RecordBatch.from_pydict(columns)


def read_segments(plan: Plan, shard: ShardSpec) -> tuple[FileSegment, ...]:
    """Shard-task side of write_file_table: the segments that fill `shard`, from `plan.file_table`."""
    import pyarrow as pa

    try:
        with pa.memory_map(plan.file_table) as source:
            reader = pa.ipc.open_file(source)
            per_batch = int(reader.schema.metadata[b"rows_per_batch"])
            first, last = shard.file_lo // per_batch, max(shard.file_lo, shard.file_hi - 1) // per_batch
            rows = pa.Table.from_batches([reader.get_batch(b) for b in range(first, last + 1)], reader.schema)
            rows = rows.slice(shard.file_lo - first * per_batch, shard.file_hi - shard.file_lo)
            cols = {name: _values(rows.column(name)) for name in rows.column_names}
    except (OSError, pa.ArrowInvalid) as exc:
        raise ShardError(f"cannot read the plan's file table {plan.file_table} on {os.uname().nodename} "
                         f"({exc}); --scratch must be a folder every node mounts at the same path") from exc
    out = []
    for k in range(len(cols["name"])):
        first_row, row_stop = cols["first_row"][k], cols["row_stop"][k]
        row = max(first_row, shard.row_start)
        count = min(row_stop, shard.row_stop) - row
        if count <= 0:
            continue
        companions = () if cols["companion_path"][k] is None else (Companion(
            cols["companion_path"][k], cols["companion_format"][k], cols["companion_size"][k],
            cols["companion_mtime_ns"][k], cols["companion_stat_id"][k]),)
        out.append(FileSegment(cols["folder"][k] + cols["name"][k], cols["format"][k], row - first_row, count, row,
                               cols["size"][k], cols["mtime_ns"][k], companions, row_stop - first_row,
                               cols["stat_id"][k]))
    return tuple(out)


def _values(column) -> list:
    """A column's values as Python objects; a dictionary column (folders: 10^5 at a survey's scale) decodes
    only the entries its rows use."""
    import pyarrow as pa

    if not pa.types.is_dictionary(column.type):
        return column.to_pylist()
    column = column.combine_chunks()
    index = column.indices.to_pylist()
    # one scalar per used entry: `take` would import pyarrow.compute (0.08 s) in every task's process
    names = {i: column.dictionary[i].as_py() for i in set(index)}
    return [names[i] for i in index]


def sweep_file_tables(scratch: str, keep: str) -> None:
    """File tables of earlier plans (a re-plan, a crashed run): the current one is `keep`."""
    for name in os.listdir(scratch):
        path = os.path.join(scratch, name)
        if name.startswith(FILE_TABLE_PREFIX) and path != keep:
            os.unlink(path)


def private_folder(folder: str, choose: str = "choose another --scratch") -> None:
    """Make a 0700 folder of this user's (spectra can be proprietary). In a shared /tmp another user could
    have planted it, or a symlink: refused, saying what to `choose` instead."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise InputError(f"scratch folder {folder} is a symlink or belongs to another user; {choose}")


def node_scratch(scratch: str) -> str:
    """Node-local scratch, on the worker: `<hash of OUT>-node` under this node's own root, which is
    `SHARDMERGE_NODE_SCRATCH` in the worker's environment, else `SHARDMERGE_SCRATCH`, else the system temp
    folder (`TMPDIR`, which batch sites often point at the job's local disk)."""
    folder = _node_scratch_path(scratch)
    fix = f"on {os.uname().nodename}, set SHARDMERGE_NODE_SCRATCH in the workers' environment to another folder"
    private_folder(os.path.dirname(folder), fix)
    private_folder(folder, fix)
    return folder


def _node_scratch_path(scratch: str) -> str:
    root = os.environ.get("SHARDMERGE_NODE_SCRATCH") or os.environ.get("SHARDMERGE_SCRATCH") or os.path.join(
        tempfile.gettempdir(), f"shardmerge-{os.getuid()}")
    return os.path.join(os.path.abspath(root), os.path.basename(scratch) + "-node")  # never the driver's own


class StoreFiles(Mapping):
    """A shard store's files as {relative path: bytes-like}, all in one contiguous numpy buffer: what a
    fetch moves. Dask pickles the buffer out of band, so it is sent from where the worker read it and
    received into one frame, with no copy on either side (bytes in a dict were copied into the pickle,
    then out of it: 0.4 s a 360 MB fetch). Plain data, as a task result must be."""

    def __init__(self, names: list[str], sizes: list[int], buffer):
        self.names, self.sizes, self.buffer = names, sizes, buffer
        self._at: dict[str, tuple[int, int]] = {}
        offset = 0
        for name, size in zip(names, sizes, strict=True):
            self._at[name] = (offset, offset + size)
            offset += size

    def __getitem__(self, name: str) -> memoryview:
        start, stop = self._at[name]
        return memoryview(self.buffer)[start:stop]

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __reduce__(self):
        return StoreFiles, (self.names, self.sizes, self.buffer)


def read_node_shard(store_name: str, scratch: str) -> StoreFiles:
    """Dask task, pinned to the worker that wrote the shard on its node-local scratch: every file of the
    shard store, manifest included, for the merge writer to keep (one shard at a time). Each file is checked
    here against the crc32 its shard task recorded: a store damaged on this disk is removed, so that the
    shard is written again rather than fetched, and refused, on every rerun."""
    import numpy as np

    store = os.path.join(_node_scratch_path(scratch), store_name)
    failpoint("fetch-read")
    names, sizes = [], []
    for dirpath, _, files in os.walk(store):
        for name in files:
            full = os.path.join(dirpath, name)
            names.append(os.path.relpath(full, store))
            sizes.append(os.stat(full).st_size)
    where = f"{store} on {os.uname().nodename}"
    buffer = np.empty(sum(sizes), dtype=np.uint8)
    view, offset, problem = memoryview(buffer), 0, ""
    for rel, size in zip(names, sizes, strict=True):
        with open(os.path.join(store, rel), "rb", buffering=0) as f:  # straight into the buffer
            got = f.readinto(view[offset:offset + size]) if size else 0
            while got < size and (more := f.readinto(view[offset + got:offset + size])):
                got += more
        if got != size:
            problem = problem or f"{rel}: changed while it was read"
        offset += size
    out = StoreFiles(names, sizes, buffer)
    if MANIFEST_FILE not in out:
        raise FileNotFoundError(f"{where} has no manifest")
    problem = problem or fetched_files_problem(json.loads(bytes(out[MANIFEST_FILE])), out, "stored")
    if problem:
        remove_tree(store)
        raise ShardError(f"{where}: {problem}; removed it, so the shard is written again")
    return out


def fetched_files_problem(manifest: dict, files: Mapping, what: str) -> str:
    """What is wrong with a shard store's files (`what`: stored, fetched) against its manifest's [size, crc32]
    list; "" if nothing."""
    listed = manifest.get("files")
    if not isinstance(listed, dict) or set(listed) != set(files) - {MANIFEST_FILE}:
        return "its files differ from its manifest's list"
    for rel, data in files.items():
        if rel != MANIFEST_FILE and [len(data), crc32(data)] != listed[rel]:
            return f"{rel}: {what} bytes do not match the crc32 its shard task recorded"
    return ""


def remove_node_scratch(scratch: str) -> int:
    """Run on every worker once its shards are safe on the driver's scratch: remove this node's copies."""
    folder = _node_scratch_path(scratch)
    if not os.path.isdir(folder):  # a worker that wrote no shard of this run
        return 0
    stores = [n for n in os.listdir(folder) if n.startswith("shard-")]
    remove_tree(folder)
    return len(stores)


class FetchedShardKeeper:
    """The driver's side of node-local shards: each fetched store is checked against the crc32 its shard task
    recorded and written into this scratch as a shard task would (durable, manifest last, renamed into place),
    so that from then on it is an ordinary shard, reused by a rerun like any other.

    `keep` checks and writes a store's files in the caller's thread; a keeper thread makes them durable
    and puts them in place. One syncfs there covers every store written since the last one, and it runs
    while the next stores arrive and are written: syncing each store in turn had the fetch wait on the disk
    for half its time. `on_kept(manifest)` runs on that thread, in `keep`'s order, once a store is in
    place. `close` waits for the last ones; an error of the thread is raised by the next `keep` or by
    `close`, and what it had not put in place stays a `.fetch.partial` that the next run sweeps."""

    def __init__(self, scratch: str):
        self.scratch = scratch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._put_in_place, name="shardmerge-keep-fetched", daemon=True)
        self._thread.start()

    def keep(self, shard: ShardSpec, files: Mapping, on_kept: Callable[[dict], None]) -> None:
        """`files`: {relative path: bytes-like}, a StoreFiles as fetched."""
        self._raise_error()
        manifest = json.loads(bytes(files[MANIFEST_FILE]))
        if not manifest_matches(manifest, shard):
            raise ShardError(f"{shard.name}: the fetched manifest is not this shard's (key {manifest.get('key')}); "
                             "rerun the same command")
        problem = fetched_files_problem(manifest, files, "fetched")  # the worker checked them: here, the transfer
        if problem:
            raise ShardError(f"{shard.name}: {problem}; rerun the same command to fetch it again")
        partial = f"{shard_path(self.scratch, shard)}.fetch.partial"
        with storage_errors(self.scratch):
            remove_tree(partial)
            try:
                made: set[str] = set()
                stats: dict[str, list[int]] = {}
                for rel, data in files.items():
                    if rel == MANIFEST_FILE:
                        continue
                    path = os.path.join(partial, rel)
                    folder = os.path.dirname(path)
                    if folder not in made:  # a makedirs per file was a quarter of the writes' time
                        os.makedirs(folder, exist_ok=True)
                        made.add(folder)
                    with open(path, "wb") as f:
                        f.write(data)
                    stats[rel] = stat_key(path)
            except BaseException:
                remove_tree(partial)
                raise
        # the files as this node wrote them from bytes whose sums were just checked: the merge of this run
        # takes their sums by these keys (merge.stat_proof) rather than reading every byte a second time
        manifest = {**manifest, "file_stats": stats, "boot_id": boot_id()}
        self._queue.put((shard, partial, manifest, on_kept))

    def close(self, raise_error: bool = True) -> None:
        """Wait until every store given to `keep` is in place (or the thread failed: raised here)."""
        self._queue.put(None)
        self._thread.join()
        if raise_error:
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _put_in_place(self) -> None:
        done = False
        while not done:
            group = [self._queue.get()]
            while not self._queue.empty():  # every store written by now: one sync for all of them
                group.append(self._queue.get())
            if group[-1] is None:
                group.pop()
                done = True
            if self._error is not None or not group:
                continue  # after an error, only drain: what is left stays partial
            try:
                with storage_errors(self.scratch):
                    sync_trees([partial for _, partial, _, _ in group])
                    for shard, partial, manifest, on_kept in group:
                        final = shard_path(self.scratch, shard)
                        write_manifest(partial, manifest)
                        remove_tree(final)  # a store there without this manifest is no shard (load_manifest said so)
                        os.rename(partial, final)
                        fsync_path(self.scratch, directory=True)
                        on_kept(manifest)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread by keep/close
                self._error = exc
