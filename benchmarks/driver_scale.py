"""The driver at survey scale, without FITS files (issue 12's baseline): N generated one-spectrum scan
results (as the scan returns them, key tuples shared as `SharedTuples` shares them) go through the real
`make_plan` and the shard-task arguments are built and pickled as the executor would send them. Each N
runs in its own process, so peak RSS is that N's alone.

Reported per N: the scan results' resident size, plan seconds, shard count, pickled bytes of the shard
tasks' arguments (the graph the scheduler receives) and of the scan results (what the scan tasks return),
and peak RSS of the whole driver process.

    python benchmarks/driver_scale.py --files 100000 1000000 --out benchmarks/results/driver_scale

The real scheduler with stub tasks (graph submission time) is not run here yet."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ONE = r'''
import json, os, pickle, resource, sys, time
from shardmerge.plan import FileScan, make_plan
n = int(sys.argv[1])
keys = tuple(f"h0_key{k:02d}" for k in range(18))
grids = ("g" * 16,)
t0 = time.perf_counter()
scans = [FileScan(path=f"/survey/data/{i // 10000:04d}/{i // 100:06d}/spec-{i:08d}.fits", size=28800,
                  mtime_ns=1_700_000_000_000_000_000 + i, format="wcs-1d", n_spectra=1, n_pix_max=4000,
                  n_pix_min=4000, grid_keys=grids, flux_unit="1e-17 erg/s/cm2/A", header_keys=keys,
                  provides=("uncertainty",)) for i in range(n)]
made = time.perf_counter() - t0
rss_scans = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
scan_bytes = sum(len(pickle.dumps(scans[i : i + 64])) for i in range(0, n, 64))  # scan task results
t0 = time.perf_counter()
plan = make_plan(scans)
plan_s = time.perf_counter() - t0
context = pickle.dumps(plan.context())
graph = sum(len(pickle.dumps(s)) for s in plan.shards) + len(plan.shards) * len(context)
print(json.dumps({"files": n, "make_scans_s": round(made, 2), "plan_s": round(plan_s, 2),
                  "shards": len(plan.shards), "shard_task_bytes": graph, "scan_result_bytes": scan_bytes,
                  "rss_after_scans_mib": round(rss_scans / 2**20, 1),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.txt")
    args = ap.parse_args()
    rows = []
    for n in args.files:
        done = subprocess.run([sys.executable, "-c", ONE, str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout))
        print(rows[-1], flush=True)
    lines = [f"{os.cpu_count()} cores, one-spectrum files of 4000 px, generated scan results",
             f"{'files':>10} {'plan s':>8} {'shards':>7} {'task MB':>8} {'scan res MB':>11} {'peak RSS MiB':>12}"]
    for r in rows:
        lines.append(f"{r['files']:>10} {r['plan_s']:>8} {r['shards']:>7} {r['shard_task_bytes'] / 1e6:>8.1f} "
                     f"{r['scan_result_bytes'] / 1e6:>11.1f} {r['peak_rss_mib']:>12}")
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        slope = (b["peak_rss_mib"] - a["peak_rss_mib"]) * 2**20 / (b["files"] - a["files"])
        lines.append(f"peak RSS slope: {slope:.0f} bytes per file")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{args.out}.json").write_text(json.dumps({"python": sys.version.split()[0], "rows": rows}, indent=1))
        Path(f"{args.out}.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
