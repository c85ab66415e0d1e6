"""End-to-end ingest time: shardmerge (local cluster, 1 and 2 workers) against the serial writer a user
would write by hand (astropy loop, preallocated zarr arrays, 1024-row batches), on the same corpus.

    python benchmarks/end_to_end.py --files 2000            # 1-spectrum files
    python benchmarks/end_to_end.py --plates 8 --rows 500   # multi-spectrum files

Each variant runs --repeats times as its own process (interpreter, imports and cluster start included);
the table shows medians and ratios to the serial writer. The serial writer writes only wavelength, flux
and uncertainty; shardmerge also writes continuum arrays, metadata and index.parquet, runs the full gate
and fsyncs, so the comparison favours the baseline."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERIAL_WRITER = r'''
import sys, numpy as np, zarr
from pathlib import Path
from astropy.io import fits
from zarr.codecs import BloscCodec
paths = sorted(str(p) for p in Path(sys.argv[1]).rglob("*.fits"))
out = sys.argv[2]
rows = []
for p in paths:  # a first pass for the shape, as the spec requires (no append)
    with fits.open(p) as h:
        n = h[0].header["NAXIS2"] if h[0].header["NAXIS"] == 2 else 1
        rows.append(n); n_pix = h[0].header["NAXIS1"]
n_spec = sum(rows)
g = zarr.open_group(out, mode="w")
codec = [BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")]
kw = dict(chunks=(1024, n_pix), compressors=codec, fill_value=np.nan)
flux = g.create_array("flux", shape=(n_spec, n_pix), dtype="float32", **kw)
unc = g.create_array("unc", shape=(n_spec, n_pix), dtype="float32", **kw)
wave = g.create_array("wave", shape=(n_spec, n_pix), dtype="float64", **kw)
bf, bu, bw, start = [], [], [], 0
def flush():
    global bf, bu, bw, start
    if not bf: return
    f = np.concatenate(bf); flux[start:start+len(f)] = f
    unc[start:start+len(f)] = np.concatenate(bu); wave[start:start+len(f)] = np.concatenate(bw)
    start += len(f); bf, bu, bw = [], [], []
for p in paths:
    with fits.open(p) as h:
        hd = h[0].header; d = np.atleast_2d(h[0].data.astype(np.float32))
        ivar = np.atleast_2d(h["IVAR"].data.astype(np.float64))
        axis = hd["CRVAL1"] + np.arange(d.shape[1]) * hd["CDELT1"]
        w = 10**axis if hd.get("DC-FLAG") == 1 else axis
    with np.errstate(divide="ignore"):
        s = np.where(ivar > 0, 1/np.sqrt(np.where(ivar > 0, ivar, 1)), np.nan).astype(np.float32)
    bf.append(d); bu.append(s); bw.append(np.broadcast_to(w, d.shape))
    if sum(len(x) for x in bf) >= 1024: flush()
flush()
'''


def make_corpus(root: Path, files: int, plates: int, rows: int, n_pix: int) -> None:
    from shardmerge.samples import make_image2d, make_wcs1d

    for i in range(files):
        make_wcs1d(root / f"f{i // 1000:03d}" / f"s{i:06d}.fits", i=i, n_pix=n_pix, seed=i)
    for i in range(plates):
        make_image2d(root / "plates" / f"p{i:04d}.fits", i=i, n_rows=rows, n_pix=n_pix, seed=i)


def timed(cmd: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=0, help="1-spectrum files")
    ap.add_argument("--plates", type=int, default=0, help="multi-spectrum 2-D image files")
    ap.add_argument("--rows", type=int, default=500, help="spectra per plate")
    ap.add_argument("--n-pix", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if not (args.files or args.plates):
        ap.error("give --files and/or --plates")
    work = Path(tempfile.mkdtemp(prefix="shardmerge-bench-"))
    try:
        corpus = work / "corpus"
        make_corpus(corpus, args.files, args.plates, args.rows, args.n_pix)
        n_spec = args.files + args.plates * args.rows
        raw_mb = n_spec * args.n_pix * 4 / 1e6
        variants = {
            "serial writer (astropy loop, 1024-row batches)":
                lambda out: timed([sys.executable, "-c", SERIAL_WRITER, str(corpus), str(out)]),
            "shardmerge --workers 1":
                lambda out: timed([sys.executable, "-m", "shardmerge.cli", "ingest", str(corpus), "-o", str(out),
                                   "--workers", "1", "--quiet", "--scratch", str(work / "scratch")]),
            "shardmerge --workers 2":
                lambda out: timed([sys.executable, "-m", "shardmerge.cli", "ingest", str(corpus), "-o", str(out),
                                   "--workers", "2", "--quiet", "--scratch", str(work / "scratch")]),
        }
        results: dict[str, list[float]] = {k: [] for k in variants}
        for rep in range(args.repeats):  # interleaved, so machine noise hits every variant alike
            for name, run in variants.items():
                out = work / f"out-{rep}.zarr"
                results[name].append(run(out))
                shutil.rmtree(out, ignore_errors=True)
        base = statistics.median(results[next(iter(variants))])
        print(f"\n{n_spec} spectra x {args.n_pix} px ({args.files} 1-spectrum files, {args.plates} plates), "
              f"{raw_mb:.0f} MB of float32 flux, {os.cpu_count()} cores, median of {args.repeats}")
        print(f"{'variant':<50} {'median s':>9} {'spectra/s':>10} {'vs serial':>10}")
        table = {}
        for name, times in results.items():
            med = statistics.median(times)
            table[name] = {"median_s": med, "runs": times, "ratio_to_serial": med / base}
            print(f"{name:<50} {med:9.2f} {n_spec / med:10.0f} {med / base:9.2f}x")
        if args.json:
            args.json.write_text(json.dumps({"n_spec": n_spec, "n_pix": args.n_pix, "results": table}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
