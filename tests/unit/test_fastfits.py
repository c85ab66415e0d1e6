"""The fast path for plain image files must read exactly what astropy reads, and hand everything else to
astropy."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from shardmerge.readers import fastfits
from shardmerge.testing import spectra as samples
from shardmerge.testing import surveys as samples_surveys


def _same_as_astropy(path):
    raw = path.read_bytes()
    fast = fastfits.parse(raw)
    assert fast is not None
    with fits.open(path) as h:
        assert len(fast) == len(h)
        for i, hdu in enumerate(h):
            f = fast[i]
            assert f.shape == (hdu.data.shape if hdu.data is not None else ())
            if hdu.data is not None:
                np.testing.assert_array_equal(f.data, hdu.data)
            for key in hdu.header:
                if key in ("COMMENT", "HISTORY", ""):
                    continue
                assert f.header[key] == hdu.header[key], key
            assert [(c.keyword, c.value) for c in f.header.cards] == [(c.keyword, c.value) for c in hdu.header.cards]
            assert fast.fileinfo(i) == {k: h.fileinfo(i)[k] for k in ("hdrLoc", "datLoc", "datSpan")}


@pytest.mark.parametrize("maker", [
    lambda p: samples.make_wcs1d(p, uncertainty="err"),
    lambda p: samples.make_image2d(p, n_rows=7, n_pix=333),
    lambda p: samples_surveys.make_harps_s1d(p, n_pix=5000)[0],
    lambda p: samples_surveys.make_iraf_multispec(p)[0],
    lambda p: samples_surveys.make_apstar(p)[0],
])
def test_plain_image_files_read_as_astropy_reads_them(tmp_path, maker):
    _same_as_astropy(maker(tmp_path / "f.fits"))


def _table_file(path, *columns):
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(list(columns))]).writeto(path)
    return path


def test_plain_binary_tables_read_as_astropy_reads_them(tmp_path):
    """Every column of a plain table: the same values, dtype and shape as astropy's, strings as str with
    the trailing blanks dropped, logicals as bool; the column names, formats and units readers ask for."""
    n = 5
    rng = np.random.default_rng(3)
    mixed = _table_file(
        tmp_path / "mixed.fits",
        fits.Column("CLASS", "6A", array=["GAL", "QSO  X", "", "STAR", "G"]),
        fits.Column("ok", "L", array=[True, False, True, True, False]),
        fits.Column("flags", "3L", array=rng.random((n, 3)) > 0.5),
        fits.Column("wave", "4E", unit="Angstrom", array=rng.random((n, 4)).astype(np.float32)),
        fits.Column("Z", "D", array=rng.random(n)),
        fits.Column("N", "J", array=np.arange(n)),
        fits.Column("big", "K", array=np.arange(n) * 10**12),
        fits.Column("b", "B", array=np.arange(n, dtype=np.uint8)),
        fits.Column("i", "I", array=-np.arange(n, dtype=np.int16)))
    empty = _table_file(tmp_path / "empty.fits", fits.Column("CLASS", "6A", array=np.array([], "S6")),
                        fits.Column("Z", "D", array=np.array([])))
    for path in (mixed, empty, samples.make_sdss_coadd(tmp_path / "spec.fits")):
        fast = fastfits.parse(path.read_bytes())
        assert fast is not None
        with fits.open(path) as h:
            for i, hdu in enumerate(h):
                assert fast.fileinfo(i) == {k: h.fileinfo(i)[k] for k in ("hdrLoc", "datLoc", "datSpan")}
                if not isinstance(hdu, fits.BinTableHDU):
                    continue
                f = fast[i]
                assert f.is_table and not f.is_image and len(f.data) == len(hdu.data)
                assert f.columns.names == hdu.columns.names
                for mine, theirs in zip(f.columns, hdu.columns, strict=True):
                    assert (mine.name, str(mine.format), mine.format.repeat, mine.format.format, mine.unit) == \
                        (theirs.name, str(theirs.format), theirs.format.repeat, theirs.format.format, theirs.unit)
                for k, name in enumerate(hdu.columns.names):
                    ours, ref = f.data[name], hdu.data[name]
                    assert ours.dtype == ref.dtype and ours.shape == ref.shape, name
                    assert [str(x) for x in ours.ravel()] == [str(x) for x in ref.ravel()], name
                    np.testing.assert_array_equal(f.data.field(k), ref)
                    np.testing.assert_array_equal(f.data[name.swapcase()], ref)  # names in any case
                assert f.columns[hdu.columns.names[0].lower()].name == hdu.columns.names[0]


def test_everything_else_goes_to_astropy(tmp_path):
    scaled_column = _table_file(tmp_path / "tz.fits", fits.Column("u", "I", bzero=32768, array=np.arange(3)))
    heap = _table_file(tmp_path / "heap.fits", fits.Column("v", "PJ()", array=[np.arange(2), np.arange(3)]))
    bits = _table_file(tmp_path / "bits.fits", fits.Column("x", "8X", array=np.zeros((2, 8), bool)))
    shaped = _table_file(tmp_path / "dim.fits", fits.Column("m", "6E", dim="(3,2)", array=np.zeros((2, 2, 3))))
    ascii_table = tmp_path / "ascii.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.TableHDU.from_columns([fits.Column("a", "E10.4", array=[1.0])])]) \
        .writeto(ascii_table)
    for table in (scaled_column, heap, bits, shaped, ascii_table):
        assert fastfits.parse(table.read_bytes()) is None, table.name
    scaled = tmp_path / "s.fits"
    fits.PrimaryHDU(np.arange(10, dtype=np.uint16)).writeto(scaled)  # stored as int16 with BZERO = 32768
    assert fastfits.parse(scaled.read_bytes()) is None
    long = tmp_path / "l.fits"
    h = fits.Header()
    h["LONGSTR"] = "x" * 200  # written with CONTINUE cards
    fits.PrimaryHDU(np.zeros(4, np.float32), header=h).writeto(long)
    assert fastfits.parse(long.read_bytes()) is None
    raw = bytearray(samples.make_wcs1d(tmp_path / "w.fits").read_bytes())
    raw[100] = 0xFF
    assert fastfits.parse(bytes(raw)) is None  # not ASCII: astropy names the problem
    assert fastfits.parse(b"") is None and fastfits.parse(b"not fits at all") is None


_values = st.one_of(
    st.integers(-10**15, 10**15),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
)


@given(value=_values, comment=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
       keyword=st.sampled_from(["KEY", "DATE-OBS", "HIERARCH ESO TEL AIRM START", "HIERARCH ESO DRS BERV"]))
@settings(max_examples=400, deadline=None)
def test_card_values_match_astropy(value, comment, keyword):
    try:
        card = fits.Card(keyword, value, comment)
        image = card.image.encode("ascii")
    except (ValueError, fits.verify.VerifyError, fits.verify.VerifyWarning):
        return  # a card astropy cannot write whole (it would truncate the comment): nothing to compare
    if len(image) != 80:
        return  # a long string: CONTINUE cards, never parsed here
    expected = fits.Card.fromstring(image.decode()).value
    got = fastfits.card_value(image)
    assert type(got) is type(expected) and got == expected, image


def _counting_reads(monkeypatch) -> list[tuple[int, int]]:
    """(offset, size) of every read through a FileSource."""
    seen: list[tuple[int, int]] = []
    read = fastfits.FileSource.read

    def counted(self, offset: int, n: int) -> bytes:
        seen.append((offset, n))
        return read(self, offset, n)

    monkeypatch.setattr(fastfits.FileSource, "read", counted)
    return seen


def test_rows_on_demand_read_only_the_rows_indexed_and_equal_what_astropy_reads(tmp_path, monkeypatch):
    path = samples.make_image2d(tmp_path / "plate.fits", n_rows=40, n_pix=333)
    with fits.open(path) as h:
        flux, ivar = h[0].data.copy(), h[1].data.copy()
    seen = _counting_reads(monkeypatch)
    hdul = fastfits.parse_source(fastfits.FileSource(str(path)), rows_on_demand=True)
    try:
        headers = sum(n for _, n in seen)
        data = hdul[0].data
        assert isinstance(data, fastfits.RowsOnDemand) and data.shape == (40, 333) and len(data) == 40
        row_bytes = 333 * 4
        cases = [(lambda d: d[5:9], flux[5:9]), (lambda d: d.reshape(-1, 333)[30:], flux[30:]),
                 (lambda d: d[7], flux[7]), (lambda d: d[-1], flux[-1]), (lambda d: d[12:12], flux[12:12])]
        for index, expected in cases:
            before = sum(n for _, n in seen)
            got = index(data)
            np.testing.assert_array_equal(got, expected)
            assert sum(n for _, n in seen) - before == expected.size * 4 <= 10 * row_bytes
        np.testing.assert_array_equal(hdul[1].data[[1, 3]], ivar[[1, 3]])  # anything else: the whole unit
        np.testing.assert_array_equal(np.asarray(hdul[1].data, dtype=np.float64), ivar.astype(np.float64))
        np.testing.assert_array_equal(hdul[1].data.T, ivar.T)
        assert sum(n for _, n in seen) - headers == (16 + 40) * row_bytes  # 16 rows indexed, IVAR once whole
    finally:
        hdul.close()
    whole = fastfits.parse_source(fastfits.FileSource(str(path)))
    try:
        assert isinstance(whole[0].data, np.ndarray)  # without rows_on_demand (the scan): as before
    finally:
        whole.close()
