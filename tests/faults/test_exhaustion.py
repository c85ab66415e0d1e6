"""No input can exhaust a node: inputs built to (a header whose byte count wraps int64, a spectrum of 2**29
pixels in a sparse file, gzip streams that inflate to GiB past or within what their headers announce) are
refused or read within a bounded memory, in a bounded time, with a named cause.

The bombs are made small on disk: sparse files (truncate), and gzip streams written without ever holding
what they inflate to (`gzip_bomb`). Each run is the real CLI in a child process under an address-space
limit (`AS_LIMIT`: a run that tries to hold a bomb fails instead of swapping the machine) and a CPU
limit (a loop over 2**52 rows ends by itself), and its peak RSS is read from the kernel (wait4)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from shardmerge.readers.inflate import TRAIL_SAMPLE
from shardmerge.testing.spectra import make_wcs1d
from tests.helpers import CliResult, run_cli

# the child's address space: a safety net that makes a run trying to hold a bomb fail rather than swap the
# machine (a small ingest maps ~1.5 GiB, mostly thread arenas pyarrow reserves); RSS_BOUND is the assertion
AS_LIMIT = 4 * 2**30
CPU_LIMIT_S = 120
RSS_BOUND = 400 * 2**20  # a small ingest peaks at ~130 MiB here; every bomb inflates to GiB
BLOCK = 2880
ZERO_MIB = bytes(1 << 20)

_BOUNDED = ("import resource, sys; lim, cpu = int(sys.argv.pop(1)), int(sys.argv.pop(1)); "
            "resource.setrlimit(resource.RLIMIT_AS, (lim, lim)); resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu)); "
            "sys.argv[0] = 'shardmerge'; from shardmerge.__main__ import main; main()")


def run_bounded(*args: object, limit: int = AS_LIMIT) -> tuple[CliResult, int]:
    """`shardmerge ARGS` as its own process under AS_LIMIT and CPU_LIMIT_S: its result and peak RSS (bytes)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-c", _BOUNDED, str(limit), str(CPU_LIMIT_S), *map(str, args)],
                                stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return CliResult(proc.returncode, text), usage.ru_maxrss * 1024


def card(key: str, value: object) -> bytes:
    if isinstance(value, str):
        return f"{key:<8}= '{value:<8}'".ljust(80).encode()
    return f"{key:<8}= {'T' if value is True else value:>20}".ljust(80).encode()


def header(*cards: tuple[str, object], primary: bool = True) -> bytes:
    first = [("SIMPLE", True)] if primary else [("XTENSION", "IMAGE")]
    wcs = [("CRVAL1", 4000.0), ("CDELT1", 1.0), ("CRPIX1", 1.0)]
    body = b"".join(card(k, v) for k, v in [*first, *cards, *wcs]) + b"END".ljust(80)
    return body.ljust(-(-len(body) // BLOCK) * BLOCK, b" ")


def image_header(*axes: int, bitpix: int = -32, extra: tuple = ()) -> bytes:
    """A primary image header with a linear WCS on axis 1 (wcs-1d / image-2d recognise it)."""
    return header(("BITPIX", bitpix), ("NAXIS", len(axes)), *((f"NAXIS{i}", n) for i, n in enumerate(axes, 1)),
                  *extra)


def hdu_end(data_bytes: int) -> int:
    """Where a primary HDU of one header block and `data_bytes` of data ends, padding included."""
    return BLOCK + -(-data_bytes // BLOCK) * BLOCK


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def small_spectrum(n_pix: int = 100) -> bytes:
    """A whole, valid 1-D spectrum file's bytes."""
    return image_header(n_pix) + padded(np.linspace(1, 2, n_pix, dtype=">f4").tobytes())


def sparse_file(path: Path, head: bytes, size: int) -> Path:
    """`head`, then zeros up to `size` bytes, none of them on disk (a hole)."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def gzip_bomb(path: Path, *parts: bytes | int) -> Path:
    """A gzip file of `parts` (bytes, or an int: that many MiB of zeros), written without ever holding the
    inflated stream: after a full flush, each MiB of zeros deflates to the same ~1 KB, written again. The
    trailer's CRC and size are the real ones."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = size = 0
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
        for part in parts:
            if isinstance(part, int):
                f.write(deflate.flush(zlib.Z_FULL_FLUSH))
                chunk = deflate.compress(ZERO_MIB) + deflate.flush(zlib.Z_FULL_FLUSH)
                for _ in range(part):
                    f.write(chunk)
                    crc = zlib.crc32(ZERO_MIB, crc)
                size += part << 20
            else:
                f.write(deflate.compress(part))
                crc, size = zlib.crc32(part, crc), size + len(part)
        f.write(deflate.flush(zlib.Z_FULL_FLUSH) + b"\x03\x00" + struct.pack("<II", crc, size & 0xFFFFFFFF))
    return path


def test_gzip_bomb_is_a_valid_gzip_stream(tmp_path):
    """The helper's streams are what they claim (checked on a small one, inflated whole)."""
    import gzip

    p = gzip_bomb(tmp_path / "b.gz", b"abc", 2, b"xyz")
    assert gzip.decompress(p.read_bytes()) == b"abc" + bytes(2 << 20) + b"xyz"
    assert p.stat().st_size < 4096


# -- 1. header arithmetic ---------------------------------------------------------------------------------

@pytest.mark.timeout(120)
@pytest.mark.parametrize("path_kind", ["fast", "astropy"])
@pytest.mark.parametrize("command", ["plan", "ingest"])
def test_a_header_whose_byte_count_wraps_int64_is_truncated(tmp_path, command, path_kind):
    """NAXIS1 = 4096, NAXIS2 = 2**52 float32 is 2**66 bytes (0 in int64): the file of 2880 bytes is truncated,
    said from the header alone, without a loop over its rows (it hung, RSS growing). BSCALE sends the file to
    astropy, which says only "Empty or corrupt" of it: the verdict is the same."""
    extra = (("BSCALE", 1.0),) if path_kind == "astropy" else ()
    bomb = tmp_path / "wrap.fits"
    bomb.write_bytes(image_header(4096, 2**52, extra=extra))
    out = ["-o", tmp_path / "out.zarr", "--scratch", tmp_path / "s"] if command == "ingest" else []
    r, rss = run_bounded(command, bomb, *out, "--workers", "0")
    assert r.exit_code == 3, r
    assert f"{bomb}: truncated: HDU 0 ends at byte {hdu_end(4096 * 2**52 * 4)}, the file has 2880" in r.output, r
    assert rss < RSS_BOUND, rss


# -- 2. the pixel limit ---------------------------------------------------------------------------------

@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["plan", "ingest"])
def test_a_spectrum_past_max_pixels_is_refused_before_it_is_read(tmp_path, command):
    """A sparse 2 GiB file holding one spectrum of 2**29 pixels (whole: not truncated) reached 12.7 GB RSS:
    it is refused from its header, naming the file and the option that raises the limit."""
    n = 2**29
    bomb = sparse_file(tmp_path / "long.fits", image_header(n), hdu_end(4 * n))
    out = ["-o", tmp_path / "out.zarr", "--scratch", tmp_path / "s"] if command == "ingest" else []
    r, rss = run_bounded(command, bomb, *out, "--workers", "0")
    assert r.exit_code == 3, r
    assert (f"{bomb}: HDU 0 holds an image {n} pixels wide (NAXIS1): spectra longer than 16777216 pixels are "
            "refused (--max-pixels N raises the limit)") in r.output, r
    assert rss < RSS_BOUND, rss


@pytest.mark.timeout(120)
def test_a_table_of_more_rows_than_max_pixels_is_refused_from_its_header(tmp_path):
    """A table of a pixel a row (table-1d, SDSS coadds) is a spectrum as long as its rows: a sparse 512 MiB
    table of 2**26 rows is refused without its wavelength column being read."""
    rows = 2**26
    table = b"".join(card(k, v) for k, v in [
        ("XTENSION", "BINTABLE"), ("BITPIX", 8), ("NAXIS", 2), ("NAXIS1", 8), ("NAXIS2", rows), ("PCOUNT", 0),
        ("GCOUNT", 1), ("TFIELDS", 2), ("TTYPE1", "WAVELENGTH"), ("TFORM1", "E"), ("TTYPE2", "FLUX"),
        ("TFORM2", "E")]) + b"END".ljust(80)
    head = header(("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True)) + table.ljust(BLOCK, b" ")
    bomb = sparse_file(tmp_path / "table.fits", head, len(head) + -(-8 * rows // BLOCK) * BLOCK)
    r, rss = run_bounded("plan", bomb, "--workers", "0")
    assert r.exit_code == 3, r
    assert f"{bomb}: HDU 1 holds a table of {rows} rows: spectra longer than 16777216 pixels" in r.output, r
    assert rss < RSS_BOUND, rss


@pytest.mark.timeout(60)
def test_max_pixels_is_an_option_of_plan_and_ingest(tmp_path):
    """--max-pixels reaches the scan of both commands: 5000 pixels pass by default and under
    --max-pixels 5000, and are refused under --max-pixels 4096 (exit 3, or left out with skip)."""
    spec = make_wcs1d(tmp_path / "in" / "s.fits", n_pix=5000)
    assert run_cli("plan", spec, "--workers", "0").exit_code == 0
    assert run_cli("plan", spec, "--workers", "0", "--max-pixels", "5000").exit_code == 0
    r = run_cli("plan", spec, "--workers", "0", "--max-pixels", "4096")
    assert r.exit_code == 3 and f"{spec}: HDU 0 holds an image 5000 pixels wide" in r.output, r
    make_wcs1d(tmp_path / "in" / "t.fits", n_pix=4000)
    report = tmp_path / "report.json"
    r = run_cli("ingest", tmp_path / "in", "-o", tmp_path / "out.zarr", "--scratch", tmp_path / "s", "--workers",
                "0", "--max-pixels", "4096", "--on-bad-file", "skip", "--report", report)
    assert r.exit_code == 0, r
    skipped = json.loads(report.read_text())["skipped_files"]
    assert [s["path"] for s in skipped] == [str(spec)] and "--max-pixels" in skipped[0]["reason"], skipped


# -- 3. gzip'd inputs -------------------------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_a_gzip_stream_going_on_past_its_headers_is_not_inflated(tmp_path):
    """One valid 100-pixel spectrum, then 3 GiB of zeros in the same gzip stream (3 MB on disk): that drove an
    ingest past 6 GiB. Trailing zeros are what a plain file may end with too (ignored): the ingest publishes
    the spectrum, inflating only the headers' data and a sample of what follows."""
    bomb = gzip_bomb(tmp_path / "trail.fits.gz", small_spectrum(), 3 * 1024)
    assert bomb.stat().st_size < 8 * 2**20
    r, rss = run_bounded("ingest", bomb, "-o", tmp_path / "out.zarr", "--scratch", tmp_path / "s", "--workers", "0")
    assert r.exit_code == 0, r
    assert "1 spectra x 100 pixels" in r.output, r
    assert rss < RSS_BOUND, rss


def _scan_verdict(path: Path) -> str:
    from shardmerge.errors import BadFileError
    from shardmerge.headers import load_header_rules
    from shardmerge.scan import scan_file

    try:
        return "ok: " + ", ".join(scan_file(str(path), None, load_header_rules()).notes)
    except BadFileError as exc:
        return "bad: " + exc.reason


@pytest.mark.timeout(120)
@pytest.mark.parametrize("tail", [b"xyz" * 1000, b"Q" * BLOCK], ids=["partial-block", "block"])
def test_trailing_bytes_of_a_gzip_stream_are_judged_as_a_plain_files(tmp_path, tail):
    """Bytes that are not an HDU after the last one: the gzip'd file, whatever follows for GiB, gets the
    verdict the plain file of its first TRAIL_SAMPLE trailing bytes gets (an oddity, or damage)."""
    sample = (tail + bytes(TRAIL_SAMPLE))[:TRAIL_SAMPLE]
    plain = tmp_path / "plain.fits"
    plain.write_bytes(small_spectrum() + sample)
    bomb = gzip_bomb(tmp_path / "bomb.fits.gz", small_spectrum(), tail, 2 * 1024)
    expected = _scan_verdict(plain)
    assert expected != "ok: "  # the tail is not silently ignored in a plain file either
    assert _scan_verdict(bomb).replace(str(bomb), str(plain)) == expected
    r, rss = run_bounded("plan", bomb, "--workers", "0")
    assert r.exit_code == (0 if expected.startswith("ok") else 3), r
    assert rss < RSS_BOUND, rss


@pytest.mark.timeout(120)
def test_a_gzip_stream_honestly_announcing_2_30_pixels_is_refused_before_inflating(tmp_path):
    """A gzip'd file whose header announces one spectrum of 2**30 pixels and whose stream holds them (4 GiB
    of zeros, 4 MB on disk) drove an ingest past 8 GiB: refused from the header, its data never inflated."""
    bomb = gzip_bomb(tmp_path / "honest.fits.gz", image_header(2**30), 4 * 1024)
    out = tmp_path / "out.zarr"
    r, rss = run_bounded("ingest", bomb, "-o", out, "--scratch", tmp_path / "s", "--workers", "0")
    assert r.exit_code == 3, r
    assert f"{bomb}: HDU 0 holds an image {2**30} pixels wide (NAXIS1)" in r.output and "--max-pixels" in r.output
    assert rss < RSS_BOUND, rss
    assert not out.exists()


@pytest.mark.timeout(120)
def test_a_gzip_stream_shorter_than_its_headers_is_truncated(tmp_path):
    """A header announcing 4096 x 2**20 float32 (16 GiB) over a stream of 1 GiB: truncated, named, bounded."""
    bomb = gzip_bomb(tmp_path / "short.fits.gz", image_header(4096, 2**20), 1024)
    r, rss = run_bounded("plan", bomb, "--workers", "0")
    assert r.exit_code == 3, r
    assert f"{bomb}: truncated: HDU 0 ends at byte {hdu_end(2**34)}, the file has {BLOCK + 2**30}" in r.output, r
    assert rss < RSS_BOUND, rss


@pytest.mark.timeout(180)
def test_bombs_are_left_out_with_skip_and_the_rest_is_published(tmp_path):
    """--on-bad-file skip: each bomb is listed with its cause, the good file is published."""
    folder = tmp_path / "in"
    folder.mkdir()
    make_wcs1d(folder / "good.fits", n_pix=100)
    (folder / "wrap.fits").write_bytes(image_header(4096, 2**52))
    sparse_file(folder / "long.fits", image_header(2**29), hdu_end(4 * 2**29))
    gzip_bomb(folder / "honest.fits.gz", image_header(2**30), 1024)
    report = tmp_path / "report.json"
    r, rss = run_bounded("ingest", folder, "-o", tmp_path / "out.zarr", "--scratch", tmp_path / "s", "--workers", "0",
                         "--on-bad-file", "skip", "--report", report)
    assert r.exit_code == 0, r
    reasons = {Path(s["path"]).name: s["reason"] for s in json.loads(report.read_text())["skipped_files"]}
    assert sorted(reasons) == ["honest.fits.gz", "long.fits", "wrap.fits"], reasons
    assert reasons["wrap.fits"].startswith("truncated")
    assert "--max-pixels" in reasons["long.fits"] and "--max-pixels" in reasons["honest.fits.gz"]
    assert rss < RSS_BOUND, rss


# -- 4. memory per task ---------------------------------------------------------------------------------

def _write_image(plain: Path, gz: Path, rows: int, n_pix: int) -> None:
    """The same image2d of `rows` spectra, plain and gzip'd, written a block of rows at a time."""
    head = image_header(n_pix, rows)
    block = np.tile(np.linspace(1, 2, n_pix, dtype=">f4"), (256, 1)).tobytes()
    deflate = zlib.compressobj(1, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    with open(plain, "wb") as p, open(gz, "wb") as g:
        p.write(head)
        g.write(deflate.compress(head))
        for _ in range(rows // 256):
            p.write(block)
            g.write(deflate.compress(block))
        pad = bytes(-(rows * n_pix * 4) % BLOCK)
        p.write(pad)
        g.write(deflate.compress(pad) + deflate.flush())


@pytest.mark.timeout(300)
def test_a_gzip_image_split_between_shards_costs_each_task_its_rows_not_the_file(tmp_path):
    """A gzip'd image of 8192 spectra x 4096 px (128 MiB inflated) in 8 shards: each shard task inflated the
    file whole (RSS of the inline run ~ the plain file's + 2x the image). Now the first task inflates it
    once to scratch and each reads its rows from there (test_inflate_once.py), keeping only its rows: the
    run's peak is the plain file's, within 64 MiB."""
    plain, gz = tmp_path / "plain" / "img.fits", tmp_path / "gz" / "img.fits.gz"
    plain.parent.mkdir()
    gz.parent.mkdir()
    _write_image(plain, gz, 8192, 4096)
    peaks = {}
    for name, path in (("plain", plain), ("gz", gz)):
        r, peaks[name] = run_bounded("ingest", path, "-o", tmp_path / f"{name}.zarr", "--scratch", tmp_path / "s",
                                     "--workers", "0", "--chunk-rows", "256", "--shard-rows", "1024")
        assert r.exit_code == 0 and "8192 spectra x 4096 pixels" in r.output, r
    assert peaks["gz"] < peaks["plain"] + 64 * 2**20, peaks
