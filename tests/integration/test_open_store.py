"""shardmerge.reading.open_store: a published store read back into pandas, xarray, specutils and numpy rows,
checked against zarr reads of the same store and against astropy readings of the source FITS files."""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.errors import NotAStoreError, StoreChangedError, UnknownColumnError
from shardmerge.reading import SpectrumRow, open_store, parse_unit
from shardmerge.testing.spectra import make_wcs1d
from tests.helpers import run_cli

# what an astropy reading of the sources' BUNIT means: the store's verbatim string parsed (today: "A" is
# ampere to astropy, "Ang" not a unit), or the normalised unit the ingest writes once it normalises spellings
FLAM = u.erg / u.cm**2 / u.s / u.AA
EXPECTED_UNITS = {
    "erg/cm2/s/A": (u.erg / u.cm**2 / u.s / u.A, FLAM),
    "1E-17 erg/cm^2/s/Ang": (u.UnrecognizedUnit("1E-17 erg/cm^2/s/Ang"), 1e-17 * FLAM),
}


def _same_unit(a: u.UnitBase, b: u.UnitBase) -> bool:
    if isinstance(a, u.UnrecognizedUnit) or isinstance(b, u.UnrecognizedUnit):
        return type(a) is type(b) and a.name == b.name
    return a == b


class ChunkReads:
    """Counts the chunk reads zarr makes of the stores on disk (keys of the form `<array>/c/<i>/<j>`)."""

    def __init__(self, monkeypatch):
        self.keys: list[str] = []
        original = zarr.storage.LocalStore.get

        async def counting_get(store, key, *args, **kwargs):
            if "/c/" in f"/{key}":
                self.keys.append(key)
            return await original(store, key, *args, **kwargs)

        monkeypatch.setattr(zarr.storage.LocalStore, "get", counting_get)


@pytest.fixture
def store(tmp_path, mixed_corpus, dask_scheduler) -> Path:
    out = tmp_path / "survey.zarr"
    r = run_cli("ingest", mixed_corpus, "-o", out, "--scheduler", dask_scheduler, "--chunk-rows", "32")
    assert r.exit_code == 0, r
    return out


def _ingest(folder: Path, out: Path, scheduler: str) -> Path:
    r = run_cli("ingest", folder, "-o", out, "--scheduler", scheduler)
    assert r.exit_code == 0, r
    return out


def _source_reading(path: str, fmt: str, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """(flux, wavelength in Angstrom, 1-sigma or None, BUNIT) of one spectrum, read with astropy alone."""
    with fits.open(path) as h:
        hdr = h[0].header
        if fmt == "sdss-coadd":
            t = h["COADD"].data
            ivar = t["ivar"].astype(np.float64)
            with np.errstate(divide="ignore"):
                sigma = np.where(ivar > 0, 1 / np.sqrt(ivar), np.nan).astype(np.float32)
            return t["flux"], 10.0 ** t["loglam"].astype(np.float64), sigma, hdr["BUNIT"]
        data = h[0].data if fmt == "wcs-1d" else h[0].data[row]
        axis = hdr["CRVAL1"] + (np.arange(data.shape[-1]) + 1 - hdr["CRPIX1"]) * hdr["CDELT1"]
        wave = 10.0**axis if hdr["DC-FLAG"] == 1 else axis
        sigma = None
        names = [x.name for x in h]
        with np.errstate(divide="ignore", invalid="ignore"):
            if "IVAR" in names:
                ivar = h["IVAR"].data if fmt == "wcs-1d" else h["IVAR"].data[row]
                sigma = np.where(ivar > 0, 1 / np.sqrt(ivar.astype(np.float64)), np.nan)
            elif "ERR" in names:
                sigma = h["ERR"].data
            elif "VAR" in names:
                sigma = np.sqrt(h["VAR"].data.astype(np.float64))
        return data, wave, sigma, hdr["BUNIT"]


@pytest.mark.timeout(120)
def test_to_xarray_is_one_lazy_dataset_equal_to_zarr(store, monkeypatch):
    xr = pytest.importorskip("xarray")
    import dask.array as da

    reads = ChunkReads(monkeypatch)
    with open_store(store) as s:
        ds = s.to_xarray()
        assert reads.keys == [], "opening the store or building the Dataset read chunk data"
    assert dict(ds.sizes) == {"spectrum": 136, "pixel": 4000}
    assert set(ds.data_vars) == {"flux_raw", "uncertainty_raw", "mask_raw", "continuum_model",
                                 "continuum_uncertainty"}
    assert ds["wavelength"].dims == ("spectrum", "pixel")  # the mixed corpus has many grids
    for name in ("spec_id", "source_path", "format", "ra", "h0_telescop", "flux_unit", "continuum_method"):
        assert ds.coords[name].dims == ("spectrum",), name
    for var in [*ds.data_vars.values(), *ds.coords.values()]:
        assert isinstance(var.data, da.Array), var.name
    assert ds["flux_raw"].data.chunks[0][0] == 32  # the store's own chunks
    flux_attrs = ds["flux_raw"].attrs  # the pointer of stores written so far, or the units_column form
    assert (flux_attrs.get("units") == "mixed: see metadata/flux_unit"
            or flux_attrs.get("units_column") == "metadata/flux_unit"), flux_attrs
    assert ds["wavelength"].attrs["units"] == "Angstrom" and ds["ra"].attrs["units"] == "deg"
    assert ds.attrs["ingest_pipeline"].startswith("shardmerge") and ds.attrs["schema_version"] == "2.0"
    assert reads.keys == []

    root = zarr.open_group(store, mode="r")
    for name, path in (("flux_raw", "signal/flux_raw"), ("mask_raw", "signal/mask_raw"),
                       ("wavelength", "signal/wavelength"), ("continuum_model", "continuum/continuum_model")):
        np.testing.assert_array_equal(ds[name].values, root[path][:])
    assert ds["mask_raw"].dtype == np.uint32  # values as stored: no fill-value masking into floats
    spec_id = ds["spec_id"].values
    assert type(spec_id[5]) is str and spec_id[5] == str(root["metadata/spec_id"][5])
    assert list(ds["format"].values) == [str(x) for x in root["metadata/format"][:]]
    with open_store(store) as s:
        sdss = ds.isel(spectrum=s.select(format="sdss-coadd"))  # rows from select(), the Dataset still lazy
    assert sdss.sizes["spectrum"] == 6 and set(sdss["format"].values) == {"sdss-coadd"}
    assert isinstance(ds, xr.Dataset)


def test_to_xarray_shared_grid_is_one_wavelength_on_pixel(tmp_path, dask_scheduler):
    folder = tmp_path / "same"
    for k in range(3):
        make_wcs1d(folder / f"s{k}.fits", i=k, n_pix=2500, seed=k)
    with open_store(_ingest(folder, tmp_path / "same.zarr", dask_scheduler)) as s:
        ds = s.to_xarray()
        assert s.wavelength_shared
        assert ds["wavelength"].dims == ("pixel",)
        np.testing.assert_array_equal(ds["wavelength"].values, 4000.0 + np.arange(2500))
        assert "mask_raw" not in ds  # no source gave a mask
        spec = s.spectrum(1)
        assert len(spec.flux) == 2500 and spec.mask.sum() == 0
        row = s[2]
        np.testing.assert_array_equal(row.wavelength, ds["wavelength"].values)


@pytest.mark.timeout(120)
def test_spectrum_equals_an_astropy_reading_of_its_source(store):
    """One image format (wcs-1d, image-2d) and one table format (sdss-coadd) at least: flux, wavelength,
    uncertainty and unit as astropy reads them from the FITS file; the padding past the end removed."""
    s = open_store(store)
    index = s.index
    seen = set()
    for row in [0, 39, 41, *np.flatnonzero(index["format"] == "wcs-1d")[:5], *s.select(format="sdss-coadd")[:3]]:
        row = int(row)
        spec = s.spectrum(row)
        fmt, path, source_row = index.at[row, "format"], index.at[row, "source_path"], index.at[row, "source_row"]
        seen.add(fmt)
        flux, wave, sigma, bunit = _source_reading(path, fmt, int(source_row))
        assert len(spec.flux) == len(flux) < 4000 or len(flux) == 4000  # padding stripped to the source length
        np.testing.assert_array_equal(spec.flux.value, flux.astype(np.float32))
        np.testing.assert_allclose(spec.spectral_axis.to_value(u.AA), wave, rtol=1e-12)
        assert spec.spectral_axis.unit == u.AA
        if sigma is None:
            assert spec.uncertainty is None
        else:
            np.testing.assert_allclose(spec.uncertainty.array, sigma, rtol=1e-6)
        assert any(_same_unit(spec.flux.unit, e) for e in EXPECTED_UNITS[bunit]), (bunit, spec.flux.unit)
        assert _same_unit(spec.flux.unit, s.flux_unit(row))
        assert spec.meta["format"] == fmt and spec.meta["source_path"] == path and spec.meta["row"] == row
        assert spec.meta["spec_id"] == index.at[row, "spec_id"]
        assert any(k.startswith("h0_") for k in spec.meta)  # projected headers
        mask_raw = zarr.open_group(store, mode="r")["signal/mask_raw"][row][:len(flux)]
        np.testing.assert_array_equal(spec.mask, (mask_raw != 0) | ~np.isfinite(flux))
    assert seen == {"wcs-1d", "image-2d", "sdss-coadd"}
    # an SDSS spectrum is 3800-3830 pixels in a 4000-wide store: the mask's padding bit cut it
    sdss = s.spectrum(int(s.select(format="sdss-coadd")[1]))
    assert 3800 <= len(sdss.flux) < 4000 and np.isfinite(sdss.spectral_axis.value).all()
    assert s.spectrum(-1).meta["row"] == len(s) - 1
    with pytest.raises(IndexError, match="out of range"):
        s.spectrum(len(s))


def test_padding_without_a_mask_is_cut_where_the_wavelength_ends(tmp_path, dask_scheduler):
    folder = tmp_path / "two"
    make_wcs1d(folder / "a.fits", i=0, n_pix=3000, uncertainty=None, seed=1)
    make_wcs1d(folder / "b.fits", i=1, n_pix=3500, crval=4100.0, uncertainty="err", seed=2)
    with open_store(_ingest(folder, tmp_path / "two.zarr", dask_scheduler)) as s:
        assert not s.has_mask and not s.wavelength_shared and s.shape == (2, 3500)
        short, long = s.spectrum(0), s.spectrum(1)
        assert len(short.flux) == 3000 and len(long.flux) == 3500
        assert short.uncertainty is None and long.uncertainty is not None
        assert np.isnan(s[0].flux[3000:]).all() and len(s[0].flux) == 3500  # rows keep their padding
        # a single unit for the whole store, stated on the array
        stated = zarr.open_group(s.path, mode="r")["signal/flux_raw"].attrs["units"]
        assert _same_unit(short.flux.unit, parse_unit(stated)) and _same_unit(long.flux.unit, parse_unit(stated))
        assert any(_same_unit(short.flux.unit, e) for e in EXPECTED_UNITS["erg/cm2/s/A"])


def test_select_and_query_give_row_numbers(store):
    s = open_store(store)
    index = s.index
    assert len(index) == 136 and list(index["row"]) == list(range(136))
    np.testing.assert_array_equal(s.select(format="sdss-coadd"), np.flatnonzero(index["format"] == "sdss-coadd"))
    both = s.select(format=["sdss-coadd", "wcs-1d"])
    np.testing.assert_array_equal(both, np.flatnonzero(index["format"].isin(["sdss-coadd", "wcs-1d"])))
    assert len(both) == 16
    # a metadata/ array that is not in the index (a projected header card)
    tel = np.asarray([str(x) for x in zarr.open_group(store, mode="r")["metadata/h0_telescop"][:]])
    np.testing.assert_array_equal(s.select(h0_telescop="SDSS 2.5-M"), np.flatnonzero(tel == "SDSS 2.5-M"))
    assert len(s.select(h0_telescop="SDSS 2.5-M", format="wcs-1d")) == 0
    first = index.at[0, "source_path"]
    np.testing.assert_array_equal(s.select(source_path=first, source_row=(0, 2)), [0, 2])
    q = s.query("format == 'wcs-1d' and ra > 100")
    np.testing.assert_array_equal(q, np.flatnonzero((index["format"] == "wcs-1d") & (index["ra"] > 100)))
    assert s.query("source_hdu == 1").tolist() == np.flatnonzero(index["source_hdu"] == 1).tolist()
    with pytest.raises(UnknownColumnError, match=r"no column 'telescop'.*known columns: row, spec_id") as err:
        s.select(telescop="x")
    assert "h0_telescop" in str(err.value) and err.value.exit_code == 2
    with pytest.raises(UnknownColumnError, match=r"nonesuch.*the index's columns are: row, spec_id"):
        s.query("nonesuch > 3")


@pytest.mark.timeout(120)
def test_len_iteration_and_rows_read_each_chunk_once(store, monkeypatch):
    s = open_store(store)
    root = zarr.open_group(store, mode="r")
    flux, wave = root["signal/flux_raw"][:], root["signal/wavelength"][:]
    assert len(s) == 136 and s.shape == (136, 4000)
    reads = ChunkReads(monkeypatch)
    rows = list(s)
    assert len(rows) == 136 and all(isinstance(r, SpectrumRow) for r in rows)
    # 136 rows in chunks of 32 rows: 5 chunks each of flux, uncertainty and wavelength, not 136 * 3
    assert len(reads.keys) == 3 * 5, reads.keys
    np.testing.assert_array_equal(np.stack([r.flux for r in rows]), flux)
    np.testing.assert_array_equal(np.stack([r.wavelength for r in rows]), wave)
    f, e, w = s[40]
    np.testing.assert_array_equal(f, flux[40])
    assert f.dtype == np.float32 and w.dtype == np.float64 and f.flags.writeable
    batch = s[30:70]
    assert batch.flux.shape == (40, 4000)
    np.testing.assert_array_equal(batch.wavelength, wave[30:70])
    spectra = list(s.spectra([3, 4, 5]))
    assert [sp.meta["row"] for sp in spectra] == [3, 4, 5]
    with pytest.raises(TypeError):
        s["spec_id"]
    again = pickle.loads(pickle.dumps(s))  # a DataLoader worker gets the path and reopens
    np.testing.assert_array_equal(again[7].flux, flux[7])
    text = repr(s)
    assert "136 spectra x 4000 pixels" in text and "sdss-coadd 6" in text and str(store) in text


def test_not_a_store_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    plain = tmp_path / "plain.zarr"
    zarr.open_group(plain, mode="w").attrs["ingest_pipeline"] = "someone else"
    afile = tmp_path / "a.fits"
    afile.write_bytes(b"SIMPLE")
    cases = {tmp_path / "missing": "no such file or folder", empty: "not a zarr group",
             plain: "shardmerge did not write", afile: "a file, not a shardmerge store"}
    for path, words in cases.items():
        with pytest.raises(NotAStoreError, match=words) as err:
            open_store(path)
        assert str(path) in str(err.value) and err.value.exit_code == 2


def _copy(store: Path, dest: Path) -> Path:
    shutil.copytree(store, dest)
    return dest


def test_units_in_all_three_forms_parse_with_astropy(store, tmp_path):
    # today's mixed store: the pointer "mixed: see metadata/flux_unit"
    s = open_store(store)
    units = {str(x) for x in zarr.open_group(store, mode="r")["metadata/flux_unit"][:]}
    assert len(units) == 2
    for row in (0, int(s.select(format="sdss-coadd")[0])):
        meta = s.meta(row)
        assert _same_unit(s.spectrum(row).flux.unit, parse_unit(meta["flux_unit"]))
        source_spelling = meta.get("flux_unit_source", meta["flux_unit"])
        assert any(_same_unit(s.flux_unit(row), e) for e in EXPECTED_UNITS[source_spelling])

    # the per-spectrum column form: no units attr, units_column naming an astropy-parseable column
    copy = _copy(store, tmp_path / "column.zarr")
    root = zarr.open_group(copy, mode="r+")
    n = root["signal/flux_raw"].shape[0]
    normalised = np.array(["erg / (Angstrom s cm2)"] * n, dtype=object)
    sdss = s.select(format="sdss-coadd")
    normalised[sdss] = "1e-17 erg / (Angstrom s cm2)"
    normalised[0] = "not a unit at all"
    root["metadata/flux_unit"][:] = normalised.astype(str)
    if "flux_unit_source" not in root["metadata"]:  # a store written before the units_column form
        source = root["metadata"].create_array("flux_unit_source", shape=(n,), dtype=str, chunks=(n,))
        source[:] = np.asarray([str(x) for x in zarr.open_group(store, mode="r")["metadata/flux_unit"][:]])
    for name in ("flux_raw", "uncertainty_raw"):
        attrs = root[f"signal/{name}"].attrs
        if "units" in attrs:
            del attrs["units"]
        attrs.update({"units_column": "metadata/flux_unit", "units_source": "see metadata/flux_unit_source"})
    with warnings.catch_warnings():  # index.parquet at the root is no zarr node, as the spec places it
        warnings.filterwarnings("ignore", message=r".*is not recognized as a component of a Zarr hierarchy")
        warnings.filterwarnings("ignore", message=r"Consolidated metadata is currently not part")
        zarr.consolidate_metadata(copy)
    c = open_store(copy)
    spec = c.spectrum(int(sdss[0]))
    assert spec.flux.unit == 1e-17 * FLAM and spec.uncertainty.unit == 1e-17 * FLAM
    assert spec.meta["flux_unit_source"] == "1E-17 erg/cm^2/s/Ang"
    assert c.spectrum(5).flux.unit == FLAM
    odd = c.spectrum(0)  # an unparseable string: an UnrecognizedUnit, never a crash
    assert isinstance(odd.flux.unit, u.UnrecognizedUnit) and odd.flux.unit.name == "not a unit at all"
    assert "flux_unit_source" in c.to_xarray().coords


def test_a_store_replaced_under_a_reader_is_refused(store, tmp_path):
    s = open_store(store)
    s.spectrum(0)
    os.rename(store, tmp_path / "old.zarr")
    _copy(tmp_path / "old.zarr", store)  # same path, another folder: what an --overwrite publish does
    with pytest.raises(StoreChangedError, match="open it again"):
        s.spectrum(100)  # a chunk not read yet
    assert open_store(store).spectrum(100).meta["row"] == 100


def test_a_missing_extra_says_what_to_install(store, monkeypatch):
    s = open_store(store)
    monkeypatch.setitem(sys.modules, "specutils", None)
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"pip install '\.\[read\]' in a clone of shardmerge"):
        s.spectrum(0)
    with pytest.raises(ImportError, match=r"to_xarray needs xarray.*shardmerge\[read\]"):
        s.to_xarray()
    f, _, _ = s[0]  # numpy rows need none of them
    assert f.shape == (4000,)

