"""What real archives do that bends the FITS rules without damaging the data: accepted, and said.

Each kind has a name that `--strict KIND` takes to refuse it instead. A file's oddities travel with its
scan into the run report (per file) and the store's provenance (counts and examples per kind)."""

from __future__ import annotations

import json
import re

from ..errors import BadFileError
from .checksum import PLACEHOLDER_DATASUM, STALE_CHECKSUM

FITS_WARNING = "fits-warning"
UNREAD_EXTENSION = "unread-extension"
UNKNOWN_UNIT = "unknown-unit"
FREQUENCY_AXIS = "frequency-axis"
WAVE_LOG10 = "wave-log10"
STALE_AXIS_UNIT = "stale-axis-unit"
STRING_SCALING = "string-scaling"

KINDS = {
    PLACEHOLDER_DATASUM: "DATASUM = '0' on an HDU with data (ESO HARPS DRS products): the data unit is unverified",
    STALE_CHECKSUM: "CHECKSUM wrong but DATASUM right (header edited after checksumming, e.g. IRAF hedit)",
    FITS_WARNING: "astropy warned while parsing (e.g. BLANK on a float image, a non-standard card)",
    UNREAD_EXTENSION: "an HDU with data (an image, or a table with rows) that no reader consumed: not stored",
    UNKNOWN_UNIT: "the flux unit is not a spelling astropy.units (or units.py) reads: stored as unknown, "
                  "the source's spelling kept",
    FREQUENCY_AXIS: "a frequency axis (CTYPE1 FREQ, or VRAD/VOPT with a rest frequency) converted to wavelength, "
                    "lambda = c/nu in Angstrom, its pixels reversed where needed so that wavelength increases; the "
                    "flux is kept as in the source (per unit frequency when BUNIT says so)",
    WAVE_LOG10: "CTYPE1 = 'WAVE-LOG' whose CRVAL1 is a log10(Angstrom) value (the MaNGA/MaStar convention): read as "
                "log10(wavelength), not as the FITS standard's logarithmic axis",
    STALE_AXIS_UNIT: "CUNIT1 is no wavelength unit ('deg', '-999') but IRAF's WAT1_001 states one: the WAT unit is "
                     "used",
    STRING_SCALING: "BSCALE or BZERO written as a string ('1', '32768'): read as the number it spells",
}


class Oddities:
    """Collects one file's oddities; an oddity whose kind is in `strict` refuses the file."""

    def __init__(self, path: str, strict: frozenset[str] = frozenset()):
        self.path = path
        self.strict = strict
        self.notes: list[str] = []

    def add(self, kind: str, text: str) -> None:
        if kind in self.strict:
            raise BadFileError(self.path, f"{text} (refused: --strict {kind})")
        note = f"{kind}: {text}"
        if note not in self.notes:
            self.notes.append(note)


def kind_of(note: str) -> str:
    return note.partition(":")[0]


def unread_note(hdu: int, extname: str, extver: int, what: str, why: str) -> str:
    """The text of an `unread-extension` oddity: which HDU (index, EXTNAME, EXTVER), what it holds (`what`:
    "image 4 x 1024", "table of 40 rows"; no parentheses) and why it was not read. `parse_unread` reads it
    back for the run report's `unread` list, so the two are kept together here."""
    name = f"EXTNAME {json.dumps(extname)}" if extname else "no EXTNAME"
    return f"HDU {hdu} ({name}, EXTVER {extver}; {what.replace('(', '[').replace(')', ']')}) {why}"


_UNREAD = re.compile(r'HDU (\d+) \((?:EXTNAME ("(?:[^"\\]|\\.)*")|no EXTNAME), EXTVER (-?\d+); ([^)]*)\)')


def parse_unread(text: str) -> dict | None:
    """{hdu, extname, extver, what, why} of an `unread-extension` oddity's text (the note without its kind), or
    None when the text does not name an HDU that way."""
    m = _UNREAD.match(text)
    if m is None:
        return None
    return {"hdu": int(m.group(1)), "extname": json.loads(m.group(2)) if m.group(2) else "",
            "extver": int(m.group(3)), "what": m.group(4), "why": text[m.end():].strip()}


def unread_entries(path: str, notes: list[str] | tuple[str, ...]) -> list[dict]:
    """The run report's `unread` entries of one file: one per HDU its notes say was left unread."""
    out = []
    for note in notes:
        if kind_of(note) != UNREAD_EXTENSION:
            continue
        entry = parse_unread(note.partition(": ")[2])
        if entry is not None:
            out.append({"path": path, **entry})
    return out
