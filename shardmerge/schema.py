"""Names, dtypes and units of what a store holds, shared by the shard writer, the merge and the gate."""

from __future__ import annotations

from dataclasses import dataclass

from .headers import CANONICAL_FLOAT_FIELDS, CANONICAL_STRING_FIELDS
from .units import DIMENSIONLESS, UNKNOWN_UNIT

REQUIRED_GROUPS = ("signal", "continuum", "representations", "params", "metadata")

# Pixel masks as the sources give them (additive to the spec): uint32, 0 = good. Bit 31 flags padding past
# a spectrum's end; sources' own bits are kept as they are (their convention is named in the attrs).
MASK_ARRAY = "mask_raw"
MASK_PADDING = 1 << 31
MASK_MAX = MASK_PADDING - 1  # a source value above this would collide with the padding bit


@dataclass(frozen=True)
class ArraySpec:
    """One (N_spec, N_pix) array of the store: the single description that the shard writer, the merge,
    the gate and the size estimate loop over. Adding an array is adding a row here, and a reader that
    fills it (SpectraBlock.arrays[name]) and declares its capability (Layout.provides)."""

    name: str  # in its group, in shard stores and in SpectraBlock.arrays
    group: str
    dtype: str
    units: str  # "flux": the sources' flux unit (flux_unit_attrs); "": no units attr (flags); else the units attr
    description: str
    capability: str = ""  # "" always written; else only when some input provides this capability
    pairs_with: str = ""  # written together with this array or not at all
    padding: float | int = float("nan")  # value past a spectrum's end (and before a row is filled)
    absent: float | int = float("nan")  # value over a spectrum's pixels when its source lacks the array
    companion: bool = False  # a companion file (aspcapStar) may supply it for another file's rows

    @property
    def path(self) -> str:
        return f"{self.group}/{self.name}"

    @property
    def itemsize(self) -> int:
        return _ITEMSIZE[self.dtype]

    def blank(self, shape: tuple[int, int]):  # -> np.ndarray; numpy is imported here, not by the pure plan
        import numpy as np

        return np.full(shape, self.padding, dtype=self.dtype)


_ITEMSIZE = {"float32": 4, "float64": 8, "uint32": 4, "uint8": 1, "int16": 2, "int32": 4}


ARRAYS = (
    ArraySpec("flux_raw", "signal", "float32", "flux", "flux as in the source file (NaN-padded to N_pix)"),
    ArraySpec("uncertainty_raw", "signal", "float32", "flux", "1-sigma uncertainty (from error, ivar or variance)"),
    ArraySpec("continuum_model", "continuum", "float32", "flux", "continuum from the source; NaN when absent",
              companion=True),
    ArraySpec("continuum_uncertainty", "continuum", "float32", "flux", "continuum 1-sigma; NaN when absent",
              companion=True),
    ArraySpec("normalized_flux", "representations", "float32", DIMENSIONLESS, "source-provided normalized flux",
              capability="normalized", pairs_with="normalized_uncertainty", companion=True),
    ArraySpec("normalized_uncertainty", "representations", "float32", DIMENSIONLESS, "its 1-sigma uncertainty",
              capability="normalized", pairs_with="normalized_flux", companion=True),
    ArraySpec(MASK_ARRAY, "signal", "uint32", "",  # bit flags, not a quantity: attr flags = "bitmask", no units
              "pixel mask as the source gives it: 0 = good; bit 31 = padding past the spectrum's end; other bits "
              "follow the source's convention (see metadata/format); 0 where a source has no mask",
              capability="mask", padding=MASK_PADDING, absent=0),
)
ARRAY_BY_NAME = {a.name: a for a in ARRAYS}


def arrays_for(capabilities: frozenset[str] | set[str]) -> tuple[ArraySpec, ...]:
    """The 2-D arrays a store (or a shard) holds when its inputs provide these capabilities, in table order."""
    return tuple(a for a in ARRAYS if not a.capability or a.capability in capabilities)


# 2-D float arrays (the spectral ones: units attrs required): name → group
SPECTRAL_2D = {a.name: a.group for a in ARRAYS if a.dtype.startswith("float")}
REQUIRED_ARRAYS = (
    "signal/wavelength",
    "signal/flux_raw",
    "signal/uncertainty_raw",
    "continuum/continuum_model",
    "continuum/continuum_uncertainty",
    "continuum/method",
)

# Flux units (units.normalise_flux_unit). Every `units` attr parses with astropy.units.Unit; the flux-like
# arrays say their unit in one of three ways (flux_unit_attrs), and keep the sources' spellings beside it.
FLUX_UNIT_COLUMN = "metadata/flux_unit"  # per spectrum, normalised (written when spectra's units differ)
FLUX_UNIT_SOURCE_COLUMN = "metadata/flux_unit_source"  # per spectrum, as the source spells it
UNITS_LAYOUT = "normalised-1"  # in every shard key: shards written before units were normalised never match


def flux_unit_attrs(flux_units: tuple[str, ...], sources: tuple[str, ...]) -> dict:
    """The unit attrs of every flux-like array (ArraySpec.units == "flux"), from the plan's distinct normalised
    units and source spellings:
    - one known unit: `units` (parses with astropy.units); `units_source`, the source's spelling, or, when
      files spell it differently, `units_source_column` naming the per-spectrum spellings;
    - one unit, unknown (units.UNKNOWN_UNIT): no `units`, `units_unknown = True`, and the spelling as above;
    - units that differ between spectra: no `units`; `units_column` names the per-spectrum normalised units,
      `units_source_column` their spellings; `units_unknown = True` when some spectrum's unit is unknown
      (its value in the units column is then "", astropy's dimensionless_unscaled: no unit attached)."""
    attrs: dict = {}
    if len(flux_units) > 1:
        attrs["units_column"] = FLUX_UNIT_COLUMN
    elif flux_units and flux_units[0] != UNKNOWN_UNIT:
        attrs["units"] = flux_units[0]
    if UNKNOWN_UNIT in flux_units or not flux_units:
        attrs["units_unknown"] = True
    if len(flux_units) > 1 or len(sources) > 1:
        attrs["units_source_column"] = FLUX_UNIT_SOURCE_COLUMN
    else:
        attrs["units_source"] = sources[0] if sources else ""
    return attrs


# Row-wise metadata: identity and provenance of each row, then canonical observing fields.
METADATA_IDENTITY = {
    "spec_id": "str",
    "source_path": "str",
    "source_hdu": "int32",
    "source_row": "int64",
    "format": "str",
}
METADATA_CANONICAL = {**{k: "str" for k in CANONICAL_STRING_FIELDS}, **{k: "float64" for k in CANONICAL_FLOAT_FIELDS}}
METADATA_UNITS = {"ra": "deg", "dec": "deg", "mjd": "d", "exptime": "s"}
WAVELENGTH_UNITS = "Angstrom"  # signal/wavelength, whatever the sources' unit
# every literal `units` attr the schema writes (flux-like arrays take the sources'): each parses with
# astropy.units (a unit test says so), so the gate need not import astropy to check them
SCHEMA_UNITS = frozenset({WAVELENGTH_UNITS, *METADATA_UNITS.values(),
                          *(a.units for a in ARRAYS if a.units not in ("flux", ""))})

INDEX_COLUMNS = ("row", "spec_id", "source_path", "source_hdu", "source_row", "format", "shard",
                 "ra", "dec", "object")

PROVENANCE_ATTRS = ("schema_version", "ingest_pipeline", "created_at", "git_commit")
PARAM_PREFIX = "param:"  # row-table column prefix for params/*
META_PREFIX = "meta:"  # row-table column prefix for format-specific metadata/* strings (arm, targetid, …)


@dataclass(frozen=True)
class RowWise:
    """One row-wise (1-D, N_spec) array of the store, and the row-table column that fills it."""

    group: str
    name: str
    dtype: str  # "str" or a numpy dtype name
    column: str
    attrs: dict | None = None


def rowwise_arrays(flux_units: tuple[str, ...], metadata_keys: tuple[str, ...], header_keys: tuple[str, ...],
                   param_keys: tuple[str, ...], flux_unit_sources: tuple[str, ...] = ()) -> list[RowWise]:
    """Every row-wise array a store of these inputs holds: what the merge creates and the plan counts."""
    out = [RowWise("continuum", "method", "str", "continuum_method",
                   {"description": "how continuum_model was obtained, per spectrum ('none' when absent)"})]
    for name, dtype in {**METADATA_IDENTITY, **METADATA_CANONICAL}.items():
        out.append(RowWise("metadata", name, dtype, name,
                           {"units": METADATA_UNITS[name]} if name in METADATA_UNITS else None))
    if len(flux_units) > 1:
        out.append(RowWise("metadata", "flux_unit", "str", "flux_unit",
                           {"description": "flux unit of the spectrum, normalised: astropy.units.Unit(value) reads "
                                           "it; '' where the source's unit is unknown (see flux_unit_source)"}))
    if len(flux_units) > 1 or len(flux_unit_sources) > 1:
        out.append(RowWise("metadata", "flux_unit_source", "str", "flux_unit_source",
                           {"description": "flux unit of the spectrum as its source file spells it"}))
    out += [RowWise("metadata", key, "str", META_PREFIX + key, {"description": "format-specific per-spectrum value"})
            for key in metadata_keys]
    out += [RowWise("metadata", key, "str", key, {"description": "projected FITS header card (string)"})
            for key in header_keys]
    out += [RowWise("params", key, "float64", PARAM_PREFIX + key) for key in param_keys]
    return out
