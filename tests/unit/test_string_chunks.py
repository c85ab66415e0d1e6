"""The merge writes row-wise string chunks from Arrow strings outside zarr's codec pipeline
(`zarrio.StringChunks`): each file must be byte for byte what zarr writes for the same values, in Zarr v3
and v2, the last chunk (past the array's end) included; anything else stays on zarr's path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from numcodecs import VLenUTF8

from shardmerge.config import CodecConfig
from shardmerge.errors import SlabShapeError
from shardmerge.zarrio import StringChunks, array_spec, create_arrays, vlen_utf8_items, write_slab

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)  # any UTF-8, empty too


@given(values=st.lists(_TEXT, max_size=40))
@settings(max_examples=200, deadline=None)
def test_items_are_numcodecs_vlen_utf8_without_the_count(values):
    encoded = bytes(VLenUTF8().encode(np.array(values, dtype=object)))
    assert vlen_utf8_items(pa.array(values, pa.string())) == encoded[4:]
    sliced = pa.array(["x", *values, "y"], pa.string()).slice(1, len(values))  # an offset into the buffers
    assert vlen_utf8_items(sliced) == encoded[4:]


def _files(root: str) -> dict[str, bytes]:
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, root)] = Path(path).read_bytes()
    return out


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_chunks_are_the_files_zarr_writes(tmp_path, zarr_format):
    """10 values in chunks of 4: two whole chunks and one that runs past the array's end."""
    values = ["ünïcode", "", "spec-0266-51602-0001.fits", "a", "b" * 300, "x", "", "y", "z", "€"]
    stores = {}
    for how in ("zarr", "arrow"):
        root = str(tmp_path / f"{how}.zarr")
        group = zarr.open_group(root, mode="w", zarr_format=zarr_format)
        (array,) = create_arrays([array_spec(group, "s", shape=(10,), chunks=(4,), dtype=str, codec=CodecConfig(),
                                             zarr_format=zarr_format)])
        if how == "zarr":
            write_slab(array, 0, np.array(values, dtype=object))
        else:
            chunks = StringChunks.for_array(array, root)
            assert chunks is not None
            assert chunks.write(0, pa.array(values[:8], pa.string()))
            assert chunks.write(8, pa.array(values[8:], pa.string()))
        stores[how] = _files(root)
    assert stores["arrow"] == stores["zarr"] and len(stores["zarr"]) >= 4
    assert list(zarr.open_array(str(tmp_path / "arrow.zarr" / "s"), mode="r")[:]) == values


def test_rows_that_are_not_whole_chunks_are_refused_and_nulls_left_to_zarr(tmp_path):
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    (array,) = create_arrays([array_spec(group, "s", shape=(10,), chunks=(4,), dtype=str, codec=CodecConfig(),
                                         zarr_format=3)])
    chunks = StringChunks.for_array(array, str(tmp_path / "s.zarr"))
    with pytest.raises(SlabShapeError, match="not whole chunks"):
        chunks.write(2, pa.array(["a", "b"]))
    with pytest.raises(SlabShapeError, match="not whole chunks"):
        chunks.write(0, pa.array(["a", "b", "c", "d", "e"]))  # ends inside a chunk, not at the array's end
    assert chunks.write(0, pa.array(["a", None, "c", "d"])) is False
    assert not os.path.exists(tmp_path / "s.zarr" / "s" / "c")


def test_arrays_it_does_not_know_keep_zarrs_path(tmp_path):
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    numbers = group.create_array("n", shape=(10,), chunks=(4,), dtype="float64")
    two_d = group.create_array("t", shape=(4, 4), chunks=(2, 2), dtype=str)
    other_codec = group.create_array("o", shape=(10,), chunks=(4,), dtype=str,
                                     compressors=[zarr.codecs.BloscCodec()])
    for array in (numbers, two_d, other_codec):
        assert StringChunks.for_array(array, str(tmp_path / "s.zarr")) is None


def test_the_merge_row_writer_takes_arrow_strings_and_falls_back_to_zarr_for_nulls(tmp_path):
    """Row-wise values arrive as the shards' Arrow tables, in pieces that do not line up with chunks."""
    from shardmerge.merge import _RowWiseWriter

    root = str(tmp_path / "m.zarr")
    group = zarr.open_group(root, mode="w")
    names, ra = create_arrays([array_spec(group, n, shape=(10,), chunks=(4,), dtype=d, codec=CodecConfig(),
                                          zarr_format=3) for n, d in (("name", str), ("ra", "float64"))])
    writer = _RowWiseWriter({"name": names, "ra": ra}, 4, root)
    assert set(writer.strings) == {"name"}
    rows = [f"s{i}" for i in range(10)]
    rows[9] = None  # in the last chunk: that chunk goes through zarr
    for lo, hi in ((0, 3), (3, 9), (9, 10)):  # the last piece all null: typed null, not string
        table = pa.table({"name": pa.array(rows[lo:hi]), "ra": pa.array(np.arange(lo, hi) * 1.5)})
        writer.add(hi - lo, {}, lambda table=table: table)  # no pieces (shardstore.rowwise_piece): the values
    writer.close()
    assert list(names[:8]) == rows[:8] and np.array_equal(ra[:], np.arange(10) * 1.5)
    assert names[8] == "s8"
