"""XIDL flux/error pairs (`NAME_f.fits` + `NAME_e.fits`, `_nF`/`_nE`): the error file is its flux file's
uncertainty, not a spectrum of its own (it was stored as a second science row, in flux units, and the flux
row had no uncertainty). Only an error file on the flux file's grid attaches; names that merely end in
`_e` without a flux file beside them are ordinary spectra."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.readers.wcs1d import xidl_pair
from shardmerge.testing.spectra import make_wcs1d
from tests.helpers import run_cli

pytestmark = pytest.mark.timeout(120)

N_PIX = 500


def _pair(folder, stem="q0100", flux_suffix="_f", error_suffix="_e", error_crval=4000.0, gz=False):
    flux = make_wcs1d(folder / f"{stem}{flux_suffix}.fits", i=1, n_pix=N_PIX, uncertainty=None, seed=1)
    sigma = np.linspace(0.1, 0.5, N_PIX).astype(np.float32)
    error = make_wcs1d(folder / f"{stem}{error_suffix}.fits", i=1, n_pix=N_PIX, uncertainty=None,
                       crval=error_crval, flux=sigma)
    if gz:
        with open(error, "rb") as src, gzip.open(f"{error}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        error.unlink()
    return flux, sigma


def _ingest(tmp_path, folder):
    out, report = tmp_path / "out.zarr", tmp_path / "r.json"
    r = run_cli("ingest", folder, "-o", out, "--workers", "0", "--scratch", tmp_path / "s", "--report", report)
    return r, out, report


def _stored(tmp_path, folder) -> list[str]:
    """The names of the files the rows of an ingest of `folder` come from, in row order."""
    r, out, _ = _ingest(tmp_path, folder)
    assert r.exit_code == 0, r.output
    return [str(p).rsplit("/", 1)[1] for p in zarr.open_group(out, mode="r")["metadata/source_path"][:]]


@pytest.mark.parametrize(("flux_suffix", "error_suffix", "gz"),
                         [("_f", "_e", False), ("_F", "_E", False), ("_nF", "_nE", False), ("_f", "_e", True)])
def test_an_error_file_is_the_uncertainty_of_its_flux_file(tmp_path, flux_suffix, error_suffix, gz):
    folder = tmp_path / "in"
    folder.mkdir()
    flux_path, sigma = _pair(folder, flux_suffix=flux_suffix, error_suffix=error_suffix, gz=gz)
    make_wcs1d(folder / "other.fits", i=2, n_pix=N_PIX, uncertainty="err", seed=2)  # an ordinary neighbour
    r, out, report = _ingest(tmp_path, folder)
    assert r.exit_code == 0, r.output
    g = zarr.open_group(out, mode="r")
    names = [str(p).rsplit("/", 1)[1] for p in g["metadata/source_path"][:]]
    assert sorted(names) == sorted([flux_path.name, "other.fits"])  # the error file has no row
    row = names.index(flux_path.name)
    np.testing.assert_array_equal(g["signal/flux_raw"][row, :N_PIX], fits.getdata(flux_path).astype(np.float32))
    np.testing.assert_array_equal(g["signal/uncertainty_raw"][row, :N_PIX], sigma)
    assert json.loads(report.read_text())["counts"]["spectra"] == 2


def test_an_error_file_on_another_grid_is_no_pair_but_an_ordinary_spectrum(tmp_path):
    """Both halves decide from the same two primary headers: on different axes, neither pairs."""
    folder = tmp_path / "in"
    folder.mkdir()
    _pair(folder, error_crval=4100.0)
    assert sorted(_stored(tmp_path, folder)) == ["q0100_e.fits", "q0100_f.fits"]


@pytest.mark.parametrize(("flux_name", "error_name"), [("Q0100_F.FITS", "Q0100_E.FITS"), ("q0100_F.fit", "q0100_e.fit"),
                                                       ("q0100_f.fts.gz", "q0100_e.fts")])
def test_any_fits_suffix_and_either_case_pairs(tmp_path, flux_name, error_name):
    folder = tmp_path / "in"
    folder.mkdir()
    flux, sigma = _pair(folder)
    for path, name in ((flux, flux_name), (folder / "q0100_e.fits", error_name)):
        if name.endswith(".gz"):
            with open(path, "rb") as src, gzip.open(folder / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
            path.unlink()
        else:
            path.rename(folder / name)
    r, out, _ = _ingest(tmp_path, folder)
    assert r.exit_code == 0, r.output
    g = zarr.open_group(out, mode="r")
    assert [str(p).rsplit("/", 1)[1] for p in g["metadata/source_path"][:]] == [flux_name]
    np.testing.assert_array_equal(g["signal/uncertainty_raw"][0, :N_PIX], sigma)


def test_a_pair_reached_through_a_linked_folder_is_one_pair(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _pair(folder)
    (tmp_path / "alias").symlink_to(folder)
    r = run_cli("ingest", folder / "q0100_f.fits", tmp_path / "alias" / "q0100_e.fits", "-o", tmp_path / "out.zarr",
                "--workers", "0", "--scratch", tmp_path / "s")
    assert r.exit_code == 0, r.output
    assert zarr.open_group(tmp_path / "out.zarr", mode="r")["signal/flux_raw"].shape[0] == 1


def test_two_copies_of_the_other_half_are_refused_naming_both(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _pair(folder)
    with open(folder / "q0100_e.fits", "rb") as src, gzip.open(folder / "q0100_e.fits.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    r, out, _ = _ingest(tmp_path, folder)
    assert r.exit_code == 3 and not out.exists(), r.output
    assert "q0100_f.fits: its XIDL error file is there twice" in r.output and "q0100_e.fits.gz" in r.output


def test_a_flux_file_that_is_no_1d_image_pairs_with_nothing(tmp_path):
    from shardmerge.testing.spectra import make_image2d

    folder = tmp_path / "in"
    folder.mkdir()
    make_image2d(folder / "plate_f.fits", n_rows=4, n_pix=N_PIX, seed=3)
    make_wcs1d(folder / "plate_e.fits", i=1, n_pix=N_PIX, uncertainty=None, seed=4)
    assert sorted(set(_stored(tmp_path, folder))) == ["plate_e.fits", "plate_f.fits"]  # 4 rows and 1


def test_names_that_only_look_like_a_pair_are_ordinary_spectra(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_wcs1d(folder / "star_e.fits", i=1, n_pix=N_PIX, seed=1)  # no star_f.fits beside it
    make_wcs1d(folder / "galaxy_f.fits", i=2, n_pix=N_PIX, seed=2)  # no galaxy_e.fits
    for path in (folder / "star_e.fits", folder / "galaxy_f.fits"):
        with fits.open(path) as hdul:
            assert xidl_pair(str(path), hdul) is None
    assert sorted(_stored(tmp_path, folder)) == ["galaxy_f.fits", "star_e.fits"]


def test_an_error_file_given_without_its_flux_file_is_refused_saying_so(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _pair(folder)
    r = run_cli("ingest", folder / "q0100_e.fits", "-o", tmp_path / "out.zarr", "--workers", "0",
                "--scratch", tmp_path / "s")
    assert r.exit_code != 0 and not (tmp_path / "out.zarr").exists()
    assert "q0100_e.fits" in r.output and "no file among the inputs has that key" in r.output, r.output


def test_a_flux_file_with_its_own_uncertainty_and_an_error_file_is_refused(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_wcs1d(folder / "q0100_f.fits", i=1, n_pix=N_PIX, uncertainty="err", seed=1)
    make_wcs1d(folder / "q0100_e.fits", i=1, n_pix=N_PIX, uncertainty=None, flux=np.ones(N_PIX, np.float32))
    r, out, _ = _ingest(tmp_path, folder)
    assert r.exit_code == 3 and not out.exists(), r.output
    assert "q0100_f.fits holds HDU 1 (ERR) beside its primary image" in r.output, r.output
    assert "which array is the flux's uncertainty is not clear" in r.output


@pytest.mark.parametrize("extra_in", ["error", "flux"])
def test_halves_holding_more_than_their_image_are_refused_naming_both(tmp_path, extra_in):
    """A second science image in either half: the error file would have been two flux rows (and the flux
    row no uncertainty), or a companion without its file. Both halves decide from both files alike."""
    folder = tmp_path / "in"
    folder.mkdir()
    _pair(folder)
    path = folder / ("q0100_e.fits" if extra_in == "error" else "q0100_f.fits")
    with fits.open(path, mode="append") as hdul:
        hdul.append(fits.ImageHDU(np.ones(N_PIX, np.float32), header=hdul[0].header.copy(), name="SCI", ver=2))
    r, out, _ = _ingest(tmp_path, folder)
    assert r.exit_code == 3 and not out.exists(), r.output
    assert f"{path} holds HDU 1 (SCI) beside its primary image" in r.output, r.output
    assert "q0100_e.fits: named and on the axis of an XIDL flux file" in r.output
    assert "q0100_f.fits: named and on the axis of an XIDL error file" in r.output


def test_halves_that_are_links_pair_by_their_names_and_stems_keep_their_case(tmp_path):
    """git-annex/DataLad keep files as links to content-named objects: the names given pair. A_f/A_e and
    a_f/a_e in one folder are two pairs."""
    objects, folder = tmp_path / "objects", tmp_path / "in"
    objects.mkdir()
    folder.mkdir()
    sigmas = {}
    for stem in ("A", "a"):
        flux, sigma = _pair(objects, stem=stem)
        for half in ("f", "e"):
            target = objects / f"SHA256E-{stem}{half}.fits"
            (objects / f"{stem}_{half}.fits").rename(target)
            (folder / f"{stem}_{half}.fits").symlink_to(target)
        sigmas[f"{stem}_f.fits"] = sigma
    r, out, _ = _ingest(tmp_path, folder)
    assert r.exit_code == 0, r.output
    g = zarr.open_group(out, mode="r")
    names = [str(p).rsplit("/", 1)[1] for p in g["metadata/source_path"][:]]
    assert sorted(names) == ["A_f.fits", "a_f.fits"]
    for row, name in enumerate(names):
        np.testing.assert_array_equal(g["signal/uncertainty_raw"][row, :N_PIX], sigmas[name])


@pytest.mark.parametrize("damage", ["header", "data"])
def test_skipping_a_damaged_flux_file_leaves_its_error_file_out_with_it(tmp_path, damage):
    """--on-bad-file skip: a flux file refused (by the scan: its header; or by its shard task: its data)
    takes its error file with it, named in the report; the rest is published. Without skip, both are named."""
    folder = tmp_path / "in"
    folder.mkdir()
    flux, _ = _pair(folder)
    make_wcs1d(folder / "other.fits", i=2, n_pix=N_PIX, uncertainty="err", seed=2)
    raw = flux.read_bytes()
    # not even its header whole; or the header whole and the data cut short
    flux.write_bytes(raw[:1000] if damage == "header" else raw[: 2880 + 1000])
    out, report = tmp_path / "out.zarr", tmp_path / "r.json"
    r = run_cli("ingest", folder, "-o", out, "--workers", "0", "--scratch", tmp_path / "s", "--report", report,
                "--on-bad-file", "skip")
    assert r.exit_code == 0, r.output
    g = zarr.open_group(out, mode="r")
    assert [str(p).rsplit("/", 1)[1] for p in g["metadata/source_path"][:]] == ["other.fits"]
    skipped = {s["path"].rsplit("/", 1)[1]: s["reason"] for s in json.loads(report.read_text())["skipped_files"]}
    assert set(skipped) == {"q0100_f.fits", "q0100_e.fits"}, skipped
    assert "no file among the inputs has that key" in skipped["q0100_e.fits"]
    r = run_cli("ingest", folder, "-o", tmp_path / "failed.zarr", "--workers", "0", "--scratch", tmp_path / "s2")
    assert r.exit_code != 0 and "q0100_f.fits" in r.output and not (tmp_path / "failed.zarr").exists()
