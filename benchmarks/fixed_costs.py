"""Fixed costs: a 1-file ingest, where the work is nothing and start-up is everything.

One 4000-pixel 1-D file (flux and IVAR images). Each variant runs as its own process, interleaved,
--repeats times; wall and CPU of the whole process tree (a subreaper, as in scaling.py):

- serial: scaling.py's hand-written serial writer on that file;
- shardmerge default: a small input runs in the ingest's own process (no cluster);
- shardmerge --workers N: asked-for workers, which one small file does not start (it is one scan task and
  one shard: the run stays in-process);
- the same on two such files, where --workers N does start a LocalCluster (forked from the forkserver)
  that has nothing to split either: what a cluster's start and stop still cost.

Then, per shardmerge variant, one extra run with its run report: the phases' seconds, and the rest
(interpreter, imports, cluster start and stop) as wall minus the phases.

    python benchmarks/fixed_costs.py --repeats 7 --out benchmarks/results/fixed_costs_2core
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from scaling import SERIAL, become_subreaper, timed  # noqa: E402 - the sibling benchmark's writer and timer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--workers", type=int, nargs="*", default=[2])
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.txt")
    args = ap.parse_args()
    become_subreaper()
    from shardmerge.testing.spectra import make_wcs1d

    work = Path(tempfile.mkdtemp(prefix="shardmerge-fixed-"))
    corpus = work / "in"
    make_wcs1d(corpus / "s0.fits", i=0, n_pix=4000, seed=0, uncertainty="ivar")
    pair = work / "in2"
    for i in range(2):
        make_wcs1d(pair / f"s{i}.fits", i=i, n_pix=4000, seed=i, uncertainty="ivar")
    serial = work / "serial.py"
    serial.write_text(SERIAL)
    env = {**os.environ, "SHARDMERGE_SCRATCH": str(work / "scratch")}
    py = sys.executable

    def command(variant: str, out: Path, report: Path | None = None) -> list[str]:
        name, _, files = variant.partition(", ")
        inputs = str(pair if files else corpus)
        if name == "serial":
            return [py, str(serial), inputs, str(out)]
        extra = ["--workers", name.split()[-1]] if name != "shardmerge default" else []
        return [py, "-m", "shardmerge", "ingest", inputs, "-o", str(out), "--quiet", *extra,
                *(["--report", str(report)] if report else [])]

    variants = ["serial", "shardmerge default", *(f"shardmerge --workers {n}" for n in args.workers),
                "serial, 2 files", *(f"shardmerge --workers {n}, 2 files" for n in args.workers)]
    runs: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for r in range(args.repeats):
        for v in variants:  # interleaved: a noisy second hurts every variant alike
            out = work / "out.zarr"
            runs[v].append(timed(command(v, out), env))
            shutil.rmtree(out, ignore_errors=True)
            print(f"repeat {r + 1}: {v}: {runs[v][-1][0]:.2f} s wall, {runs[v][-1][1]:.2f} s CPU", flush=True)
    phases = {}
    for v in (v for v in variants if not v.startswith("serial")):
        out, report = work / "out.zarr", work / "report.json"
        wall, _ = timed(command(v, out, report), env)
        phases[v] = {"wall_s": round(wall, 2), **json.loads(report.read_text())["seconds"]}
        shutil.rmtree(out, ignore_errors=True)
    def serial_of(v: str) -> float:  # the serial writer on the same input
        return statistics.median(w for w, _ in runs["serial, 2 files" if v.endswith(", 2 files") else "serial"])

    rows = [{"variant": v, "wall_s": round(statistics.median(w for w, _ in runs[v]), 2),
             "cpu_s": round(statistics.median(c for _, c in runs[v]), 2),
             "vs_serial": round(statistics.median(w for w, _ in runs[v]) / serial_of(v), 2)} for v in variants]
    lines = [f"{os.cpu_count()} cores, one 4000-px 1-D file (and two), median of {args.repeats}, interleaved",
             f"{'variant':36s} {'wall s':>7s} {'CPU s':>7s} {'vs serial':>9s}"]
    lines += [f"{r['variant']:36s} {r['wall_s']:7.2f} {r['cpu_s']:7.2f} {r['vs_serial']:9.2f}" for r in rows]
    lines.append("one run each with its report (s): phases, and the rest outside them")
    for v, p in phases.items():
        inside = sum(x for k, x in p.items() if k != "wall_s")
        shown = " ".join(f"{k} {x:.2f}" for k, x in p.items() if k != "wall_s" and x >= 0.005)
        lines.append(f"  {v:34s} wall {p['wall_s']:.2f} = {shown}, outside {p['wall_s'] - inside:.2f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "phases": phases}, indent=1) + "\n")
        args.out.with_suffix(".txt").write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
