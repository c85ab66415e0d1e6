"""The driver at survey scale, without FITS files (issue 12): N generated one-spectrum scan results go
through what the driver does with them: packed into ScanBatches as the scan tasks pack them
(SCAN_BATCH_MAX_FILES each; `task_pack_s`, the workers' share, not the driver's), pickled, and unpickled and
folded into the FileTable batch by batch as they arrive (`fold s`), the real `make_plan`, the file table
written to scratch, and the shard tasks' arguments pickled as the executor sends them. The discovered paths
(a PathList, sealed as discovery returns it, whose packed columns the table shares) stay alive through
all of it, as in an ingest. With --stub, one stub task per shard runs on a real
LocalCluster (2 workers) with those arguments and reads its files from the table, as a shard task does.
Each N runs in its own process, so peak RSS is that N's alone.

Reported per N: seconds to fold, plan, write the table; shard count; pickled bytes of the shard tasks'
arguments (the graph the scheduler receives; the largest task) and of the scan results (what the scan
tasks return, streamed); the table's resident size; driver RSS after the fold, after the plan, and at peak.

    python benchmarks/driver_scale.py --files 1000000 10000000 --stub --out benchmarks/results/driver_scale_2core

Not measured here: the directory walk itself (benchmarks/discover_scale.py), and the scan tasks (their
arguments are the paths, one batch at a time)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ONE = r'''
import json, os, pickle, resource, sys, tempfile, time
from shardmerge.filetable import FileTableBuilder, PathList, ScanBatch
from shardmerge.pipeline import SCAN_BATCH_MAX_FILES
from shardmerge.plan import FileScan, make_plan
from shardmerge.shardstore import write_file_table

def _stub(shard, context):  # what a shard task does first: read its files from the table on scratch
    from shardmerge.shardstore import read_segments
    return sum(s.count for s in read_segments(context, shard))

def rss_mib():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

n, stub = int(sys.argv[1]), sys.argv[2] == "stub"
keys = tuple(f"h0_key{k:02d}" for k in range(18))
grids = ("g" * 16,)
# the scan's results as its tasks return them (batches of files, in path order), folded as they arrive
def path(i):
    return f"/survey/data/{i // 10000:04d}/{i // 100:06d}/spec-{i:08d}.fits"

# what discovery hands the scan (sealed, as discover_inputs returns it), held by the driver through it all
t0 = time.perf_counter()
paths = PathList()
for i in range(n):
    paths.append(path(i))
paths.seal()
paths_s = time.perf_counter() - t0
table = FileTableBuilder(paths)
scan_bytes, fold_s, pack_s = 0, 0.0, 0.0
for lo in range(0, n, SCAN_BATCH_MAX_FILES):
    # a scan task: its FileScans, one ScanBatch (scan.scan_files), pickled back to the driver
    t0 = time.perf_counter()
    batch = ScanBatch(FileScan(path=path(i), size=28800,
                      mtime_ns=1_700_000_000_000_000_000 + i, format="wcs-1d", n_spectra=1, n_pix_max=4000,
                      n_pix_min=4000, grid_keys=grids, flux_unit="1e-17 erg/s/cm2/A", header_keys=keys,
                      provides=("uncertainty",)) for i in range(lo, min(n, lo + SCAN_BATCH_MAX_FILES)))
    sent = pickle.dumps(batch)
    pack_s += time.perf_counter() - t0
    scan_bytes += len(sent)
    t0 = time.perf_counter()  # the driver: unpickle the result and fold it (stages.scan._scan)
    table.fold(pickle.loads(sent))
    fold_s += time.perf_counter() - t0
t0 = time.perf_counter()
scans = table.finish()
fold_s += time.perf_counter() - t0
del table, batch, sent
rss_table = rss_mib()
t0 = time.perf_counter()
plan = make_plan(scans)
plan_s = time.perf_counter() - t0
with tempfile.TemporaryDirectory() as scratch:
    t0 = time.perf_counter()
    table_path = write_file_table(plan, scratch)
    table_s = time.perf_counter() - t0
    table_bytes = os.path.getsize(table_path)
    context = plan.context(table_path)
    per_task = [len(pickle.dumps(s)) + len(pickle.dumps(context)) for s in plan.shards]
    graph = sum(per_task)
    rss_plan = rss_mib()
    submit_s = None
    if stub:  # the real scheduler: one stub task per shard with the shard task's arguments
        import logging
        from distributed import Client, LocalCluster
        from shardmerge.executors.dask_backend import DaskExecutor
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, silence_logs=logging.ERROR,
                          dashboard_address=None, host="127.0.0.1") as cluster, Client(cluster) as client:
            t0 = time.perf_counter()
            counts = DaskExecutor(client).map(_stub, plan.shards, context, name="stub")
            submit_s = time.perf_counter() - t0
        assert sum(counts) == n, (sum(counts), n)  # every file reached a task through the table on disk
print(json.dumps({"files": n, "discover_pack_s": round(paths_s, 2), "paths_alive": len(paths),
                  "scan_fold_s": round(fold_s, 2), "task_pack_s": round(pack_s, 2), "plan_s": round(plan_s, 2),
                  "file_table_s": round(table_s, 2), "file_table_mb": round(table_bytes / 1e6, 1),
                  "shards": len(plan.shards), "store_files": plan.store_files,
                  "zarr_shard_rows": plan.zarr_shard_rows, "shard_task_bytes": graph, "max_task_bytes": max(per_task),
                  "scan_result_bytes": scan_bytes, "table_resident_mib": round(scans.resident_bytes() / 2**20, 1),
                  "rss_after_table_mib": rss_table, "rss_after_plan_mib": rss_plan,
                  "stub_run_s": None if submit_s is None else round(submit_s, 2), "peak_rss_mib": rss_mib()}))
'''

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--stub", action="store_true", help="also run one stub task per shard on a real LocalCluster")
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.txt")
    args = ap.parse_args()
    rows = []
    for n in args.files:
        done = subprocess.run([sys.executable, "-c", ONE, str(n), "stub" if args.stub else "-"],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout))
        print(rows[-1], flush=True)
    lines = [f"{os.cpu_count()} cores, one-spectrum files of 4000 px, generated scan results",
             f"{'files':>10} {'fold s':>7} {'plan s':>7} {'table s':>7} {'shards':>7} {'graph MB':>8} "
             f"{'table MiB':>9} {'stub run s':>10} {'peak RSS MiB':>12} {'store files':>11}"]
    for r in rows:
        lines.append(f"{r['files']:>10} {r['scan_fold_s']:>7} {r['plan_s']:>7} {r['file_table_s']:>7} "
                     f"{r['shards']:>7} {r['shard_task_bytes'] / 1e6:>8.1f} {r['table_resident_mib']:>9} "
                     f"{str(r['stub_run_s']):>10} {r['peak_rss_mib']:>12} {r['store_files']:>11}")
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
