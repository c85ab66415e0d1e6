"""The gate's decoding checks (6 and 12) read chunk rows on threads: what they report must not depend on
how many, and a store broken everywhere is named by its first rows, then counted, not decoded whole."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from shardmerge import validate


def _store(path, n_spec: int = 64, n_pix: int = 12, chunk_rows: int = 4):
    root = zarr.open_group(path, mode="w")
    wave = np.tile(np.arange(1.0, n_pix + 1), (n_spec, 1))
    wave[1::3, 5] = 0.5  # every third row steps back: 21 rows, in 16 chunk rows
    flux = np.ones((n_spec, n_pix), dtype=np.float32)
    flux[7] = np.nan  # all-NaN
    flux[40] = 0.0  # all-zero
    root.create_array("signal/wavelength", data=wave, chunks=(chunk_rows, n_pix))
    root.create_array("signal/flux_raw", data=flux, chunks=(chunk_rows, n_pix))
    return root


@pytest.mark.parametrize("threads", [1, 3, 8])
def test_decoding_checks_report_the_same_rows_on_any_number_of_threads(tmp_path, monkeypatch, threads):
    monkeypatch.setattr(validate, "DECODE_THREADS", threads)
    checks = validate._Checks(str(tmp_path / "s.zarr"), None)
    checks.root = _store(tmp_path / "s.zarr")
    grid: list[str] = []
    validate._wavelength_grid(checks, grid)
    stepping = [r for r in range(1, 64, 3)]
    assert len(stepping) > validate.MAX_ROWS_NAMED
    assert grid[:-1] == [f"signal/wavelength row {r} does not increase strictly"
                         for r in stepping[: validate.MAX_ROWS_NAMED]]
    assert grid[-1] == "signal/wavelength: more rows like these"
    rows: list[str] = []
    validate._flux_rows(checks, rows)
    assert rows == ["signal/flux_raw row 7 is all-NaN", "signal/flux_raw row 40 is all-zero"]


def test_a_store_broken_everywhere_is_not_decoded_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(validate, "DECODE_THREADS", 2)
    read: list[int] = []

    def counting(r: int) -> list[int]:
        read.append(r)
        return [r]

    got = []
    for rows in validate._each_chunk_row(counting, list(range(0, 400, 4)), enough=lambda: len(got) >= 5):
        got.extend(rows)
    assert got == [0, 4, 8, 12, 16, 20] and len(read) == 6  # three batches of two, then enough
