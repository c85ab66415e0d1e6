"""The one merge writer's throughput: how many cores of shard tasks it can keep up with.

The merge runs on a thread of the ingest beside the shard tasks (`merge.StreamedMerge`). Per spectrum it
puts chunk files in place (a crc32 each, then a hard link), reads the shard's `rows.parquet`, buffers and
writes the ~40 row-wise arrays, and appends to `index.parquet`. When shards are written faster than that,
the merge falls behind and its backlog becomes the run's tail. This replays the worst case, every shard
written at once (what many cores approach), on the shards of a real ingest, and reports:

- the merge's seconds and spectra per second, with the seconds of each part;
- the shard tasks' own seconds (the sum of their manifests' `seconds`: the work the cores divide);
- their ratio: the number of busy cores at which the shard tasks produce spectra as fast as one merge
  writer takes them. Past it, more cores shorten the shard phase but not the run.

    python benchmarks/merge_writer.py --corpus DIR [--repeats 3] [--out benchmarks/results/merge_writer_2core]

The corpus is any folder an ingest takes (benchmarks/scaling.py makes the mixed one); the ingest that makes
the shards runs with --workers 2 --keep-scratch."""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import shardmerge.nopandas  # noqa: F401 - as in the ingest's process: pyarrow must not import pandas
from shardmerge import merge
from shardmerge.config import ClusterRequest, LayoutRequest
from shardmerge.pipeline import plan_inputs, scratch_dir
from shardmerge.shardstore import load_manifest, shard_path

PARTS = (("Merger", "__init__"), ("Merger", "place"), ("Merger", "add_rows"), ("_RowWiseWriter", "_write"),
         ("Merger", "finish"))


def timed_parts(spent: collections.Counter) -> None:
    """Wrap the merge's parts to add their seconds to `spent` (row-wise writes run inside add_rows and
    finish, and are counted in both). Merger.__init__ (the store's arrays created empty) is a fixed cost:
    in an ingest it runs while the first shards are being written."""
    for owner, name in PARTS:
        cls = getattr(merge, owner)
        fn = getattr(cls, name)

        def wrap(*args, _fn=fn, _key=f"{owner}.{name}", **kwargs):
            t0 = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                spent[_key] += time.perf_counter() - t0

        setattr(cls, name, wrap)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.txt")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shardmerge-merge-writer-"))
    try:
        made = work / "made.zarr"
        subprocess.run([sys.executable, "-m", "shardmerge", "ingest", str(args.corpus), "-o", str(made), "--quiet",
                        "--workers", "2", "--keep-scratch", "--scratch", str(work / "scratch")], check=True)
        plan = plan_inputs([str(args.corpus)], request=LayoutRequest(), cluster=ClusterRequest(workers=0))
        scratch = scratch_dir(str(work / "scratch"), str(made))
        shards = [shard_path(scratch, s) for s in plan.shards]
        shard_seconds = sum(load_manifest(s)["seconds"] for s in shards)
        spent: collections.Counter = collections.Counter()
        timed_parts(spent)
        runs = []
        for rep in range(args.repeats):
            spent.clear()
            out = work / f"replay-{rep}.zarr"  # the merge makes it (publish.claim_tmp)
            t0 = time.perf_counter()
            streamed = merge.StreamedMerge(plan, shards, str(out), link_chunks=True)
            for s in plan.shards:  # every shard written at once
                streamed.shard_written(s.index)
            streamed.finish({"ingest_pipeline": "bench"})
            runs.append({"seconds": time.perf_counter() - t0, **{k: round(v, 3) for k, v in spent.items()}})
            shutil.rmtree(out)
        seconds = statistics.median(r["seconds"] for r in runs)
        parts = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in runs[0] if k != "seconds"}
        result = {"cores": os.cpu_count(), "n_spec": plan.n_spec, "n_pix": plan.n_pix, "shards": len(shards),
                  "merge_s": round(seconds, 3), "spectra_per_s": round(plan.n_spec / seconds),
                  "merge_us_per_spectrum": round(seconds / plan.n_spec * 1e6, 1), "parts_s": parts,
                  "shard_task_s": round(shard_seconds, 2),
                  "shard_task_us_per_spectrum": round(shard_seconds / plan.n_spec * 1e6, 1),
                  "cores_one_writer_keeps_up_with": round(shard_seconds / seconds, 1), "runs": runs}
        text = (f"{os.cpu_count()} cores, {plan.n_spec} spectra x {plan.n_pix} px in {len(shards)} shards, median of "
                f"{args.repeats}\n"
                f"merge with every shard written at once: {seconds:.2f} s, {plan.n_spec / seconds:,.0f} spectra/s, "
                f"{result['merge_us_per_spectrum']} us a spectrum\n"
                + "".join(f"  {k:<24} {v:6.3f} s\n" for k, v in parts.items())
                + f"shard tasks' own seconds: {shard_seconds:.1f} ({result['shard_task_us_per_spectrum']} us a "
                f"spectrum)\none merge writer keeps up with ~{result['cores_one_writer_keeps_up_with']} busy cores "
                "of shard tasks\n")
        print(text, end="")
        if args.out:
            args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
            args.out.with_suffix(".txt").write_text(f"python benchmarks/merge_writer.py --corpus CORPUS "
                                                    f"--repeats {args.repeats}\n\n{text}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
