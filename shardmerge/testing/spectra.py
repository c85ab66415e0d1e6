"""Synthetic FITS spectra in the built-in layouts, with realistic headers (HIERARCH ESO cards, duplicate
cards, COMMENT/HISTORY, telemetry that must not be projected). Used by the demo and the test fixtures;
nothing generated here is ever committed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..exactmath import exp, exp10  # generated inputs must not depend on the CPU either


def synthetic_flux(rng: np.random.Generator, wave: np.ndarray) -> np.ndarray:
    cont = 10.0 + 5.0 * np.sin(wave / 700.0)
    lines = sum(-3.0 * exp(-0.5 * ((wave - c) / 2.5) ** 2) for c in (4861.3, 5175.0, 5892.9, 6562.8))
    return (cont + lines + rng.normal(0, 0.3, wave.shape)).astype(np.float32)


def _observing_cards(rng: np.random.Generator, i: int) -> list[tuple]:
    ra_h = rng.uniform(0, 24)
    dec = rng.uniform(-60, 60)
    h, m = int(ra_h), (ra_h % 1) * 60
    sign = "-" if dec < 0 else "+"
    d, dm = int(abs(dec)), (abs(dec) % 1) * 60
    return [
        ("OBJECT", f"STAR-{i:05d}", "target name"),
        ("RA", f"{h:02d}:{int(m):02d}:{(m % 1) * 60:05.2f}", "RA (J2000) hh:mm:ss"),
        ("DEC", f"{sign}{d:02d}:{int(dm):02d}:{(dm % 1) * 60:04.1f}", "DEC (J2000) dd:mm:ss"),
        ("DATE-OBS", f"2019-03-{1 + i % 28:02d}T0{i % 10}:12:34.5", "start of exposure"),
        ("MJD-OBS", 58543.0 + i * 0.01, "MJD start"),
        ("EXPTIME", 600.0 + i, "[s] exposure time"),
        ("AIRMASS", round(1.0 + (i % 7) * 0.05, 3), "airmass at start"),
        ("AIRMASS", round(1.02 + (i % 7) * 0.05, 3), "airmass at end (duplicate card)"),
        ("INSTRUME", "SYNTHSPEC", "instrument"),
        ("TELESCOP", "ESO-3.6", "telescope"),
        ("HIERARCH ESO TEL AIRM START", round(1.0 + (i % 7) * 0.05, 3), "airmass at start"),
        ("HIERARCH ESO TEL AIRM END", round(1.02 + (i % 7) * 0.05, 3), "airmass at end"),
        ("HIERARCH ESO TEL AMBI FWHM START", 0.81, "[arcsec] seeing"),
        ("HIERARCH ESO OBS TARG NAME", f"STAR-{i:05d}", "OB target name"),
        *[(f"HIERARCH ESO DRS CAL TH COEFF LL{k}", round(float(rng.normal()), 9), "cal coeff")
          for k in range(12)],
        *[(f"HIERARCH ESO INS TEMP{k} VAL", 12.0 + k, "[C] telemetry") for k in range(6)],
        ("HIERARCH ESO DET OUT1 RON", 3.1, "readout noise"),
    ]


def observing_header(rng: np.random.Generator, i: int) -> fits.Header:
    hdr = fits.Header()
    for card in _observing_cards(rng, i):
        hdr.append(card, end=True)
    hdr.add_comment("synthetic spectrum written by shardmerge.testing")
    hdr.add_history("made for tests and the demo")
    return hdr


def write_fits(hdul: fits.HDUList, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    hdul.writeto(path, overwrite=True, checksum=True)
    return path


def _linear_wcs(hdr: fits.Header, crval: float, cdelt: float, log: bool) -> None:
    hdr["CRVAL1"] = crval
    hdr["CDELT1"] = cdelt
    hdr["CRPIX1"] = 1.0
    hdr["CTYPE1"] = "LINEAR"
    hdr["DC-FLAG"] = 1 if log else 0
    hdr["BUNIT"] = "erg/cm2/s/A"


def wcs_wavelength(crval: float, cdelt: float, n: int, log: bool) -> np.ndarray:
    axis = crval + np.arange(n, dtype=np.float64) * cdelt
    return exp10(axis) if log else axis


def make_wcs1d(path: str | Path, *, i: int = 0, n_pix: int = 3000, crval: float = 4000.0, cdelt: float = 1.0,  # noqa: PLR0913 - keyword-only knobs of a test-file generator
               log: bool = False, uncertainty: str | None = "ivar", seed: int = 0,
               flux: np.ndarray | None = None) -> Path:
    """Layout (a): 1-D image + optional IVAR / ERR / VAR extension."""
    rng = np.random.default_rng(seed)
    hdr = observing_header(rng, i)
    _linear_wcs(hdr, crval, cdelt, log)
    wave = wcs_wavelength(crval, cdelt, n_pix, log)
    data = synthetic_flux(rng, wave) if flux is None else np.asarray(flux, dtype=np.float32)
    hdus = [fits.PrimaryHDU(data, header=hdr)]
    sigma = np.full(n_pix, 0.3, dtype=np.float32) + rng.uniform(0, 0.05, n_pix).astype(np.float32)
    if uncertainty == "ivar":
        hdus.append(fits.ImageHDU((1.0 / sigma**2).astype(np.float32), name="IVAR"))
    elif uncertainty == "err":
        hdus.append(fits.ImageHDU(sigma, name="ERR"))
    elif uncertainty == "var":
        hdus.append(fits.ImageHDU((sigma**2).astype(np.float32), name="VAR"))
    return write_fits(fits.HDUList(hdus), Path(path))


def make_image2d(path: str | Path, *, i: int = 0, n_rows: int = 16, n_pix: int = 2000, crval: float = 3.58,  # noqa: PLR0913 - keyword-only knobs of a test-file generator
                 cdelt: float = 1e-4, log: bool = True, seed: int = 0, bad_rows: dict[int, str] | None = None
                 ) -> Path:
    """Layout (b): one spectrum per row, shared log-linear WCS, IVAR image of the same shape.
    `bad_rows` maps a row to 'nan' or 'zero' to plant an empty spectrum."""
    rng = np.random.default_rng(seed)
    hdr = observing_header(rng, i)
    _linear_wcs(hdr, crval, cdelt, log)
    wave = wcs_wavelength(crval, cdelt, n_pix, log)
    flux = np.stack([synthetic_flux(rng, wave) * (1 + 0.1 * r) for r in range(n_rows)])
    ivar = rng.uniform(5, 15, flux.shape).astype(np.float32)
    ivar[:, :7] = 0.0  # masked pixels: no information, stored as NaN uncertainty
    for row, kind in (bad_rows or {}).items():
        flux[row] = np.nan if kind == "nan" else 0.0
    hdul = fits.HDUList([fits.PrimaryHDU(flux, header=hdr), fits.ImageHDU(ivar, name="IVAR")])
    return write_fits(hdul, Path(path))


def make_sdss_coadd(path: str | Path, *, i: int = 0, n_pix: int = 3800, loglam0: float = 3.5793, seed: int = 0
                    ) -> Path:
    """Layout (c): SDSS spec-*.fits with a COADD table (flux, loglam, ivar, and_mask, …)."""
    rng = np.random.default_rng(seed)
    hdr = fits.Header()
    hdr["TELESCOP"] = "SDSS 2.5-M"
    hdr["PLATEID"] = 266 + i
    hdr["MJD"] = 51602
    hdr["FIBERID"] = 1 + i
    hdr["PLUG_RA"] = float(rng.uniform(0, 360))
    hdr["PLUG_DEC"] = float(rng.uniform(-10, 60))
    hdr["EXPTIME"] = 3600.0
    hdr["AIRMASS"] = 1.19
    hdr["BUNIT"] = "1E-17 erg/cm^2/s/Ang"
    hdr["COEFF0"] = loglam0
    hdr["COEFF1"] = 1e-4
    loglam = (loglam0 + 1e-4 * np.arange(n_pix)).astype(np.float32)
    flux = synthetic_flux(rng, exp10(loglam.astype(np.float64)))
    ivar = rng.uniform(1, 4, n_pix).astype(np.float32)
    ivar[-5:] = 0.0
    cols = [
        fits.Column("flux", "E", array=flux),
        fits.Column("loglam", "E", array=loglam),
        fits.Column("ivar", "E", array=ivar),
        fits.Column("and_mask", "J", array=np.zeros(n_pix, dtype=np.int32)),
        fits.Column("or_mask", "J", array=np.zeros(n_pix, dtype=np.int32)),
        fits.Column("wdisp", "E", array=np.ones(n_pix, dtype=np.float32)),
        fits.Column("sky", "E", array=np.zeros(n_pix, dtype=np.float32)),
        fits.Column("model", "E", array=flux),
    ]
    coadd = fits.BinTableHDU.from_columns(cols, name="COADD")
    return write_fits(fits.HDUList([fits.PrimaryHDU(header=hdr), coadd]), Path(path))


def gzip_file(path: Path) -> Path:
    import gzip
    import shutil

    gz = Path(str(path) + ".gz")
    with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.unlink(path)
    return gz


def make_mixed_corpus(root: str | Path, *, n_wcs1d: int = 24, n_image2d: int = 4, rows_per_image: int = 64,
                      n_sdss: int = 12, seed: int = 0) -> list[Path]:
    """A directory tree of all three layouts with varying N_pix and grids, some files gzip'd."""
    root = Path(root)
    files: list[Path] = []
    for k in range(n_wcs1d):  # two grids: shared within each half, differing between them
        log = k % 2 == 1
        p = make_wcs1d(root / "wcs1d" / f"spec_{k:04d}.fits", i=k, n_pix=3000 + 500 * (k % 3),
                       crval=3.6 if log else 4000.0, cdelt=1e-4 if log else 1.0, log=log,
                       uncertainty=("ivar", "err", "var", None)[k % 4], seed=seed + k)
        files.append(gzip_file(p) if k % 5 == 0 else p)
    for k in range(n_image2d):
        files.append(make_image2d(root / "plates" / f"plate_{k:03d}.fits", i=100 + k, n_rows=rows_per_image,
                                  n_pix=4000, seed=seed + 100 + k))
    for k in range(n_sdss):
        files.append(make_sdss_coadd(root / "sdss" / f"spec-0266-51602-{k + 1:04d}.fits", i=k,
                                     n_pix=3800 + 10 * (k % 4), loglam0=3.5793 + 1e-4 * (k % 3),
                                     seed=seed + 200 + k))
    return files
