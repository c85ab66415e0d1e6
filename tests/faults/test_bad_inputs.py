"""Byte edits of FITS files written with CHECKSUM/DATASUM: every kind of damage is named with its file
(default: fail, exit 3) or listed and left out (--on-bad-file skip); never silently ingested."""

from __future__ import annotations

import json

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
