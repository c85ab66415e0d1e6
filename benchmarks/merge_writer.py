"""The one merge writer's throughput: how many cores of shard tasks it can keep up with.

The merge runs on a thread of the ingest beside the shard tasks (`merge.StreamedMerge`). Per spectrum it
puts chunk files in place (a crc32 each, then a hard link), reads the shard's `rows.parquet`, buffers and
writes the ~40 row-wise arrays, and appends to `index.parquet`. When shards are written faster than that,
the merge falls behind and its backlog becomes the run's tail. This replays the worst case, every shard
written at once (what many cores approach), on the shards of a real ingest, and reports:

- the merge's seconds and spectra per second, with the seconds of each part;
- the shard tasks' own seconds (the sum of their manifests' `seconds`: the work the cores divide);
- their ratio: the number of busy cores at which the shard tasks produce spectra as fast as one merge
  writer takes them. Past it, more cores shorten the shard phase but not the run;
- the steady seconds: from the first shard's placement to the last shard's rows, without the set-up
  (creating the store's arrays, which in an ingest runs while the first shards are written) and `finish`
  (the tail, a fixed cost): what sets the rate one writer keeps up with on a long run;
- the merge's serial CPU: the merge thread's own CPU seconds and the caller's in `finish`. The crc32s, the
  mkdirs, the row-wise compression and index.parquet run on helper threads, which a merge node's cores
  share out; what bounds one writer where the helpers have cores of their own is this serial part;
- the helper threads' CPU seconds by job, and the process's CPU over this machine's cores: the floor of
  the replay's wall time here, however well the helpers overlap.

Two ways, interleaved: every shard read and summed whole (shards written on other nodes, or reused from an
earlier run: the cluster case, the headline) and every shard written on this host in this run, whose
files' sums are taken by their stat keys (merge.stat_proof: a local ingest). For the latter each replay
first records the files' keys as a shard task that has just summed them does (the replays' own hard links
set the files' ctimes). The replays' stores are removed at the end, not between repeats: ext4 skips the
inodes of recently deleted files when it allocates (`recently_deleted`), and a store removed a second
before made the next replay's mkdirs and creates several times slower.

    python benchmarks/merge_writer.py --corpus DIR [--repeats 3] [--out benchmarks/results/merge_writer_2core]

The corpus is any folder an ingest takes (benchmarks/scaling.py makes the mixed one); the ingest that makes
the shards runs with --workers 2 --keep-scratch."""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import shardmerge.nopandas  # noqa: F401 - as in the ingest's process: pyarrow must not import pandas
from shardmerge import merge
from shardmerge.config import ClusterRequest, LayoutRequest
from shardmerge.durable import stat_key
from shardmerge.pipeline import plan_inputs, scratch_dir
from shardmerge.shardstore import load_manifest, shard_path, write_manifest

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


def timed_helper_jobs(cpu: collections.Counter) -> None:
    """Add each helper-thread job's own CPU seconds to `cpu`, by what the job is: the jobs of the merge's
    thread pools (compressing row-wise chunks, index.parquet, mkdirs, links, metadata documents) and the
    read-ahead's (a shard's files read and summed; a rowwise.bin read). What they add up to, with the merge
    thread's, is the CPU one replay needs: over the cores, the floor no scheduling can beat."""
    submit = ThreadPoolExecutor.submit

    def timed(fn, key):
        def run(*args, **kwargs):
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                cpu[key] += time.thread_time() - t0
        return run

    def timed_submit(self, fn, /, *args, **kwargs):
        inner = fn.func if isinstance(fn, functools.partial) else fn
        return submit(self, timed(fn, getattr(inner, "__qualname__", repr(inner))), *args, **kwargs)

    ThreadPoolExecutor.submit = timed_submit
    merge._sums_ahead = timed(merge._sums_ahead, "read-ahead: shard files read and summed")
    merge._read_rows = timed(merge._read_rows, "read-ahead: rowwise.bin read and summed")


def as_just_written(shards: list[str]) -> None:
    """Record each shard file's stat key as its shard task does when it sums the file (shard.write_shard)."""
    for path in shards:
        manifest = load_manifest(path)
        manifest["file_stats"] = {rel: stat_key(os.path.join(path, rel)) for rel in manifest["files"]}
        write_manifest(path, manifest)


def replay(plan, shards: list[str], out: Path, written_here: bool, spent: collections.Counter,
           helper_cpu: collections.Counter) -> dict:
    """One merge of every shard at once: wall seconds, the process's CPU seconds, the serial CPU seconds, and
    the steady seconds: from the first shard's placement to the last shard's rows, without the set-up
    (which in an ingest runs while the first shards are written) and `finish` (the tail)."""
    serial, steady = [], []
    run, place, add_rows = merge.StreamedMerge._run, merge.Merger.place, merge.Merger.add_rows

    def timed_run(self, _run=run):
        t0 = time.thread_time()
        try:
            _run(self)
        finally:
            serial.append(time.thread_time() - t0)

    def first_place(self, *args, _place=place, **kwargs):
        if not steady:
            steady.append(time.perf_counter())
        return _place(self, *args, **kwargs)

    def last_rows(self, *args, _add_rows=add_rows, **kwargs):
        try:
            return _add_rows(self, *args, **kwargs)
        finally:
            steady[1:] = [time.perf_counter()]

    merge.StreamedMerge._run, merge.Merger.place, merge.Merger.add_rows = timed_run, first_place, last_rows
    try:
        spent.clear()
        helper_cpu.clear()
        cpu0, t0 = time.process_time(), time.perf_counter()
        streamed = merge.StreamedMerge(plan, shards, str(out), link_chunks=True)
        for s in plan.shards:  # every shard written at once
            streamed.shard_written(s.index, written_here=written_here)
        f0 = time.thread_time()
        streamed.finish({"ingest_pipeline": "bench"})
        serial.append(time.thread_time() - f0)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        merge.StreamedMerge._run, merge.Merger.place, merge.Merger.add_rows = run, place, add_rows
    return {"seconds": seconds, "steady_s": round(steady[1] - steady[0], 4), "cpu_s": round(cpu, 4),
            "serial_cpu_s": round(sum(serial), 4), **{k: round(v, 3) for k, v in spent.items()},
            "helper_cpu_s": {k: round(v, 4) for k, v in helper_cpu.most_common()}}


def summary(runs: list[dict], n_spec: int, shard_seconds: float) -> dict:
    seconds = statistics.median(r["seconds"] for r in runs)
    serial = statistics.median(r["serial_cpu_s"] for r in runs)
    steady = statistics.median(r["steady_s"] for r in runs)
    parts = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in runs[0]
             if k not in ("seconds", "steady_s", "cpu_s", "serial_cpu_s", "helper_cpu_s")}
    helpers = {k: round(statistics.median(r["helper_cpu_s"].get(k, 0.0) for r in runs), 4)
               for k in runs[0]["helper_cpu_s"]}
    cpu = statistics.median(r["cpu_s"] for r in runs)
    return {"merge_s": round(seconds, 3), "spectra_per_s": round(n_spec / seconds),
            "merge_us_per_spectrum": round(seconds / n_spec * 1e6, 1),
            "steady_us_per_spectrum": round(steady / n_spec * 1e6, 2),
            "cpu_s": round(cpu, 3),
            # the process's CPU over this machine's cores: what no scheduling of the helpers can beat here
            "cpu_floor_us_per_spectrum": round(cpu / (os.cpu_count() or 1) / n_spec * 1e6, 2),
            "helper_cpu_s": helpers,
            "serial_cpu_us_per_spectrum": round(serial / n_spec * 1e6, 2),
            "cores_one_writer_keeps_up_with": round(shard_seconds / seconds, 1), "parts_s": parts, "runs": runs}


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
        os.sync()  # the ingest's writeback is not the merge's to wait behind
        spent: collections.Counter = collections.Counter()
        timed_parts(spent)
        helper_cpu: collections.Counter = collections.Counter()
        timed_helper_jobs(helper_cpu)
        runs: dict[str, list[dict]] = {"read": [], "local": []}
        for rep in range(args.repeats):
            for way in runs:  # interleaved: a noisy minute hurts both alike
                if way == "local":
                    as_just_written(shards)
                out = work / f"replay-{way}-{rep}.zarr"  # the merge makes it (publish.claim_tmp)
                runs[way].append(replay(plan, shards, out, way == "local", spent, helper_cpu))
        read, local = (summary(runs[way], plan.n_spec, shard_seconds) for way in ("read", "local"))
        result = {"cores": os.cpu_count(), "n_spec": plan.n_spec, "n_pix": plan.n_pix, "shards": len(shards),
                  **read, "shard_task_s": round(shard_seconds, 2),
                  "shard_task_us_per_spectrum": round(shard_seconds / plan.n_spec * 1e6, 1), "local": local}

        def lines(r: dict, what: str) -> str:
            return (f"{what}: {r['merge_s']:.3f} s, {r['spectra_per_s']:,} spectra/s, {r['merge_us_per_spectrum']} us "
                    f"a spectrum ({r['cpu_s']:.2f} CPU s); steady {r['steady_us_per_spectrum']} us a spectrum, serial "
                    f"CPU {r['serial_cpu_us_per_spectrum']} us a spectrum; keeps up with "
                    f"~{r['cores_one_writer_keeps_up_with']} busy cores; the CPU over {os.cpu_count()} cores: "
                    f"{r['cpu_floor_us_per_spectrum']} us a spectrum\n"
                    + "".join(f"  {k:<24} {v:6.3f} s\n" for k, v in r["parts_s"].items())
                    + "  helper threads' CPU by job:\n"
                    + "".join(f"    {k:<44} {v:6.3f} s\n" for k, v in r["helper_cpu_s"].items()))

        text = (f"{os.cpu_count()} cores, {plan.n_spec} spectra x {plan.n_pix} px in {len(shards)} shards, every "
                f"shard written at once, median of {args.repeats}\n"
                + lines(read, "every shard read and summed (written on other nodes, or reused)")
                + lines(local, "every shard written on this host in this run (stat proof)")
                + f"shard tasks' own seconds: {shard_seconds:.1f} ({result['shard_task_us_per_spectrum']} us a "
                f"spectrum)\n")
        print(text, end="")
        if args.out:
            args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
            args.out.with_suffix(".txt").write_text(f"python benchmarks/merge_writer.py --corpus CORPUS "
                                                    f"--repeats {args.repeats}\n\n{text}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
