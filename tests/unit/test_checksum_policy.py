"""The checksum and warning policy (readers/checksum.py, readers/oddities.py): real damage is refused,
known archive habits are accepted and said, and `--strict KIND` refuses each of those instead."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.errors import BadFileError
from shardmerge.headers import load_header_rules
from shardmerge.scan import scan_file
from shardmerge.testing.spectra import make_wcs1d
from tests.helpers import run_cli, verified_notes

RULES = load_header_rules()


def _flip(path, offset):
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def _harps_like(path, *, with_checksum: bool = False):
    """A 1-D image with data and DATASUM = '0', as the ESO HARPS DRS writes on s1d/e2ds/ccf products."""
    wave = 3780.0 + 0.01 * np.arange(500)
    hdu = fits.PrimaryHDU(np.linspace(1, 2, 500).astype(np.float32))
    hdu.header.update({"CRVAL1": float(wave[0]), "CDELT1": 0.01, "CRPIX1": 1.0, "CTYPE1": "Angstrom"})
    if with_checksum:
        hdu.header["DATASUM"] = "0"
        hdu.add_checksum(override_datasum=True)  # CHECKSUM over the header as it stands, '0' included
    else:
        hdu.header["DATASUM"] = "0"
    hdu.writeto(path, output_verify="ignore")
    return path


def test_a_data_unit_that_fails_its_datasum_is_refused_whatever_the_options(tmp_path):
    p = make_wcs1d(tmp_path / "data.fits", n_pix=100)
    with fits.open(p) as h:
        data_start = h.fileinfo(0)["datLoc"]
    _flip(p, data_start + 10)
    for strict in (frozenset(), frozenset({"stale-checksum", "placeholder-datasum", "fits-warning"})):
        with pytest.raises(BadFileError, match=r"data\.fits: HDU 0: DATASUM mismatch"):
            verified_notes(p, strict)
    assert scan_file(str(p), None, RULES).n_pix_max == 100  # the scan reads headers: the shard task refuses it


def test_a_header_edited_after_checksumming_is_accepted_and_said(tmp_path):
    """IRAF hedit/dopcor: DATASUM still verifies the data unit, only CHECKSUM is stale."""
    p = make_wcs1d(tmp_path / "edited.fits", n_pix=100)
    _flip(p, p.read_bytes().index(b"synthetic spectrum written"))  # inside a COMMENT card's text
    assert verified_notes(p) == ("stale-checksum: HDU 0: CHECKSUM does not match but DATASUM does: the header was "
                                 "edited after checksumming; the data unit is intact",)
    with pytest.raises(BadFileError, match=r"edited\.fits: HDU 0: CHECKSUM does not match.*--strict stale-checksum"):
        verified_notes(p, frozenset({"stale-checksum"}))


def test_a_placeholder_datasum_on_data_is_accepted_and_said(tmp_path):
    p = _harps_like(tmp_path / "HARPS.2004-01-01T00:00:00.000_s1d_A.fits")
    with fits.open(p) as h:
        assert h[0].header["DATASUM"] == "0" and "CHECKSUM" not in h[0].header and h[0].data.size == 500
    scan = scan_file(str(p), None, RULES)
    assert scan.format == "wcs-1d" and scan.n_pix_max == 500
    assert verified_notes(p) == ("placeholder-datasum: HDU 0: DATASUM = '0' (a placeholder) on an HDU with data: "
                                 "the data unit could not be verified",)
    with pytest.raises(BadFileError, match=r"--strict placeholder-datasum"):
        verified_notes(p, frozenset({"placeholder-datasum"}))


def test_a_placeholder_datasum_under_a_valid_checksum_needs_no_note(tmp_path):
    """CHECKSUM covers header and data: when it verifies, the data unit is verified."""
    p = _harps_like(tmp_path / "summed.fits", with_checksum=True)
    assert scan_file(str(p), None, RULES).notes == () and verified_notes(p) == ()


def test_a_failing_checksum_with_nothing_verifying_the_data_is_damage(tmp_path):
    p = _harps_like(tmp_path / "summed.fits", with_checksum=True)
    with fits.open(p) as h:
        data_start = h.fileinfo(0)["datLoc"]
    _flip(p, data_start + 40)
    with pytest.raises(BadFileError, match=r"HDU 0: CHECKSUM mismatch.*no DATASUM verifies the data unit"):
        verified_notes(p)


def test_a_benign_astropy_warning_is_accepted_and_said(tmp_path):
    """BLANK on a float image (legacy IRAF/MIDAS, the MPDAF sample spectra): astropy warns and ignores it."""
    p = tmp_path / "blank.fits"
    hdu = fits.PrimaryHDU(np.linspace(1, 2, 300).astype(np.float32))
    hdu.header.update({"CRVAL1": 4602.6, "CDELT1": 0.63, "CRPIX1": 1.0, "CUNIT1": "Angstrom", "BLANK": -32768})
    hdu.writeto(p, output_verify="ignore")
    with pytest.warns(fits.verify.VerifyWarning, match="BLANK"), fits.open(p) as h:
        assert h[0].data.size == 300  # what astropy says about this file: a warning, and the data
    scan = scan_file(str(p), None, RULES)
    assert len(scan.notes) == 1 and scan.notes[0].startswith("fits-warning: VerifyWarning: Invalid 'BLANK' keyword")
    with pytest.raises(BadFileError, match=r"blank\.fits: VerifyWarning: Invalid 'BLANK'.*--strict fits-warning"):
        scan_file(str(p), None, RULES, frozenset({"fits-warning"}))


def test_truncation_is_still_refused_though_astropy_only_warns(tmp_path):
    p = make_wcs1d(tmp_path / "cut.fits", n_pix=3000, uncertainty=None)
    p.write_bytes(p.read_bytes()[:-3000])
    with pytest.raises(BadFileError, match=r"cut\.fits: .*truncated"):
        scan_file(str(p), None, RULES)


def test_the_report_lists_each_odd_file_and_the_store_counts_them(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    fine = make_wcs1d(folder / "fine.fits", n_pix=500, crval=3780.0, cdelt=0.01)
    harps = _harps_like(folder / "harps.fits")
    edited = make_wcs1d(folder / "edited.fits", n_pix=500, crval=3780.0, cdelt=0.01, seed=2)
    _flip(edited, edited.read_bytes().index(b"synthetic spectrum written"))
    out, rep = tmp_path / "out.zarr", tmp_path / "report.json"
    r = run_cli("ingest", folder, "-o", out, "--workers", "0", "--report", rep)
    assert r.exit_code == 0, r
    report = json.loads(rep.read_text())
    assert report["counts"]["files_odd"] == 2
    odd = {d["path"]: d["notes"] for d in report["odd_files"]}
    assert sorted(odd) == sorted([str(harps), str(edited)]) and str(fine) not in odd
    assert odd[str(harps)][0].startswith("placeholder-datasum: HDU 0:")
    assert odd[str(edited)][0].startswith("stale-checksum: HDU 0:")
    attrs = zarr.open_group(out, mode="r").attrs.asdict()
    assert attrs["input_oddities"] == {"placeholder-datasum": {"files": 1, "examples": [str(harps)]},
                                       "stale-checksum": {"files": 1, "examples": [str(edited)]}}

    r = run_cli("ingest", folder, "-o", tmp_path / "strict.zarr", "--workers", "0", "--strict", "all")
    assert r.exit_code == 3, r
    assert f"{harps}: HDU 0: DATASUM = '0'" in r.output and f"{edited}: HDU 0: CHECKSUM does not match" in r.output
    assert not (tmp_path / "strict.zarr").exists()


def test_a_shard_reused_from_a_run_without_strict_is_refused_by_the_notes_it_carries(tmp_path):
    """Checksum habits are found by the shard task; a shard kept from an earlier run that accepted them
    must not slip a file past a later --strict through resume."""
    folder = tmp_path / "in"
    folder.mkdir()
    make_wcs1d(folder / "fine.fits", n_pix=500, crval=3780.0, cdelt=0.01)
    harps = _harps_like(folder / "harps.fits")
    edited = make_wcs1d(folder / "edited.fits", n_pix=500, crval=3780.0, cdelt=0.01, seed=2)
    _flip(edited, edited.read_bytes().index(b"synthetic spectrum written"))
    out, scratch = tmp_path / "out.zarr", tmp_path / "scratch"
    common = ("--workers", "0", "--scratch", scratch)
    assert run_cli("ingest", folder, "-o", out, *common, "--keep-scratch").exit_code == 0
    r = run_cli("ingest", folder, "-o", out, *common, "--overwrite", "--strict", "all", "--report",
                tmp_path / "r.json")
    assert r.exit_code == 3, r
    assert f"{harps}: HDU 0: DATASUM = '0'" in r.output and "(refused: --strict placeholder-datasum)" in r.output
    assert f"{edited}: HDU 0: CHECKSUM does not match" in r.output
    assert json.loads((tmp_path / "r.json").read_text())["counts"].get("shards_reused") is None  # nothing reused
    assert zarr.open_group(out, mode="r")["metadata/source_path"].shape == (3,)  # the old store stands
