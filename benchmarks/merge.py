"""The merge alone, four ways, on the same shard stores: shardmerge's fast path (compressed chunk files
copied byte for byte, or hard-linked as an ingest does when scratch is deleted afterwards; each checked
against its shard manifest's crc32), the slice copy it falls back to (decode and re-encode every
chunk), and `cp -r` of the shard stores (the floor: moving the bytes). The merge also writes the
row-wise metadata, index.parquet and consolidated metadata, which `cp -r` does not.

    python benchmarks/merge.py --plates 16 --rows 1000      # 16000 spectra x 4000 px (256 MB of flux)

Shards are made once by a real ingest (--keep-scratch); every variant then reads them from the page
cache. Median of --repeats, interleaved."""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from shardmerge import merge
from shardmerge.config import ClusterRequest, LayoutRequest
from shardmerge.pipeline import plan_inputs, scratch_dir
from shardmerge.shardstore import shard_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plates", type=int, default=16)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--n-pix", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from shardmerge.testing.spectra import make_image2d

    work = Path(tempfile.mkdtemp(prefix="shardmerge-merge-"))
    try:
        corpus = work / "corpus"
        for i in range(args.plates):
            make_image2d(corpus / f"p{i:04d}.fits", i=i, n_rows=args.rows, n_pix=args.n_pix, seed=i)
        out = work / "made.zarr"
        subprocess.run([sys.executable, "-m", "shardmerge.cli", "ingest", str(corpus), "-o", str(out), "--quiet",
                        "--keep-scratch", "--scratch", str(work / "scratch")], check=True)
        plan = plan_inputs([str(corpus)], request=LayoutRequest(), cluster=ClusterRequest(workers=0))
        scratch = scratch_dir(str(work / "scratch"), str(out))
        shards = [shard_path(scratch, s) for s in plan.shards]
        shard_bytes = sum(f.stat().st_size for s in shards for f in Path(s).rglob("*") if f.is_file())

        def fast(dest: Path) -> None:
            merge.materialize(plan, shards, str(dest), {"ingest_pipeline": "bench"})

        def linked(dest: Path) -> None:
            merge.materialize(plan, shards, str(dest), {"ingest_pipeline": "bench"}, link_chunks=True)

        def slice_copy(dest: Path) -> None:
            with mock.patch.object(merge, "same_encoding", return_value=False):
                merge.materialize(plan, shards, str(dest), {"ingest_pipeline": "bench"})

        def cp_r(dest: Path) -> None:
            dest.mkdir()
            subprocess.run(["cp", "-r", *shards, str(dest)], check=True)

        variants = {"cp -r of the shard stores": cp_r, "shardmerge merge (raw chunk copy)": fast,
                    "shardmerge merge (hard links, the default)": linked,
                    "slice copy (decode + re-encode)": slice_copy}
        times: dict[str, list[float]] = {k: [] for k in variants}
        for rep in range(args.repeats):
            for name, fn in variants.items():
                dest = work / f"m{rep}-{len(times[name])}-{abs(hash(name))}"
                t0 = time.perf_counter()
                fn(dest)
                times[name].append(time.perf_counter() - t0)
                shutil.rmtree(dest)
        base = statistics.median(times["cp -r of the shard stores"])
        print(f"\n{plan.n_spec} spectra x {plan.n_pix} px, {len(shards)} shards, {shard_bytes / 1e6:.0f} MB "
              f"compressed, median of {args.repeats}")
        print(f"{'variant':<36} {'median s':>9} {'MB/s':>8} {'vs cp -r':>9}")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{name:<36} {med:9.3f} {shard_bytes / 1e6 / med:8.0f} {med / base:8.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
