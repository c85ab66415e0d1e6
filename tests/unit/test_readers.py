"""Reader building blocks on synthetic files built by the test itself."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.errors import BadFileError, SlabShapeError, UnknownFormatError
from shardmerge.headers import load_header_rules
from shardmerge.readers import detect, open_fits
from shardmerge.readers.values import to_sigma
from shardmerge.scan import scan_file
from shardmerge.testing.spectra import make_image2d, make_sdss_coadd, make_wcs1d
from shardmerge.zarrio import write_block, write_slab, write_slabs
from tests.helpers import verified_notes


def test_to_sigma_conversions():
    ivar = np.array([4.0, 0.0, -1.0, 0.25])
    s = to_sigma(ivar, "ivar")
    assert s.dtype == np.float32
    assert s[0] == 0.5 and np.isnan(s[1]) and np.isnan(s[2]) and s[3] == 2.0
    v = to_sigma(np.array([4.0, -1.0]), "var")
    assert v[0] == 2.0 and np.isnan(v[1])
    e = to_sigma(np.array([0.3], dtype=np.float32), "sigma")
    assert e[0] == np.float32(0.3)


@pytest.mark.parametrize(("maker", "name"), [(make_wcs1d, "wcs-1d"), (make_image2d, "image-2d"),
                                             (make_sdss_coadd, "sdss-coadd")])
def test_detection(tmp_path, maker, name):
    p = maker(tmp_path / "x.fits")
    with open_fits(str(p)) as hdul:
        assert detect(str(p), hdul).name == name


def test_log_linear_wcs_and_cunit(tmp_path):
    p = make_wcs1d(tmp_path / "log.fits", n_pix=10, crval=3.6, cdelt=1e-4, log=True)
    s = scan_file(str(p), None, load_header_rules())
    assert s.format == "wcs-1d" and s.n_pix_max == 10 and s.n_spectra == 1
    nm = tmp_path / "nm.fits"
    with fits.open(p) as h:
        h[0].header["CUNIT1"] = "nm"
        h[0].header["DC-FLAG"] = 0
        h[0].header["CRVAL1"] = 500.0
        h[0].header["CDELT1"] = 0.1
        h.writeto(nm, checksum=True)
    from shardmerge.readers.wcs1d import WcsImage1DReader

    with open_fits(str(nm)) as hdul:
        layout = WcsImage1DReader().layout(str(nm), hdul)
    np.testing.assert_allclose(layout.grids[0][:3], [5000.0, 5001.0, 5002.0])


def test_unrecognised_wavelength_unit_names_the_file(tmp_path):
    p = make_wcs1d(tmp_path / "odd.fits", n_pix=10)
    with fits.open(p, mode="update") as h:
        h[0].header["CUNIT1"] = "furlong"
    with pytest.raises(BadFileError, match=r"odd\.fits.*furlong"):
        scan_file(str(p), None, load_header_rules())


def test_unknown_layout_and_not_fits(tmp_path):
    p = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])]
                 ).writeto(p)
    with pytest.raises(UnknownFormatError, match=r"table\.fits.*no reader recognises"):
        scan_file(str(p), None, load_header_rules())
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"this is not a FITS file at all" * 100)
    with pytest.raises(BadFileError, match=r"junk\.fits"):
        scan_file(str(junk), None, load_header_rules())
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    with pytest.raises(BadFileError, match=r"empty\.fits: file is empty"):
        scan_file(str(empty), None, load_header_rules())


def test_truncated_file_is_an_error(tmp_path):
    p = make_image2d(tmp_path / "trunc.fits", n_rows=8, n_pix=500)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 9000])
    with pytest.raises(BadFileError, match=r"trunc\.fits"):
        scan_file(str(p), None, load_header_rules())


def _flip(path, offset):
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def test_datasum_and_checksum_are_verified(tmp_path):
    rules = load_header_rules()
    data_fault = make_wcs1d(tmp_path / "data.fits", n_pix=100)
    with fits.open(data_fault) as h:
        data_start = h.fileinfo(0)["datLoc"]
    _flip(data_fault, data_start + 10)
    with pytest.raises(BadFileError, match=r"data\.fits: HDU 0: DATASUM mismatch"):
        verified_notes(data_fault)

    # a header edited after checksumming, and the other branches of the policy: test_checksum_policy.py

    from shardmerge.testing.spectra import gzip_file

    ok = gzip_file(make_wcs1d(tmp_path / "fine.fits", n_pix=100))
    assert scan_file(str(ok), None, rules).n_pix_max == 100


def test_ones_complement_sum_agrees_with_astropy():
    from shardmerge.readers.checksum import ones_complement_sum

    rng = np.random.default_rng(1)
    for n in (1, 720, 100_000):
        hdu = fits.PrimaryHDU(rng.normal(size=n).astype(">f4"))
        hdu.add_datasum()
        raw = hdu.data.tobytes() + b"\0" * (-hdu.data.nbytes % 2880)
        assert ones_complement_sum(raw) == int(hdu.header["DATASUM"])


def test_slab_writes_refuse_what_zarr_would_truncate(tmp_path):
    g = zarr.open_group(tmp_path / "s.zarr", mode="w")
    a = g.create_array("a", shape=(8, 5), chunks=(4, 5), dtype="float32")
    with pytest.raises(SlabShapeError, match="does not fit"):
        write_slab(a, 0, np.zeros((4, 6), dtype="float32"))  # wider: zarr would drop the last column
    with pytest.raises(SlabShapeError):
        write_slab(a, 6, np.zeros((4, 5), dtype="float32"))  # longer than what is left
    with pytest.raises(SlabShapeError, match="runs past"):
        write_block(a, (4, 2), np.zeros((4, 4), dtype="float32"))
    write_slab(a, 4, np.ones((4, 5), dtype="float32"))
    assert a[4:].sum() == 20
    b = g.create_array("b", shape=(8,), chunks=(4,), dtype=str, fill_value="")
    with pytest.raises(SlabShapeError):  # one slab that does not fit: nothing is written, not even a's
        write_slabs([(a, 0, np.full((4, 5), 7, dtype="float32")), (b, 6, np.array(["x"] * 4, dtype=object))])
    assert a[:4].sum() == 0 and list(b[:]) == [""] * 8
    write_slabs([(a, 0, np.full((4, 5), 7, dtype="float32")), (b, 2, np.array(list("wxyz"), dtype=object))])
    assert a[:4].sum() == 140 and list(b[:]) == ["", "", "w", "x", "y", "z", "", ""]


def test_gzip_inputs_are_verified_and_truncation_is_named(tmp_path):
    import gzip

    rules = load_header_rules()
    p = make_wcs1d(tmp_path / "g.fits", n_pix=100)
    with fits.open(p) as h:
        data_start = h.fileinfo(0)["datLoc"]
    _flip(p, data_start + 10)
    gz = tmp_path / "g.fits.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    with pytest.raises(BadFileError, match=r"g\.fits\.gz: HDU 0: DATASUM mismatch"):
        verified_notes(gz)
    cut = tmp_path / "cut.fits.gz"
    cut.write_bytes(gz.read_bytes()[:200])
    with pytest.raises(BadFileError, match=r"cut\.fits\.gz: not a readable gzip file"):
        scan_file(str(cut), None, rules)


def test_the_registry_orders_readers_by_priority_and_refuses_clashes():
    from shardmerge.readers.registry import READERS, _registry
    from shardmerge.readers.wcs1d import WcsImage1DReader

    assert [r.priority for r in READERS] == sorted(r.priority for r in READERS)
    assert READERS[-1].name == "wcs-1d"  # the most generic layout is tried last

    class Other(WcsImage1DReader):
        name = "other"

    with pytest.raises(RuntimeError, match="share the priority 90"):
        _registry(WcsImage1DReader(), Other())
    with pytest.raises(RuntimeError, match="share the name 'wcs-1d'"):
        _registry(WcsImage1DReader(), WcsImage1DReader())


def test_an_sdss_spec_file_is_scanned_from_its_header_blocks(tmp_path, monkeypatch):
    """The scan describes the grid from COEFF0/COEFF1 (a hint, never taken for a shared grid) and reads
    no data unit; with exact_grids it reads the loglam column, as before."""
    from shardmerge.filescan import GRID_HINT
    from shardmerge.readers import fastfits

    p = make_sdss_coadd(tmp_path / "spec.fits", n_pix=3000)
    read: list[int] = []
    real = fastfits.FileSource.read
    monkeypatch.setattr(fastfits.FileSource, "read", lambda self, o, n: read.append(n) or real(self, o, n))
    rules = load_header_rules()
    scan = scan_file(str(p), None, rules)
    assert scan.format == "sdss-coadd" and scan.n_spectra == 1 and scan.n_pix_max == scan.n_pix_min == 3000
    assert scan.grid_keys[0].startswith(GRID_HINT)
    assert sum(read) < 3 * 2880 + 64  # the primary and COADD header blocks, and the end-of-file probes
    exact = scan_file(str(p), None, rules, exact_grids=True)
    assert not exact.grid_keys[0].startswith(GRID_HINT) and sum(read) > p.stat().st_size
    assert (exact.n_pix_max, exact.header_keys) == (scan.n_pix_max, scan.header_keys)
