"""The one interface every FITS layout implements, plus the strict opener they share.

A reader answers three questions about an open file: is this my layout (`identify`, headers only),
what does it hold (`layout`, headers and at most a wavelength column), and what are the values of
spectra [first, first + count) (`read`). Adding a layout means adding a module, never touching the
pipeline."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from ..errors import BadFileError, ShardmergeError
from ..headers import HeaderRules, canonical_fields, project_header
from ..schema import MASK_MAX
from ..units import wavelength_factor
from . import fastfits
from .checksum import verify_hdu
from .oddities import FITS_WARNING, Oddities


@dataclass
class Layout:
    """What one file holds. `grids` are the distinct wavelength grids (Angstrom, ascending as stored),
    `grid_of[i]` the grid of spectrum i."""

    n_spectra: int
    grids: list[np.ndarray]
    grid_of: np.ndarray  # (n_spectra,) int
    flux_unit: str
    hdus: tuple[int, ...]  # HDUs the spectra come from (their headers are projected, with the primary's)
    flux_hdu: int
    param_keys: tuple[str, ...] = ()
    mask_convention: str = ""  # non-empty when the file gives pixel masks: whose bits they are
    metadata_keys: tuple[str, ...] = ()  # format-specific row-wise strings (metadata/<key>)
    join_key: str = ""  # companion files (aspcapStar) attach to the file with this key
    companion: bool = False  # this file adds arrays to another file's rows and has no rows of its own
    companion_rows: tuple[int, ...] = ()  # rows of this file that a companion's spectra 0, 1, … belong to
    # when a reader leaves out spectra that carry no data at all (DESI: inverse variance 0 everywhere), the
    # source's own index of each spectrum kept (for spec_id and source_row), and how many it left out
    source_index: np.ndarray | None = None
    dropped: int = 0
    notes: tuple[tuple[str, str], ...] = ()  # (oddity kind, text): accepted, said in the report (oddities.py)
    # capabilities (schema.ARRAYS) this file provides: "continuum", "normalized", "mask" (implied by a
    # mask_convention), or any other row's, e.g. "sky"; a store holds an array when some input provides it
    provides: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.provides = frozenset(self.provides) | ({"mask"} if self.mask_convention else set())

    def n_pix(self, i: int) -> int:
        return int(self.grids[int(self.grid_of[i])].shape[0])

    def grid_key(self, g: int) -> str:
        return grid_fingerprint(self.grids[g])


@dataclass
class SpectraBlock:
    """Values of consecutive spectra of one file, each row padded with NaN to the block's width."""

    flux: np.ndarray  # (n, w) float32, the source's values
    uncertainty: np.ndarray  # (n, w) float32, 1-sigma; all-NaN when the source has none
    continuum: np.ndarray | None = None
    continuum_uncertainty: np.ndarray | None = None
    continuum_method: str = "none"
    normalized_flux: np.ndarray | None = None
    normalized_uncertainty: np.ndarray | None = None
    mask: np.ndarray | None = None  # (n, w) uint32, 0 = good; None when the source has no mask
    params: dict[str, np.ndarray] = field(default_factory=dict)
    # any other array of the store's table (schema.ARRAYS), by its name; its capability in Layout.provides
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray | None:
        """The values for the store array `name` (schema.ARRAYS), or None when the source has none."""
        attr = _BLOCK_FIELDS.get(name)
        return getattr(self, attr) if attr else self.arrays.get(name)

    def put(self, name: str, values: np.ndarray) -> None:
        attr = _BLOCK_FIELDS.get(name)
        if attr:
            setattr(self, attr, values)
        else:
            self.arrays[name] = values


# the store arrays every reader deals with have short fields of their own (flux=, uncertainty=, …)
_BLOCK_FIELDS = {"flux_raw": "flux", "uncertainty_raw": "uncertainty", "continuum_model": "continuum",
                 "continuum_uncertainty": "continuum_uncertainty", "normalized_flux": "normalized_flux",
                 "normalized_uncertainty": "normalized_uncertainty", "mask_raw": "mask"}


def grid_fingerprint(wavelength: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(wavelength, dtype="<f8").tobytes()).hexdigest()[:20]


def to_sigma(values: np.ndarray, kind: str) -> np.ndarray:
    """1-sigma uncertainty as float32 from an error, inverse-variance or variance array. What cannot be an
    uncertainty means "no information" and becomes NaN: a non-positive inverse variance, a negative variance
    or sigma (pipelines write -1 or -1e32 as sentinels)."""
    if kind == "sigma":
        out = np.asarray(values).astype(np.float32)
        if out.size and np.nanmin(out, initial=0.0) < 0:  # one pass in the usual case of no sentinel
            out[out < 0] = np.nan
        return out
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # in place: 1/sqrt over a plate is most of a read
        if kind == "ivar":
            out = np.sqrt(v)
            np.divide(1.0, out, out=out)
            out[~(v > 0)] = np.nan
        elif kind == "var":
            out = np.sqrt(v)
            out[~(v >= 0)] = np.nan
        else:
            raise ValueError(f"unknown uncertainty kind {kind!r}")
    return out.astype(np.float32)


def as_mask(path: str, values: np.ndarray) -> np.ndarray:
    """A source's integer pixel mask as uint32, refused (naming the file) when a value is negative or
    uses bit 31, which the store reserves for padding."""
    v = np.asarray(values)
    if v.dtype.kind not in "iub" and not (np.all(np.isfinite(v)) and np.array_equal(v, np.round(v))):
        raise BadFileError(path, f"pixel mask has non-integer values (dtype {v.dtype})")
    if v.size and (v.min() < 0 or v.max() > MASK_MAX):
        raise BadFileError(path, f"pixel mask values must lie in 0..2**31-1, found {v.min()}..{v.max()}")
    return v.astype(np.uint32)


def as_float32(values: np.ndarray) -> np.ndarray:
    """Native-endian float32; bit-exact for float32 sources."""
    return np.asarray(values).astype(np.float32, copy=False)


class Reader:
    """Base class of the per-format readers."""

    name: ClassVar[str]
    description: ClassVar[str]

    def identify(self, hdul: fits.HDUList) -> bool:
        raise NotImplementedError

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        raise NotImplementedError

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        raise NotImplementedError

    # Shared by all formats: canonical fields from the primary header then the data HDU's.
    def row_metadata(self, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> list[dict]:
        row = canonical_fields(HeaderChain([hdul[i].header for i in (0, *layout.hdus)]))
        return [dict(row) for _ in range(count)]

    def projected_headers(self, hdul: fits.HDUList, layout: Layout, rules: HeaderRules) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in sorted({0, *layout.hdus}):
            # parsing a card's value costs far more than its keyword: parse only the cards kept
            cards = ((c.keyword, c.value) for c in hdul[i].header.cards if rules.keeps(c.keyword))
            out.update(project_header(cards, i, rules))
        return out


class HeaderChain(Mapping):
    """Keyword lookups over several headers, the first that has the keyword winning. Parses only the
    cards asked for (astropy parses a card's value lazily)."""

    def __init__(self, headers: list[fits.Header]):
        self.headers = headers

    def __getitem__(self, key: str) -> object:
        for h in self.headers:
            if key in h:
                return h[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for h in self.headers:
            for k in h:
                if k not in seen:
                    seen.add(k)
                    yield k

    def __len__(self) -> int:
        return sum(1 for _ in self)


# ---- strict reading ---------------------------------------------------------------------------------

# astropy warnings that mean the bytes are damaged, not merely unconventional: they stay fatal
# (truncation; header bytes astropy would replace by "?"; a header that does not end on a block boundary)
_DAMAGE_WARNINGS = ("File may have been truncated", "non-ASCII characters", "Missing padding to end of the FITS block")


@contextmanager
def open_fits(path: str, raw: bytes | None = None, fast: bool = True,
              oddities: Oddities | None = None) -> Iterator[fits.HDUList]:
    """Open a FITS file strictly: astropy warnings that signal damage (truncation) become errors, and every
    failure while the file is open becomes a BadFileError naming the file. Other astropy warnings (BLANK on
    a float image, a non-standard card: legacy IRAF/MIDAS files are full of them) are recorded in
    `oddities` (the scan's; the shard task passes none: the scan already said them), or refused when
    --strict names them. `raw`: the file's (already decompressed) bytes, when the caller has them, so they
    are not read or gunzipped a second time. With `fast`, a file of plain image HDUs is parsed by
    `fastfits` (about 4x cheaper than astropy); anything else, including every damaged file, goes through
    astropy."""
    with warnings.catch_warnings():
        warned: list[str] = []
        _record_astropy_warnings(warned)
        try:
            hdul = None
            if fast:
                raw = raw if raw is not None else read_bytes(path)
                hdul = fastfits.parse(raw)
            if hdul is None:
                source = io.BytesIO(raw) if raw is not None else path
                hdul = fits.open(source, memmap=False, lazy_load_hdus=True)
        except ShardmergeError:
            raise
        except Exception as exc:  # astropy raises many types for damaged files
            reason = _header_problem(path, raw) or f"not a readable FITS file ({_describe(exc)})"
            raise BadFileError(path, reason) from exc
        try:
            yield hdul
            if oddities is not None:
                for text in warned:
                    oddities.add(FITS_WARNING, text)
        except ShardmergeError:
            raise
        except Exception as exc:
            raise BadFileError(path, _describe(exc)) from exc
        finally:
            hdul.close()


def _record_astropy_warnings(into: list[str]) -> None:
    """Inside catch_warnings: astropy warnings go to `into` (once each), damage warnings raise, others
    behave as outside."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        if issubclass(category, AstropyWarning):
            text = f"{category.__name__}: {str(message).strip().splitlines()[0] if str(message).strip() else ''}"
            if text not in into:
                into.append(text)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.simplefilter("always", AstropyWarning)
    for pattern in _DAMAGE_WARNINGS:
        warnings.filterwarnings("error", message=pattern, category=AstropyWarning)
    warnings.showwarning = show


def _header_problem(path: str, raw: bytes | None) -> str | None:
    """A plainer reason than astropy's for the commonest header damage: a primary header whose END card
    is missing, so the parser runs into the binary data."""
    if raw is None:
        try:
            with open(path, "rb") as f:
                raw = f.read(1 << 20)
        except OSError:
            return None
    if not raw.startswith(b"SIMPLE  ="):
        return None
    for at in range(0, len(raw) - 79, 80):
        card = raw[at : at + 80]
        if card.startswith(b"END     ") and not card[3:].strip():
            return None
        if any(b < 32 or b > 126 for b in card):
            where = f"card {at // 80 + 1} (byte {at})"
            if card[:8].strip() and all(32 <= b <= 126 for b in card[:10]):
                return f"header card {card[:8].decode().strip()!r} at {where} holds non-ASCII bytes"
            return f"the primary header has no END card: binary data begins at {where}"
    return "the primary header has no END card"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def verify_file(path: str, hdul: fits.HDUList, raw: bytes | None = None,
                oddities: Oddities | None = None) -> None:
    """Every data unit complete, and every CHECKSUM/DATASUM card right (by the policy of
    `checksum.verify_hdu`), checked on the file's bytes (astropy only warns about a short file, and its own
    checksum pass costs ~2.6 ms per small file). What is odd but not damage goes to `oddities` (refused
    when --strict names it; without `oddities`, accepted silently). `raw`: the decompressed bytes hdul was
    opened from; else the file is read only if it carries sums."""
    spans = [hdul.fileinfo(i) for i in range(len(hdul))]
    with_sums = [i for i, hdu in enumerate(hdul) if "CHECKSUM" in hdu.header or "DATASUM" in hdu.header]
    if raw is None and with_sums:
        with open(path, "rb") as f:
            raw = f.read()
    size = len(raw) if raw is not None else os.path.getsize(path)
    for i, info in enumerate(spans):
        end = info["datLoc"] + info["datSpan"]
        if end > size:
            raise BadFileError(path, f"truncated: HDU {i} ends at byte {end}, the file has {size}")
    for i in with_sums:
        h = hdul[i].header
        verdict = verify_hdu(raw, spans[i]["hdrLoc"], spans[i]["datLoc"], spans[i]["datSpan"],
                             h.get("CHECKSUM"), h.get("DATASUM"))
        if verdict.damage:
            raise BadFileError(path, f"HDU {i}: {verdict.damage}")
        if verdict.odd and oddities is not None:
            oddities.add(verdict.kind, f"HDU {i}: {verdict.odd}")


def read_bytes(path: str) -> bytes:
    """The file's bytes, gunzipped if it is gzip'd."""
    raw = read_if_gzip(path)
    if raw is not None:
        return raw
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise BadFileError(path, f"cannot read ({exc.strerror})") from exc


def read_if_gzip(path: str) -> bytes | None:
    """The decompressed bytes of a gzip'd file (astropy would decompress it whole anyway), else None."""
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return None
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:
        raise BadFileError(path, f"not a readable gzip file ({type(exc).__name__}: {exc})") from exc


def load_hdus(path: str, hdul: fits.HDUList) -> int:
    """Force every HDU header to load (lazy HDU lists hide truncation until touched)."""
    hdul.readall()
    if len(hdul) == 0:
        raise BadFileError(path, "contains no HDU")
    return len(hdul)


# ---- helpers for image formats with a linear or log-linear dispersion --------------------------------

_LOG_CTYPES = ("LOGLIN", "LOG-LINEAR", "LOGLAM")  # spellings that declare a log10 axis (popler, some IRAF tasks)
_GENERIC_CTYPES = ("", "LINEAR", "WAVE", "WAVELENGTH", "AWAV", "LAMBDA", "PIXEL", *_LOG_CTYPES)
_SHORTEST_PLAUSIBLE_A = 100.0  # no WCS image spectrum without a declared unit runs below this (X-ray grids are tables)


def linear_wcs_wavelength(path: str, header: fits.Header, n_pix: int, *, log10: bool | None = None,
                          unit: str | None = None) -> np.ndarray:
    """Wavelength in Angstrom for axis 1 of an image with CRVAL1, CDELT1 (or CD1_1) and CRPIX1.
    DC-FLAG = 1 (IRAF) or a CTYPE1 of LOGLIN means the axis is log10(wavelength). `log10` and `unit` (from a
    mapping file) replace what the header says rather than compound it. An axis whose header declares
    neither scale nor unit and whose linear reading is no plausible wavelength (3.7 "Angstrom": in fact
    log10 Angstrom, or micron) is refused: it could be either, and a wrong guess would be stored silently."""
    crval = header.get("CRVAL1")
    cdelt = header.get("CDELT1", header.get("CD1_1"))
    if crval is None or cdelt is None:
        raise BadFileError(path, "image has no linear wavelength WCS (needs CRVAL1 and CDELT1 or CD1_1)")
    if cdelt == 0:
        raise BadFileError(path, "CDELT1/CD1_1 is 0: the wavelength axis does not advance")
    crpix = header.get("CRPIX1", 1.0)
    pix = np.arange(1, n_pix + 1, dtype=np.float64)
    axis = float(crval) + (pix - float(crpix)) * float(cdelt)
    ctype = str(header.get("CTYPE1", "")).strip().upper()
    if log10 is None:
        dcflag = header.get("DC-FLAG", 1 if ctype in _LOG_CTYPES else 0)
        if dcflag not in (0, 1, -1):
            raise BadFileError(path, f"DC-FLAG = {dcflag!r} is not supported (0 linear, 1 log-linear)")
        log10 = dcflag == 1
        implausible = max(abs(axis[0]), abs(axis[-1])) < _SHORTEST_PLAUSIBLE_A
        if unit is None and implausible and _undeclared_axis(header, ctype):
            lo, hi = sorted((axis[0], axis[-1]))
            raise BadFileError(
                path, f"ambiguous wavelength axis: CRVAL1 = {crval}, CDELT1 = {cdelt} and no DC-FLAG, CUNIT1 or "
                      f"CTYPE1 saying its scale or unit. Read linearly in Angstrom it spans {lo:.5g}-{hi:.5g} A, "
                      f"which is no spectrum's range; as log10(Angstrom) it would span {10**lo:.1f}-{10**hi:.1f} A, "
                      f"in micron {lo * 1e4:.1f}-{hi * 1e4:.1f} A. Say which with --format mapping and a mapping "
                      "file: [wavelength] wcs = true, log10 = true (or unit = \"um\")")
    wave = 10.0**axis if log10 else axis
    if unit is not None:
        factor = wavelength_factor(unit)
        if factor is None:
            raise BadFileError(path, f"wavelength unit {unit!r} is not a length")
        return wave * factor
    return wave * wcs_unit_factor(path, header)


def _undeclared_axis(header: fits.Header, ctype: str) -> bool:
    """Neither the scale (DC-FLAG, a log CTYPE1) nor the unit (CUNIT1, a CTYPE1 that spells one) is said."""
    return ("DC-FLAG" not in header and "CUNIT1" not in header and ctype in ("", "LINEAR", "PIXEL"))


def wcs_unit_factor(path: str, header: fits.Header) -> float:
    """Factor to Angstrom from CUNIT1. Without CUNIT1, IRAF's convention (Angstrom) applies, and a CTYPE1
    that spells a unit (HARPS writes CTYPE1 = 'Angstrom') is honoured."""
    unit = header.get("CUNIT1")
    if unit is None or not str(unit).strip():  # MPDAF writes CUNIT1 = '' on its STAT extension
        ctype = str(header.get("CTYPE1", "")).strip()
        if ctype.upper() in _GENERIC_CTYPES:
            return 1.0
        if wavelength_factor(ctype) is not None:
            unit = ctype
        else:
            raise BadFileError(path, f"CTYPE1 = {ctype!r} is not a wavelength axis shardmerge can read")
    factor = wavelength_factor(unit)
    if factor is None:
        raise BadFileError(path, f"wavelength unit CUNIT1 = {unit!r} is not one shardmerge recognises")
    return factor


_UNCERTAINTY_EXTNAMES = {
    "ERR": "sigma", "ERROR": "sigma", "ERRS": "sigma", "ERRORS": "sigma", "SIGMA": "sigma", "SIG": "sigma",
    "STD": "sigma", "STDDEV": "sigma", "UNCERT": "sigma", "UNCERTAINTY": "sigma", "NOISE": "sigma",
    "IVAR": "ivar", "INVVAR": "ivar", "IVARIANCE": "ivar", "INV_VAR": "ivar",
    "VAR": "var", "VARIANCE": "var", "STAT": "var",  # MPDAF/MUSE: STAT is the variance
}
# image extensions of the flux's shape that are known not to be an uncertainty (read by other rules or not)
_NOT_UNCERTAINTY = ("MASK", "DQ", "QUAL", "QUALITY", "FLAG", "FLAGS", "BADPIX", "BPM", "SKY", "CONT", "CONTINUUM",
                    "WAVE", "WAVELENGTH", "LAMBDA", "BACKGROUND", "BKG", "MODEL", "FIT", "WHT", "WEIGHT", "NPIX",
                    "EXPTIME", "RES", "RESOLUTION")


def uncertainty_kind(hdu: object) -> str | None:
    """sigma / ivar / var for an extension named like an uncertainty (ERR_FLUX, FLUX_ERR, IVAR, STAT, …)
    or whose IRAF BANDID1 says sigma; else None."""
    name = str(hdu.header.get("EXTNAME", "")).strip().upper()
    if name in _UNCERTAINTY_EXTNAMES:
        return _UNCERTAINTY_EXTNAMES[name]
    parts = set(name.replace("-", "_").split("_"))
    if parts & {"SKY", "CONT", "CONTINUUM", "BKG", "BACKGROUND", "MODEL"}:  # an uncertainty, but not the flux's
        return None
    for part, kind in _UNCERTAINTY_EXTNAMES.items():
        if part in parts and part not in ("STAT",):
            return kind
    band = str(hdu.header.get("BANDID1", "")).strip().lower()
    if band.startswith(("sigma", "error", "uncertainty")):
        return "sigma"
    if band.startswith("variance"):
        return "var"
    return None


def find_uncertainty_hdu(hdul: fits.HDUList, shape: tuple[int, ...]) -> tuple[int, str] | None:
    """(HDU index, kind) of an image extension with the flux's shape whose name or BANDID1 says it is an
    uncertainty."""
    for i, hdu in enumerate(hdul):
        if i == 0 or not is_image(hdu):
            continue
        kind = uncertainty_kind(hdu)
        if kind and image_shape(hdu.header) == shape:
            return i, kind
    return None


def unread_same_shape_hdus(hdul: fits.HDUList, shape: tuple[int, ...], read: set[int]) -> list[str]:
    """Image extensions with the flux's shape that nothing reads and nothing names (an unnamed HDU 1 may be
    the uncertainty): said in the run report, so that an all-NaN uncertainty is never silent."""
    out = []
    for i, hdu in enumerate(hdul):
        if i in read or not is_image(hdu) or image_shape(hdu.header) != shape:
            continue
        name = str(hdu.header.get("EXTNAME", "")).strip()
        if name.upper() in _NOT_UNCERTAINTY:
            continue
        label = f"HDU {i} ({'EXTNAME ' + repr(name) if name else 'no EXTNAME'})"
        out.append(f"{label} has the flux's shape but nothing says what it holds: not read (if it is an "
                   "uncertainty or a wavelength, describe the file with --format mapping)")
    return out


def image_shape(header: fits.Header) -> tuple[int, ...]:
    """numpy shape of an image HDU from its header, without reading data."""
    naxis = int(header.get("NAXIS", 0))
    return tuple(int(header.get(f"NAXIS{k}", 0)) for k in range(naxis, 0, -1))


def is_image(hdu: object) -> bool:
    """An image HDU, from astropy or from the fast path (fastfits.FastImageHDU)."""
    return isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU) or getattr(hdu, "is_image", False)
