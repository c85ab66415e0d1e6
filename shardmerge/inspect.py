"""A summary of a published store: shape, chunks, codecs, sizes, provenance, formats from the index."""

from __future__ import annotations

import os
from collections import Counter

import pyarrow.parquet as pq
import zarr

from .errors import InputError
from .report import store_bytes
from .schema import PROVENANCE_ATTRS
from .store import all_arrays


def summarize(store: str) -> dict:
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


def plot(store: str, png: str, n: int = 5) -> list[int]:
    """Write a PNG of `n` spectra spread evenly over the store (flux against wavelength, one panel each).
    Reads only those rows. Returns the rows drawn."""
    try:
        import matplotlib
    except ImportError as exc:
        raise InputError("inspect --plot needs matplotlib: pip install 'shardmerge[plot]'") from exc
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    root = zarr.open_group(store, mode="r")
    flux, wave = root["signal/flux_raw"], root["signal/wavelength"]
    n_spec = flux.shape[0]
    rows = sorted({int(round(i * (n_spec - 1) / max(n - 1, 1))) for i in range(min(n, n_spec))})
    ids = root["metadata/spec_id"] if "spec_id" in root["metadata"] else None
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 2.2 * len(rows)), squeeze=False, sharex=True)
    for ax, row in zip(axes[:, 0], rows, strict=True):
        w = wave[:] if wave.ndim == 1 else wave[row]
        ax.plot(w, flux[row], lw=0.6)
        ax.set_title(f"row {row}: {str(ids[row]) if ids is not None else ''}", fontsize=8, loc="left")
        ax.set_ylabel(flux.attrs.get("units", ""), fontsize=7)
    axes[-1, 0].set_xlabel(f"wavelength [{wave.attrs.get('units', '')}]")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return rows
