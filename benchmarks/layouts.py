"""Chunk layouts side by side: for chunk rows 256/1024/4096, full-width vs 4096-pixel chunks, with and without
Zarr v3 sharding, Blosc zstd clevel 3/5/7 (bitshuffle), write a survey-like flux array with shardmerge's
codec helper, then time the reads users do: one random spectrum, 1000 random spectra, a 50 Å window
across all spectra, and a full scan. Prints a markdown table and writes a PNG.

    python benchmarks/layouts.py                       # 4096 spectra x 8000 px (131 MB of float32)
    python benchmarks/layouts.py --n-spec 16384 --png layouts.png --markdown layouts.md

Reads are cold for zarr (a new array object each time) but warm for the page cache: the machine's disk
is not what differs between layouts, the decode work and the file count are."""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

from shardmerge.config import CodecConfig
from shardmerge.zarrio import create_array

WAVE0, DWAVE = 3600.0, 0.8  # Angstrom: 8000 px cover 3600-10000 Å, a 50 Å window is 62 px


def survey_flux(n_spec: int, n_pix: int, seed: int = 0) -> np.ndarray:
    """Spectra that compress like real ones (~1.4 with zstd-5 bitshuffle): smooth continua of varying
    level, absorption lines, photon noise."""
    rng = np.random.default_rng(seed)
    wave = WAVE0 + DWAVE * np.arange(n_pix)
    out = np.empty((n_spec, n_pix), dtype=np.float32)
    for start in range(0, n_spec, 1024):
        n = min(1024, n_spec - start)
        level = rng.uniform(5, 50, (n, 1))
        slope = rng.uniform(-0.3, 0.3, (n, 1))
        cont = level * (1 + slope * np.sin(wave / 1500.0))
        lines = sum(-0.3 * np.exp(-0.5 * ((wave - c) / 3.0) ** 2) for c in (4861, 5175, 5893, 6563, 8542))
        flux = cont * (1 + lines) + rng.normal(0, 1, (n, n_pix)) * np.sqrt(cont)
        out[start : start + n] = flux
    return out


def write(path: Path, flux: np.ndarray, chunks: tuple[int, int], shard_rows: int | None, clevel: int) -> float:
    g = zarr.open_group(path, mode="w", zarr_format=3)
    n_spec, n_pix = flux.shape
    shards = (shard_rows, -(-n_pix // chunks[1]) * chunks[1]) if shard_rows else None
    arr = create_array(g, "flux", shape=flux.shape, chunks=chunks, dtype="float32", codec=CodecConfig(clevel=clevel),
                       zarr_format=3, shards=shards)
    step = shard_rows or chunks[0]  # whole storage files per write, as shardmerge's shard tasks do
    t0 = time.perf_counter()
    for r in range(0, n_spec, step):
        arr[r : r + step] = flux[r : r + step]
    return time.perf_counter() - t0


def read_patterns(path: Path, n_spec: int, n_pix: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    out = {}

    def fresh() -> zarr.Array:
        return zarr.open_array(path / "flux", mode="r")

    t0 = time.perf_counter()
    fresh()[int(rng.integers(n_spec))]
    out["1 random spectrum (ms)"] = (time.perf_counter() - t0) * 1e3
    rows = np.sort(rng.choice(n_spec, size=min(1000, n_spec), replace=False))
    t0 = time.perf_counter()
    fresh().get_orthogonal_selection((rows, slice(None)))
    out["1000 random spectra (s)"] = time.perf_counter() - t0
    lo = int((6540 - WAVE0) / DWAVE)  # H-alpha, 50 Å
    hi = lo + int(50 / DWAVE)
    t0 = time.perf_counter()
    a = fresh()
    for r in range(0, n_spec, a.chunks[0] * 4):
        a[r : r + a.chunks[0] * 4, lo:hi]
    out["50 Å window, all spectra (s)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    a = fresh()
    step = max(a.chunks[0], 1024)
    for r in range(0, n_spec, step):
        a[r : r + step]
    out["full scan (s)"] = time.perf_counter() - t0
    return out


def file_count(path: Path) -> int:
    return sum(len(f) for _, _, f in os.walk(path / "flux" / "c"))


def size(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-spec", type=int, default=4096)
    ap.add_argument("--n-pix", type=int, default=8000)
    ap.add_argument("--repeats", type=int, default=3, help="reads are repeated; the median is shown")
    ap.add_argument("--png", type=Path, default=Path("layouts.png"))
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="clevel 5 only (12 layouts instead of 36)")
    args = ap.parse_args()
    flux = survey_flux(args.n_spec, args.n_pix)
    raw = flux.nbytes
    work = Path(tempfile.mkdtemp(prefix="shardmerge-layouts-"))
    rows_list, widths, sharding, levels = (256, 1024, 4096), ("full", 4096), (False, True), (3, 5, 7)
    if args.quick:
        levels = (5,)
    results = []
    try:
        for rows, width, sharded, clevel in itertools.product(rows_list, widths, sharding, levels):
            pix = args.n_pix if width == "full" else 4096
            shard_rows = min(4 * rows, 16384) if sharded else None
            path = work / f"r{rows}-w{width}-s{int(sharded)}-c{clevel}.zarr"
            w = write(path, flux, (rows, pix), shard_rows, clevel)
            reads = [read_patterns(path, args.n_spec, args.n_pix, seed) for seed in range(args.repeats)]
            row = {
                "chunks": f"({rows}, {'N_pix' if width == 'full' else 4096})",
                "zarr shard": f"{shard_rows} rows" if shard_rows else "-",
                "clevel": clevel,
                "write (s)": w,
                "MB/s": raw / 1e6 / w,
                "size (MB)": size(path) / 1e6,
                "ratio": raw / size(path),
                "files": file_count(path),
                **{k: statistics.median(r[k] for r in reads) for k in reads[0]},
            }
            results.append(row)
            print(" | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()), flush=True)
            shutil.rmtree(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = markdown(results, args)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    plot(results, args.png)
    print(f"wrote {args.png}")


def markdown(results: list[dict], args: argparse.Namespace) -> str:
    head = list(results[0])
    lines = [f"{args.n_spec} spectra x {args.n_pix} px float32 ({args.n_spec * args.n_pix * 4 / 1e6:.0f} MB), "
             f"{os.cpu_count()} cores, reads median of {args.repeats}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        lines.append("| " + " | ".join(f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k]) for k in head) + " |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["write (s)", "size (MB)", "files", "1 random spectrum (ms)", "1000 random spectra (s)",
               "50 Å window, all spectra (s)", "full scan (s)"]
    labels = [f"{r['chunks']} {r['zarr shard']} c{r['clevel']}" for r in results]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(10, 0.35 * len(results)), 2.2 * len(metrics)),
                             sharex=True)
    for ax, m in zip(axes, metrics, strict=True):
        ax.bar(range(len(results)), [r[m] for r in results], color="tab:blue")
        ax.set_ylabel(m, fontsize=8)
        if m == "files":
            ax.set_yscale("log")
    axes[-1].set_xticks(range(len(results)), labels, rotation=90, fontsize=7)
    fig.suptitle("chunk layouts: write cost, size, file count and read time per access pattern")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
