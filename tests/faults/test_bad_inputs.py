"""Byte edits of FITS files written with CHECKSUM/DATASUM: every kind of damage is named with its file
(default: fail, exit 3) or listed and left out (--on-bad-file skip); never silently ingested."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from shardmerge.testing.spectra import make_wcs1d
from tests.helpers import run_cli


def _card_at(raw: bytes, keyword: bytes) -> int:
    """Offset of the primary header's card with this (8-byte, padded) keyword."""
    for at in range(0, len(raw), 80):
        card = raw[at : at + 8]
        if card == keyword.ljust(8):
            return at
        if card == b"END     ":
            break
    raise AssertionError(f"no {keyword!r} card")


def _edit(raw: bytes, kind: str) -> bytes:
    if kind == "empty":
        return b""
    if kind == "not-fits":
        return b"This is a CSV file, honestly\n1,2,3\n"
    if kind == "truncated":
        return raw[: len(raw) - 1000]
    if kind == "no-end":
        at = _card_at(raw, b"END")
        return raw[:at] + b" " * 80 + raw[at + 80 :]
    if kind == "bad-card":  # a non-ASCII byte inside a card's value
        at = _card_at(raw, b"CRVAL1") + 20
        return raw[:at] + b"\xff" + raw[at + 1 :]
    if kind == "bad-checksum":  # the header changed after CHECKSUM was computed (the data did not)
        card = _card_at(raw, b"CDELT1")
        at = raw.index(b"1.0", card, card + 80)
        return raw[:at] + b"2" + raw[at + 1 :]
    raise ValueError(kind)


REASONS = {
    "empty": "file is empty",
    "not-fits": "not a readable FITS file",
    "truncated": "truncated",
    "no-end": "the primary header has no END card: binary data begins at card 73 (byte 5760)",
    "bad-card": "header card 'CRVAL1' at card 39 (byte 3040) holds non-ASCII bytes",
    "bad-checksum": "CHECKSUM does not match but DATASUM does",
}
# a header edited after checksumming, with its data unit intact, is accepted by default (test_checksum_policy)
OPTIONS = {"bad-checksum": ("--strict", "stale-checksum")}


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_damaged_input_is_named_or_left_out(tmp_path, dask_scheduler, kind):
    folder = tmp_path / "in"
    files = [make_wcs1d(folder / f"s{i}.fits", i=i, n_pix=300, seed=i) for i in range(3)]
    victim = files[1]
    victim.write_bytes(_edit(victim.read_bytes(), kind))
    out = tmp_path / "out.zarr"
    r = run_cli("ingest", folder, "-o", out, "--scheduler", dask_scheduler, *OPTIONS.get(kind, ()))
    assert r.exit_code == 3, r
    assert f"{victim}: " in r.output and REASONS[kind] in r.output, r
    assert "Traceback" not in r.output
    assert not out.exists() and not (tmp_path / "out.zarr.tmp").exists()

    rep = tmp_path / "r.json"
    r = run_cli("ingest", folder, "-o", out, "--scheduler", dask_scheduler, "--on-bad-file", "skip",
                "--report", rep, *OPTIONS.get(kind, ()))
    assert r.exit_code == 0, r
    skipped = json.loads(rep.read_text())["skipped_files"]
    assert [s["path"] for s in skipped] == [str(victim)] and skipped[0]["reason"]
    sources = zarr.open_group(out, mode="r")["metadata/source_path"][:]
    assert sorted(map(str, sources)) == [str(files[0]), str(files[2])]


def _damage_data(path) -> None:
    """One bit of the primary data unit flipped: only a reader of the data (a shard task) can see it."""
    from astropy.io import fits

    with fits.open(path) as h:
        at = h.fileinfo(0)["datLoc"] + 12
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))


def _datasum_damage_named_then_left_out(tmp_path, folder, dask_scheduler, layout, damaged) -> tuple:
    """An ingest that fails (exit 3) naming each damaged file's DATASUM mismatch, publishing nothing; then,
    with --on-bad-file skip, one that publishes without them. The store and the second run's report."""
    out, rep = tmp_path / "out.zarr", tmp_path / "r.json"
    r = run_cli("ingest", folder, "-o", out, "--scheduler", dask_scheduler, *layout, "--report", rep)
    assert r.exit_code == 3, r
    for victim in damaged:
        assert f"{victim}: HDU 0: DATASUM mismatch" in r.output, r
    assert "Traceback" not in r.output and not out.exists() and not (tmp_path / "out.zarr.tmp").exists()

    r = run_cli("ingest", folder, "-o", out, "--scheduler", dask_scheduler, *layout, "--report", rep,
                "--on-bad-file", "skip")
    assert r.exit_code == 0, r
    report = json.loads(rep.read_text())
    assert [s["path"] for s in report["skipped_files"]] == list(map(str, damaged))
    assert all("DATASUM mismatch" in s["reason"] for s in report["skipped_files"])
    return out, report


def test_damage_found_by_the_shard_tasks_fails_naming_every_file_or_is_left_out(tmp_path, dask_scheduler):
    """The scan reads headers only, so a data unit that fails its DATASUM is found where it is read. Fail:
    every damaged file named (two in one shard, one in another), finished shards kept for the rerun.
    Skip: the plan is made again without them; the shards ahead of their rows are kept as written."""
    folder = tmp_path / "in"
    files = [make_wcs1d(folder / f"s{i}.fits", i=i, n_pix=300, seed=i) for i in range(10)]
    for victim in (files[4], files[5], files[8]):
        _damage_data(victim)
    layout = ("--chunk-rows", "2", "--shard-rows", "2")  # 5 shards of 2 files
    out, report = _datasum_damage_named_then_left_out(tmp_path, folder, dask_scheduler, layout,
                                                      [files[4], files[5], files[8]])
    counts = report["counts"]
    # shards 0 and 1 (files 0-3) came from the failed run; after the re-plan they are reused, and no
    # shard written in this run before the re-plan is counted as resumed
    assert counts["replans_after_bad_data"] == 1 and counts["shards_reused"] == 2, counts
    assert counts["files_bad"] == 3 and counts["spectra"] == 7
    kept = [str(f) for i, f in enumerate(files) if i not in (4, 5, 8)]
    assert list(map(str, zarr.open_group(out, mode="r")["metadata/source_path"][:])) == kept

    # the same store as an ingest that never saw the damaged files
    clean = tmp_path / "clean"
    clean.mkdir()
    for f in files:
        if str(f) in kept:
            (clean / f.name).write_bytes(f.read_bytes())
    ref = tmp_path / "ref.zarr"
    assert run_cli("ingest", clean, "-o", ref, "--scheduler", dask_scheduler, *layout).exit_code == 0
    a, b = zarr.open_group(out, mode="r"), zarr.open_group(ref, mode="r")
    for name in ("signal/flux_raw", "signal/uncertainty_raw", "signal/wavelength"):
        assert np.array_equal(a[name][:], b[name][:], equal_nan=True), name


def test_a_split_file_damaged_in_rows_one_shard_reads_fails_the_run_or_is_left_out(tmp_path, dask_scheduler):
    """A 10-row plate shared by three shards, one bit flipped in rows only the last reads: each shard reads
    its own rows, none the whole file, and the sums they recorded, added by the ingest, refuse it. Fail:
    named, nothing published. Skip: planned again without it and published."""
    from astropy.io import fits

    from shardmerge.testing.spectra import make_image2d

    folder = tmp_path / "in"
    files = [make_wcs1d(folder / f"a{i}.fits", i=i, n_pix=300, seed=i) for i in range(3)]
    plate = make_image2d(folder / "p.fits", n_rows=10, n_pix=300)
    with fits.open(plate) as h:
        at = h.fileinfo(0)["datLoc"] + 9 * 300 * 4 + 100  # flux row 9: global row 12, shard 3
    raw = bytearray(plate.read_bytes())
    raw[at] ^= 0x01
    plate.write_bytes(bytes(raw))
    layout = ("--chunk-rows", "4", "--shard-rows", "4")  # rows 0-2 the 1-D files, 3-12 the plate
    out, _ = _datasum_damage_named_then_left_out(tmp_path, folder, dask_scheduler, layout, [plate])
    assert list(map(str, zarr.open_group(out, mode="r")["metadata/source_path"][:])) == list(map(str, files))
