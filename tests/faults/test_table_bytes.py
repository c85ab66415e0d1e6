"""Memory per task is bounded for tables too (issue 24): astropy reads a binary table whole, whatever rows a
task needs, so a table whose data unit is huge with every length within --max-pixels (2**24 rows of 1024
bytes: 16 GiB) was a MemoryError, or an OOM kill of the node. Such a table is refused from its header
(--max-table-bytes, default 1 GiB), naming the file and the option, before anything of it is read; raising
the option past it lets astropy try, and fail, which shows that the limit is what bounds the run.

The files are sparse (truncate): 16 GiB announced, a few KB on disk. Each run is the real CLI in its own
process under an address-space and a CPU limit, its peak RSS read from the kernel (`run_bounded`)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from shardmerge.config import MAX_TABLE_BYTES
from tests.faults.test_exhaustion import BLOCK, RSS_BOUND, gzip_bomb, run_bounded, sparse_file
from tests.helpers import run_cli

WIDE_ROWS, ROW_BYTES = 2**24, 1024  # every length within --max-pixels' 2**24; 16 GiB of rows


def _table_head(rows: int) -> bytes:
    """Primary header and a BINTABLE header of `rows` rows of E, E, 1016A (1024 bytes a row)."""
    cols = [fits.Column("WAVELENGTH", "E", unit="Angstrom"), fits.Column("FLUX", "E", unit="erg/s/cm2/Angstrom"),
            fits.Column("NOTE", "1016A")]
    table = fits.BinTableHDU.from_columns(cols, nrows=1)
    table.header["NAXIS2"] = rows
    assert table.header["NAXIS1"] == ROW_BYTES
    return fits.PrimaryHDU().header.tostring().encode() + table.header.tostring().encode()


def _wide_table(path, rows: int = WIDE_ROWS):
    head = _table_head(rows)
    return sparse_file(path, head, len(head) + -(-rows * ROW_BYTES // BLOCK) * BLOCK)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["plan", "ingest"])
def test_a_16_gib_table_within_max_pixels_is_refused_from_its_header(tmp_path, command):
    wide = _wide_table(tmp_path / "widerow.fits")
    out = ("-o", tmp_path / "out.zarr", "--scratch", tmp_path / "s") if command == "ingest" else ()
    r, rss = run_bounded(command, wide, *out, "--workers", "0")
    assert r.exit_code == 3, r
    assert f"{wide}: HDU 1 is a table of {WIDE_ROWS * ROW_BYTES} bytes" in r.output, r
    assert f"larger than {MAX_TABLE_BYTES} bytes are refused" in r.output and "--max-table-bytes" in r.output, r
    assert "MemoryError" not in r.output, r
    assert rss < RSS_BOUND, rss
    assert not (tmp_path / "out.zarr").exists()


@pytest.mark.timeout(120)
def test_raising_max_table_bytes_past_the_table_lets_astropy_try_and_fail(tmp_path):
    """The same file with the limit raised above it: astropy allocates its 16 GiB and fails under the
    child's address-space limit. So the refusal above is what bounds the run, not something else."""
    wide = _wide_table(tmp_path / "widerow.fits")
    r, _ = run_bounded("plan", wide, "--workers", "0", "--max-table-bytes", 2**35)
    assert r.exit_code == 3 and "MemoryError" in r.output, r


@pytest.mark.timeout(120)
def test_a_gzip_d_wide_table_is_refused_before_it_is_inflated(tmp_path):
    """gzip'd, the same check runs on each header as the stream is inflated: the data unit (64 MiB here,
    with the limit at 32 MiB) is never inflated, let alone held."""
    rows = 2**16
    head = _table_head(rows)
    bomb = gzip_bomb(tmp_path / "wide.fits.gz", head, rows * ROW_BYTES >> 20)
    r, rss = run_bounded("plan", bomb, "--workers", "0", "--max-table-bytes", 2**25)
    assert r.exit_code == 3, r
    assert f"{bomb}: HDU 1 is a table of {rows * ROW_BYTES} bytes" in r.output, r
    assert rss < RSS_BOUND, rss


@pytest.mark.timeout(60)
def test_max_table_bytes_refuses_a_real_table_past_it_and_accepts_it_at_its_size(tmp_path):
    """A real 1000-pixel table spectrum (8000 bytes of rows) is ingested at the default, refused at 7999,
    accepted at 8000: the limit is the data unit's bytes, and an option of ingest."""
    wave = np.linspace(4000, 5000, 1000, dtype=">f4")
    cols = [fits.Column("WAVELENGTH", "E", unit="Angstrom", array=wave),
            fits.Column("FLUX", "E", unit="erg/s/cm2/Angstrom", array=np.ones(1000, ">f4"))]
    data = tmp_path / "data"
    data.mkdir()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(data / "t.fits")
    for limit, ok in ((None, True), (7999, False), (8000, True)):
        extra = ("--max-table-bytes", limit) if limit else ()
        r = run_cli("ingest", data, "-o", tmp_path / f"{limit}.zarr", "--scratch", tmp_path / "s", "--workers", "0",
                    *extra)
        assert (r.exit_code == 0) is ok, r
        if not ok:
            assert "HDU 1 is a table of 8000 bytes" in r.output and "--max-table-bytes" in r.output, r
