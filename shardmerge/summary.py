"""A summary of a published store: shape, chunks, codecs, sizes, provenance, formats from the index."""

from __future__ import annotations

import os
from collections import Counter

import pyarrow.parquet as pq
import zarr
from zarr.errors import BaseZarrError

from .errors import InputError, NotAStoreError
from .report import store_bytes
from .schema import PROVENANCE_ATTRS
from .store import all_arrays, require_shardmerge_store, require_zarr_group

MIXED_UNITS_POINTER = "mixed: see "  # the flux `units` attr of stores whose spectra differ, before `units_column`


def summarize(store: str) -> dict:
    """Shape, chunks, codecs and sizes of every array, provenance and the index's formats. Raises
    NotAStoreError (one line, exit 2) for a path that is not a zarr group or cannot be read as one."""
    require_zarr_group(store)
    try:
        return _summarize(store)
    except (OSError, ValueError, KeyError, TypeError, BaseZarrError) as exc:
        raise NotAStoreError(f"{store}: a damaged zarr group ({type(exc).__name__}: {exc}); "
                             f"`shardmerge validate {store}` names what is wrong") from exc


def _summarize(store: str) -> dict:
    root = zarr.open_group(store, mode="r")
    arrays = {}
    for path, arr in all_arrays(root):
        on_disk, files = store_bytes(os.path.join(store, *path.split("/")))
        raw = 0 if arr.dtype.kind in "TOU" else arr.nbytes
        arrays[path] = {
            "shape": list(arr.shape), "chunks": list(arr.chunks),
            "dtype": "str" if arr.dtype.kind in "TOU" else str(arr.dtype),
            "codecs": [type(c).__name__ for c in arr.compressors], "bytes": on_disk, "files": files,
            "ratio": round(raw / on_disk, 2) if raw and on_disk else None,
        }
    out = {
        "store": os.path.abspath(store),
        "shape": _flux_shape(root),
        "provenance": {k: root.attrs.get(k) for k in (*PROVENANCE_ATTRS, "input_files", "input_bytes")},
        "arrays": arrays,
        "bytes": store_bytes(store)[0],
    }
    index = os.path.join(store, "index.parquet")
    if os.path.isfile(index):
        fmt = pq.read_table(index, columns=["format", "source_path"])
        out["formats"] = dict(Counter(fmt.column("format").to_pylist()))
        out["files"] = len(set(fmt.column("source_path").to_pylist()))
    return out


def _flux_shape(root: zarr.Group) -> list[int] | None:
    try:
        return list(root["signal/flux_raw"].shape)
    except KeyError:
        return None


def render(summary: dict) -> str:
    lines = [f"store       {summary['store']}"]
    if summary.get("shape"):
        lines.append(f"spectra     {summary['shape'][0]} x {summary['shape'][1]} pixels")
    if "formats" in summary:
        fm = ", ".join(f"{k}: {v}" for k, v in sorted(summary["formats"].items()))
        lines.append(f"sources     {summary['files']} files ({fm} spectra)")
    lines.append(f"size        {summary['bytes'] / 2**20:.2f} MiB on disk")
    for k, v in summary["provenance"].items():
        lines.append(f"{k:<11} {v}")
    lines.append("arrays:")
    for path, a in summary["arrays"].items():
        if path.startswith("metadata/h"):
            continue
        ratio = f" ratio {a['ratio']}" if a["ratio"] else ""
        lines.append(f"  {path:<34} {str(tuple(a['shape'])):<14} chunks {str(tuple(a['chunks'])):<14} "
                     f"{a['dtype']:<8} {a['bytes'] / 2**20:8.2f} MiB{ratio}")
    n_proj = sum(1 for p in summary["arrays"] if p.startswith("metadata/h"))
    lines.append(f"  + {n_proj} projected header fields under metadata/h*")
    return "\n".join(lines)


def flux_units_of(root: zarr.Group, rows: list[int]) -> list[str]:
    """The flux unit of each of `rows`: the flux array's `units` attr when the store has one unit, else each
    row's value in the per-spectrum unit column the array points to: attr `units_column` (a path such as
    "metadata/flux_unit"), or, in stores written before it, a `units` attr "mixed: see <column>"."""
    flux = root["signal/flux_raw"]
    column = flux.attrs.get("units_column")
    units = flux.attrs.get("units", "")
    if not column and isinstance(units, str) and units.startswith(MIXED_UNITS_POINTER):
        column = units[len(MIXED_UNITS_POINTER):].strip()
    if column:
        try:
            values = root[column]
        except KeyError:
            return [f"unknown (no {column})"] * len(rows)
        return [str(values[r]) for r in rows]
    return [str(units)] * len(rows)


def plot_figure(store: str, n: int = 5):  # -> (matplotlib Figure, rows)
    """The figure `plot` writes: `n` spectra spread evenly over the store, one panel each. Each panel's
    y-axis names the flux unit; where the drawn spectra's units differ it says so and each spectrum's own
    unit is in its legend."""
    try:
        import matplotlib
    except ImportError as exc:
        raise InputError("inspect --plot needs matplotlib: pip install '.[plot]' in a clone of shardmerge (or "
                         "'shardmerge[plot]' from an index)") from exc
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    require_shardmerge_store(store, needs=("signal/flux_raw", "signal/wavelength"))
    root = zarr.open_group(store, mode="r")
    flux, wave = root["signal/flux_raw"], root["signal/wavelength"]
    n_spec = flux.shape[0]
    rows = sorted({int(round(i * (n_spec - 1) / max(n - 1, 1))) for i in range(min(n, n_spec))})
    ids = root["metadata/spec_id"] if "spec_id" in root["metadata"] else None
    units = [u if u.strip() else "no unit stated" for u in flux_units_of(root, rows)]
    one_unit = len(set(units)) == 1
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 2.2 * len(rows)), squeeze=False, sharex=True)
    for ax, row, unit in zip(axes[:, 0], rows, units, strict=True):
        w = wave[:] if wave.ndim == 1 else wave[row]
        ax.plot(w, flux[row], lw=0.6, label=f"flux [{unit}]")
        ax.set_title(f"row {row}: {str(ids[row]) if ids is not None else ''}", fontsize=8, loc="left")
        ax.set_ylabel(f"flux [{unit}]" if one_unit else "flux (units differ per spectrum)", fontsize=7)
        if not one_unit:
            ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel(f"wavelength [{wave.attrs.get('units', '')}]")
    fig.tight_layout()
    return fig, rows


def plot(store: str, png: str, n: int = 5) -> list[int]:
    """Write a PNG of `n` spectra spread evenly over the store (flux against wavelength, one panel each).
    Reads only those rows. Returns the rows drawn."""
    fig, rows = plot_figure(store, n)  # first: it says what to install where matplotlib is missing
    import matplotlib.pyplot as plt

    fig.savefig(png, dpi=100)
    plt.close(fig)
    return rows
