"""The merge alone, several ways, on the same shard stores: shardmerge's fast path (compressed chunk files
copied byte for byte, or hard-linked as an ingest does when scratch is deleted afterwards; each checked
against its shard manifest's crc32), the slice copy it falls back to (decode and re-encode every
chunk), and `cp -r` of the shard stores (the floor: moving the bytes). The merge also writes the
row-wise metadata, index.parquet and consolidated metadata, which `cp -r` does not.

Node-local scratch (`--scratch-kind node-local`) adds a fetch before the merge: every shard store comes
from the worker that holds it through a Dask task pinned there (2 local workers, 4 shards in flight),
is checked against its manifest's crc32 and kept on the ingest's scratch (made durable: a keeper thread
syncs the stores written so far with one syncfs while the next ones arrive). Its fair floor is the copy
made durable too ("cp -r, then sync -f"). Measured alone ("node-local fetch") and followed by the
hard-link merge ("node-local fetch + merge").

    python benchmarks/merge.py --plates 16 --rows 1000      # 16000 spectra x 4000 px (256 MB of flux)

Shards are made once by a real ingest (--keep-scratch); every variant then reads them from the page
cache. Median of --repeats, interleaved."""

from __future__ import annotations

import argparse
import contextlib
import os
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
    stack = contextlib.ExitStack()  # the LocalCluster of the node-local variants
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

        node_root = work / "node"  # the workers' "own disk": every shard store, where node_scratch finds them
        os.environ["SHARDMERGE_NODE_SCRATCH"] = str(node_root)  # the LocalCluster's workers inherit it
        from shardmerge.shardstore import FetchedShardKeeper, node_scratch, read_node_shard

        for s in shards:
            shutil.copytree(s, Path(node_scratch(scratch)) / Path(s).name)
        from distributed import LocalCluster

        from shardmerge.executors.dask_backend import DaskExecutor, Feed, own_cluster_client

        cluster = stack.enter_context(LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None,
                                                   host="127.0.0.1"))
        client = stack.enter_context(own_cluster_client(cluster))  # as an ingest's: results from the workers
        ex = DaskExecutor(client)
        addresses = sorted(client.scheduler_info(n_workers=-1)["workers"])

        def fetch(dest: Path) -> list[str]:
            dest.mkdir()
            keeper = FetchedShardKeeper(str(dest))
            feed = Feed([(s.store_name, addresses[i % len(addresses)]) for i, s in enumerate(plan.shards)], closed=True)
            lost = ex.map_on(read_node_shard, feed, scratch, name=f"fetch-{dest.name}", window=4,
                             fold=lambda k, files: keeper.keep(plan.shards[k], files, lambda manifest: None))
            keeper.close()
            assert not lost, lost
            return [shard_path(str(dest), s) for s in plan.shards]

        def fetch_merge(dest: Path) -> None:
            fetched = fetch(dest / "scratch")
            merge.materialize(plan, fetched, str(dest / "out.zarr"), {"ingest_pipeline": "bench"},
                              link_chunks=True)

        def cp_r(dest: Path) -> None:
            dest.mkdir()
            subprocess.run(["cp", "-r", *shards, str(dest)], check=True)

        def cp_r_sync(dest: Path) -> None:  # the same copy made durable, as every shardmerge copy is
            cp_r(dest)
            subprocess.run(["sync", "-f", str(dest)], check=True)

        variants = {"cp -r of the shard stores": cp_r, "cp -r, then sync -f": cp_r_sync,
                    "shardmerge merge (raw chunk copy)": fast,
                    "shardmerge merge (hard links, the default)": linked,
                    "slice copy (decode + re-encode)": slice_copy, "node-local fetch": fetch,
                    "node-local fetch + merge": fetch_merge}
        times: dict[str, list[float]] = {k: [] for k in variants}
        for rep in range(args.repeats):
            for name, fn in variants.items():
                dest = work / f"m{rep}-{len(times[name])}-{abs(hash(name))}"
                if name == "node-local fetch + merge":
                    dest.mkdir()
                t0 = time.perf_counter()
                fn(dest)
                times[name].append(time.perf_counter() - t0)
                shutil.rmtree(dest)
        base = statistics.median(times["cp -r of the shard stores"])
        print(f"\n{plan.n_spec} spectra x {plan.n_pix} px, {len(shards)} shards, {shard_bytes / 1e6:.0f} MB "
              f"compressed, median of {args.repeats}")
        print(f"{'variant':<44} {'median s':>9} {'MB/s':>8} {'vs cp -r':>9}")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{name:<44} {med:9.3f} {shard_bytes / 1e6 / med:8.0f} {med / base:8.2f}x")
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
