"""The generic reader: a small TOML file says where flux, wavelength, uncertainty, mask and continuum are,
so a layout shardmerge does not know is never a dead end (`--format mapping --mapping FILE`).

    [flux]                      # required
    hdu = 1                     # index or EXTNAME
    column = "FLUX"             # a table column; array column: one spectrum per table row,
                                #   scalar column: one spectrum, one table row per pixel, 2-D cell (TDIM):
                                #   one spectrum per row of the cell (a 1-D wavelength cell serves each)
    # row = 0                   # or: one row of an image; no column/row: the image (2-D: a row per spectrum)
    # band = 0                  # a 3-D image [band, row, pixel] (IRAF apall): this plane, then row as above;
                                #   band = "all": every plane (with row = R: row R of each, one spectrum a
                                #   plane, as the orders of a multi-order cube)
    unit = "erg/s/cm2/A"        # optional; else TUNITn / BUNIT
    [wavelength]                # required: column/row like flux, or wcs = true (axis 1 of the flux HDU:
                                #   an image's, or a table's CRVAL1/CDELT1 or 1CRVLn/1CDLTn for the flux column)
    hdu = 1
    column = "WAVE"
    unit = "nm"                 # needed unless TUNITn, BUNIT or CUNIT1 says it; a frequency unit ("GHz",
                                #   "MHz", "Hz") says the values are frequencies: stored as wavelength in
                                #   Angstrom (c/nu), pixels reversed where needed so that it increases
    log10 = false               # values (or, with wcs = true, the axis) are log10(wavelength); with wcs,
                                #   log10 and unit replace the header's DC-FLAG and CUNIT1
    [uncertainty]               # optional
    hdu = 1
    column = "IVAR"
    kind = "ivar"               # sigma | ivar | var; a negative sigma or variance (a -1e32 sentinel)
                                #   and a non-positive ivar mean "no information" and become NaN
    [mask]                      # optional
    hdu = 1
    column = "QUAL"
    convention = "my survey quality bits"
    [continuum]                 # optional
    hdu = 1
    column = "CONT"
    method = "pipeline continuum fit"

The mapping reaches every worker as its path and a hash of its content (config.FormatChoice, then
Plan.mapping), so every worker reads the same mapping and a mapping edited mid-run is refused."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tomllib
from functools import lru_cache

import numpy as np
from astropy.io import fits

from ..errors import BadFileError, InputError, MappingError
from ..exactmath import exp10  # 10**x: the same bits on every CPU
from ..units import wavelength_factor
from .base import Layout, Reader, SpectraBlock
from .fitsio import is_table
from .oddities import FREQUENCY_AXIS
from .values import as_float32, as_mask, to_sigma
from .wcs import C_ANGSTROM_PER_S, frequency_factor, wcs_axis

_ROLES = ("flux", "wavelength", "uncertainty", "mask", "continuum")
_WHERE = ("hdu", "column", "row", "band")  # where a role's values are; wcs = true replaces them for [wavelength]


def _index(v: object) -> bool:
    return type(v) is int and v >= 0  # bool is an int in Python: `hdu = true` must not be HDU 1


def _hdu_ref(v: object) -> bool:
    return _index(v) or (type(v) is str and v.strip() != "")


def _text(v: object) -> bool:
    return type(v) is str and v.strip() != ""


def _flag(v: object) -> bool:
    return type(v) is bool


def _band(v: object) -> bool:
    return _index(v) or v == "all"


# The mapping file's schema: per key, what its value must be (as said in errors) and the test of it, and
# the tables it means something in. A key outside them would be silently ignored, so it is refused too.
_SCHEMA: dict[str, tuple[str, object, tuple[str, ...]]] = {
    "hdu": ("an HDU index (an integer >= 0) or an EXTNAME (a string)", _hdu_ref, _ROLES),
    "column": ("a column name (a non-empty string)", _text, _ROLES),
    "row": ("a row index (an integer >= 0)", _index, _ROLES),
    "band": ('a plane index (an integer >= 0) or "all" (every plane)', _band, _ROLES),
    "unit": ("a unit (a non-empty string)", _text, ("flux", "wavelength")),
    "log10": ("a boolean (true or false)", _flag, ("wavelength",)),
    "wcs": ("a boolean (true or false)", _flag, ("wavelength",)),
    "kind": ('one of the strings "sigma", "ivar", "var"', lambda v: type(v) is str and v in ("sigma", "ivar", "var"),
             ("uncertainty",)),
    "convention": ("a description (a non-empty string)", _text, ("mask",)),
    "method": ("a description (a non-empty string)", _text, ("continuum",)),
}
_KEYS = set(_SCHEMA)


def _shown(v: object) -> str:
    """A TOML value as the error shows it: its TOML type, then the value (cargo: 'found string "false"')."""
    if isinstance(v, bool):
        return f"boolean {str(v).lower()}"
    if isinstance(v, int):
        return f"integer {v}"
    if isinstance(v, float):
        return f"float {v!r}"
    if isinstance(v, str):
        return f"string {json.dumps(v)}"
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "an array"
    return f"{type(v).__name__} {v}"  # TOML dates and times


def check_mapping(path: str, doc: dict) -> None:
    """Refuse (MappingError, exit 2) a mapping that is not exactly what the schema says, naming the file, the
    table, the key, what it needs and the value found: a mistyped value must never be read as another."""
    for role in ("flux", "wavelength"):
        if role not in doc:
            raise MappingError(f"mapping {path} needs a [{role}] table")
    for role, spec in doc.items():
        if role not in _ROLES:
            raise MappingError(f"mapping {path}: unknown table [{role}]; known: {', '.join(_ROLES)}")
        if not isinstance(spec, dict):
            raise MappingError(f"mapping {path}: {role} must be a table ([{role}]), found {_shown(spec)}")
        for key, value in spec.items():
            if key not in _SCHEMA:
                raise MappingError(f"mapping {path}: [{role}] has unknown key {key!r}; known: "
                                 f"{', '.join(k for k, (_, _, roles) in _SCHEMA.items() if role in roles)}")
            needs, valid, roles = _SCHEMA[key]
            if role not in roles:
                raise MappingError(f"mapping {path}: [{role}] {key}: only "
                                 f"{' and '.join(f'[{r}]' for r in roles)} may set it (it would be ignored here)")
            if not valid(value):
                raise MappingError(f"mapping {path}: [{role}] {key}: expected {needs}, found {_shown(value)}")
        if spec.get("wcs"):
            ignored = [k for k in _WHERE if k in spec]
            if ignored:
                names = ", ".join(ignored)
                raise MappingError(f"mapping {path}: [{role}] wcs = true reads axis 1 of the flux image, so "
                                 f"{names} would be ignored: remove {names}, or set wcs = false")
        elif "hdu" not in spec:
            raise MappingError(f"mapping {path}: [{role}] needs hdu = <index or EXTNAME>")
        if "column" in spec and ("row" in spec or "band" in spec):
            raise MappingError(f"mapping {path}: [{role}] column names a table column, so row and band (image "
                             "rows and planes) would be ignored: give one or the other")


# A mapping file is a few hundred bytes; one past this is not one (`--mapping /dev/zero` was read forever)
MAX_MAPPING_BYTES = 1 << 20


def _read_mapping(path: str, said: str) -> bytes:
    """The mapping file's bytes: a regular file (each task rereads it, so a pipe's once-only content would
    not do; a device may never end) of at most MAX_MAPPING_BYTES, else MappingError (exit 2)."""
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise MappingError(f"{said} {path}: not a regular file (a pipe or a device); each task rereads "
                                   "the mapping: give the path of a file")
            raw = f.read(MAX_MAPPING_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{said} {path}: {exc.strerror}") from exc
    if len(raw) > MAX_MAPPING_BYTES:
        raise MappingError(f"{said} {path}: larger than {MAX_MAPPING_BYTES} bytes: not a mapping file")
    return raw


def mapping_ref(path: str) -> tuple[str, str]:
    """(absolute path, sha256 prefix of its content) of a mapping file, refused before any work if bad."""
    path = os.path.abspath(path)
    digest = hashlib.sha256(_read_mapping(path, "--mapping")).hexdigest()[:12]
    load_mapping(path, digest)  # refuse a bad mapping before any work
    return path, digest


def load_mapping(path: str, digest: str) -> dict:
    """The mapping's content, refused if it no longer has the hash the run started with (every call
    rereads the small file; parsing is cached)."""
    raw = _read_mapping(path, "mapping")
    if hashlib.sha256(raw).hexdigest()[:12] != digest:
        raise InputError(f"mapping {path} changed during the run; rerun")
    return _parse(path, raw)


@lru_cache(maxsize=16)
def _parse(path: str, raw: bytes) -> dict:
    try:
        doc = tomllib.loads(raw.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(f"mapping {path} is not valid TOML: {exc}") from exc
    except RecursionError:  # `x = [[[[...]]]]` 10**5 deep: tomllib recurses once a level
        raise MappingError(f"mapping {path}: arrays or tables nested too deep to parse: not a mapping file") from None
    check_mapping(path, doc)
    return doc


def mapping_reader(path: str, digest: str) -> MappingReader:
    return MappingReader(load_mapping(path, digest))


class MappingReader(Reader):
    description = "generic: a TOML mapping names the HDUs, columns or rows of each array"

    name = "mapping"

    def __init__(self, doc: dict):
        self.doc = doc

    def identify(self, hdul: fits.HDUList) -> bool:
        try:
            for role in ("flux", "wavelength"):
                spec = self.doc[role]
                if not spec.get("wcs"):
                    _hdu(hdul, spec)
            return True
        except (KeyError, IndexError):
            return False

    def _values(self, path: str, hdul: fits.HDUList, role: str) -> np.ndarray | None:
        """(n_spectra, n_pix) array for a role, or None when the mapping has no such table."""
        spec = self.doc.get(role)
        if spec is None:
            return None
        try:
            hdu = hdul[_hdu(hdul, spec)]
        except (KeyError, IndexError) as exc:
            raise BadFileError(path, f"mapping: [{role}] hdu = {spec['hdu']!r} is not in the file") from exc
        if "column" in spec:
            return _column_values(path, hdu, spec, role)
        if is_table(hdu):
            names = ", ".join(hdu.columns.names[:12]) + (" ..." if len(hdu.columns.names) > 12 else "")
            raise BadFileError(path, f"mapping: [{role}] HDU {spec['hdu']!r} is a table: name its column with "
                                     f"column = \"...\" (it has {names})")
        return _image_values(path, np.asarray(hdu.data), spec, role)

    def _cell_rows(self, hdul: fits.HDUList, role: str) -> int:
        """Spectra per table row of a role's column: the rows of its 2-D cells (TDIM), else 1."""
        spec = self.doc[role]
        hdu = hdul[_hdu(hdul, spec)]
        if "column" not in spec or not is_table(hdu):
            return 1
        shape = np.asarray(hdu.data[spec["column"]]).shape
        return int(np.prod(shape[1:-1])) if len(shape) > 2 else 1

    def _unit(self, hdul: fits.HDUList, role: str) -> str:
        spec = self.doc[role]
        if "unit" in spec:
            return str(spec["unit"])
        if spec.get("wcs"):
            return ""
        hdu = hdul[_hdu(hdul, spec)]
        if "column" in spec and is_table(hdu):
            k = hdu.columns.names.index(spec["column"]) + 1
            return str(hdu.header.get(f"TUNIT{k}", "")).strip()
        return str(hdu.header.get("BUNIT", "")).strip()

    def layout(self, path: str, hdul: fits.HDUList) -> Layout:
        flux = self._values(path, hdul, "flux")
        n_spec, n_pix = flux.shape
        spec = self.doc["wavelength"]
        notes: tuple[tuple[str, str], ...] = ()
        reverse = False
        if spec.get("wcs"):
            # the mapping's log10 and unit replace the header's DC-FLAG and CUNIT1 (they never compound)
            header = _axis_header(hdul[_hdu(hdul, self.doc["flux"])], self.doc["flux"])
            axis = wcs_axis(path, header, n_pix, log10=spec.get("log10"),
                            unit=str(spec["unit"]) if "unit" in spec else None)
            wave, reverse, notes = axis.wavelength[np.newaxis, :], axis.reversed, axis.notes
        else:
            wave = np.asarray(self._values(path, hdul, "wavelength"), dtype=np.float64)
            if spec.get("log10"):
                wave = exp10(wave)
            unit = self._unit(hdul, "wavelength")
            factor = wavelength_factor(unit)
            if factor is None and (hz := frequency_factor(unit)) is not None:
                wave, reverse, notes = _frequencies_as_wavelength(path, wave, hz, unit)
            elif factor is None:
                raise BadFileError(path, f"mapping: wavelength unit {unit!r} is not recognised (set unit = ... "
                                         "in [wavelength]: a length, or a frequency unit for a frequency axis)")
            else:
                wave = wave * factor
        if wave.shape[1] == n_pix and 1 < wave.shape[0] < n_spec and n_spec % wave.shape[0] == 0 \
                and self._cell_rows(hdul, "flux") == n_spec // wave.shape[0]:
            wave = np.repeat(wave, n_spec // wave.shape[0], axis=0)  # a table row's wavelength, for each cell row
        if wave.shape[1] != n_pix or wave.shape[0] not in (1, n_spec):
            raise BadFileError(path, f"mapping: wavelength has shape {wave.shape}, flux {flux.shape}")
        if wave.shape[0] == 1:
            grids, grid_of = [wave[0]], np.zeros(n_spec, dtype=np.int64)
        else:
            grids, grid_of = list(wave), np.arange(n_spec, dtype=np.int64)
        hdus = tuple(sorted({_hdu(hdul, s) for s in self.doc.values() if "hdu" in s}))
        return Layout(n_spec, grids, grid_of, self._unit(hdul, "flux"), hdus, _hdu(hdul, self.doc["flux"]),
                      provides=frozenset({"continuum"} if "continuum" in self.doc else ()),
                      mask_convention=str(self.doc.get("mask", {}).get("convention", "mapping mask"))
                      if "mask" in self.doc else "", notes=notes, state={"reversed": reverse})

    def read(self, path: str, hdul: fits.HDUList, layout: Layout, first: int, count: int) -> SpectraBlock:
        rows = slice(first, first + count)
        reverse = layout.state["reversed"] if "reversed" in layout.state else \
            self.layout(path, hdul).state["reversed"]

        def ordered(values: np.ndarray) -> np.ndarray:  # a frequency axis: pixels reversed with the wavelength
            return np.ascontiguousarray(values[..., ::-1]) if reverse else values

        flux = ordered(as_float32(self._values(path, hdul, "flux")[rows]))
        unc = self._values(path, hdul, "uncertainty")
        block = SpectraBlock(flux=flux, uncertainty=np.full_like(flux, np.nan) if unc is None else
                             ordered(to_sigma(unc[rows], self.doc["uncertainty"].get("kind", "sigma"))))
        if (mask := self._values(path, hdul, "mask")) is not None:
            block.mask = ordered(as_mask(path, mask[rows]))
        if (cont := self._values(path, hdul, "continuum")) is not None:
            block.continuum = ordered(as_float32(cont[rows]))
            block.continuum_method = str(self.doc["continuum"].get("method", "source (mapping)"))
        return block


def _frequencies_as_wavelength(path: str, nu: np.ndarray, hz: float, unit: str
                               ) -> tuple[np.ndarray, bool, tuple[tuple[str, str], ...]]:
    """(wavelength in Angstrom, reversed, notes) from frequencies in `unit` (`hz` Hz each): lambda = c/nu, two
    correctly rounded IEEE operations (the same bits on every CPU), every row's pixels reversed when the
    frequencies increase, so that wavelength does."""
    with np.errstate(divide="ignore", invalid="ignore"):
        wave = C_ANGSTROM_PER_S / (nu * hz)
    if not np.all(np.isfinite(wave)) or not np.all(wave > 0):
        raise BadFileError(path, f"mapping: the [wavelength] values in {unit} include a non-positive frequency")
    down = wave[:, 0] > wave[:, -1]
    if down.any() and not down.all():
        raise BadFileError(path, "mapping: the frequencies increase in some rows and decrease in others")
    reverse = bool(down.all()) and wave.shape[1] > 1
    text = (f"the mapping's [wavelength] is a frequency ({unit}): converted to wavelength in Angstrom (lambda = "
            f"c/nu); {'pixels reversed so that wavelength increases' if reverse else 'pixel order kept'}; flux kept "
            "as in the source (per unit frequency if its unit is)")
    return (np.ascontiguousarray(wave[:, ::-1]) if reverse else wave), reverse, ((FREQUENCY_AXIS, text),)


def _axis_header(hdu: object, flux: dict) -> fits.Header:
    """The header whose axis 1 `wcs = true` reads: the flux image's; of a table, its header's CRVAL1, CDELT1,
    ... (as many writers put them), or else the array-column WCS of the flux column (FITS's 1CRVLn, 1CDLTn,
    1CRPXn, 1CTYPn, 1CUNIn) as axis 1."""
    header = hdu.header
    if not is_table(hdu) or "column" not in flux or "CRVAL1" in header:
        return header
    k = hdu.columns.names.index(flux["column"]) + 1
    axis = fits.Header()
    for key, card in (("CRVAL1", "CRVL"), ("CDELT1", "CDLT"), ("CRPIX1", "CRPX"), ("CTYPE1", "CTYP"),
                      ("CUNIT1", "CUNI")):
        if f"1{card}{k}" in header:
            axis[key] = header[f"1{card}{k}"]
    return axis


def _hdu(hdul: fits.HDUList, spec: dict) -> int:
    ref = spec["hdu"]
    if isinstance(ref, int):
        if not 0 <= ref < len(hdul):
            raise IndexError(ref)
        return ref
    for i, hdu in enumerate(hdul):
        if str(hdu.header.get("EXTNAME", "")).strip().upper() == str(ref).upper():
            return i
    raise KeyError(ref)


def _column_values(path: str, hdu: object, spec: dict, role: str) -> np.ndarray:
    """A table column as (n_spectra, n_pix): a scalar column is one spectrum, an array column a spectrum per
    table row, a 2-D cell (TDIM) a spectrum per row of each cell, table row by table row."""
    if not is_table(hdu):
        raise BadFileError(path, f"mapping: [{role}] names a column but HDU {spec['hdu']!r} is not a table")
    if spec["column"] not in hdu.columns.names:
        raise BadFileError(path, f"mapping: HDU {spec['hdu']!r} has no column {spec['column']!r}")
    v = np.asarray(hdu.data[spec["column"]])
    return v[np.newaxis, :] if v.ndim == 1 else v.reshape(-1, v.shape[-1])


def _image_values(path: str, v: np.ndarray, spec: dict, role: str) -> np.ndarray:
    """An image's spectra as (n_spectra, n_pix): its `band` plane (or every plane: band = "all") and `row`."""
    if spec.get("band") == "all":
        if v.ndim != 3:
            raise BadFileError(path, f"mapping: [{role}] band = \"all\" needs a 3-D image, HDU {spec['hdu']!r} "
                                     f"is {v.shape}")
        if "row" in spec:  # every plane's row `row`: one spectrum a plane (a multi-order cube's orders)
            if not 0 <= spec["row"] < v.shape[1]:
                raise BadFileError(path, f"mapping: [{role}] row {spec['row']} is not a row of the planes of a "
                                         f"{v.shape} image")
            return v[:, spec["row"], :]
        return v.reshape(-1, v.shape[-1])  # every row of every plane
    if "band" in spec:
        if v.ndim != 3 or not 0 <= spec["band"] < v.shape[0]:
            raise BadFileError(path, f"mapping: [{role}] band {spec['band']} is not a plane of a {v.shape} image")
        v = v[spec["band"]]
    elif v.ndim == 3:
        raise BadFileError(path, f"mapping: [{role}] HDU {spec['hdu']!r} is a 3-D image {v.shape}: say which "
                                 "plane with band = N (0-based)")
    if "row" in spec:
        if v.ndim != 2 or not 0 <= spec["row"] < v.shape[0]:
            raise BadFileError(path, f"mapping: [{role}] row {spec['row']} is not a row of a {v.shape} image")
        return v[spec["row"]][np.newaxis, :]
    if v.ndim not in (1, 2):
        raise BadFileError(path, f"mapping: [{role}] HDU {spec['hdu']!r} is a {v.ndim}-D image")
    return v[np.newaxis, :] if v.ndim == 1 else v
