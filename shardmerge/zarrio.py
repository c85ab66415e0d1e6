"""Thin helpers over zarr 3.1 shared by the shard writer and the merge writer."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor, wait

import numpy as np
import pyarrow as pa
import zarr
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.core.array import AsyncArray
from zarr.core.sync import sync
from zarr.storage import StorePath

from .config import CodecConfig
from .durable import crc32
from .errors import SlabShapeError


def compressors(codec: CodecConfig, zarr_format: int) -> list:
    if zarr_format == 3:
        return [BloscCodec(cname=codec.cname, clevel=codec.clevel, shuffle=codec.shuffle)]
    from numcodecs import Blosc

    shuffle = {"bitshuffle": Blosc.BITSHUFFLE, "shuffle": Blosc.SHUFFLE, "noshuffle": Blosc.NOSHUFFLE}
    return [Blosc(cname=codec.cname, clevel=codec.clevel, shuffle=shuffle[codec.shuffle])]


ArraySpec = tuple[zarr.Group, str, dict]


def array_spec(group: zarr.Group, name: str, *, shape: tuple[int, ...], chunks: tuple[int, ...],  # noqa: PLR0913 - keyword-only, one per zarr array property
               dtype: str | type, codec: CodecConfig, zarr_format: int, attrs: dict | None = None,
               dims: tuple[str, ...] | None = None, shards: tuple[int, ...] | None = None) -> ArraySpec:
    """What create_arrays needs to preallocate one array with its final shape. Every chunk is written even
    when it equals the fill value, so a missing chunk file always means data was lost (the gate checks this).
    `dims` names the axes (default: `spectrum`, then `pixel`), so xarray opens the store with no custom
    code: Zarr v3 `dimension_names`, or the `_ARRAY_DIMENSIONS` attr xarray reads in Zarr v2.
    `shards`: Zarr v3 sharding (the storage file's shape, a multiple of `chunks`)."""
    dims = dims or ("spectrum", "pixel")[: len(shape)]
    kwargs: dict = {"compressors": compressors(codec, zarr_format)}
    attrs = dict(attrs or {})
    if zarr_format == 3:
        kwargs["dimension_names"] = dims
    else:
        attrs["_ARRAY_DIMENSIONS"] = list(dims)
    if dtype is str:
        # variable-length strings: blosc's shuffles are meaningless for bytes, plain zstd suits them
        kwargs["fill_value"] = ""
        if zarr_format == 3:
            kwargs["compressors"] = [ZstdCodec(level=codec.clevel)]
    else:
        kwargs["fill_value"] = np.nan if np.dtype(dtype).kind == "f" else 0
    if shards:
        kwargs["shards"] = shards
    return group, name, {"shape": shape, "chunks": chunks, "dtype": dtype, "attributes": attrs or None,
                         "config": {"write_empty_chunks": True}, **kwargs}


def create_arrays(specs: Sequence[ArraySpec]) -> list[zarr.Array]:
    """The arrays of `specs`, their metadata written concurrently on zarr's event loop: one at a time, ~35
    arrays took 0.19 s, a round trip to the loop and the disk each, in every shard task and merge."""
    async def create_all() -> list:
        return await asyncio.gather(*(group._async_group.create_array(name=name, **kwargs)
                                      for group, name, kwargs in specs))

    return [zarr.Array(a) for a in sync(create_all())]


def create_groups(root: zarr.Group, names: Sequence[str]) -> dict[str, zarr.Group]:
    async def create_all() -> list:
        return await asyncio.gather(*(root._async_group.create_group(name) for name in names))

    return {name: zarr.Group(g) for name, g in zip(names, sync(create_all()), strict=True)}


class MetadataInMemory:
    """A hierarchy's metadata documents made in memory (zarr's MemoryStore) and written to the folder `root`
    as plain files: zarr's create_array on a local store costs several store round trips an array on its
    event loop (~0.1 s for a store's ~47 documents, on the merge thread), and consolidation lists every
    folder of the store (one per chunk row and 2-D array) to find documents already known here. The bytes
    are zarr's own. `bind` gives an array made in `group` as an array of the local store, with no I/O."""

    def __init__(self, root: str, zarr_format: int):
        self.root = root
        self.docs: dict = {}  # {key: zarr Buffer}, MemoryStore's own dict
        self.group = zarr.open_group(zarr.storage.MemoryStore(self.docs), mode="w", zarr_format=zarr_format)
        self.local = zarr.storage.LocalStore(root)
        self.written: dict[str, bytes] = {}  # {key: bytes} as last written to `root`

    def bind(self, array: zarr.Array) -> zarr.Array:
        made = array._async_array
        return zarr.Array(AsyncArray(made.metadata, StorePath(self.local, made.store_path.path), made.config))

    def document(self, key: str) -> dict | None:
        """A document as JSON (None if there is none)."""
        got = self.docs.get(key)
        return None if got is None else json.loads(got.to_bytes())

    def changed(self, keys: Callable[[str], bool] = lambda key: True) -> dict[str, bytes]:
        """{key: bytes} of the documents (of `keys`) not yet written as they are now."""
        docs = {key: buf.to_bytes() for key, buf in self.docs.items() if keys(key)}
        return {key: data for key, data in docs.items() if self.written.get(key) != data}

    def write(self, docs: dict[str, bytes]) -> dict[str, list[int]]:
        """Write these documents (`changed`'s) as files below `root`; returns {path in the store: [size, crc32]}."""
        sums = {}
        for key, data in docs.items():
            path = os.path.join(self.root, *key.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            self.written[key] = data
            sums[os.path.join(*key.split("/"))] = [len(data), crc32(data)]
        return sums

    def consolidate(self) -> None:
        """zarr.consolidate_metadata of the documents (the root's document, and v2's .zmetadata, change), so
        that zarr and xarray open the store with one read instead of listing every folder (slow on Lustre and
        object stores). Zarr v3 has no consolidated metadata in its spec yet; zarr-python and xarray read it."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Consolidated metadata is currently not part")
            zarr.consolidate_metadata(self.group.store)


def create_array(group: zarr.Group, name: str, **spec) -> zarr.Array:
    """One array (array_spec's arguments)."""
    return create_arrays([array_spec(group, name, **spec)])[0]


def write_slab(array: zarr.Array, start: int, slab: np.ndarray) -> None:
    """array[start:start+len(slab)] = slab, after checking the slab fits the selection exactly:
    zarr 3.1 silently truncates a value that is wider or longer than its selection."""
    array[_slab_rows(array, start, slab)] = slab


def write_slabs(writes: Sequence[tuple[zarr.Array, int, np.ndarray]]) -> None:
    """write_slab for many arrays at once, their chunks encoded and written concurrently on zarr's event
    loop (the ~40 row-wise arrays' last chunk, which the merge writes after the last shard: 0.30 s one by
    one, 0.19 s together on 2 cores)."""
    rows = [_slab_rows(array, start, slab) for array, start, slab in writes]  # every check before any write

    async def write_all() -> None:
        await asyncio.gather(*(array._async_array.setitem(r, slab)
                               for (array, _, slab), r in zip(writes, rows, strict=True)))

    sync(write_all())


def _slab_rows(array: zarr.Array, start: int, slab: np.ndarray) -> slice:
    stop = start + slab.shape[0]
    expected = (slab.shape[0], *array.shape[1:])
    if slab.ndim != array.ndim or slab.shape != expected or start < 0 or stop > array.shape[0]:
        raise SlabShapeError(
            f"array {array.path}: slab of shape {slab.shape} does not fit rows {start}:{stop} of an array of "
            f"shape {array.shape} (expected {expected})"
        )
    return slice(start, stop)


def write_block(array: zarr.Array, origin: tuple[int, ...], block: np.ndarray) -> None:
    """array[origin : origin + block.shape] = block, refusing a block that would run past the array's end
    (zarr would truncate it without a word)."""
    if block.ndim != array.ndim or len(origin) != array.ndim:
        raise SlabShapeError(f"array {array.path}: block of {block.ndim} dims at {origin} for a {array.ndim}-D array")
    stops = tuple(o + n for o, n in zip(origin, block.shape, strict=True))
    if any(o < 0 for o in origin) or any(s > n for s, n in zip(stops, array.shape, strict=True)):
        raise SlabShapeError(
            f"array {array.path}: block of shape {block.shape} at {origin} runs past its shape {array.shape}"
        )
    array[tuple(slice(o, s) for o, s in zip(origin, stops, strict=True))] = block


def storage_grid_shape(arr: zarr.Array) -> tuple[int, ...]:
    """Shape of one storage file's region: the Zarr shard when the array is sharded, else the chunk."""
    return tuple(arr.metadata.chunk_grid.chunk_shape) if arr.metadata.zarr_format == 3 else tuple(arr.chunks)


def storage_grid(arr: zarr.Array) -> tuple[int, ...]:
    """How many storage files (chunks, or Zarr shards) the array has along each dimension."""
    return tuple(-(-n // c) for n, c in zip(arr.shape, storage_grid_shape(arr), strict=True))


class StringChunks:
    """Whole chunks of a 1-D variable-length string array written from Arrow strings, outside zarr's codec
    pipeline but byte for byte in its format: the VLenUTF8 layout (item count, then each item's length and
    UTF-8 bytes) built by pyarrow's compute kernels, which release the GIL, then the array's own
    compressor. zarr's path converts each value to a Python object for numcodecs' per-item loop: in the
    merge writer that was most of the ~40 row-wise arrays' writes, the largest part of its time
    (benchmarks/merge_writer.py). `for_array` returns None for any array whose codecs are not the two
    chains shardmerge creates (v3: vlen-utf8 then zstd; v2: VLenUTF8 filter and a compressor); those keep
    zarr's path."""

    def __init__(self, array: zarr.Array, folder: str, compress: Callable[[bytes], bytes]):
        self.array, self.folder, self.compress = array, folder, compress
        self.chunk = array.chunks[0]

    @classmethod
    def for_array(cls, array: zarr.Array, store_root: str) -> StringChunks | None:
        from numcodecs import VLenUTF8, Zstd
        from zarr.codecs import VLenUTF8Codec

        meta = array.metadata
        if array.ndim != 1 or getattr(array, "shards", None):
            return None
        folder = os.path.join(store_root, *array.path.split("/"))
        if meta.zarr_format == 3:
            codecs = tuple(meta.codecs)
            if len(codecs) == 2 and isinstance(codecs[0], VLenUTF8Codec) and isinstance(codecs[1], ZstdCodec):
                zstd = Zstd(level=codecs[1].level, checksum=codecs[1].checksum)
                return cls(array, folder, lambda raw: bytes(zstd.encode(raw)))
            return None
        filters = tuple(meta.filters or ())
        if len(filters) == 1 and isinstance(filters[0], VLenUTF8) and meta.compressor is not None:
            compressor = meta.compressor
            return cls(array, folder, lambda raw: bytes(compressor.encode(raw)))
        return None

    def write(self, start: int, values: pa.Array) -> bool:
        """Rows [start, start + len(values)) as whole chunks (the last one may end where the array ends).
        False, having written nothing, for values zarr's path must take (nulls)."""
        if values.null_count:
            return False
        stop = start + len(values)
        if start % self.chunk or (stop % self.chunk and stop != self.array.shape[0]):
            raise SlabShapeError(f"array {self.array.path}: rows {start}:{stop} are not whole chunks")
        for at in range(0, len(values), self.chunk):
            part = values.slice(at, self.chunk)
            # a chunk holds chunk-shape items, past the array's end too (never read): empty ones
            raw = b"".join((struct.pack("<I", self.chunk), vlen_utf8_items(part),
                            bytes(4 * (self.chunk - len(part)))))
            key = self.array.metadata.encode_chunk_key(((start + at) // self.chunk,))
            path = os.path.join(self.folder, *key.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(self.compress(raw))
        return True


def vlen_utf8_items(values: pa.Array) -> bytes:
    """Each string's length (uint32, little-endian) then its UTF-8 bytes, for every value in order: the
    VLenUTF8 encoding without its leading item count."""
    import pyarrow.compute as pc

    if not len(values):
        return b""
    data = values.cast(pa.large_binary())
    lengths = pc.binary_length(data).to_numpy(zero_copy_only=False).astype("<u4")
    prefixes = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4), len(data), [None, pa.py_buffer(lengths.tobytes())])
    joined = pc.binary_join_element_wise(prefixes.cast(pa.large_binary()), data, pa.scalar(b"", pa.large_binary()))
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64, count=len(joined) + 1, offset=joined.offset * 8)
    return memoryview(joined.buffers()[2])[offsets[0] : offsets[-1]].tobytes()


class RawChunks:
    """Whole chunks of a 1-D array written from the bytes they hold before compression (shardstore's
    row-wise pieces, concatenated), outside zarr's codec pipeline but byte for byte in its format: numbers
    padded past the array's end with its fill value, strings with the VLenUTF8 item count first and empty
    items past the end, then the array's own compressor. `for_array` returns None for any array whose
    codecs are not the chains shardmerge creates (v3: bytes then blosc, or vlen-utf8 then zstd; v2: a
    compressor, with the VLenUTF8 filter for strings); those keep zarr's path. `write` compresses outside
    the GIL (blosc, zstd), so the merge runs several at once."""

    def __init__(self, array: zarr.Array, folder: str, compress: Callable[[np.ndarray], bytes], strings: bool):
        self.array, self.folder, self.compress, self.strings = array, folder, compress, strings
        self.chunk = array.chunks[0]
        self.dtype = None if strings else np.dtype(array.dtype).newbyteorder("<")
        meta = array.metadata
        fill = meta.fill_value
        self.fill = None if strings else np.full(1, fill if fill is not None else 0, dtype=self.dtype).tobytes()

    @classmethod
    def for_array(cls, array: zarr.Array, store_root: str) -> RawChunks | None:
        from numcodecs import Blosc, VLenUTF8, Zstd
        from zarr.codecs import BytesCodec, VLenUTF8Codec

        meta = array.metadata
        if array.ndim != 1 or getattr(array, "shards", None):
            return None
        folder = os.path.join(store_root, *array.path.split("/"))
        strings = array.dtype.kind in "OTU"
        if meta.zarr_format == 3:
            codecs = tuple(meta.codecs)
            if len(codecs) != 2:
                return None
            if strings and isinstance(codecs[0], VLenUTF8Codec) and isinstance(codecs[1], ZstdCodec):
                zstd = Zstd(level=codecs[1].level, checksum=codecs[1].checksum)
                return cls(array, folder, lambda raw: bytes(zstd.encode(raw)), True)
            if (not strings and isinstance(codecs[0], BytesCodec) and isinstance(codecs[1], BloscCodec)
                    and (codecs[0].endian is None or codecs[0].endian.value == "little")):
                blosc = codecs[1]._blosc_codec  # the numcodecs Blosc zarr itself encodes with (typesize set)
                return cls(array, folder, lambda raw: bytes(blosc.encode(raw)), False)
            return None
        filters, compressor = tuple(meta.filters or ()), meta.compressor
        if compressor is None or meta.order != "C" or not isinstance(compressor, Blosc | Zstd):
            return None
        if strings and len(filters) == 1 and isinstance(filters[0], VLenUTF8):
            return cls(array, folder, lambda raw: bytes(compressor.encode(raw)), True)
        if not strings and not filters:
            return cls(array, folder, lambda raw: bytes(compressor.encode(raw)), False)
        return None

    def write(self, index: int, parts: Sequence, n_items: int) -> tuple[str, list[int]]:
        """Chunk `index` from `parts` (bytes-likes, concatenated: its first `n_items` items; the chunk's
        rows past them lie past the array's end). Returns (its path relative to the array, [size, crc32])."""
        if n_items > self.chunk or (n_items < self.chunk and (index + 1) * self.chunk < self.array.shape[0]):
            raise SlabShapeError(f"array {self.array.path}: chunk {index} given {n_items} items, not whole")
        pad = self.chunk - n_items
        if self.strings:
            raw = b"".join((struct.pack("<I", self.chunk), *parts, bytes(4 * pad)))
            encoded = self.compress(np.frombuffer(raw, dtype=np.uint8))
        else:
            raw = b"".join((*parts, self.fill * pad))
            encoded = self.compress(np.frombuffer(raw, dtype=self.dtype))
        key = self.array.metadata.encode_chunk_key((index,))
        path = os.path.join(self.folder, *key.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(encoded)
        return key, [len(encoded), crc32(encoded)]


class RepeatedFiles:
    """Encoded storage files kept by what their bytes depend on, to write again where the same values recur.
    A shard's arrays that no source fills (the continuum, a mask none of its files has) hold the same values
    block after block: compressing one (1024, 3200) float32 block of NaN takes ~25 ms of Blosc, writing the
    kept bytes almost nothing. A file's bytes depend only on the values in it, the array's codecs, dtype, fill
    value and chunking, on the array's width (how many files a row of them is, how the last is padded) and
    on how many of their rows lie inside the array: `content_key` holds all of them, so a kept file is only
    ever written where zarr would have written the same bytes. Per process (a worker's shard tasks share
    it, and so do the ingests of one Python process), bounded, least recently used out first."""

    MAX_ENTRIES = 64
    MAX_ENTRY_BYTES = 1 << 20  # repeated content is nearly constant: it compresses to a few KiB

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple, dict[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def content_key(array: zarr.Array, n_rows: int, values_key: object) -> tuple:
        """What the bytes of a row of `n_rows`-row storage files of `array` depend on, with `values_key`
        standing for the values themselves (equal keys: equal values). Of the shape, the rows do not count
        (they differ from shard to shard), `n_rows` does, and so does everything past the first axis."""
        meta = {k: v for k, v in array.metadata.to_dict().items()
                if k not in ("shape", "attributes", "dimension_names")}
        return json.dumps(meta, sort_keys=True, default=str), tuple(array.shape[1:]), n_rows, values_key

    def write(self, array: zarr.Array, folder: str, row: int, key: tuple) -> bool:
        """Write the files kept under `key` as storage-file row `row` of `array` (its files under `folder`);
        False, writing nothing, when none are kept."""
        with self._lock:
            files = self._entries.get(key)
            if files is not None:
                self._entries.move_to_end(key)
        if files is None:
            return False
        for col, data in files.items():
            path = _storage_file(array, folder, (row, col))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        return True

    def keep(self, array: zarr.Array, folder: str, row: int, key: tuple) -> None:
        """Keep, under `key`, the files zarr has just written as storage-file row `row` of `array`."""
        files: dict[int, bytes] = {}
        for col in range(storage_grid(array)[1]):
            try:
                with open(_storage_file(array, folder, (row, col)), "rb") as f:
                    files[col] = f.read(self.MAX_ENTRY_BYTES + 1)
            except FileNotFoundError:  # not written (a fill-value chunk zarr skipped): nothing to repeat
                return
            if len(files[col]) > self.MAX_ENTRY_BYTES:
                return
        with self._lock:
            self._entries[key] = files
            self._entries.move_to_end(key)
            while len(self._entries) > self.MAX_ENTRIES:
                self._entries.popitem(last=False)


def _storage_file(array: zarr.Array, folder: str, index: tuple[int, ...]) -> str:
    return os.path.join(folder, *array.metadata.encode_chunk_key(index).split("/"))


class BlockChunks:
    """Whole chunk files of a 2-D array written from a block of whole rows, outside zarr's codec pipeline but
    byte for byte in its format: each chunk cut from the block (padded with the fill value past the array's
    edges, as zarr pads), then the array's own compressor, called as zarr calls it. zarr's path costs ~2.5x
    the compressor's own time for a (1024, 3200) float32 chunk (copies into its buffers, fresh pages, a
    temporary file and a rename per chunk): on a plates-dominated corpus that was a fifth of the shard
    task. The chunks of a block are compressed on `encoders` (the compressor releases the GIL). `for_array`
    returns None for any array whose codecs are not the chains shardmerge creates (v3: bytes then blosc; v2:
    a Blosc or Zstd compressor), or that is sharded (Zarr v3 shards keep zarr's path)."""

    def __init__(self, array: zarr.Array, folder: str, compress: Callable[[np.ndarray], bytes],
                 as_bytes: bool) -> None:
        self.array, self.folder, self.compress, self.as_bytes = array, folder, compress, as_bytes
        self.chunks = tuple(array.chunks)
        self.dtype = np.dtype(array.dtype).newbyteorder("<") if as_bytes else np.dtype(array.dtype)
        fill = array.metadata.fill_value
        self.fill = fill if fill is not None else 0

    @classmethod
    def for_array(cls, array: zarr.Array, store_root: str) -> BlockChunks | None:
        from numcodecs import Blosc, Zstd
        from zarr.codecs import BytesCodec

        meta = array.metadata
        if array.ndim != 2 or getattr(array, "shards", None) or np.dtype(array.dtype).kind not in "fiu":
            return None
        folder = os.path.join(store_root, *array.path.split("/"))
        if meta.zarr_format == 3:
            codecs = tuple(meta.codecs)
            if (len(codecs) == 2 and isinstance(codecs[0], BytesCodec) and isinstance(codecs[1], BloscCodec)
                    and (codecs[0].endian is None or codecs[0].endian.value == "little")):
                blosc = codecs[1]._blosc_codec  # what zarr encodes with, given the chunk's bytes as uint8
                return cls(array, folder, lambda chunk: bytes(blosc.encode(chunk)), True)
            return None
        compressor = meta.compressor
        if meta.filters or meta.order != "C" or not isinstance(compressor, Blosc | Zstd):
            return None
        return cls(array, folder, lambda chunk: bytes(compressor.encode(chunk)), False)

    def write(self, start: int, block: np.ndarray, encoders: Executor) -> None:
        """array[start : start + len(block)] = block, as whole chunk rows (the last may end where the array
        ends), each chunk compressed on `encoders`; returns once every file is written."""
        rows, cols = self.chunks
        n, width = block.shape
        stop = start + n
        if (start % rows or (stop % rows and stop != self.array.shape[0]) or width != self.array.shape[1]
                or stop > self.array.shape[0]):
            raise SlabShapeError(f"array {self.array.path}: block of shape {block.shape} at row {start} is not "
                                 f"whole chunk rows of an array of shape {self.array.shape}")
        pieces = [(r, c) for r in range(0, n, rows) for c in range(0, width, cols)]
        for path in {os.path.dirname(self._path(start, r, c)) for r, c in pieces}:
            os.makedirs(path, exist_ok=True)
        writes = [encoders.submit(self._write_one, start, block, r, c) for r, c in pieces]
        wait(writes)  # every one finished before a failure is raised: none may write into a removed partial
        for done in writes:
            done.result()

    def _path(self, start: int, r: int, c: int) -> str:
        return _storage_file(self.array, self.folder, ((start + r) // self.chunks[0], c // self.chunks[1]))

    def _write_one(self, start: int, block: np.ndarray, r: int, c: int) -> None:
        rows, cols = self.chunks
        part = block[r : r + rows, c : c + cols]
        if part.shape != self.chunks:  # an edge chunk: zarr encodes the whole chunk, padded with the fill value
            whole = np.full(self.chunks, self.fill, dtype=self.dtype)
            whole[: part.shape[0], : part.shape[1]] = part
            part = whole
        chunk = np.ascontiguousarray(part, dtype=self.dtype)
        encoded = self.compress(chunk.view(np.uint8).reshape(-1) if self.as_bytes else chunk)
        with open(self._path(start, r, c), "wb") as f:
            f.write(encoded)


_ENCODERS: list[ThreadPoolExecutor] = []
_ENCODERS_LOCK = threading.Lock()


def encoders() -> ThreadPoolExecutor:
    """The threads this process compresses whole chunks on (BlockChunks): two, made on first use (in a
    worker, after its fork), kept for the process's life."""
    with _ENCODERS_LOCK:
        if not _ENCODERS:
            _ENCODERS.append(ThreadPoolExecutor(max_workers=2, thread_name_prefix="shardmerge-encode"))
        return _ENCODERS[0]
