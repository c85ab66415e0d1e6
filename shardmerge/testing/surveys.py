"""Synthetic files in the survey layouts that have no real file in a published package (or whose real files
lack a case), built to the published data models: HARPS s1d, ESPRESSO S1D, ESO SDP variants, IRAF multispec and 1-D,
APOGEE apStar + aspcapStar, LAMOST LRS (old and DR8+) and MRS, SDSS spPlate and spSpec.

Every maker returns the path and the truth: what a correct reader must produce, per spectrum, as
{"wave": Angstrom ascending, "flux", "sigma", "mask" (or None), "continuum", "normalized", …}."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from ..exactmath import exp10, log10_scalar  # generated inputs must not depend on the CPU either
from .spectra import observing_header, synthetic_flux, write_fits

Truth = list[dict]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def make_harps_s1d(path: str | Path, *, n_pix: int = 313_000, seed: int = 0, n_eso_cards: int = 3000
                   ) -> tuple[Path, Truth]:
    """HARPS DRS `*_s1d_A.fits`: a primary image on a linear grid with the non-standard CTYPE1 = 'Angstrom',
    BUNIT 'Relative Flux', and thousands of HIERARCH ESO cards (most must not be projected)."""
    rng = _rng(seed)
    wave = 3781.0 + 0.01 * np.arange(n_pix)
    flux = synthetic_flux(rng, wave)
    hdr = observing_header(rng, seed)
    for k in range(n_eso_cards):  # DRS calibration and telemetry blocks: high volume, low reuse
        group = ("DRS CAL LOC", "DRS CAL TH COEFF", "INS TEMP", "DET CHIP", "OCS DET")[k % 5]
        hdr.append((f"HIERARCH ESO {group} {k // 5} VAL", float(k), "telemetry"), end=True)
    hdr["HIERARCH ESO DRS BERV"] = 12.3
    hdr["CRVAL1"], hdr["CDELT1"], hdr["CRPIX1"], hdr["CTYPE1"] = 3781.0, 0.01, 1.0, "Angstrom"
    hdr["BUNIT"] = "Relative Flux"
    out = write_fits(fits.HDUList([fits.PrimaryHDU(flux, header=hdr)]), Path(path))
    return out, [{"wave": wave, "flux": flux, "sigma": None, "mask": None}]


def make_espresso_s1d(path: str | Path, *, n_pix: int = 4000, seed: int = 0) -> tuple[Path, Truth]:
    """ESPRESSO DRS S1D: HDU 1 'SPECTRUM' is a table with one row per pixel."""
    rng = _rng(seed)
    wave = 3771.0 + 0.005 * np.arange(n_pix)
    flux = synthetic_flux(rng, wave).astype(np.float64)
    err = np.full(n_pix, 0.3)
    qual = np.where(rng.random(n_pix) < 0.02, 4, 0).astype(np.int32)
    hdr = observing_header(rng, seed)
    hdr["INSTRUME"] = "ESPRESSO"
    hdr["HIERARCH ESO PRO CATG"] = "S1D_A"
    cols = fits.ColDefs([
        fits.Column("wavelength", "D", unit="angstrom", array=wave),
        fits.Column("wavelength_air", "D", unit="angstrom", array=wave / 1.00028),
        fits.Column("flux", "D", unit="e-", array=flux),
        fits.Column("error", "D", unit="e-", array=err),
        fits.Column("quality", "J", array=qual),
    ])
    table = fits.BinTableHDU.from_columns(cols, name="SPECTRUM")
    out = write_fits(fits.HDUList([fits.PrimaryHDU(header=hdr), table]), Path(path))
    return out, [{"wave": wave, "flux": flux.astype(np.float32), "sigma": err.astype(np.float32), "mask": qual}]


def make_eso_sdp(path: str | Path, *, n_pix: int = 3000, seed: int = 0, unit: str = "nm",
                 contnorm: bool = False) -> tuple[Path, Truth]:
    """An ESO SDP whose error column is named ERR_FLUX and found by its UCD, with a wavelength in nm, QUAL
    and CONTINUUM columns; `contnorm` writes CONTNORM = T (FLUX continuum-normalized)."""
    rng = _rng(seed)
    wave_a = 5000.0 + 0.2 * np.arange(n_pix)
    factor = {"nm": 10.0, "angstrom": 1.0, "um": 1e4}[unit]
    flux = synthetic_flux(rng, wave_a)
    cont = np.full(n_pix, 10.0, dtype=np.float32)
    if contnorm:
        flux = (flux / cont).astype(np.float32)
    err = np.full(n_pix, np.nan, dtype=np.float32)  # some products ship an all-NaN error: kept as is
    qual = np.where(rng.random(n_pix) < 0.05, 1, 0).astype(np.int16)
    hdr = observing_header(rng, seed)
    hdr["PRODCATG"] = "SCIENCE.SPECTRUM"
    hdr["CONTNORM"] = contnorm
    cols = fits.ColDefs([
        fits.Column("WAVE", f"{n_pix}D", unit=unit, array=(wave_a / factor)[np.newaxis]),
        fits.Column("FLUX", f"{n_pix}E", unit="erg cm**(-2) s**(-1) angstrom**(-1)", array=flux[np.newaxis]),
        fits.Column("ERR_FLUX", f"{n_pix}E", array=err[np.newaxis]),
        fits.Column("QUAL", f"{n_pix}I", array=qual[np.newaxis]),
        fits.Column("CONTINUUM", f"{n_pix}E", array=cont[np.newaxis]),
    ])
    table = fits.BinTableHDU.from_columns(cols)
    for k, (utype, ucd) in enumerate([("spec:Data.SpectralAxis.Value", "em.wl"),
                                      ("spec:Data.FluxAxis.Value", "phot.flux.density;em.wl"),
                                      ("spec:Data.FluxAxis.Accuracy.StatError", "stat.error;phot.flux.density"),
                                      ("spec:Data.FluxAxis.Quality", "meta.code.qual"), ("", "")], start=1):
        if utype:
            table.header[f"TUTYP{k}"] = utype
            table.header[f"TUCD{k}"] = ucd
    out = write_fits(fits.HDUList([fits.PrimaryHDU(header=hdr), table]), Path(path))
    truth = {"wave": wave_a, "flux": flux, "sigma": err, "mask": qual, "continuum": cont}
    if contnorm:
        truth["normalized"] = flux
    return out, [truth]


def _wat_cards(hdr: fits.Header, axis: int, text: str) -> None:
    for k in range(0, len(text), 68):
        hdr[f"WAT{axis}_{k // 68 + 1:03d}"] = text[k : k + 68]


def make_iraf_multispec(path: str | Path, *, n_ap: int = 3, n_pix: int = 1200, dtype: int = 0, seed: int = 0
                        ) -> tuple[Path, Truth]:
    """An IRAF multispec image with 2 bands (spectrum, sigma): WAT2 specN entries split over 68-character
    cards mid-number, a shorter last aperture (nw < NAXIS1), a Doppler z, and sexagesimal RA/DEC."""
    rng = _rng(seed)
    truth: Truth = []
    data = np.zeros((2, n_ap, n_pix), dtype=np.float32)
    specs = []
    for a in range(n_ap):
        nw = n_pix if a < n_ap - 1 else n_pix - 200
        z = 1e-4 * a
        if dtype == 1:
            w1, dw = 3.6 + 0.01 * a, 1e-4
            wave = exp10(w1 + dw * np.arange(nw)) / (1 + z)
        else:
            w1, dw = 4000.0 + 100.0 * a, 1.25
            wave = (w1 + dw * np.arange(nw)) / (1 + z)
        flux = synthetic_flux(rng, wave)
        data[0, a, :nw] = flux
        data[1, a, :nw] = 0.3
        specs.append(f'spec{a + 1} = "{a + 1} {a + 1} {dtype} {w1!r} {dw!r} {nw} {z!r} 10.00 20.00"')
        truth.append({"wave": wave, "flux": flux, "sigma": np.full(nw, 0.3, dtype=np.float32), "mask": None})
    hdr = observing_header(rng, seed)
    hdr["WCSDIM"] = 3
    hdr["CTYPE1"], hdr["CTYPE2"] = "MULTISPE", "MULTISPE"
    hdr["BANDID1"] = "spectrum - background fit, weights variance, clean no"
    hdr["BANDID2"] = "sigma - background fit, weights variance, clean no"
    hdr["BUNIT"] = "erg/cm2/s/A"
    _wat_cards(hdr, 0, "system=multispec")
    _wat_cards(hdr, 1, "wtype=multispec label=Wavelength units=angstroms")
    _wat_cards(hdr, 2, "wtype=multispec " + " ".join(specs))
    out = write_fits(fits.HDUList([fits.PrimaryHDU(data, header=hdr)]), Path(path))
    return out, truth


def make_iraf_1d_loglinear(path: str | Path, *, n_pix: int = 2000, seed: int = 0) -> tuple[Path, Truth]:
    """IRAF 1-D: WCSDIM = 1, CTYPE1 = 'LINEAR', DC-FLAG = 1: CRVAL1/CDELT1 are log10(Angstrom)."""
    rng = _rng(seed)
    wave = exp10(3.6 + 1e-4 * np.arange(n_pix))
    flux = synthetic_flux(rng, wave)
    hdr = observing_header(rng, seed)
    hdr["WCSDIM"] = 1
    hdr["CRVAL1"], hdr["CDELT1"], hdr["CD1_1"], hdr["CRPIX1"] = 3.6, 1e-4, 1e-4, 1.0
    hdr["CTYPE1"], hdr["DC-FLAG"] = "LINEAR", 1
    _wat_cards(hdr, 0, "system=equispec")
    _wat_cards(hdr, 1, "wtype=linear label=Wavelength units=angstroms")
    out = write_fits(fits.HDUList([fits.PrimaryHDU(flux, header=hdr)]), Path(path))
    return out, [{"wave": wave, "flux": flux, "sigma": None, "mask": None}]


APOGEE_CRVAL, APOGEE_CDELT, APOGEE_NPIX = 4.179, 6e-6, 8575


def _apogee_wave() -> np.ndarray:
    return exp10(APOGEE_CRVAL + APOGEE_CDELT * np.arange(APOGEE_NPIX))


def make_apstar(path: str | Path, *, apogee_id: str = "2M00000000+0000000", n_visits: int = 2, seed: int = 0
                ) -> tuple[Path, Truth]:
    """DR17 apStar: HDU 1-3 flux, error, bitmask [2 combined + n_visits rows, 8575] (one row when one visit
    is combined with nothing), log-linear CRVAL1/CDELT1."""
    rng = _rng(seed)
    wave = _apogee_wave()
    n_rows = n_visits + 2 if n_visits > 1 else 1
    flux = np.stack([synthetic_flux(rng, wave / 3.0) for _ in range(n_rows)]).astype(np.float64)
    err = np.full_like(flux, 0.5)
    mask = np.where(rng.random(flux.shape) < 0.01, 2**9, 0).astype(np.int64)
    prim = fits.Header()
    prim["OBJID"], prim["NVISITS"], prim["RA"], prim["DEC"] = apogee_id, n_visits, 10.5, -20.25
    hdus = [fits.PrimaryHDU(header=prim)]
    for arr, unit in ((flux, "Flux (10^-17 erg/s/cm^2/Ang)"), (err, "Err (10^-17 erg/s/cm^2/Ang)"),
                      (mask, "Pixel bitmask")):
        h = fits.Header()
        h["CRVAL1"], h["CDELT1"], h["CRPIX1"], h["CTYPE1"], h["BUNIT"] = (APOGEE_CRVAL, APOGEE_CDELT, 1,
                                                                           "LOG-LINEAR", unit)
        hdus.append(fits.ImageHDU(arr, header=h))
    out = write_fits(fits.HDUList(hdus), Path(path))
    return out, [{"wave": wave, "flux": flux[r].astype(np.float32), "sigma": err[r].astype(np.float32),
                  "mask": mask[r]} for r in range(n_rows)]


def make_aspcapstar(path: str | Path, *, apogee_id: str = "2M00000000+0000000", seed: int = 0
                    ) -> tuple[Path, Truth]:
    """DR17 aspcapStar: HDU 1 normalized flux, HDU 2 its error, HDU 3 the best-fit model (1-D, 8575, on
    the apStar grid), HDU 4 a one-row table with APOGEE_ID and parameters."""
    rng = _rng(seed)
    norm = (1.0 + rng.normal(0, 0.01, APOGEE_NPIX)).astype(np.float32)
    err = np.full(APOGEE_NPIX, 0.01, dtype=np.float32)
    prim = fits.Header()
    prim["OBJID"] = apogee_id
    hdus = [fits.PrimaryHDU(header=prim)]
    for arr in (norm, err, norm):
        h = fits.Header()
        h["CRVAL1"], h["CDELT1"], h["CRPIX1"] = APOGEE_CRVAL, APOGEE_CDELT, 1
        hdus.append(fits.ImageHDU(arr, header=h))
    hdus.append(fits.BinTableHDU.from_columns([fits.Column("APOGEE_ID", "20A", array=[apogee_id]),
                                               fits.Column("TEFF", "E", array=[4800.0])]))
    out = write_fits(fits.HDUList(hdus), Path(path))
    return out, [{"wave": _apogee_wave(), "normalized": norm, "normalized_sigma": err}]


def _lamost_header(rng: np.random.Generator, seed: int) -> fits.Header:
    hdr = observing_header(rng, seed)
    hdr["TELESCOP"] = "LAMOST"
    hdr["BUNIT"] = "10**-17 erg/s/cm^2/A"
    return hdr


def _lamost_arrays(rng: np.random.Generator, n_pix: int, w0: float, dw: float):
    wave = exp10(log10_scalar(w0) + dw * np.arange(n_pix))
    flux = synthetic_flux(rng, wave)
    ivar = np.where(rng.random(n_pix) < 0.02, 0.0, 4.0).astype(np.float32)
    andmask = np.where(ivar == 0, 2**2, 0).astype(np.int32)
    sigma = np.where(ivar > 0, 1 / np.sqrt(np.where(ivar > 0, ivar, 1)), np.nan).astype(np.float32)
    return wave, flux, ivar, andmask, sigma


def make_lamost_lrs(path: str | Path, *, dr8: bool = True, n_pix: int = 3909, seed: int = 0) -> tuple[Path, Truth]:
    """LAMOST LRS: before DR8 a 5-row primary image (flux, ivar, wavelength, andmask, ormask); DR8 and
    later a one-row table 'COADD' with those array columns."""
    rng = _rng(seed)
    wave, flux, ivar, andmask, sigma = _lamost_arrays(rng, n_pix, 3690.0, 1e-4)
    hdr = _lamost_header(rng, seed)
    if dr8:
        cols = fits.ColDefs([fits.Column(n, f"{n_pix}{f}", array=a[np.newaxis]) for n, f, a in (
            ("FLUX", "E", flux), ("IVAR", "E", ivar), ("WAVELENGTH", "D", wave), ("ANDMASK", "J", andmask),
            ("ORMASK", "J", andmask))])
        hdul = fits.HDUList([fits.PrimaryHDU(header=hdr), fits.BinTableHDU.from_columns(cols, name="COADD")])
    else:
        data = np.stack([flux, ivar, wave.astype(np.float32), andmask, andmask]).astype(np.float32)
        hdr["COEFF0"], hdr["COEFF1"] = log10_scalar(3690.0), 1e-4
        hdul = fits.HDUList([fits.PrimaryHDU(data, header=hdr)])
        wave = data[2].astype(np.float64)  # the file holds float32 wavelengths
    out = write_fits(hdul, Path(path))
    return out, [{"wave": wave, "flux": flux, "sigma": sigma, "mask": andmask}]


def make_lamost_mrs(path: str | Path, *, n_epochs: int = 2, n_pix: int = 3000, seed: int = 0) -> tuple[Path, Truth]:
    """LAMOST MRS: COADD_B and COADD_R tables, then one table per epoch and arm (B-<MJM>, R-<MJM>)."""
    rng = _rng(seed)
    hdus = [fits.PrimaryHDU(header=_lamost_header(rng, seed))]
    truth: Truth = []
    names = ["COADD_B", "COADD_R"] + [f"{arm}-{84000000 + e}" for e in range(n_epochs) for arm in "BR"]
    for name in names:
        w0 = 4950.0 if name.startswith(("COADD_B", "B")) else 6300.0
        wave, flux, ivar, andmask, sigma = _lamost_arrays(rng, n_pix, w0, 2e-5)
        cols = fits.ColDefs([fits.Column(n, f"{n_pix}{f}", array=a[np.newaxis]) for n, f, a in (
            ("FLUX", "E", flux), ("IVAR", "E", ivar), ("WAVELENGTH", "D", wave), ("ANDMASK", "J", andmask),
            ("ORMASK", "J", andmask))])
        hdus.append(fits.BinTableHDU.from_columns(cols, name=name))
        truth.append({"wave": wave, "flux": flux, "sigma": sigma, "mask": andmask, "hdu": name})
    return write_fits(fits.HDUList(hdus), Path(path)), truth


def make_spplate(path: str | Path, *, n_fiber: int = 12, n_pix: int = 3000, seed: int = 0) -> tuple[Path, Truth]:
    """SDSS spPlate: primary flux [fibres × pixels] with COEFF0/COEFF1, HDU 1 ivar, HDU 2 and-mask,
    HDU 3 or-mask, HDU 4 dispersion, HDU 5 PLUGMAP (with guide and alignment holes, not in fibre order)."""
    rng = _rng(seed)
    wave = exp10(3.5785 + 1e-4 * np.arange(n_pix))
    flux = np.stack([synthetic_flux(rng, wave) for _ in range(n_fiber)])
    ivar = np.full_like(flux, 9.0)
    andmask = np.where(rng.random(flux.shape) < 0.01, 2**16, 0).astype(np.int32)
    hdr = observing_header(rng, seed)
    hdr["COEFF0"], hdr["COEFF1"], hdr["BUNIT"] = 3.5785, 1e-4, "1E-17 erg/cm^2/s/Ang"
    order = rng.permutation(n_fiber)
    holes = [("GUIDE", -1), ("ALIGNMENT", -1)] + [("OBJECT", int(f) + 1) for f in order]
    ra = np.array([150.0 + 0.01 * f for _, f in holes])
    objtype = np.array(["NA" if f < 0 else ("QSO" if f % 3 == 0 else "GALAXY") for _, f in holes])
    pm = fits.BinTableHDU.from_columns([
        fits.Column("HOLETYPE", "10A", array=[h for h, _ in holes]),
        fits.Column("OBJTYPE", "10A", array=objtype),
        fits.Column("RA", "D", array=ra), fits.Column("DEC", "D", array=-ra / 10),
        fits.Column("FIBERID", "J", array=[f for _, f in holes])], name="PLUGMAP")
    hdul = fits.HDUList([fits.PrimaryHDU(flux, header=hdr), fits.ImageHDU(ivar), fits.ImageHDU(andmask),
                         fits.ImageHDU(andmask), fits.ImageHDU(np.ones_like(flux)), pm])
    out = write_fits(hdul, Path(path))
    truth = []
    for fibre in range(1, n_fiber + 1):
        j = [f for _, f in holes].index(fibre)
        truth.append({"wave": wave, "flux": flux[fibre - 1], "sigma": np.full(n_pix, 1 / 3, dtype=np.float32),
                      "mask": andmask[fibre - 1], "ra": ra[j], "objtype": objtype[j]})
    return out, truth


def make_spspec(path: str | Path, *, n_pix: int = 3850, seed: int = 0) -> tuple[Path, Truth]:
    """SDSS DR7 spSpec: primary image rows flux, continuum-subtracted flux, error, mask, (sky)."""
    rng = _rng(seed)
    wave = exp10(3.5797 + 1e-4 * np.arange(n_pix))
    flux = synthetic_flux(rng, wave)
    cont = np.full(n_pix, 10.0, dtype=np.float32)
    mask = np.where(rng.random(n_pix) < 0.02, 2**18, 0).astype(np.float32)
    data = np.stack([flux, flux - cont, np.full(n_pix, 0.4, np.float32), mask, np.zeros(n_pix, np.float32)])
    hdr = observing_header(rng, seed)
    hdr["COEFF0"], hdr["COEFF1"], hdr["FIBERID"], hdr["PLATEID"] = 3.5797, 1e-4, 31, 266
    out = write_fits(fits.HDUList([fits.PrimaryHDU(data, header=hdr)]), Path(path))
    return out, [{"wave": wave, "flux": flux, "sigma": np.full(n_pix, 0.4, np.float32), "mask": mask.astype(np.int64),
                  "continuum": (data[0].astype(np.float64) - data[1]).astype(np.float32)}]


def make_harps_e2ds(path: str | Path, *, n_orders: int = 72, n_pix: int = 4096, deg: int = 3, seed: int = 0
                    ) -> tuple[Path, Truth]:
    """HARPS DRS `*_e2ds_A.fits`: orders × pixels, wavelength per order from `ESO DRS CAL TH COEFF LLk`
    (k = order * (deg + 1) + j), and DATASUM = '0' with no CHECKSUM, as the ESO archive serves it."""
    rng = _rng(seed)
    x = np.arange(n_pix, dtype=np.float64)
    hdr = observing_header(rng, seed)
    hdr["HIERARCH ESO DRS CAL TH DEG LL"] = deg
    data = np.zeros((n_orders, n_pix), dtype=np.float32)
    truth: Truth = []
    for o in range(n_orders):
        start = 3780.0 + 40.0 * o
        coeffs = [start, 0.0125 + 1e-5 * o, 2e-8, -1e-13][: deg + 1]
        for j, c in enumerate(coeffs):
            hdr[f"HIERARCH ESO DRS CAL TH COEFF LL{o * (deg + 1) + j}"] = c
        wave = np.polynomial.polynomial.polyval(x, coeffs)
        data[o] = synthetic_flux(rng, wave) * 1000
        truth.append({"wave": wave, "flux": data[o].copy(), "sigma": None, "mask": None, "order": str(o)})
    hdr["DATASUM"] = "0"
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(data, header=hdr).writeto(out, overwrite=True)  # no checksum=True: the '0' stays as served
    return out, truth


def make_jwst_spec1d(path: str | Path, *, n_pix: int = 400, n_rows: int = 31, seed: int = 0) -> tuple[Path, Truth]:
    """A JWST/NIRSpec MSA product as msaexp writes it: `SPEC1D` table (wave in micron, flux, err) beside the
    2-D `SCI` and `WHT` images it was extracted from, whose linear WCS must not be taken for spectra."""
    rng = _rng(seed)
    wave_um = np.linspace(0.6, 5.3, n_pix)
    flux = rng.normal(1.0, 0.1, n_pix).astype(np.float32)
    err = np.full(n_pix, 0.05, dtype=np.float32)
    table = fits.BinTableHDU.from_columns([fits.Column("wave", "D", unit="um", array=wave_um),
                                           fits.Column("flux", "E", unit="uJy", array=flux),
                                           fits.Column("err", "E", unit="uJy", array=err)], name="SPEC1D")
    sci = fits.ImageHDU(rng.normal(size=(n_rows, n_pix)).astype(np.float32), name="SCI")
    sci.header.update({"CRVAL1": 0.6, "CDELT1": 0.01, "CRPIX1": 1.0})  # spatial rows, approximate axis
    wht = fits.ImageHDU(np.ones((n_rows, n_pix), dtype=np.float32), name="WHT")
    out = write_fits(fits.HDUList([fits.PrimaryHDU(header=observing_header(rng, seed)), table, sci, wht]), Path(path))
    return out, [{"wave": wave_um * 1e4, "flux": flux, "sigma": err, "mask": None}]


def make_calspec_table(path: str | Path, *, n_pix: int = 3000, seed: int = 0) -> tuple[Path, Truth]:
    """CALSPEC/STSDAS: a `SCI` table with one row per pixel: WAVELENGTH (ANGSTROMS), FLUX (FLAM), STATERROR,
    SYSERROR, FWHM, DATAQUAL (1 = good), TOTEXP."""
    rng = _rng(seed)
    wave = np.linspace(1140.0, 25000.0, n_pix).astype(np.float32)
    flux = (rng.uniform(1, 2, n_pix) * 1e-14).astype(np.float32)
    stat = (flux * 0.01).astype(np.float32)
    cols = [fits.Column("WAVELENGTH", "E", unit="ANGSTROMS", array=wave),
            fits.Column("FLUX", "E", unit="FLAM", array=flux),
            fits.Column("STATERROR", "E", unit="FLAM", array=stat),
            fits.Column("SYSERROR", "E", unit="FLAM", array=flux * 0.02),
            fits.Column("FWHM", "E", unit="ANGSTROMS", array=np.full(n_pix, 3.0, dtype=np.float32)),
            fits.Column("DATAQUAL", "I", unit="NONE", array=np.ones(n_pix, dtype=np.int16))]
    out = write_fits(fits.HDUList([fits.PrimaryHDU(header=observing_header(rng, seed)),
                               fits.BinTableHDU.from_columns(cols, name="SCI")]), Path(path))
    return out, [{"wave": wave.astype(np.float64), "flux": flux, "sigma": stat, "mask": None}]


def make_iraf_equispec_bands(path: str | Path, *, n_ap: int = 2, n_pix: int = 1500, log: bool = False, seed: int = 0
                             ) -> tuple[Path, Truth]:
    """IRAF `apall` equispec output: [bands, apertures, pixels] with a linear (or DC-FLAG = 1 log-linear)
    WCS and BANDID1..4 = spectrum, raw, background, sigma."""
    rng = _rng(seed)
    crval, cdelt = (3.6, 1e-4) if log else (4000.0, 1.5)
    axis = crval + cdelt * np.arange(n_pix)
    wave = exp10(axis) if log else axis
    data = np.zeros((4, n_ap, n_pix), dtype=np.float32)
    truth: Truth = []
    for a in range(n_ap):
        flux = synthetic_flux(rng, wave) * (1 + a)
        data[0, a], data[1, a], data[2, a], data[3, a] = flux, flux * 1.1, 0.2, 0.3 + 0.01 * a
        truth.append({"wave": wave, "flux": flux, "sigma": np.full(n_pix, 0.3 + 0.01 * a, dtype=np.float32),
                      "mask": None})
    hdr = observing_header(rng, seed)
    hdr["WCSDIM"] = 3
    hdr["CRVAL1"], hdr["CDELT1"], hdr["CD1_1"], hdr["CRPIX1"], hdr["CTYPE1"] = crval, cdelt, cdelt, 1.0, "LINEAR"
    hdr["DC-FLAG"] = 1 if log else 0
    for k, label in enumerate(("spectrum", "raw", "background", "sigma"), start=1):
        hdr[f"BANDID{k}"] = f"{label} - background fit, weights variance, clean no"
    _wat_cards(hdr, 0, "system=equispec")
    out = write_fits(fits.HDUList([fits.PrimaryHDU(data, header=hdr)]), Path(path))
    return out, truth


def make_undeclared_log_1d(path: str | Path, *, n_pix: int = 2000, seed: int = 0) -> Path:
    """A 1-D image whose header has only CRVAL1/CDELT1 holding log10(Angstrom): no DC-FLAG, CTYPE1 or CUNIT1."""
    rng = _rng(seed)
    wave = exp10(3.7 + 1e-4 * np.arange(n_pix))
    hdr = observing_header(rng, seed)
    hdr["CRVAL1"], hdr["CDELT1"], hdr["CRPIX1"] = 3.7, 1e-4, 1.0
    return write_fits(fits.HDUList([fits.PrimaryHDU(synthetic_flux(rng, wave), header=hdr)]), Path(path))


def make_muse_stat(path: str | Path, *, n_pix: int = 2048, seed: int = 0) -> tuple[Path, Truth]:
    """MPDAF/MUSE 1-D spectrum: empty primary, `DATA` image with a linear WCS in Angstrom, `STAT` variance."""
    rng = _rng(seed)
    wave = 6550.0 + 1.25 * np.arange(n_pix)
    flux = synthetic_flux(rng, wave)
    var = rng.uniform(0.5, 2.0, n_pix).astype(np.float32)
    data = fits.ImageHDU(flux, name="DATA")
    data.header.update({"CRVAL1": 6550.0, "CDELT1": 1.25, "CRPIX1": 1.0, "CTYPE1": "AWAV", "CUNIT1": "Angstrom"})
    stat = fits.ImageHDU(var, name="STAT")
    stat.header.update({"CRVAL1": 6550.0, "CDELT1": 1.25, "CRPIX1": 1.0, "CUNIT1": ""})
    out = write_fits(fits.HDUList([fits.PrimaryHDU(header=observing_header(rng, seed)), data, stat]), Path(path))
    sigma = np.sqrt(var.astype(np.float64)).astype(np.float32)
    return out, [{"wave": wave, "flux": flux, "sigma": sigma, "mask": None}]


def make_survey_folder(root: str | Path) -> list[tuple[Path, Truth]]:
    """One folder with every synthetic survey layout (the mixed-folder test and the store fingerprint)."""
    root = Path(root)
    return [
        make_harps_s1d(root / "harps" / "HARPS_s1d_A.fits", n_pix=20_000),
        make_harps_e2ds(root / "harps" / "HARPS_e2ds_A.fits", n_orders=6),
        make_espresso_s1d(root / "espresso" / "ESPRE_S1D_A.fits"),
        make_eso_sdp(root / "eso" / "ADP.2019.fits"),
        make_eso_sdp(root / "eso" / "ADP.norm.fits", unit="angstrom", contnorm=True, seed=1),
        make_iraf_multispec(root / "iraf" / "ms.fits"),
        make_iraf_1d_loglinear(root / "iraf" / "one.fits"),
        make_iraf_equispec_bands(root / "iraf" / "apall.fits"),
        make_apstar(root / "apogee" / "apStar-2M1.fits", apogee_id="2M1", n_visits=2),
        make_aspcapstar(root / "apogee" / "aspcapStar-2M1.fits", apogee_id="2M1"),
        make_lamost_lrs(root / "lamost" / "old.fits", dr8=False),
        make_lamost_lrs(root / "lamost" / "dr8.fits", seed=2),
        make_lamost_mrs(root / "lamost" / "mrs.fits"),
        make_spplate(root / "sdss" / "spPlate-0266-51602.fits"),
        make_spspec(root / "sdss" / "spSpec-51602-0266-031.fits"),
        make_jwst_spec1d(root / "jwst" / "msa_spec1d.fits"),
        make_calspec_table(root / "hst" / "calspec_stisnic.fits"),
        make_muse_stat(root / "muse" / "spectrum.fits"),
    ]
