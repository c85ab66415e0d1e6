"""Merge-writer peak RSS against N_spec: the same ingest at two corpus sizes (default 10 000 and 100 000
spectra, as plates of 1000 spectra), each its own process; the run report's `driver_peak_rss_mib` is the
ingest process (scan driver, merge writer, gate), the workers are separate processes.

    python benchmarks/memory.py                     # 10k vs 100k spectra x 1000 px
    python benchmarks/memory.py --sizes 10000 50000 --n-pix 2000
    python benchmarks/memory.py --sizes 100000 --n-pix 100 --ingest-args="--max-store-files 100"
        # a file budget that makes row-wise chunks 64 Ki rows long: what the merge buffers at 10^7"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--n-pix", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=1000, help="spectra per plate file")
    ap.add_argument("--ingest-args", default="", help="more ingest options, e.g. a file budget")
    args = ap.parse_args()
    from shardmerge.testing.spectra import make_image2d

    work = Path(tempfile.mkdtemp(prefix="shardmerge-memory-"))
    rows = []
    try:
        for n in args.sizes:
            corpus = work / f"c{n}"
            for i in range(-(-n // args.rows)):
                make_image2d(corpus / f"p{i:05d}.fits", i=i, n_rows=min(args.rows, n - i * args.rows),
                             n_pix=args.n_pix, seed=i)
            rep = work / f"r{n}.json"
            subprocess.run([sys.executable, "-m", "shardmerge.cli", "ingest", str(corpus), "-o",
                            str(work / f"o{n}.zarr"), "--quiet", "--workers", "2", "--report", str(rep),
                            "--scratch", str(work / "scratch"), *args.ingest_args.split()], check=True)
            report = json.loads(rep.read_text())
            rows.append((n, report["driver_peak_rss_mib"], sum(report["seconds"].values()),
                         report["plan"].get("rowwise_chunk_rows")))
            shutil.rmtree(corpus)
            shutil.rmtree(work / f"o{n}.zarr")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'spectra':>9} {'peak RSS MiB':>13} {'seconds':>8} {'row-wise chunk rows':>20}")
    for n, rss, sec, rowwise in rows:
        print(f"{n:>9} {rss:13.1f} {sec:8.1f} {rowwise!s:>20}")
    print(f"largest / smallest peak: {rows[-1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
