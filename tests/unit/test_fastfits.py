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


def test_everything_else_goes_to_astropy(tmp_path):
    table = samples.make_sdss_coadd(tmp_path / "t.fits")
    assert fastfits.parse(table.read_bytes()) is None  # a table HDU
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
    except (ValueError, fits.verify.VerifyError):
        return
    if len(image) != 80:
        return  # a long string: CONTINUE cards, never parsed here
    expected = fits.Card.fromstring(image.decode()).value
    got = fastfits.card_value(image)
    assert type(got) is type(expected) and got == expected, image
