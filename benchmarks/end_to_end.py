"""End-to-end ingest time on one generated corpus, every variant as its own process (interpreter, imports
and cluster start included), interleaved, median of --repeats:

- shardmerge, local cluster of 1 and 2 workers;
- (a) the serial writer a user would write by hand: astropy loop, preallocated zarr arrays, 1024-row
  batches (writes only wavelength, flux and uncertainty, verifies nothing, no fsync);
- (b) the same, but appending (resize) per spectrum: the pattern the spec forbids, on a subset, with the
  full-corpus time extrapolated linearly (which flatters it);
- (c) the obvious Dask approach: a dask.array of delayed astropy reads, concatenated, rechunked to
  1024 rows and `to_zarr` straight into the final store, on a 2-worker LocalCluster;
- (d) the limit: compressing and writing the same three arrays from memory, in parallel on every core
  (and on 1 core), with nothing read;
- the read alone (astropy, 1 core), so that T_min = (read on 1 core + write on 1 core) / cores; both are
  timed inside their process, without interpreter start, which every other variant pays.

Each row shows wall seconds, the ratio to (a) and to (d), and the effective parallelism (CPU seconds of
the process tree / wall seconds) measured in the same run.

    python benchmarks/end_to_end.py --files 3000               # 1-spectrum files
    python benchmarks/end_to_end.py --plates 16 --rows 1000    # multi-spectrum files"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the baseline (a): self-contained, as a user would write it, so it does not share READ_FN below
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


# one file read the way a user would (flux, 1-sigma from IVAR, wavelength), shared by the variants below
READ_FN = r'''
def read(p):
    with fits.open(p) as h:
        hd = h[0].header; d = np.atleast_2d(h[0].data.astype(np.float32))
        ivar = np.atleast_2d(h["IVAR"].data.astype(np.float64))
        axis = hd["CRVAL1"] + np.arange(d.shape[1]) * hd["CDELT1"]
        w = 10**axis if hd.get("DC-FLAG") == 1 else axis
    with np.errstate(divide="ignore"):
        s = np.where(ivar > 0, 1/np.sqrt(np.where(ivar > 0, ivar, 1)), np.nan).astype(np.float32)
    return np.stack([d, s, np.broadcast_to(w, d.shape).astype(np.float32)])
'''

APPEND_WRITER = r'''
import sys, numpy as np, zarr
from pathlib import Path
from astropy.io import fits
from zarr.codecs import BloscCodec
paths = sorted(str(p) for p in Path(sys.argv[1]).rglob("*.fits"))
out, limit = sys.argv[2], int(sys.argv[3])
g = zarr.open_group(out, mode="w")
codec = [BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")]
arrays = {}
done = 0
for p in paths:
    with fits.open(p) as h:
        d = np.atleast_2d(h[0].data.astype(np.float32))
    for row in d:
        if not arrays:
            arrays = {k: g.create_array(k, shape=(0, row.size), dtype="float32", chunks=(1024, row.size),
                                        compressors=codec, fill_value=np.nan) for k in ("flux", "unc", "wave")}
        for a in arrays.values():  # grow by one row, write it: what the spec forbids
            a.resize((a.shape[0] + 1, row.size)); a[-1] = row
        done += 1
        if done >= limit: sys.exit(0)
'''

DASK_WRITER = r'''
import sys, numpy as np, dask, dask.array as da
from pathlib import Path
from astropy.io import fits
from distributed import Client, LocalCluster
from zarr.codecs import BloscCodec
import zarr
READ_FN
if __name__ == "__main__":
    paths = sorted(str(p) for p in Path(sys.argv[1]).rglob("*.fits"))
    shapes = []
    for p in paths:
        h = fits.getheader(p)
        shapes.append((h["NAXIS2"] if h["NAXIS"] == 2 else 1, h["NAXIS1"]))
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {}}), \
            LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as c, \
            Client(c):
        parts = [da.from_delayed(dask.delayed(read)(p), shape=(3, *s), dtype="float32")
                 for p, s in zip(paths, shapes)]
        cube = da.concatenate(parts, axis=1).rechunk((1, 1024, shapes[0][1]))
        codec = [BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")]
        g = zarr.open_group(sys.argv[2], mode="w")
        targets = [g.create_array(k, shape=cube.shape[1:], chunks=(1024, cube.shape[2]), dtype="float32",
                                  compressors=codec, fill_value=np.nan) for k in ("flux", "unc", "wave")]
        da.store([cube[i] for i in range(3)], targets, lock=False)
'''

LIMIT_WRITER = r'''
import sys, numpy as np, zarr, time
from concurrent.futures import ProcessPoolExecutor
from zarr.codecs import BloscCodec
src, out, procs = sys.argv[1], sys.argv[2], int(sys.argv[3])
cube = np.load(src, mmap_mode="r")  # (3, n_spec, n_pix), read from the page cache: nothing is parsed
codec = [BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")]
def write(rows):
    g = zarr.open_group(out, mode="r+")
    for k, name in enumerate(("flux", "unc", "wave")):
        a = g[name]
        for r in rows:
            a[r:r + 1024] = cube[k, r:r + 1024]
if __name__ == "__main__":
    g = zarr.open_group(out, mode="w")
    for name in ("flux", "unc", "wave"):
        g.create_array(name, shape=cube.shape[1:], chunks=(1024, cube.shape[2]), dtype="float32",
                       compressors=codec, fill_value=np.nan)
    starts = list(range(0, cube.shape[1], 1024))
    t0 = time.perf_counter()
    if procs == 1:
        write(starts)
    else:
        with ProcessPoolExecutor(procs) as ex:
            list(ex.map(write, [starts[i::procs] for i in range(procs)]))
    print(time.perf_counter() - t0)
'''

READ_ONLY = r'''
import sys, time, numpy as np
from pathlib import Path
from astropy.io import fits
paths = sorted(str(p) for p in Path(sys.argv[1]).rglob("*.fits"))
parts = []
t0 = time.perf_counter()
READ_FN
for p in paths:
    parts.append(read(p))
print(time.perf_counter() - t0)  # the reading alone, without interpreter start
if len(sys.argv) > 2:  # save the cube for the limit variant
    np.save(sys.argv[2], np.concatenate(parts, axis=1))
'''


DASK_WRITER = DASK_WRITER.replace("READ_FN", READ_FN)
READ_ONLY = READ_ONLY.replace("READ_FN", READ_FN)


def make_corpus(root: Path, files: int, plates: int, rows: int, n_pix: int) -> None:
    from shardmerge.testing.spectra import make_image2d, make_wcs1d

    for i in range(files):
        make_wcs1d(root / f"f{i // 1000:03d}" / f"s{i:06d}.fits", i=i, n_pix=n_pix, seed=i, uncertainty="ivar")
    for i in range(plates):
        make_image2d(root / "plates" / f"p{i:04d}.fits", i=i, n_rows=rows, n_pix=n_pix, seed=i)


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, effective parallelism (CPU seconds of the whole process tree / wall) and stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu / wall, done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=0, help="1-spectrum files")
    ap.add_argument("--plates", type=int, default=0, help="multi-spectrum 2-D image files")
    ap.add_argument("--rows", type=int, default=500, help="spectra per plate")
    ap.add_argument("--n-pix", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--append-subset", type=int, default=300, help="spectra the append variant writes")
    ap.add_argument("--skip", nargs="*", default=[], help="variant keys to leave out: append dask")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if not (args.files or args.plates):
        ap.error("give --files and/or --plates")
    work = Path(tempfile.mkdtemp(prefix="shardmerge-bench-"))
    cores = os.cpu_count() or 1
    py = sys.executable
    try:
        corpus = work / "corpus"
        make_corpus(corpus, args.files, args.plates, args.rows, args.n_pix)
        n_spec = args.files + args.plates * args.rows
        cube = work / "cube.npy"
        timed([py, "-c", READ_ONLY, str(corpus), str(cube)])  # the in-memory arrays for the limit
        sm = [py, "-m", "shardmerge.cli", "ingest", str(corpus), "--quiet", "--scratch", str(work / "scratch")]
        variants = {
            "serial": ("(a) serial writer (astropy loop, 1024-row batches)", lambda o: [py, "-c", SERIAL_WRITER,
                                                                                         str(corpus), str(o)]),
            "sm1": ("shardmerge --workers 1", lambda o: [*sm, "-o", str(o), "--workers", "1"]),
            "sm2": ("shardmerge --workers 2", lambda o: [*sm, "-o", str(o), "--workers", "2"]),
            "append": (f"(b) append per spectrum ({args.append_subset} spectra, extrapolated)",
                       lambda o: [py, "-c", APPEND_WRITER, str(corpus), str(o), str(args.append_subset)]),
            "dask": ("(c) dask.array of delayed reads -> to_zarr, 2 workers",
                     lambda o: [py, "-c", DASK_WRITER, str(corpus), str(o)]),
            "read1": ("read only (astropy, 1 core)", lambda o: [py, "-c", READ_ONLY, str(corpus)]),
            "limit1": ("compress + write from memory, 1 core", lambda o: [py, "-c", LIMIT_WRITER, str(cube), str(o),
                                                                          "1"]),
            "limit": (f"(d) compress + write from memory, {cores} cores",
                      lambda o: [py, "-c", LIMIT_WRITER, str(cube), str(o), str(cores)]),
        }
        variants = {k: v for k, v in variants.items() if k not in args.skip}
        walls: dict[str, list[float]] = {k: [] for k in variants}
        pars: dict[str, list[float]] = {k: [] for k in variants}
        for rep in range(args.repeats):  # interleaved, so machine noise hits every variant alike
            for key, (_, cmd) in variants.items():
                out = work / f"out-{key}-{rep}.zarr"
                wall, par, stdout = timed(cmd(out))
                if key.startswith("limit") or key == "read1":
                    wall = float(stdout.strip())  # the work alone, without interpreter start and pool spawn
                if key == "append":
                    wall *= n_spec / min(args.append_subset, n_spec)
                walls[key].append(wall)
                pars[key].append(par)
                shutil.rmtree(out, ignore_errors=True)
        med = {k: statistics.median(v) for k, v in walls.items()}
        t_min = (med["read1"] + med["limit1"]) / cores if {"read1", "limit1"} <= set(med) else float("nan")
        print(f"\n{n_spec} spectra x {args.n_pix} px ({args.files} 1-spectrum files, {args.plates} plates of "
              f"{args.rows}), {n_spec * args.n_pix * 4 / 1e6:.0f} MB of float32 flux, {cores} cores, "
              f"median of {args.repeats}")
        print(f"T_min = (read on 1 core {med.get('read1', float('nan')):.2f} s + compress/write on 1 core "
              f"{med.get('limit1', float('nan')):.2f} s) / {cores} = {t_min:.2f} s")
        print(f"{'variant':<58} {'median s':>9} {'vs (a)':>7} {'vs (d)':>7} {'T_min/T':>8} {'cores used':>10}")
        table = {}
        for key, (label, _) in variants.items():
            m = med[key]
            row = {"median_s": m, "runs": walls[key], "vs_serial": m / med["serial"],
                   "vs_limit": m / med["limit"] if "limit" in med else None, "efficiency": t_min / m,
                   "parallelism": statistics.median(pars[key])}
            table[key] = {"label": label, **row}
            print(f"{label:<58} {m:9.2f} {row['vs_serial']:6.2f}x {row['vs_limit'] or float('nan'):6.2f}x "
                  f"{row['efficiency']:8.2f} {row['parallelism']:10.2f}")
        if args.json:
            args.json.write_text(json.dumps({"n_spec": n_spec, "n_pix": args.n_pix, "t_min": t_min, "results": table},
                                            indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
