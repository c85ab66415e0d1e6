"""Scale-out on one machine: shardmerge against what a user writes by hand, side by side in one run.

On a mixed corpus (1-D images with ERR or IVAR, linear and log-linear, 2-D multi-spectrum images, SDSS
`spec-*` tables, gzip'd copies), every variant runs as its own process, interleaved, --repeats times:

- serial: the hand-written serial writer: two passes (rows, then values), arrays preallocated with their
  final shape, 1024-row batches, Blosc zstd-5 bitshuffle. Verifies nothing, fsyncs nothing.
- pool N: the afternoon's process-pool writer: the serial writer's read function, a ProcessPoolExecutor
  that counts rows in parallel, then each process reads the files of one 1024-row block and writes that
  block into one preallocated store (chunk-aligned region writes). No shards, resume, gate or durability.
- shardmerge --workers N, for N = 1, 2, 4, … up to the cores (its phases from --report).

Per variant: median wall seconds, CPU seconds of the whole process tree, speedup vs serial and vs
shardmerge --workers 1, and (with --strace, one extra run each) the bytes read from the input files by the
whole process tree, over their size (a mapped input counts in full).

    python benchmarks/scaling.py --spectra 40000 --repeats 3 --strace --out benchmarks/results/scaling_2core
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# what a user writes: read any of the corpus's layouts into (flux, 1-sigma, wavelength), n rows each
READ_FN = r'''
import numpy as np
from astropy.io import fits

def count(p):  # headers only
    with fits.open(p) as h:
        if "COADD" in h:
            return 1, h["COADD"].header["NAXIS2"]
        hd = h[0].header
        return (hd["NAXIS2"] if hd["NAXIS"] == 2 else 1), hd["NAXIS1"]

def read(p):
    with fits.open(p) as h:
        if "COADD" in h:
            t = h["COADD"].data
            f = np.asarray(t["flux"], np.float32)[None]
            iv = np.asarray(t["ivar"], np.float64)[None]
            w = (10.0 ** np.asarray(t["loglam"], np.float64))[None]
        else:
            hd = h[0].header
            f = np.atleast_2d(h[0].data.astype(np.float32))
            axis = hd["CRVAL1"] + np.arange(f.shape[1]) * hd["CDELT1"]
            w = np.broadcast_to(10.0 ** axis if hd.get("DC-FLAG") == 1 else axis, f.shape)
            names = [x.name for x in h]
            if "IVAR" in names:
                iv = np.atleast_2d(h["IVAR"].data.astype(np.float64))
            else:
                e = np.atleast_2d(h["ERR"].data.astype(np.float64))
                iv = np.where(e > 0, 1.0 / np.where(e > 0, e, 1.0) ** 2, 0.0)
    with np.errstate(divide="ignore"):
        s = np.where(iv > 0, 1.0 / np.sqrt(np.where(iv > 0, iv, 1.0)), np.nan).astype(np.float32)
    return f, s, w

def create(out, n_spec, n_pix):
    import zarr
    from zarr.codecs import BloscCodec
    g = zarr.open_group(out, mode="w")
    codec = [BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")]
    for name, dtype in (("flux", "float32"), ("unc", "float32"), ("wave", "float64")):
        g.create_array(name, shape=(n_spec, n_pix), dtype=dtype, chunks=(1024, n_pix), compressors=codec,
                       fill_value=np.nan)
    return g
'''

SERIAL = READ_FN + r'''
import sys
from pathlib import Path
paths = sorted(str(p) for p in Path(sys.argv[1]).rglob("*") if p.name.endswith((".fits", ".fits.gz")))
shapes = [count(p) for p in paths]  # pass 1: N_spec and N_pix before anything is written
n_spec, n_pix = sum(r for r, _ in shapes), max(n for _, n in shapes)
g = create(sys.argv[2], n_spec, n_pix)
arrays = [g["flux"], g["unc"], g["wave"]]
batch, start = [[], [], []], 0
def flush():
    global batch, start
    if batch[0]:
        n = sum(len(b) for b in batch[0])
        for a, parts in zip(arrays, batch):
            a[start:start + n] = np.concatenate(parts)
        start += n
        batch = [[], [], []]
for p in paths:  # pass 2: values, written in 1024-row batches padded to N_pix
    for k, v in enumerate(read(p)):
        pad = np.full((v.shape[0], n_pix), np.nan, dtype=arrays[k].dtype)
        pad[:, :v.shape[1]] = v
        batch[k].append(pad)
    if sum(len(b) for b in batch[0]) >= 1024:
        flush()
flush()
'''

POOL = READ_FN + r'''
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import zarr

def write_block(args):
    out, n_pix, r0, r1, pieces = args  # pieces: (path, first row of the file, global row of that row)
    f = np.full((r1 - r0, n_pix), np.nan, np.float32); s = f.copy(); w = np.full(f.shape, np.nan)
    for p, rows_in_file, at in pieces:
        ff, ss, ww = read(p)
        lo, hi = max(r0, at), min(r1, at + len(ff))
        for dst, src in ((f, ff), (s, ss), (w, ww)):
            dst[lo - r0:hi - r0, :src.shape[1]] = src[lo - at:hi - at]
    g = zarr.open_group(out, mode="r+")
    g["flux"][r0:r1] = f; g["unc"][r0:r1] = s; g["wave"][r0:r1] = w

if __name__ == "__main__":
    src, out, procs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    paths = sorted(str(p) for p in Path(src).rglob("*") if p.name.endswith((".fits", ".fits.gz")))
    with ProcessPoolExecutor(procs) as ex:
        shapes = list(ex.map(count, paths, chunksize=64))
        n_spec, n_pix = sum(r for r, _ in shapes), max(n for _, n in shapes)
        create(out, n_spec, n_pix)
        starts, at = [], 0
        for p, (r, _) in zip(paths, shapes):
            starts.append(at); at += r
        jobs = []
        for r0 in range(0, n_spec, 1024):
            r1 = min(n_spec, r0 + 1024)
            pieces = [(p, r, a) for p, (r, _), a in zip(paths, shapes, starts) if a < r1 and a + r > r0]
            jobs.append((out, n_pix, r0, r1, pieces))
        list(ex.map(write_block, jobs))
'''


def _make_plate(root: Path, i: int, n_pix: int, rows: int = 500) -> None:
    from shardmerge.testing.spectra import make_image2d

    make_image2d(root / "plates" / f"p{i:04d}.fits", i=i, n_rows=rows, n_pix=n_pix, seed=i)


def _make_one_d(root: Path, i: int, n_pix: int) -> None:
    from shardmerge.testing.spectra import gzip_file, make_wcs1d

    log = i % 2 == 1
    p = make_wcs1d(root / "oned" / f"{i // 1000:03d}" / f"s{i:06d}.fits", i=i, n_pix=n_pix, seed=i,
                   log=log, crval=3.6 if log else 4000.0, cdelt=1e-4 if log else 1.0,
                   uncertainty="ivar" if log else "err")
    if i % 8 == 0:
        gzip_file(p)


def _make_sdss(root: Path, i: int, n_pix: int, vary: bool = False) -> None:
    from shardmerge.testing.spectra import make_sdss_coadd

    # SDSS spectra differ in length by a few hundred pixels: with vary, from 80% to 100% of n_pix
    n = n_pix - (i * 7919 % 5) * (n_pix // 20) if vary else n_pix
    folder = root / "sdss" / f"{i // 1000:03d}" if vary else root / "sdss"  # mixed: as it always was
    make_sdss_coadd(folder / f"spec-{i:06d}.fits", i=i, n_pix=n, seed=i)


def _jobs_mixed(spectra: int) -> list[tuple]:
    """80% of the spectra in 2-D images of 500 rows, the rest in 1-D images and SDSS tables (3:1)."""
    plates = max(1, int(spectra * 0.8) // 500)
    singles = max(2, spectra - plates * 500)
    return [(_make_plate, plates, 500, {}), (_make_one_d, singles - singles // 4, 1, {}),
            (_make_sdss, singles // 4, 1, {})]


def _jobs_plates(spectra: int) -> list[tuple]:
    """Plates dominating, as in issue 28's independent corpus: 93% of the spectra in 2-D images of 240 rows
    (~3 MB of flux at 3200 px), the rest in 1-D images and SDSS tables of varying length, few files."""
    plates = max(1, int(spectra * 0.93) // 240)
    singles = max(2, spectra - plates * 240)
    return [(_make_plate, plates, 240, {"rows": 240}), (_make_one_d, singles - singles // 3, 1, {}),
            (_make_sdss, singles // 3, 1, {"vary": True})]


def _jobs_oned(spectra: int) -> list[tuple]:
    """Many small files: one spectrum each, 1-D images, half ERR linear, half IVAR log-linear."""
    return [(_make_one_d, spectra, 1, {})]


def _jobs_tables(spectra: int) -> list[tuple]:
    """SDSS spec tables of varying length, one spectrum each."""
    return [(_make_sdss, spectra, 1, {"vary": True})]


CORPUS_NOTE = "corpus.json"
SHAPES = {"mixed": _jobs_mixed, "plates": _jobs_plates, "oned": _jobs_oned, "tables": _jobs_tables}


def make_corpus(root: Path, spectra: int, n_pix: int, shape: str = "mixed") -> dict:
    """About `spectra` spectra in one of SHAPES (1-D images: one in eight gzip'd). Made by one process per
    core: each file is seeded by its index, so the corpus is the same however many make it."""
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    made = {"shape": shape, "spectra": 0, "files": 0}
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        for make, n, rows_each, kwargs in SHAPES[shape](spectra):
            # list(): a failed file raises here, not silently in a discarded iterator
            list(pool.map(partial(make, **kwargs), [root] * n, range(n), [n_pix] * n, chunksize=64))
            made[make.__name__.removeprefix("_make_")] = n
            made["spectra"] += n * rows_each
            made["files"] += n
    (root / CORPUS_NOTE).write_text(json.dumps(made) + "\n")  # what a later --corpus run records
    return made


def become_subreaper() -> None:
    """Descendants orphaned by their parent (a forkserver left by the driver at exit, with the workers it
    reaped) are re-parented to this process instead of init, so their CPU time is counted here too."""
    import ctypes

    pr_set_child_subreaper = 36
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER) failed: CPU of orphaned descendants would be lost")


def _reap_orphans() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds of the whole process tree: every descendant is reaped, by its parent
    or (orphans) by this process, a subreaper. Wall stops when the command exits."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    _reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


_SYSCALL = re.compile(r"^(read|pread64|readv|preadv)\((\d+)<([^>]*)>.*\)\s+=\s+(\d+)")
_MMAP = re.compile(r"^mmap\(.*?,\s*\d+,\s*[A-Z_|]+,\s*[A-Z_|]+,\s*\d+<([^>]*)>")


def bytes_read(cmd: list[str], corpus: Path, work: Path) -> int:
    """Bytes the process tree read from files under `corpus` (strace -ff -y); a mapped input counts whole.
    One trace file per process (-ff): in a shared one, a syscall that another process interrupts is
    split into "unfinished" and "resumed" lines, and its byte count would be lost."""
    folder = work / "strace"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    subprocess.run(["strace", "-ff", "-qq", "-y", "-e", "trace=read,pread64,readv,preadv,mmap", "-o",
                    str(folder / "trace"), *cmd], check=True, capture_output=True)
    root, total, mapped = str(corpus.resolve()), 0, set()
    for log in folder.iterdir():
        with open(log, errors="replace") as f:
            for line in f:
                m = _SYSCALL.match(line)
                if m and m.group(3).startswith(root):
                    total += int(m.group(4))
                    continue
                m = _MMAP.match(line)
                if m and m.group(1).startswith(root):
                    mapped.add(m.group(1))
    shutil.rmtree(folder)
    return total + sum(os.path.getsize(p) for p in mapped)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spectra", type=int, default=40_000)
    ap.add_argument("--pix", type=int, default=2000, help="pixels per spectrum")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="mixed", help="the corpus made (see SHAPES)")
    ap.add_argument("--corpus", type=Path, default=None, help="reuse (or make here) the corpus")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="*", default=None, help="default: 1, 2, 4, … up to the cores")
    ap.add_argument("--strace", action="store_true", help="one extra run per variant counting bytes read")
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.txt")
    args = ap.parse_args()
    become_subreaper()
    cores = os.cpu_count() or 1
    counts = args.workers or sorted({1, *[2**k for k in range(1, 8) if 2**k <= cores], cores})
    work = Path(tempfile.mkdtemp(prefix="shardmerge-scaling-"))
    corpus = args.corpus or work / "corpus"
    made = None
    if not corpus.exists():
        t0 = time.perf_counter()
        made = make_corpus(corpus, args.spectra, args.pix, args.shape)
        print(f"made {made} in {time.perf_counter() - t0:.0f} s", flush=True)
    if made is None and (corpus / CORPUS_NOTE).exists():
        made = json.loads((corpus / CORPUS_NOTE).read_text())
    inputs = [p for p in corpus.rglob("*") if p.is_file() and p.name != CORPUS_NOTE]
    input_bytes = sum(p.stat().st_size for p in inputs)
    scripts = {"serial": work / "serial.py", "pool": work / "pool.py"}
    scripts["serial"].write_text(SERIAL)
    scripts["pool"].write_text(POOL)
    py = sys.executable
    env = {**os.environ, "SHARDMERGE_SCRATCH": str(work / "scratch")}

    def command(variant: str, out: Path) -> list[str]:
        kind, _, n = variant.partition(" ")
        if kind == "serial":
            return [py, str(scripts["serial"]), str(corpus), str(out)]
        if kind == "pool":
            return [py, str(scripts["pool"]), str(corpus), str(out), n]
        return [py, "-m", "shardmerge", "ingest", str(corpus), "-o", str(out), "--workers", n, "--quiet",
                "--report", str(out) + ".json"]

    variants = ["serial", *(f"pool {n}" for n in counts if n > 1), *(f"shardmerge {n}" for n in counts)]
    store: dict = {}
    runs: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    phases: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(args.repeats):
        for v in variants:  # interleaved: a noisy minute hurts every variant alike
            out = work / f"out-{r}.zarr"
            runs[v].append(timed(command(v, out), env))
            if v.startswith("shardmerge"):
                report = json.loads(Path(str(out) + ".json").read_text())
                phases[v].append(report["seconds"])
                # what the critical-path model (critical_path.py) needs of the store, the same every repeat
                store = {**{k: report["counts"][k] for k in ("spectra", "shards_total", "store_files")},
                         "store_bytes": report["bytes"]["store"], "n_pix": report["plan"]["n_pix"]}
                Path(str(out) + ".json").unlink()
            shutil.rmtree(out, ignore_errors=True)
            print(f"repeat {r + 1}: {v}: {runs[v][-1][0]:.1f} s wall, {runs[v][-1][1]:.1f} s CPU", flush=True)
    read_ratio = {}
    if args.strace:
        for v in variants:
            out = work / "traced.zarr"
            read_ratio[v] = round(bytes_read(command(v, out), corpus, work) / input_bytes, 3)
            shutil.rmtree(out, ignore_errors=True)
            Path(str(out) + ".json").unlink(missing_ok=True)
    serial = statistics.median(w for w, _ in runs["serial"])
    one = statistics.median(w for w, _ in runs["shardmerge 1"]) if "shardmerge 1" in runs else None
    rows = []
    for v in variants:
        wall = statistics.median(w for w, _ in runs[v])
        cpu = statistics.median(c for _, c in runs[v])
        row = {"variant": v, "wall_s": round(wall, 2), "cpu_s": round(cpu, 1), "vs_serial": round(wall / serial, 3),
               "speedup_vs_serial": round(serial / wall, 2), "cpu_vs_serial": None,
               "speedup_vs_1_worker": round(one / wall, 2) if one and v.startswith("shardmerge") else None,
               "input_bytes_read_ratio": read_ratio.get(v)}
        if phases[v]:
            row["phases_s"] = {k: round(statistics.median(p.get(k, 0.0) for p in phases[v]), 2)
                               for k in phases[v][0]}
        rows.append(row)
    serial_cpu = next(r["cpu_s"] for r in rows if r["variant"] == "serial")
    for r in rows:
        r["cpu_vs_serial"] = round(r["cpu_s"] / serial_cpu, 2)
    doc = {"cores": cores, "python": sys.version.split()[0], "repeats": args.repeats, "corpus": made or str(corpus),
           "input_files": len(inputs), "input_bytes": input_bytes, "pixels": args.pix, "store": store,
           "rows": rows}
    lines = [f"{cores} cores, {len(inputs)} files ({input_bytes / 1e6:.0f} MB), median of {args.repeats}, "
             f"interleaved",
             f"{'variant':<14} {'wall s':>7} {'CPU s':>7} {'vs serial':>9} {'speedup':>8} {'CPU/serial':>10} "
             f"{'vs 1 wkr':>8} {'read/size':>9}  phases (s)"]
    for r in rows:
        ph = " ".join(f"{k} {v}" for k, v in r.get("phases_s", {}).items())
        lines.append(f"{r['variant']:<14} {r['wall_s']:>7.1f} {r['cpu_s']:>7.1f} {r['vs_serial']:>9.2f} "
                     f"{r['speedup_vs_serial']:>8.2f} {r['cpu_vs_serial']:>10.2f} "
                     f"{r['speedup_vs_1_worker'] or '':>8} {r['input_bytes_read_ratio'] or '':>9}  {ph}")
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Path(str(args.out) + ".json").write_text(json.dumps(doc, indent=1) + "\n")
        Path(str(args.out) + ".txt").write_text("\n".join(lines) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
