"""Discovery at survey scale (issue 12): N empty `*.fits` files in a survey-like tree (1000 per folder,
`<plate>/spec-<plate>-<fiber>.fits`) are found by `discover_inputs`, once from the folder and once from an
@LIST of the same paths in shuffled order (an archive query's list). Each run is its own process, so its
peak RSS is its own; what a user would write, `sorted(Path(root).rglob("*.fits"))`, is measured beside it.

Reported per N: seconds, paths per second, and the call's peak RSS over the RSS before it (Linux: the peak
is reset first through /proc/self/clear_refs), also per path.

    python benchmarks/discover_scale.py --files 100000 1000000 --out benchmarks/results/discover_scale_2core

The tree is made on --root (default /dev/shm: tmpfs, so the walk measures the driver, not a disk's
metadata reads; a parallel filesystem adds its own per-folder latency on top)."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ONE = r'''
import json, sys, time
from pathlib import Path
from shardmerge.discover import discover_inputs

def status_mib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024

how, target = sys.argv[1], sys.argv[2]
with open("/proc/self/clear_refs", "w") as f:  # the peak so far (imports) is not this call's: reset it
    f.write("5")
before = status_mib("VmRSS")
t0 = time.perf_counter()
if how == "sorted-rglob":
    found = sorted(str(p) for p in Path(target).rglob("*.fits"))
else:
    found = discover_inputs([target])
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "paths": len(found), "rss_growth_mib": status_mib("VmHWM") - before}))
'''


def make_tree(root: Path, n: int) -> None:
    for plate in range((n + 999) // 1000):
        folder = root / f"{plate:05d}"
        folder.mkdir(parents=True)
        for fiber in range(min(1000, n - plate * 1000)):
            os.close(os.open(folder / f"spec-{plate:05d}-{fiber:04d}.fits", os.O_CREAT | os.O_WRONLY, 0o644))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--root", type=Path, default=Path("/dev/shm"))
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.txt")
    args = ap.parse_args()
    rows = []
    for n in args.files:
        root = args.root / f"shardmerge-discover-{os.getpid()}"
        try:
            t0 = time.perf_counter()
            make_tree(root / "tree", n)
            made_s = time.perf_counter() - t0
            listed = [str(p) for p in sorted((root / "tree").rglob("*.fits"))]
            random.Random(n).shuffle(listed)
            (root / "list.txt").write_text("".join(p + "\n" for p in listed))
            del listed
            for how, target in (("folder", str(root / "tree")), ("@LIST, shuffled", f"@{root / 'list.txt'}"),
                                ("sorted-rglob", str(root / "tree"))):
                done = subprocess.run([sys.executable, "-c", ONE, how, target], capture_output=True, text=True,
                                      check=True)
                r = json.loads(done.stdout)
                assert r["paths"] == n, r
                rows.append({"files": n, "how": how, "seconds": round(r["seconds"], 2),
                             "paths_per_s": round(n / r["seconds"]),
                             "rss_growth_mib": round(r["rss_growth_mib"], 1),
                             "bytes_per_path": round(r["rss_growth_mib"] * 2**20 / n, 1),
                             "tree_made_s": round(made_s, 1)})
                print(rows[-1], flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    lines = [f"python benchmarks/discover_scale.py --files {' '.join(map(str, args.files))} (root {args.root})", "",
             f"{'files':>9} {'how':<18} {'s':>7} {'paths/s':>9} {'RSS growth MiB':>15} {'B/path':>7}"]
    for r in rows:
        lines.append(f"{r['files']:>9} {r['how']:<18} {r['seconds']:>7.2f} {r['paths_per_s']:>9} "
                     f"{r['rss_growth_mib']:>15.1f} {r['bytes_per_path']:>7.1f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
        args.out.with_suffix(".txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
