"""Names, dtypes and units of what a store holds, shared by the shard writer, the merge and the gate."""

from __future__ import annotations

from .headers import CANONICAL_FLOAT_FIELDS, CANONICAL_STRING_FIELDS

REQUIRED_GROUPS = ("signal", "continuum", "representations", "params", "metadata")

# 2-D (N_spec, N_pix) float32 arrays: name → group. Shard stores hold them flat under these names.
SPECTRAL_2D = {
    "flux_raw": "signal",
    "uncertainty_raw": "signal",
    "continuum_model": "continuum",
    "continuum_uncertainty": "continuum",
    "normalized_flux": "representations",
    "normalized_uncertainty": "representations",
}
# Pixel masks as the sources give them (additive to the spec): uint32, 0 = good. Bit 31 flags padding past
# a spectrum's end; sources' own bits are kept as they are (their convention is named in the attrs).
MASK_ARRAY = "mask_raw"
MASK_PADDING = 1 << 31
MASK_MAX = MASK_PADDING - 1  # a source value above this would collide with the padding bit
ARRAYS_2D = {**SPECTRAL_2D, MASK_ARRAY: "signal"}  # every (N_spec, N_pix) array a store can hold
REQUIRED_ARRAYS = (
    "signal/wavelength",
    "signal/flux_raw",
    "signal/uncertainty_raw",
    "continuum/continuum_model",
    "continuum/continuum_uncertainty",
    "continuum/method",
)

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

INDEX_COLUMNS = ("row", "spec_id", "source_path", "source_hdu", "source_row", "format", "shard",
                 "ra", "dec", "object")

PROVENANCE_ATTRS = ("schema_version", "ingest_pipeline", "created_at", "git_commit")
ROWS_FILE = "rows.parquet"  # row-wise values inside a shard store
MANIFEST_FILE = "manifest.json"  # written last inside a shard store
PARAM_PREFIX = "param:"  # row-table column prefix for params/*
META_PREFIX = "meta:"  # row-table column prefix for format-specific metadata/* strings (arm, targetid, …)
