"""Row-wise chunks written from the shards' pieces (bytes before compression, shardstore.rowwise_piece)
must be, byte for byte, the chunk files zarr writes from the values, whatever the pieces' alignment with
the chunks, and a damaged piece file must be refused."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest
import zarr

from shardmerge.config import CodecConfig
from shardmerge.errors import ShardError
from shardmerge.merge import _check_rowwise, _Piece, _pieces, _read_rows, _RowWiseWriter
from shardmerge.shardstore import ROWWISE_FILE, SHARD_FORMAT, manifest_matches, rowwise_piece, write_rowwise_pieces
from shardmerge.zarrio import RawChunks, array_spec, create_arrays

COLUMNS = {"name": "str", "ra": "float64", "hdu": "int64"}


def _values(n: int) -> dict[str, pa.Array]:
    rng = np.random.default_rng(7)
    return {"name": pa.array([f"spec-{i}-" + "é" * int(rng.integers(0, 5)) for i in range(n)]),
            "ra": pa.array(rng.normal(size=n)), "hdu": pa.array(rng.integers(0, 9, size=n))}


def _arrays(root: str, fmt: int, n: int, chunk: int) -> dict[str, zarr.Array]:
    group = zarr.open_group(root, mode="w", zarr_format=fmt)
    made = create_arrays([array_spec(group, k, shape=(n,), chunks=(chunk,), dtype=str if d == "str" else d,
                                     codec=CodecConfig(), zarr_format=fmt) for k, d in COLUMNS.items()])
    return dict(zip(COLUMNS, made, strict=True))


def _chunk_files(root: str) -> dict[str, bytes]:
    out = {}
    for name in COLUMNS:
        for dirpath, _, files in os.walk(os.path.join(root, name)):
            for f in files:
                if f not in ("zarr.json", ".zarray", ".zattrs"):
                    full = os.path.join(dirpath, f)
                    with open(full, "rb") as fh:
                        out[os.path.relpath(full, root)] = fh.read()
    return out


@pytest.mark.parametrize("fmt", [2, 3])
def test_chunks_from_pieces_are_the_bytes_zarr_writes(tmp_path, fmt):
    n, chunk = 23, 8
    values = _values(n)
    by_zarr = _arrays(str(tmp_path / "zarr.zarr"), fmt, n, chunk)
    for k, a in by_zarr.items():
        a[:] = values[k].to_numpy(zero_copy_only=False)
    root = str(tmp_path / "pieces.zarr")
    arrays = _arrays(root, fmt, n, chunk)
    writer = _RowWiseWriter(arrays, chunk, root)
    assert set(writer.raw) == set(COLUMNS)
    for lo, hi in ((0, 3), (3, 13), (13, 14), (14, 23)):  # shards that do not line up with the chunks
        pieces = {}
        for k, d in COLUMNS.items():
            items, offsets = rowwise_piece(values[k][lo:hi], d)
            pieces[k] = _Piece(hi - lo, memoryview(items), None if offsets is None else np.frombuffer(offsets, "<i8"))
        if lo == 13:  # a shard that gave no piece of `name`: that chunk goes from values
            del pieces["name"]
        table = pa.table({k: v[lo:hi] for k, v in values.items()})
        writer.add(hi - lo, pieces, lambda table=table: table)
    writer.close()
    expected, found = _chunk_files(str(tmp_path / "zarr.zarr")), _chunk_files(root)
    assert len(expected) == 3 * 3 and found == expected
    assert len(writer.checksums) == 3 * 3 - 1  # one chunk of `name` written from values
    assert list(arrays["name"][:]) == values["name"].to_pylist()


def test_a_column_with_nulls_has_no_piece_and_numbers_are_little_endian():
    assert rowwise_piece(pa.array(["a", None]), "str") is None
    assert rowwise_piece(pa.array([1.0, None]), "float64") is None
    items, offsets = rowwise_piece(pa.chunked_array([pa.array(["ab"]), pa.array(["", "c"])]), "str")
    assert items == b"\2\0\0\0ab\0\0\0\0\1\0\0\0c" and np.frombuffer(offsets, "<i8").tolist() == [0, 6, 10, 15]
    assert rowwise_piece(pa.array([1, 2]), "float64") == (np.array([1.0, 2.0], "<f8").tobytes(), None)


def test_other_codecs_keep_zarrs_path(tmp_path):
    group = zarr.open_group(str(tmp_path / "o.zarr"), mode="w")
    other = group.create_array("o", shape=(10,), chunks=(4,), dtype="float64", compressors=[zarr.codecs.ZstdCodec()])
    sharded = group.create_array("s", shape=(16,), chunks=(4,), shards=(8,), dtype="float64")
    assert RawChunks.for_array(other, str(tmp_path / "o.zarr")) is None
    assert RawChunks.for_array(sharded, str(tmp_path / "o.zarr")) is None


def test_a_damaged_piece_file_is_refused_and_its_shard_removed(tmp_path):
    shard = tmp_path / "shard.zarr"
    shard.mkdir()
    table = pa.table(_values(5))
    listed, index_rows = write_rowwise_pieces(str(shard), table, COLUMNS)
    assert index_rows is None
    data = (shard / ROWWISE_FILE).read_bytes()
    import zlib

    manifest = {"rowwise": listed, "files": {ROWWISE_FILE: [len(data), zlib.crc32(data)]}}
    writer = _RowWiseWriter(_arrays(str(tmp_path / "s.zarr"), 3, 5, 4), 4, str(tmp_path / "s.zarr"))
    assert set(_pieces(str(shard), manifest, data, 5, writer)) == set(COLUMNS)
    _check_rowwise(str(shard), manifest, _read_rows(str(shard)))  # summed where it is read
    (shard / ROWWISE_FILE).write_bytes(bytes([data[0] ^ 1]) + data[1:])
    with pytest.raises(ShardError, match="does not match its manifest checksum"):
        _check_rowwise(str(shard), manifest, _read_rows(str(shard)))
    assert not shard.exists()
    with pytest.raises(ShardError, match="does not hold 4 rows"):  # a piece of the wrong length
        _pieces(str(shard), manifest, data, 4, writer)


def test_a_shard_of_the_former_format_is_not_reused():
    class Shard:
        key, row_start, row_stop = "k", 0, 4

    manifest = {"key": "k", "row_start": 0, "row_stop": 4, "files": {}}
    assert not manifest_matches(manifest, Shard())
    assert manifest_matches({**manifest, "format": SHARD_FORMAT}, Shard())


def test_the_index_rows_travel_in_rowwise_bin_after_the_pieces(tmp_path):
    """The index columns written as an Arrow IPC stream after the pieces are the table's, values and types;
    a manifest that names no stream (a shard of before) or one outside the file gives none (rows.parquet)."""
    from shardmerge.shardstore import read_index_rows

    shard = tmp_path / "shard.zarr"
    shard.mkdir()
    table = pa.table({**_values(6), "row": pa.array(np.arange(10, 16)), "object": pa.array(["a", None] * 3)})
    listed, index_rows = write_rowwise_pieces(str(shard), table, COLUMNS, ("row", "name", "object"))
    data = (shard / ROWWISE_FILE).read_bytes()
    ends = [max(at + size, off_at + off_size) for at, size, off_at, off_size in listed.values()]
    assert index_rows[0] == max(ends) and index_rows[0] + index_rows[1] == len(data)  # last, after every piece
    back = read_index_rows(data, index_rows)
    assert back.equals(table.select(["row", "name", "object"]))
    assert back.schema.equals(table.select(["row", "name", "object"]).schema)
    assert read_index_rows(data, None) is None
    assert read_index_rows(data, [index_rows[0], len(data)]) is None  # runs past the file
    assert read_index_rows(data, ["0", 5]) is None
