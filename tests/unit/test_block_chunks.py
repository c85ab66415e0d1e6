"""zarrio.BlockChunks writes a 2-D array's chunk files itself: they must be the bytes zarr writes, edge
chunks padded as zarr pads them, in Zarr v2 and v3, and it must leave to zarr what it cannot match."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import zarr
from zarr.codecs import ZstdCodec

from shardmerge.config import CodecConfig
from shardmerge.errors import SlabShapeError
from shardmerge.zarrio import BlockChunks, array_spec, create_arrays
from tests.storecmp import chunk_files

pytestmark = pytest.mark.timeout(60)


def _pair(tmp_path, fmt: int, shape, chunks, dtype, shards=None):
    made = []
    for name in ("by_zarr", "direct"):
        group = zarr.open_group(str(tmp_path / name), mode="w", zarr_format=fmt)
        made.append(create_arrays([array_spec(group, "a", shape=shape, chunks=chunks, dtype=dtype,
                                              codec=CodecConfig(), zarr_format=fmt, shards=shards)])[0])
    return made


def _values(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        v = rng.normal(size=shape).astype(dtype)
        v[:, -3:] = np.nan  # padding past a spectrum's end
        return v
    return rng.integers(0, 4, size=shape).astype(dtype)


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64", "uint32"])
@pytest.mark.parametrize(("shape", "chunks"), [
    ((24, 40), (8, 40)),  # whole chunks
    ((21, 40), (8, 16)),  # a last chunk row of 5 rows, a last chunk column of 8 pixels
])
def test_the_files_are_the_bytes_zarr_writes(tmp_path, fmt, dtype, shape, chunks):
    by_zarr, direct = _pair(tmp_path, fmt, shape, chunks, dtype)
    writer = BlockChunks.for_array(direct, str(tmp_path / "direct"))
    assert writer is not None
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, shape[0], chunks[0]):
            block = _values((min(chunks[0], shape[0] - start), shape[1]), dtype, start)
            by_zarr[start : start + len(block)] = block
            writer.write(start, block, pool)
    assert chunk_files(tmp_path / "direct") == chunk_files(tmp_path / "by_zarr")
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "direct" / "a"), mode="r")[:], by_zarr[:])


def test_a_block_that_is_not_whole_chunk_rows_is_refused_before_any_file(tmp_path):
    _, direct = _pair(tmp_path, 3, (24, 40), (8, 40), "float32")
    writer = BlockChunks.for_array(direct, str(tmp_path / "direct"))
    with ThreadPoolExecutor(1) as pool:
        for start, block in ((4, np.zeros((8, 40), np.float32)),  # not at a chunk row
                             (0, np.zeros((5, 40), np.float32)),  # ends inside a chunk row
                             (0, np.zeros((8, 39), np.float32))):  # not the array's width
            with pytest.raises(SlabShapeError):
                writer.write(start, block, pool)
    assert not os.path.exists(tmp_path / "direct" / "a" / "c")


def test_what_it_cannot_match_is_left_to_zarr(tmp_path):
    _, sharded = _pair(tmp_path, 3, (32, 40), (8, 40), "float32", shards=(16, 40))
    assert BlockChunks.for_array(sharded, str(tmp_path / "direct")) is None
    group = zarr.open_group(str(tmp_path / "other"), mode="w")
    zstd = group.create_array("z", shape=(8, 8), chunks=(4, 8), dtype="float32", compressors=[ZstdCodec()])
    assert BlockChunks.for_array(zstd, str(tmp_path / "other")) is None
    one_d = group.create_array("d", shape=(8,), chunks=(4,), dtype="float32")
    assert BlockChunks.for_array(one_d, str(tmp_path / "other")) is None


def test_a_failed_chunk_write_is_raised_only_once_every_other_write_has_finished(tmp_path, monkeypatch):
    # the shard task removes its partial store on a failure: no encode thread may still be writing into it
    _, direct = _pair(tmp_path, 3, (8, 40), (8, 8), "float32")
    writer = BlockChunks.for_array(direct, str(tmp_path / "direct"))
    finished = []

    def one(start, block, r, c):
        if c == 0:
            raise OSError(28, "No space left on device")
        time.sleep(0.05)  # longer under load: the wait below must cover it whatever it takes
        finished.append(c)

    monkeypatch.setattr(writer, "_write_one", one)
    with ThreadPoolExecutor(2) as pool, pytest.raises(OSError, match="No space"):
        writer.write(0, np.zeros((8, 40), np.float32), pool)
    assert sorted(finished) == [8, 16, 24, 32]
