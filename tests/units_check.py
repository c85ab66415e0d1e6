"""`assert_units_parse(store)`: every unit a store states parses with astropy.units, for any test to call.

Independent of shardmerge's own parser (units.parses_as_unit): astropy.units.Unit(s, parse_strict="raise")
on every `units` attr of every array, and on every value of every per-spectrum unit column an array names
(`units_column`). It also proves that each flux-like array says its unit in one of the store's forms, so a
store that drops its units does not pass by having nothing to check."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

FLUX_LIKE = ("signal/flux_raw", "signal/uncertainty_raw", "continuum/continuum_model",
             "continuum/continuum_uncertainty")


def _arrays(group, prefix: str = "") -> list[tuple[str, object]]:
    import zarr

    out = []
    with warnings.catch_warnings():  # index.parquet sits in the store beside the hierarchy, as designed
        warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy")
        members = sorted(group.members(), key=lambda kv: kv[0])
    for name, node in members:
        if isinstance(node, zarr.Array):
            out.append((prefix + name, node))
        else:
            out.extend(_arrays(node, f"{prefix}{name}/"))
    return out


def _parse(text: object, where: str):
    import astropy.units as u

    assert isinstance(text, str), f"{where}: unit {text!r} is not a string"
    try:
        return u.Unit(text, parse_strict="raise")
    except ValueError as exc:
        raise AssertionError(f"{where}: {text!r} does not parse with astropy.units: {exc}") from None


def assert_units_parse(store_path: str | Path) -> dict[str, list[str]]:
    """Raise AssertionError naming the first unit that does not parse; return {array path: the unit texts
    checked for it} (a units column's distinct values), so a caller can assert what the store says."""
    import zarr

    root = zarr.open_group(str(store_path), mode="r", use_consolidated=False)
    arrays = dict(_arrays(root))
    checked: dict[str, list[str]] = {}
    for path, arr in arrays.items():
        attrs = arr.attrs.asdict()
        texts: list[str] = []
        if "units" in attrs:
            _parse(attrs["units"], f"{path} attr units")
            texts.append(attrs["units"])
        column = attrs.get("units_column")
        if column is not None:
            assert column in arrays, f"{path}: units_column {column!r} is not an array of the store"
            values = np.asarray(arrays[column][:])
            assert values.shape == (arr.shape[0],), f"{path}: units_column {column!r} has shape {values.shape}"
            for value in sorted(set(values.tolist())):
                _parse(str(value), f"{column} (units of {path})")
                texts.append(str(value))
        if texts:
            checked[path] = texts
    for path in FLUX_LIKE:
        if path in arrays:
            attrs = arrays[path].attrs.asdict()
            assert "units" in attrs or "units_column" in attrs or attrs.get("units_unknown") is True, (
                f"{path} states no unit (units, units_column or units_unknown)")
            assert "units_source" in attrs or "units_source_column" in attrs, f"{path} keeps no source spelling"
    wave = arrays.get("signal/wavelength")
    assert wave is not None and "units" in wave.attrs, "signal/wavelength has no units attr"
    return checked
