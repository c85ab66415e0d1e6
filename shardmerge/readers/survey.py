"""What a file holds, from its headers alone, and what a mapping would need to read it: the words of a
refusal ("no reader recognises this layout": each HDU in one line, what is missing or ambiguous, the
mapping that would resolve it) and the draft mapping `shardmerge mapping draft FILE` writes.

Both come from one analysis (`analyse`), so a refusal and the draft never disagree: the HDUs found
(`HduInfo`: index, EXTNAME, kind, shape or rows, a table's columns with unit, TFORM and TDIM; an image's
NAXISn, CTYPE1, CUNIT1, BUNIT), the best guess for each key of the mapping schema (readers/mapping.py
`_SCHEMA`) with its alternatives (`Guess`), and the problems that stopped the readers. A key the headers
leave ambiguous is written in the draft commented out, under a comment naming every alternative, so a
mapping never reads a guess as a fact: the user picks one and uncomments it (or ingest refuses it)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from types import SimpleNamespace

from ..units import wavelength_factor
from .columns import (
    FLUX_NAMES,
    IVAR_NAMES,
    LOG_WAVE_NAMES,
    MASK_NAMES,
    SIGMA_NAMES,
    VAR_NAMES,
    WAVE_NAMES,
    is_flux_density_unit,
)
from .fitsio import image_shape
from .science import MASK_EXTNAMES
from .wcs import frequency_factor, uncertainty_kind

# bounds of a message: a file of 300 HDUs or a table of 500 columns must not make a refusal of megabytes
MAX_HDU_LINES = 12
MAX_COLUMNS_SHOWN = 12
MAX_PROBLEMS = 6
WAVELENGTH_UNITS = ("Angstrom", "nm", "um")
_WCS_KEYS = ("CRVAL1", "CDELT1", "CD1_1", "CRPIX1", "CTYPE1", "CUNIT1")
_IMAGE_KEYS = ("CTYPE1", "CUNIT1", "BUNIT")
_ERROR_WORDS = ("ERR", "ERROR", "SIG", "SIGMA", "UNC", "NOISE", "IVAR", "VAR", "STD", "RMS", "E")
_MASK_WORDS = ("MASK", "DQ", "QUAL", "FLAG", "BPM")


@dataclass(frozen=True)
class ColumnInfo:
    """One table column as its header cards say it: name, TUNITn, TUCDn, TFORMn and the cell's shape
    (numpy order, from TDIMn or the repeat count; () for a scalar)."""

    name: str
    unit: str
    ucd: str
    tform: str
    code: str
    cell: tuple[int, ...]

    @property
    def n_pix(self) -> int:
        """Pixels of one spectrum in a cell: its last axis (1 for a scalar)."""
        return self.cell[-1] if self.cell else 1

    @property
    def numeric(self) -> bool:
        return self.code in "BIJKEDL" and self.code != "L"

    def line(self) -> str:
        shape = f", TDIM {' x '.join(map(str, self.cell))}" if len(self.cell) > 1 else ""
        return f"{self.name} ({self.tform}{shape}{', ' + self.unit if self.unit else ', no unit'})"


@dataclass(frozen=True)
class HduInfo:
    """One HDU from its header: index, EXTNAME, kind ("image", "table", "empty"), image shape (numpy order)
    or table rows, a table's columns, and the cards a spectral axis is told by."""

    index: int
    extname: str
    kind: str
    shape: tuple[int, ...] = ()
    rows: int = 0
    columns: tuple[ColumnInfo, ...] = ()
    cards: dict[str, object] = field(default_factory=dict)

    @property
    def ref(self) -> int | str:
        """How a mapping names this HDU: its EXTNAME when it has one, else its index."""
        return self.extname or self.index

    def line(self) -> str:
        head = f"HDU {self.index} {self.extname or '(no EXTNAME)'}: "
        if self.kind == "table":
            cols = ", ".join(c.line() for c in self.columns[:MAX_COLUMNS_SHOWN])
            hidden = len(self.columns) - MAX_COLUMNS_SHOWN
            more = f", and {hidden} more" if hidden > 0 else ""
            return f"{head}table of {self.rows} row{'s' if self.rows != 1 else ''}; columns {cols}{more}"
        if self.kind == "image":
            axes = ", ".join(f"NAXIS{k}={n}" for k, n in enumerate(reversed(self.shape), start=1))
            cards = ", ".join(f"{k}={self.cards[k]!r}" for k in _IMAGE_KEYS if k in self.cards)
            return f"{head}image {axes}{'; ' + cards if cards else ''}"
        return f"{head}no data"


def _cell_shape(header: object, k: int, tform: str) -> tuple[str, tuple[int, ...]]:
    """(type code, cell shape in numpy order) of column k from TFORMk and TDIMk."""
    m = re.match(r"^\s*(\d*)\s*([A-Z])(?:\s*([A-Z])\s*(?:\((\d+)\))?)?", tform.upper())
    if not m:
        return "?", ()
    repeat = int(m.group(1)) if m.group(1) else 1
    code = m.group(2)
    if code in "PQ":  # a variable-length array: its type follows, its announced longest length in ()
        code = m.group(3) or "?"
        repeat = int(m.group(4)) if m.group(4) else 2
    tdim = str(header.get(f"TDIM{k}", "") or "").strip()
    if tdim.startswith("(") and tdim.endswith(")"):
        try:
            dims = tuple(int(x) for x in tdim[1:-1].split(","))
        except ValueError:
            dims = ()
        dims = tuple(reversed(dims))
        if len(dims) > 1 and all(d > 0 for d in dims):
            return code, tuple(d for d in dims) if dims[0] > 1 else dims[1:]
    if code == "A":
        return code, ()
    return code, (repeat,) if repeat > 1 else ()


def describe_hdus(hdul: object) -> list[HduInfo]:
    """Every HDU of an open file (astropy's or fastfits'), from its header alone."""
    out = []
    for i, hdu in enumerate(hdul):
        h = hdu.header
        extname = str(h.get("EXTNAME", "") or "").strip()
        xtension = str(h.get("XTENSION", "") or "").strip().upper()
        cards = {k: h.get(k) for k in (*_WCS_KEYS, "DC-FLAG", "BUNIT", "XUNITS", "YUNITS") if h.get(k) is not None}
        if xtension in ("BINTABLE", "TABLE") and not h.get("ZIMAGE", False):
            cols = []
            for k in range(1, int(h.get("TFIELDS", 0) or 0) + 1):
                tform = str(h.get(f"TFORM{k}", "") or "").strip()
                code, cell = _cell_shape(h, k, tform)
                cols.append(ColumnInfo(str(h.get(f"TTYPE{k}", f"col{k}") or f"col{k}").strip(),
                                       str(h.get(f"TUNIT{k}", "") or "").strip(),
                                       str(h.get(f"TUCD{k}", "") or "").strip(), tform, code, cell))
                for axis_key in ("CRVL", "CDLT", "CRPX", "CTYP", "CUNI"):  # array-column WCS (1CRVLn ...)
                    if h.get(f"1{axis_key}{k}") is not None:
                        cards[f"1{axis_key}{k}"] = h.get(f"1{axis_key}{k}")
            out.append(HduInfo(i, extname, "table", rows=int(h.get("NAXIS2", 0) or 0), columns=tuple(cols),
                               cards=cards))
            continue
        shape = image_shape(h)
        if h.get("ZIMAGE", False):
            shape = tuple(int(h.get(f"ZNAXIS{k}", 0)) for k in range(int(h.get("ZNAXIS", 0)), 0, -1))
        kind = "image" if shape and 0 not in shape else "empty"
        out.append(HduInfo(i, extname, kind, shape=shape, cards=cards))
    return out


@dataclass
class Guess:
    """A key of the mapping: the best value, and the alternatives when the headers leave it open (then the
    draft writes it commented out under a line naming them all). `why` says what the guess rests on."""

    value: object
    alternatives: tuple[tuple[object, str], ...] = ()
    why: str = ""

    @property
    def ambiguous(self) -> bool:
        return len(self.alternatives) > 1


@dataclass
class Analysis:
    """What `analyse` found: the HDUs, the problems in words, and per mapping table ([flux], ...) its keys."""

    path: str
    hdus: list[HduInfo]
    problems: list[str] = field(default_factory=list)
    roles: dict[str, dict[str, Guess]] = field(default_factory=dict)

    @property
    def ambiguous(self) -> list[str]:
        return [f"[{role}] {key}" for role, keys in self.roles.items() for key, g in keys.items() if g.ambiguous]


def _upper_in(name: str, names: tuple[str, ...]) -> bool:
    return name.upper() in names


def _has_word(name: str, words: tuple[str, ...]) -> bool:
    tokens = {t for t in re.split(r"[^A-Z0-9]+", name.upper()) if t}
    return bool(tokens & set(words)) or any(name.upper().startswith(w) or name.upper().endswith(w) for w in words
                                            if len(w) > 2 and name.upper() != "SIGNAL")


def _values_note(c: ColumnInfo) -> str:
    return c.unit or "no unit"


def _table_wcs(hdu: HduInfo, flux: ColumnInfo) -> bool:
    """Whether the table's header holds a WCS for axis 1 (CRVAL1 and CDELT1 or CD1_1, or the array-column
    form 1CRVLn for the flux column)."""
    k = hdu.columns.index(flux) + 1
    return ("CRVAL1" in hdu.cards and ("CDELT1" in hdu.cards or "CD1_1" in hdu.cards)) or \
        (f"1CRVL{k}" in hdu.cards and f"1CDLT{k}" in hdu.cards)


def _unit_choice(unit: str, what: str) -> Guess:
    """The [wavelength] unit: the column's or axis' own when it is a length, else ambiguous."""
    if unit and wavelength_factor(unit) is not None:
        return Guess(unit, why=f"{what} says {unit!r}")
    said = f"{what} says {unit!r}, no length" if unit else f"{what} states no unit"
    return Guess(WAVELENGTH_UNITS[0], tuple((u, "") for u in WAVELENGTH_UNITS), why=said)


def _analyse_table(a: Analysis, hdu: HduInfo) -> bool:
    """Guesses for a table HDU; False when it has no numeric column that could be a flux."""
    cols = [c for c in hdu.columns if c.numeric]
    if not cols or hdu.rows <= 0:
        return False
    units = [c for c in cols if c.unit]
    if not units:
        a.problems.append(f"HDU {hdu.index}: no column states a unit (TUNITn): the columns were matched by name alone, "
                          "and the wavelength's unit cannot be told")
    wave_named = [c for c in cols if _upper_in(c.name, WAVE_NAMES + LOG_WAVE_NAMES) or c.ucd.lower().startswith("em.wl")
                  or (c.unit and wavelength_factor(c.unit) is not None)
                  or _has_word(c.name, ("WAVE", "WAV", "LAMBDA", "LAM", "WL"))]
    rest = [c for c in cols if c not in wave_named]
    errors = [c for c in rest if _has_word(c.name, _ERROR_WORDS) or c.ucd.lower().startswith("stat.")]
    masks = [c for c in rest if c.code in "BIJK" and _has_word(c.name, _MASK_WORDS) or _upper_in(c.name, MASK_NAMES)]
    fluxes = [c for c in rest if c not in errors and c not in masks]
    by_unit = [c for c in fluxes if is_flux_density_unit(c.unit)]
    named = [c for c in fluxes if _upper_in(c.name, FLUX_NAMES)]
    flux_pool = by_unit or named or fluxes
    if not flux_pool:
        return False
    flux = _table_flux(a, hdu, flux_pool)
    _table_wavelength(a, hdu, cols, [c for c in wave_named if c.n_pix == flux.n_pix], flux)
    _table_uncertainty_and_mask(a, hdu, errors, masks, flux)
    return True


def _table_flux(a: Analysis, hdu: HduInfo, flux_pool: list[ColumnInfo]) -> ColumnInfo:
    """The flux role's guess among the candidate columns (several: the choice is commented); its column."""
    if len(flux_pool) > 1:
        pick = next((c for c in flux_pool if _upper_in(c.name, FLUX_NAMES)), flux_pool[0])
        alternatives = tuple((c.name, _values_note(c)) for c in flux_pool)
        shown = ", ".join(c.line() for c in flux_pool[:MAX_COLUMNS_SHOWN])
        a.problems.append(f"HDU {hdu.index}: several columns could be the flux ({shown}): which is the object's "
                          "spectrum is not said")
        flux_guess = Guess(pick.name, alternatives, why="several candidate columns")
        flux = pick
    else:
        flux = flux_pool[0]
        flux_guess = Guess(flux.name, why="the only flux-like column")
    if len(flux.cell) > 1:
        a.problems.append(f"HDU {hdu.index}: column {flux.name} is a {' x '.join(map(str, flux.cell))} cell (TDIM): "
                          "no built-in reader takes a 2-D array column; a mapping reads each row of the cell as a "
                          "spectrum")
    a.roles["flux"] = {"hdu": Guess(hdu.ref), "column": flux_guess}
    if flux.unit:
        a.roles["flux"]["unit"] = Guess(flux.unit)
    return flux


def _table_wavelength(a: Analysis, hdu: HduInfo, cols: list, waves: list, flux: ColumnInfo) -> None:
    """The wavelength role: a column of the flux's length, else the table header's WCS, else a commented guess."""
    if waves:
        if len(waves) > 1:
            alts = tuple((c.name, _values_note(c)) for c in waves)
            wave = next((c for c in waves if c.unit and wavelength_factor(c.unit)), waves[0])
            wave_guess = Guess(wave.name, alts, why="several candidate columns")
            a.problems.append(f"HDU {hdu.index}: several columns could be the wavelength "
                              f"({', '.join(c.name for c in waves)})")
        else:
            wave = waves[0]
            wave_guess = Guess(wave.name)
        role = {"hdu": Guess(hdu.ref), "column": wave_guess}
        if _upper_in(wave.name, LOG_WAVE_NAMES):
            role["log10"] = Guess(True, why="named as log10 wavelength")
            role["unit"] = Guess("Angstrom")
        else:
            role["unit"] = _unit_choice(wave.unit, f"column {wave.name}'s TUNIT")
            if not wave.unit:
                a.problems.append(f"HDU {hdu.index}: wavelength column {wave.name} has no unit (TUNITn): Angstrom, "
                                  "nm or micron?")
        a.roles["wavelength"] = role
    elif flux.cell and _table_wcs(hdu, flux):
        k = hdu.columns.index(flux) + 1
        unit = str(hdu.cards.get("CUNIT1", hdu.cards.get(f"1CUNI{k}", "")) or "").strip()
        wcs_cards = ", ".join(f"{key}={value!r}" for key, value in hdu.cards.items()
                              if key[:5] in ("CRVAL", "CDELT", "CD1_1", "CUNIT", "1CRVL", "1CDLT", "1CUNI"))
        a.problems.append(f"HDU {hdu.index}: no wavelength column, but the table's header has a WCS for the array "
                          f"column {flux.name} ({wcs_cards}): no built-in reader reads a table's WCS; a mapping "
                          "does ([wavelength] wcs = true)")
        a.roles["wavelength"] = {"wcs": Guess(True), "unit": _unit_choice(unit, "the header's CUNIT1")}
    elif freqs := [c for c in cols if c is not flux and c.n_pix == flux.n_pix and frequency_factor(c.unit)]:
        freq = freqs[0]  # a radio spectrum's axis: the mapping converts a frequency column to wavelength
        a.problems.append(f"HDU {hdu.index}: no wavelength column, but {freq.name} ({freq.unit}) is a frequency axis: "
                          f"a mapping reads it ([wavelength] column = \"{freq.name}\", unit = \"{freq.unit}\"), "
                          "converted to wavelength")
        a.roles["wavelength"] = {"hdu": Guess(hdu.ref), "column": Guess(freq.name, tuple(
            (c.name, _values_note(c)) for c in freqs) if len(freqs) > 1 else ()), "unit": Guess(freq.unit)}
    else:
        a.problems.append(f"HDU {hdu.index}: no column of {flux.n_pix} pixel(s) per row that could be the wavelength "
                          "(named WAVE/LAMBDA/..., UCD em.wl, or in a length unit), and no WCS in the header")
        a.roles["wavelength"] = {"hdu": Guess(hdu.ref), "column": Guess(
            "WAVE", tuple((c.name, _values_note(c)) for c in cols if c is not flux) or (("WAVE", ""), ("", ""))),
            "unit": _unit_choice("", "the column")}


def _table_uncertainty_and_mask(a: Analysis, hdu: HduInfo, errors: list, masks: list, flux: ColumnInfo) -> None:
    """The uncertainty (its kind guessed from its name) and mask roles, from columns shaped like the flux."""
    errs = [c for c in errors if c.n_pix == flux.n_pix and c.cell == flux.cell]
    if errs:
        err = errs[0]
        kind = "ivar" if _upper_in(err.name, IVAR_NAMES) or "IVAR" in err.name.upper() else \
            "var" if _upper_in(err.name, VAR_NAMES) or _has_word(err.name, ("VAR", "VARIANCE")) else "sigma"
        kind_guess = Guess(kind) if _upper_in(err.name, SIGMA_NAMES + IVAR_NAMES + VAR_NAMES) or kind != "sigma" \
            else Guess("sigma", (("sigma", "1-sigma"), ("var", "variance"), ("ivar", "inverse variance")),
                       why=f"column {err.name}'s name does not say which")
        a.roles["uncertainty"] = {"hdu": Guess(hdu.ref), "column": Guess(err.name) if len(errs) == 1 else
                                  Guess(err.name, tuple((c.name, _values_note(c)) for c in errs)), "kind": kind_guess}
    msk = [c for c in masks if c.cell == flux.cell]
    if msk:
        a.roles["mask"] = {"hdu": Guess(hdu.ref), "column": Guess(msk[0].name),
                           "convention": Guess(f"{msk[0].name} column of {a.path.rsplit('/', 1)[-1]}")}


def _analyse_image(a: Analysis, hdu: HduInfo) -> None:
    """Guesses for an image HDU: the image's rows (or a 3-D cube's planes) as spectra, axis 1 by its WCS."""
    a.roles["flux"] = {"hdu": Guess(hdu.ref)}
    bunit = str(hdu.cards.get("BUNIT", hdu.cards.get("YUNITS", "")) or "").strip()
    if bunit:
        a.roles["flux"]["unit"] = Guess(bunit)
    if len(hdu.shape) == 3:
        n_planes, n_rows = hdu.shape[0], hdu.shape[1]
        if 2 <= n_rows <= 4:  # planes of {wavelength, flux, uncertainty} rows (Spextool orders)
            a.problems.append(f"HDU {hdu.index}: a {' x '.join(map(str, hdu.shape))} cube: {n_planes} planes of "
                              f"{n_rows} rows; if each plane is one spectrum's wavelength, flux and uncertainty "
                              "rows, a mapping reads every plane ([flux] band = \"all\", row = 1)")
            a.roles["flux"].update(band=Guess("all"), row=Guess(1, ((1, "row 1"), (0, "row 0")),
                                                                 why="which row of a plane is the flux"))
            a.roles["wavelength"] = {"hdu": Guess(hdu.ref), "band": Guess("all"), "row": Guess(0),
                                     "unit": _unit_choice(str(hdu.cards.get("XUNITS", "") or "").strip(), "XUNITS")}
            if n_rows >= 3:
                a.roles["uncertainty"] = {"hdu": Guess(hdu.ref), "band": Guess("all"), "row": Guess(2),
                                          "kind": Guess("sigma")}
            return
        a.problems.append(f"HDU {hdu.index}: a 3-D image {hdu.shape}: which plane holds the flux is not said")
        a.roles["flux"]["band"] = Guess(0, tuple((b, f"plane {b}") for b in range(min(n_planes, 4))),
                                        why="which plane")
    ctype = str(hdu.cards.get("CTYPE1", "") or "").strip()
    cunit = str(hdu.cards.get("CUNIT1", "") or "").strip()
    if "CRVAL1" in hdu.cards:
        if ctype and ctype.upper().split("-")[0] not in ("WAVE", "AWAV", "LINEAR", "LAMBDA", "WAVELENGTH", "FREQ"):
            a.problems.append(f"HDU {hdu.index}: CTYPE1 = {ctype!r} is not a spectral axis type shardmerge knows; if "
                              "axis 1 is a wavelength, a mapping with its unit reads it ([wavelength] wcs = true, "
                              "unit = ...)")
        elif not cunit and not _iraf_angstrom(hdu, ctype):
            a.problems.append(f"HDU {hdu.index}: no CUNIT1 says axis 1's unit")
        unit = _unit_choice(cunit, "CUNIT1")
        if not cunit and _iraf_angstrom(hdu, ctype):  # as the built-in readers read it: nothing to pick
            unit = Guess("Angstrom", why="no CUNIT1: IRAF's convention, and the axis then spans a plausible range")
        a.roles["wavelength"] = {"wcs": Guess(True), "unit": unit}
        _beside_image(a, hdu)
    else:
        a.problems.append(f"HDU {hdu.index}: no WCS (CRVAL1) for axis 1 and no wavelength array was found")
        others = [h for h in a.hdus if h.kind == "image" and h.index != hdu.index and h.shape[-1:] == hdu.shape[-1:]]
        a.roles["wavelength"] = {"hdu": Guess(others[0].ref if others else hdu.ref, tuple(
            (h.ref, f"HDU {h.index}") for h in others) if len(others) > 1 else ()), "unit": _unit_choice("", "it")}


def _iraf_angstrom(hdu: HduInfo, ctype: str) -> bool:
    """No CUNIT1 and a generic CTYPE1, and axis 1 read in Angstrom (IRAF's convention; log10 where DC-FLAG =
    1) starts at a plausible wavelength: what the built-in image readers do with it (wcs.linear_wcs_wavelength
    refuses only an implausible axis)."""
    if ctype.upper() not in ("", "LINEAR", "WAVE", "WAVELENGTH", "LAMBDA"):
        return False
    try:
        start = float(hdu.cards["CRVAL1"]) + (1.0 - float(hdu.cards.get("CRPIX1", 1.0))) * float(
            hdu.cards.get("CDELT1", hdu.cards.get("CD1_1")))
    except (KeyError, TypeError, ValueError):
        return False
    if hdu.cards.get("DC-FLAG") == 1:
        return 2.0 <= start <= 6.0  # log10(Angstrom): 100 A to 100 um
    return start >= 100.0


def _beside_image(a: Analysis, flux: HduInfo) -> None:
    """[uncertainty] and [mask] from image extensions of the flux's shape whose EXTNAME says what they are
    (ERR, SIGMA, IVAR, VAR; MASK, DQ, QUAL): the HDUs the built-in image readers pair with the flux."""
    for hdu in a.hdus:
        if hdu.kind != "image" or hdu.index == flux.index or hdu.shape != flux.shape or not hdu.extname:
            continue
        kind = uncertainty_kind(SimpleNamespace(header={"EXTNAME": hdu.extname}))  # the readers' own rule
        if "uncertainty" not in a.roles and kind:
            a.roles["uncertainty"] = {"hdu": Guess(hdu.ref), "kind": Guess(kind)}
        elif "mask" not in a.roles and hdu.extname.upper() in MASK_EXTNAMES:
            a.roles["mask"] = {"hdu": Guess(hdu.ref)}


def analyse(path: str, hdul: object) -> Analysis:
    """The HDUs of a file, the problems that keep the built-in readers from it, and the best mapping."""
    a = Analysis(path, describe_hdus(hdul))
    for hdu in a.hdus:
        if hdu.kind == "table" and _analyse_table(a, hdu):
            return a
    images = [h for h in a.hdus if h.kind == "image"]
    if images:
        _analyse_image(a, max(images, key=lambda h: (len(h.shape) in (1, 2, 3), h.shape[-1])))
        return a
    a.problems.append("no HDU holds an image with pixels or a table with a numeric column and rows")
    return a


def refusal(path: str, hdul: object, headline: str = "no reader recognises this layout") -> str:
    """The reason of an UnknownFormatError: what was found (an HDU a line, bounded), what is missing or
    ambiguous, and the mapping that would resolve it (and that `mapping draft` writes one)."""
    a = analyse(path, hdul)
    lines = [f"{headline}. Found:"]
    lines += [f"    {h.line()}" for h in a.hdus[:MAX_HDU_LINES]]
    if len(a.hdus) > MAX_HDU_LINES:
        lines.append(f"    ... and {len(a.hdus) - MAX_HDU_LINES} more HDUs")
    if a.problems:
        lines.append("  What is missing or ambiguous:")
        lines += [f"    - {p}" for p in a.problems[:MAX_PROBLEMS]]
        if len(a.problems) > MAX_PROBLEMS:
            lines.append(f"    ... and {len(a.problems) - MAX_PROBLEMS} more")
    if a.roles:
        sketch = "; ".join(f"[{role}] " + ", ".join(f"{k} = {_toml(g.value)}" for k, g in keys.items())
                           for role, keys in a.roles.items() if role in ("flux", "wavelength"))
        if a.ambiguous:
            sketch += f" (pick {', '.join(a.ambiguous)})"
        lines.append(f"  To read it, describe it with --format mapping --mapping M.toml, e.g. {sketch}; "
                     f"`shardmerge mapping draft {path} -o M.toml` writes one with the ambiguous keys commented")
    else:
        lines.append("  If it holds spectra, describe them with --format mapping --mapping M.toml (docs: mapping "
                     "files); `shardmerge mapping draft FILE` writes a skeleton")
    return "\n".join(lines)


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))


_ROLE_ORDER = ("flux", "wavelength", "uncertainty", "mask", "continuum")
_KEY_ORDER = ("hdu", "column", "band", "row", "wcs", "unit", "log10", "kind", "convention", "method")


def draft(path: str, hdul: object) -> str:
    """A draft mapping TOML for the file: every key the analysis could fill, an ambiguous key commented out
    under a line naming its alternatives ("pick one and uncomment"), and the found HDUs as comments."""
    a = analyse(path, hdul)
    out = [f"# Draft mapping for {path}, written by `shardmerge mapping draft`.",
           "# Use: shardmerge ingest FILES -o OUT.zarr --format mapping --mapping THIS.toml",
           "# Found:"]
    out += [f"#   {h.line()}" for h in a.hdus[:MAX_HDU_LINES]]
    if len(a.hdus) > MAX_HDU_LINES:
        out.append(f"#   ... and {len(a.hdus) - MAX_HDU_LINES} more HDUs")
    if a.problems:
        out.append("# What the built-in readers could not settle:")
        out += [f"#   - {p}" for p in a.problems[:MAX_PROBLEMS]]
    if a.ambiguous:
        out.append(f"# Edit before use: {', '.join(a.ambiguous)} (each commented out below: pick one, uncomment)")
    else:
        out.append("# Nothing was ambiguous: check the guesses, then use it as it is.")
    if not a.roles:
        out += ["", "[flux]", "# hdu = 1", "# column = \"FLUX\"", "", "[wavelength]", "# hdu = 1",
                "# column = \"WAVE\"", "# unit = \"Angstrom\""]
    for role in _ROLE_ORDER:
        if role not in a.roles:
            continue
        out += ["", f"[{role}]"]
        keys = a.roles[role]
        for key in sorted(keys, key=_KEY_ORDER.index):
            g = keys[key]
            if g.ambiguous:
                alts = ", ".join(f"{_toml(v)}{f' ({note})' if note else ''}" for v, note in g.alternatives)
                out.append(f"# {key}: one of {alts}: pick one{f' ({g.why})' if g.why else ''}")
                out.append(f"# {key} = {_toml(g.value)}")
            else:
                out.append(f"{key} = {_toml(g.value)}")
    return "\n".join(out) + "\n"


def draft_file(path: str) -> str:
    """`draft` of the file at `path`, from its headers; InputError (exit 2) naming the file when it is missing
    or not FITS, so that `mapping draft` of a wrong path never writes a mapping of nothing."""
    import os

    from ..errors import BadFileError, InputError
    from .fitsio import open_fits

    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file" if not os.path.exists(path) else f"{path}: not a regular file")
    try:
        with open_fits(path, headers_only=True) as hdul:
            return draft(path, hdul)
    except BadFileError as exc:
        raise InputError(f"{path}: not a FITS file shardmerge can read ({exc.reason}); a mapping describes a "
                         "FITS file's HDUs") from exc
