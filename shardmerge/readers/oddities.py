"""What real archives do that bends the FITS rules without damaging the data: accepted, and said.

Each kind has a name that `--strict KIND` takes to refuse it instead. A file's oddities travel with its
scan into the run report (per file) and the store's provenance (counts and examples per kind)."""

from __future__ import annotations

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
    UNREAD_EXTENSION: "an image extension of the flux's shape that nothing names is not read",
    UNKNOWN_UNIT: "the flux unit is missing or not a spelling astropy.units (or units.py) reads: stored as unknown, "
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
