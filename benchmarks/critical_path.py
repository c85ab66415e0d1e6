"""A model of an ingest's critical path: calibrated on measured runs, checked against others, and used to
predict a survey-scale run on a cluster.

An ingest of S spectra in F files on P worker cores runs these stages, in order (pipeline.py):

    wall(P) = fixed + scan(P) + shard(P) + tail + gate

- fixed: what no worker does: the interpreter, imports, the lock, discovery, the cluster's start, the
  plan, the publish (a 1-worker run's wall minus its scan, shard, merge and gate phases). On a batch
  scheduler add the queue wait, which no model of ours knows.
- scan(P) = scan_1 / P: the scan tasks read header blocks, F files divided over P cores. The driver folds
  each batch as it returns, serially: at survey scale that fold (and the plan after it) is its own term,
  fold_plan(F), from `driver_scale.py`.
- shard(P) = max(shard_1 / P, S * m): the shard tasks divide; the one merge writer places each shard as it
  is written (merge.StreamedMerge), at m seconds a spectrum (`merge_writer.py`'s steady rate with shards
  read and summed whole, as on a cluster), and cannot go faster. Past
  P* = shard_1 / (S * m) cores the writer is the bound: more cores shorten nothing.
- tail: the merge of the last shard, after the last shard task (a 1-worker run's merge phase).
- gate: the validation gate. It stats hard-linked chunk files rather than reading them, so it grows with
  the store's file count, not its bytes.

Calibration uses only the 1-worker run of each table (its phases, from its --report) and the merge writer's
rate. The check predicts each P-worker run of the same table and prints predicted against measured, phase
by phase. The ratio measured / predicted of the scan and shard phases is the slowdown at P against an ideal
division (memory bandwidth, clock, the driver, scheduler and merge thread sharing the cores, task
granularity), which one worker cannot show: it is reported, and the slowdown at the largest P measured is
carried into the cluster prediction.

    python benchmarks/critical_path.py --scaling benchmarks/results/scaling_2core_*.json \\
        benchmarks/results/scaling_16core.json --out benchmarks/results/critical_path
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PARALLEL = ("scan", "shard")


def _row(doc: dict, variant: str) -> dict | None:
    return next((r for r in doc["rows"] if r["variant"] == variant), None)


def _spectra(doc: dict) -> int:
    store, corpus = doc.get("store") or {}, doc.get("corpus")
    if store.get("spectra"):
        return int(store["spectra"])
    if isinstance(corpus, dict) and corpus.get("spectra"):
        return int(corpus["spectra"])
    raise SystemExit(f"{doc.get('_path')}: no spectra count (rerun scaling.py, which records it)")


def calibrate(doc: dict) -> dict:
    """Per-run constants from the table's 1-worker run: fixed seconds, scan and shard work, tail, gate."""
    one = _row(doc, "shardmerge 1")
    if one is None or "phases_s" not in one:
        raise SystemExit(f"{doc.get('_path')}: no 'shardmerge 1' row with phases")
    ph = one["phases_s"]
    staged = ph["scan"] + ph["shard"] + ph["merge"] + ph["validate"]
    return {"fixed_s": one["wall_s"] - staged, "scan_work_s": ph["scan"], "shard_work_s": ph["shard"],
            "tail_s": ph["merge"], "gate_s": ph["validate"], "spectra": _spectra(doc),
            "files": doc["input_files"]}


def predict(cal: dict, workers: int, merge_s_per_spectrum: float) -> dict:
    """Each stage's predicted seconds at `workers` cores, and which term bounds the shard phase."""
    divided = cal["shard_work_s"] / workers
    writer = cal["spectra"] * merge_s_per_spectrum
    terms = {"fixed": cal["fixed_s"], "scan": cal["scan_work_s"] / workers, "shard": max(divided, writer),
             "tail": cal["tail_s"], "gate": cal["gate_s"]}
    return {"terms_s": terms, "wall_s": sum(terms.values()),
            "shard_bound": "merge writer" if writer > divided else "shard tasks"}


def check(doc: dict, merge_s_per_spectrum: float) -> list[dict]:
    """Predicted against measured for every shardmerge P > 1 run of one scaling table."""
    cal = calibrate(doc)
    checked = []
    for row in doc["rows"]:
        kind, _, n = row["variant"].partition(" ")
        if kind != "shardmerge" or int(n) < 2 or "phases_s" not in row:
            continue
        p, ph = predict(cal, int(n), merge_s_per_spectrum), row["phases_s"]
        measured = {"fixed": row["wall_s"] - ph["scan"] - ph["shard"] - ph["merge"] - ph["validate"],
                    "scan": ph["scan"], "shard": ph["shard"], "tail": ph["merge"], "gate": ph["validate"]}
        checked.append({"table": doc["_name"], "cores": doc["cores"], "workers": int(n),
                        "spectra": cal["spectra"], "files": cal["files"],
                        "predicted_s": round(p["wall_s"], 2), "measured_s": row["wall_s"],
                        "measured_over_predicted": round(row["wall_s"] / p["wall_s"], 2),
                        "slowdown": {k: round(measured[k] / p["terms_s"][k], 2) for k in PARALLEL},
                        "predicted_terms_s": {k: round(v, 2) for k, v in p["terms_s"].items()},
                        "measured_terms_s": {k: round(v, 2) for k, v in measured.items()},
                        "shard_bound": p["shard_bound"]})
    return checked


def _cluster_terms(args: argparse.Namespace, cal: dict, slowdown: dict, m: float, fold_plan: dict) -> dict:
    """Each term of the cluster run in seconds: the per-spectrum and per-file work of the calibration
    machine's 1-worker run, times the slowdown measured at its largest P, divided by the cores."""
    s, f, p = args.spectra, args.files, args.cores
    scale = args.pixels / args.calibration_pixels  # shard work and writer both go as the pixels
    shard_tasks = cal["shard_work_s"] / cal["spectra"] * s * scale * slowdown["shard"] / p
    writer = s * m * scale
    store_bytes = s * args.store_bytes_per_spectrum * scale
    terms = {
        "fixed (driver, imports, cluster start; no queue wait)": cal["fixed_s"],
        "scan tasks": cal["scan_work_s"] / cal["files"] * f * slowdown["scan"] / p,
        "driver fold + plan (serial)": fold_plan["fold_s"] + fold_plan["plan_s"],
        "shard tasks (divided)": shard_tasks,
        "merge writer (serial, streamed beside the shard tasks)": writer,
        "node-local scratch: shards fetched to the merge node": (store_bytes / args.fetch_gbps / 1e9
                                                                   if args.node_local else 0.0),
        "tail: the last shard's merge": cal["tail_s"],
        "gate (grows with the store's files)": cal["gate_s"] * fold_plan["store_files"] / args.calibration_files,
    }
    return terms


def cluster(args: argparse.Namespace, checked: list[dict], cal: dict, m: float, fold_plan: dict) -> dict:
    """The predicted wall time of the cluster run and the term that bounds it."""
    largest = max((c for c in checked if c["table"] == cal["table"]), key=lambda c: c["workers"])
    slowdown = largest["slowdown"]
    terms = _cluster_terms(args, cal, slowdown, m, fold_plan)
    shard_keys = [k for k in terms if k.startswith(("shard tasks", "merge writer", "node-local"))]
    overlapped = max(terms[k] for k in shard_keys)  # the writer streams beside the tasks (and the fetch)
    wall = sum(v for k, v in terms.items() if k not in shard_keys) + overlapped
    bound = max(terms, key=lambda k: terms[k])
    cores_writer_keeps_up_with = math.floor(terms["shard tasks (divided)"] * args.cores / terms[
        "merge writer (serial, streamed beside the shard tasks)"])
    return {"spectra": args.spectra, "files": args.files, "cores": args.cores, "pixels": args.pixels,
            "node_local_scratch": args.node_local, "calibrated_on": cal["table"],
            "slowdown_used": slowdown, "terms_s": {k: round(v, 2) for k, v in terms.items()},
            "wall_s": round(wall, 1), "bound": bound,
            "cores_the_merge_writer_keeps_up_with": cores_writer_keeps_up_with}


def _load(path: Path) -> dict:
    doc = json.loads(path.read_text())
    doc["_path"], doc["_name"] = str(path), path.stem
    return doc


def _lines(checked: list[dict], pred: dict, m: float) -> list[str]:
    out = [f"merge writer: {m * 1e6:.1f} us a spectrum (merge_writer json: steady, shards read whole)", "",
           "check: predicted from each table's 1-worker run, against the P-worker runs measured beside it",
           f"{'table':<28} {'P':>3} {'pred s':>7} {'meas s':>7} {'meas/pred':>9} {'slow scan':>9} "
           f"{'slow shard':>10}  shard bound"]
    for c in checked:
        out.append(f"{c['table']:<28} {c['workers']:>3} {c['predicted_s']:>7.2f} {c['measured_s']:>7.2f} "
                   f"{c['measured_over_predicted']:>9.2f} {c['slowdown']['scan']:>9.2f} "
                   f"{c['slowdown']['shard']:>10.2f}  {c['shard_bound']}")
    out += ["", f"prediction: {pred['spectra']:,} spectra in {pred['files']:,} files x {pred['pixels']} px on "
            f"{pred['cores']} cores ({'node-local' if pred['node_local_scratch'] else 'shared'} scratch), "
            f"calibrated on {pred['calibrated_on']}, slowdown {pred['slowdown_used']}"]
    out += [f"  {k:<58} {v:>8.1f} s" for k, v in pred["terms_s"].items()]
    out += [f"  wall (shard tasks, merge writer and fetch overlap: their max counts) {pred['wall_s']:>8.1f} s",
            f"  bound: {pred['bound']}; the merge writer keeps up with "
            f"{pred['cores_the_merge_writer_keeps_up_with']} cores"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scaling", type=Path, nargs="+", required=True, help="scaling.py result JSONs")
    ap.add_argument("--merge-writer", type=Path, default=RESULTS / "merge_writer_2core.json")
    ap.add_argument("--driver", type=Path, default=RESULTS / "driver_scale_2core.json")
    ap.add_argument("--calibrate-on", default=None, help="table for the cluster prediction (default: most cores)")
    ap.add_argument("--spectra", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=10_000_000, help="one spectrum a file: the scan's worst case")
    ap.add_argument("--cores", type=int, default=512)
    ap.add_argument("--pixels", type=int, default=2000)
    ap.add_argument("--node-local", action="store_true", help="shards on node-local scratch, fetched")
    ap.add_argument("--fetch-gbps", type=float, default=2.0, help="GB/s into the merge node (node-local)")
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.txt")
    args = ap.parse_args()
    writer = json.loads(args.merge_writer.read_text())
    # the streaming rate (set-up overlaps the first shard tasks; the tail is a term of its own), shards read
    # and summed whole as on a cluster; a table from before the steady rate was measured: its whole replay
    m = writer.get("steady_us_per_spectrum", writer["merge_us_per_spectrum"]) / 1e6
    driver = {r["files"]: r for r in json.loads(args.driver.read_text())["rows"]}
    at = driver[max(driver)]
    fold_plan = {"fold_s": at["scan_fold_s"] * args.files / at["files"],
                 "plan_s": at["plan_s"] * args.files / at["files"], "store_files": at["store_files"]}
    docs = [_load(p) for p in args.scaling]
    checked = [c for d in docs for c in check(d, m)]
    base = next((d for d in docs if d["_name"] == args.calibrate_on), None) or max(docs, key=lambda d: d["cores"])
    cal = {**calibrate(base), "table": base["_name"]}
    args.calibration_pixels = base.get("pixels", 2000)
    args.calibration_files = (base.get("store") or {}).get("store_files") or 300
    args.store_bytes_per_spectrum = ((base.get("store") or {}).get("store_bytes") or 11_000 * cal["spectra"]
                                     ) / cal["spectra"]
    pred = cluster(args, checked, cal, m, fold_plan)
    lines = _lines(checked, pred, m)
    print("\n".join(lines))
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps({"rows": checked, "cluster": pred}, indent=1) + "\n")
        args.out.with_suffix(".txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
