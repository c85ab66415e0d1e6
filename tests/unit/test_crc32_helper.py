"""durable.crc32: the one crc32 of file bytes (manifests, the merge's checks, the gate). It must give
zlib.crc32's value whichever implementation runs, or manifests written by one process would not match
files checked by another."""

from __future__ import annotations

import random
import sys
import zlib

import pytest

from shardmerge import durable


def _buffers() -> list[bytes]:
    rng = random.Random(28)
    sizes = [0, 1, 3, 7, 64, 1000, 11_000, 65_537, 1 << 20]
    return [rng.randbytes(n) for n in sizes] + [bytes(5000), b"\xff" * 4099]


@pytest.mark.parametrize("data", _buffers(), ids=lambda b: str(len(b)))
def test_crc32_equals_zlib(data: bytes) -> None:
    assert durable.crc32(data) == zlib.crc32(data)
    assert durable.crc32(memoryview(data)) == zlib.crc32(data)
    assert durable.crc32(bytearray(data), 12345) == zlib.crc32(data, 12345)


def test_crc32_incremental_equals_whole() -> None:
    """Chunked use (file_checksum reads a file in blocks) gives the whole buffer's value, at any cut."""
    rng = random.Random(7)
    data = rng.randbytes(300_000)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 12)))
        crc = 0
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            crc = durable.crc32(memoryview(data)[a:b], crc)
        assert crc == zlib.crc32(data)


def test_file_checksum_equals_zlib(tmp_path) -> None:
    data = random.Random(3).randbytes((1 << 20) * 2 + 17)  # more than one of file_checksum's blocks
    path = tmp_path / "chunk"
    path.write_bytes(data)
    assert durable.file_checksum(str(path)) == [len(data), zlib.crc32(data)]


def test_uses_isal_where_it_imports() -> None:
    pytest.importorskip("isal")
    from isal import isal_zlib

    assert durable._CRC32 is isal_zlib.crc32


def test_falls_back_to_zlib_without_isal(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "isal.isal_zlib", None)  # import raises ImportError
    assert durable._crc32_function() is zlib.crc32


def test_file_checksum_on_threads_equals_zlib(tmp_path) -> None:
    """Each thread reads into a buffer of its own: checksums taken at once on several threads stay right."""
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(11)
    blobs = [rng.randbytes(rng.randint(0, 3 << 20)) for _ in range(16)]
    paths = []
    for i, blob in enumerate(blobs):
        paths.append(tmp_path / f"f{i}")
        paths[-1].write_bytes(blob)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda p: durable.file_checksum(str(p)), paths * 3))
    assert got == [[len(b), zlib.crc32(b)] for b in blobs] * 3
