"""The main job, stage by stage: scan → plan → shards → merge → gate → publish.

Each stage lives in its own module; this one only sequences them, times them and guarantees the
failure rule: any failure after `<OUT>.tmp` exists deletes it, and OUT is touched only by the publish."""

from __future__ import annotations

import hashlib
import logging
import os
import resource
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import partial

from .beside import ReportPathError, check_report_not_input, check_report_path, check_scratch, scratch_root
from .config import ClusterRequest, FormatChoice, LayoutRequest
from .discover import batches, discover_inputs
from .durable import remove_tree, remove_trees, storage_errors, sync_tree
from .errors import BadFileError, BadFilesError, GateError, InputError, ShardError, ShardmergeError
from .executors import (
    DaskExecutor,
    Feed,
    NotTheRun,
    blind_workers,
    check_shared_scratch,
    choose_cluster,
    executor,
    runner_role,
)
from .executors.slurm import job_log_dir
from .failpoints import failpoint
from .filetable import FileTable, FileTableBuilder
from .headers import HeaderRules, load_header_rules
from .merge import StreamedMerge
from .plan import BadFile, FileScan, Plan, describe, longest_first, make_plan, needs_exact_grids
from .progress import Progress, planned, progress_mode, run_display, stage
from .provenance import announced_spectra, provenance_attrs
from .publish import TargetLock, check_target, publish, remove_own_tmp, sweep_leftovers, tmp_path
from .readers.oddities import kind_of
from .readers.splitsums import covers_file, judge_split_file
from .report import RunReport
from .shardstore import (
    FetchedShardKeeper,
    load_manifest,
    manifest_matches,
    private_folder,
    read_node_shard,
    remove_node_scratch,
    shard_path,
    sweep_file_tables,
    write_file_table,
)
from .tasks import scan_batch, write_shard
from .threads import Background
from .validate import Expectation, failures, run_checks, summary_line

log = logging.getLogger("shardmerge")

SCAN_BATCH_FILES = 64  # fewest files per scan task: one small file parses in ~1 ms, a task costs more
SCAN_BATCH_MAX_FILES = 4096  # most: ~4 s of work, cheap to redo when a worker is lost


@dataclass(frozen=True)
class IngestOptions:
    inputs: tuple[str, ...]
    out: str
    cluster: ClusterRequest = ClusterRequest()
    scratch: str | None = None
    scratch_kind: str = "auto"  # "shared", "node-local" or "auto" (shared when every worker sees scratch)
    layout: LayoutRequest = LayoutRequest()  # chunks, shards, codec, zarr format: what `plan` previews too
    overwrite: bool = False
    format: FormatChoice = FormatChoice()  # --format (None: auto-detect) and a --mapping file
    on_bad_file: str = "fail"
    strict: frozenset[str] = frozenset()  # kinds of accepted oddity to refuse instead (readers/oddities.py)
    report_path: str | None = None
    header_rules: str | None = None
    keep_scratch: bool = False
    restart: bool = False
    progress: bool = True  # bars on a terminal, periodic log lines otherwise
    command: tuple[str, ...] = ()


def scan_inputs(paths: Sequence[str], choice: FormatChoice, rules: HeaderRules, ex, on_bad_file: str,
                report: RunReport, progress_to: str = "log", strict: frozenset[str] = frozenset()) -> FileTable:
    """The scan results, folded into a FileTable in path order as the batches arrive: the driver never
    holds one object per file. When every input's grid is one by its headers alone (equal hints: a single
    SDSS spec file, say), the files are scanned again reading their grids, which decide whether the
    store's wavelength is one shared grid."""
    scans, bad = _scan(paths, choice, rules, ex, Progress("scan", len(paths), "files", progress_to), strict)
    if needs_exact_grids(scans):
        good = [scans.path(i) for i in range(len(scans))]
        log.info("every input has the same wavelength grid by its headers: reading the grids to be sure")
        scans, _ = _scan(good, choice, rules, ex, Progress("scan", len(good), "files", progress_to), strict,
                         exact_grids=True)
    report.counts["files_found"] = len(paths)
    report.counts["files_bad"] = len(bad)
    dropped = sum(scans.dropped)
    if dropped:
        report.counts["spectra_dropped_no_data"] = dropped
        log.warning("left out %d spectra that their readers found to carry no data at all, from %d file(s)",
                    dropped, sum(1 for d in scans.dropped if d))
    if bad:
        if on_bad_file != "skip":
            raise BadFilesError([(b.path, b.reason) for b in bad])
        for b in bad:
            log.warning("skipped %s: %s", b.path, b.reason)
        report.skipped_files = [{"path": b.path, "reason": b.reason} for b in bad]
    if not len(scans):
        raise InputError(f"none of the {len(paths)} input file(s) could be read")
    return scans


def _scan(paths: Sequence[str], choice: FormatChoice, rules: HeaderRules, ex, progress: Progress,
          strict: frozenset[str], exact_grids: bool = False) -> tuple[FileTable, list[BadFile]]:
    table = FileTableBuilder()
    bad: list[BadFile] = []

    def collect(batch: list) -> None:
        for r in batch:
            if isinstance(r, FileScan):
                table.add(r)
            else:
                bad.append(r)

    ex.map(scan_batch, batches(paths, scan_batch_files(len(paths), ex.workers)), choice, rules, strict,
           exact_grids, name="scan", on_result=progress, fold=collect)
    return table.finish(), bad


def scan_batch_files(n_files: int, workers: int) -> int:
    """Files per scan task: at least SCAN_BATCH_FILES (a task costs more than one small file's ~1 ms
    parse), at most SCAN_BATCH_MAX_FILES (a lost task costs little to redo), and otherwise ~8 tasks per
    worker, so a survey of 10^7 files is a few thousand tasks, not 156k."""
    per_task = -(-n_files // (8 * max(1, workers)))
    return max(SCAN_BATCH_FILES, min(SCAN_BATCH_MAX_FILES, per_task))


def report_oddities(report: RunReport, notes: dict[str, list[str]]) -> None:
    """What was odd but accepted, per file: the scan's (headers) and the shard tasks' (data: checksums)."""
    if not notes:
        return
    report.counts["files_odd"] = len(notes)
    report.odd_files = [{"path": p, "notes": list(n)} for p, n in sorted(notes.items())]
    per_kind = ", ".join(f"{k}: {v['files']}" for k, v in sorted(oddity_provenance(notes).items()))
    log.warning("accepted %d file(s) with known oddities (%s); the run report lists them, --strict KIND "
                "refuses them", len(notes), per_kind)


def input_notes(scans: FileTable, manifests: Sequence[dict] = ()) -> dict[str, list[str]]:
    """Per input path, its oddities: found by the scan, and by the shard tasks that read its data."""
    notes = {scans.path(row): list(n) for row, n in sorted(scans.notes.items())}
    for m in manifests:
        for path, found in m.get("notes", {}).items():
            kept = notes.setdefault(path, [])
            kept.extend(n for n in found if n not in kept)
    return notes


def oddity_provenance(notes: dict[str, list[str]], examples: int = 5) -> dict:
    """For the store's root attrs: per kind, how many files and a few of them (a full list could be
    millions of paths; the run report has it)."""
    out: dict[str, dict] = {}
    for path in sorted(notes):
        for kind in sorted({kind_of(n) for n in notes[path]}):
            entry = out.setdefault(kind, {"files": 0, "examples": []})
            entry["files"] += 1
            if len(entry["examples"]) < examples:
                entry["examples"].append(path)
    return out


def plan_inputs(inputs: Sequence[str], *, request: LayoutRequest, choice: FormatChoice | None = None,
                rules: HeaderRules | None = None, cluster: ClusterRequest | None = None,
                on_bad_file: str = "fail", report: RunReport | None = None,
                strict: frozenset[str] = frozenset()) -> Plan:
    """Scan and plan without writing anything (`shardmerge plan`)."""
    choice = choice or FormatChoice()
    report = report or RunReport()
    rules = rules or load_header_rules()
    paths = discover_inputs(inputs)
    cluster = cluster or ClusterRequest()
    with runner_role(cluster) as runner, executor(cluster, runner) as ex:
        scans = scan_inputs(paths, choice, rules, ex, on_bad_file, report, strict=strict)
    report_oddities(report, input_notes(scans))  # the headers' only: data units are checked by an ingest
    return make_plan(scans, request, mapping=choice.mapping)


def scratch_dir(base: str | None, out: str) -> str:
    """Shards for OUT live in `<base>/<hash of OUT>`, so rerunning a crashed ingest finds them, and two
    ingests to different targets never share one. Folders are 0700: spectra can be proprietary."""
    root = scratch_root(base)
    path = os.path.join(root, hashlib.sha256(os.path.abspath(out).encode()).hexdigest()[:16])
    for folder in (root, path):  # in a shared /tmp, another user could have planted either one
        private_folder(folder)
    os.chmod(path, 0o700)
    with open(os.path.join(path, "target.txt"), "w", encoding="utf-8") as f:
        f.write(os.path.abspath(out) + "\n")
    return path


def sweep_scratch(scratch: str, keep: set[str]) -> list[str]:
    """Call under the lock: remove `.partial` shards of crashed attempts and shard stores whose key is
    not in the current plan (their inputs or layout changed). Only `shard-*` entries are touched."""
    removed = []
    for name in sorted(os.listdir(scratch)):
        if name.startswith("shard-") and name not in keep:
            remove_tree(os.path.join(scratch, name))
            removed.append(name)
    return removed


def ingest(opts: IngestOptions, report: RunReport | None = None) -> RunReport:
    """Run one ingest. `report`: filled in as the run goes, for a caller that must know, when the run is
    interrupted, how far it got (status "published" once OUT is the new store, even if interrupted after)."""
    out = os.path.abspath(opts.out)
    report = report or RunReport()
    report.command, report.output = " ".join(opts.command), out
    is_the_run = True
    try:
        _ingest(opts, out, report)
        report.status = "published"
    except ReportPathError:
        is_the_run = False  # no report: where it would go is what is wrong
        raise
    except ShardmergeError as exc:
        report.status, report.error = _failed(report), str(exc)
        raise
    except NotTheRun:
        is_the_run = False  # a process that served the cluster (an srun rank): the report is the run's
        raise
    except BaseException as exc:
        report.status, report.error = _failed(report), f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if opts.report_path and is_the_run:
            try:
                report.write(opts.report_path)
            except OSError as exc:  # never let the report hide the run's own outcome
                log.warning("could not write the run report %s: %s", opts.report_path, exc.strerror)
    return report


def _failed(report: RunReport) -> str:
    """A run that stops once its store is published (Ctrl-C while scratch is removed) still published it."""
    return "published" if report.status == "published" else "failed"


def _ingest(opts: IngestOptions, out: str, report: RunReport) -> None:
    if opts.on_bad_file not in ("fail", "skip"):
        raise InputError(f"--on-bad-file must be 'fail' or 'skip', not {opts.on_bad_file!r}")
    check_target(out, opts.overwrite)  # fail fast, before the lock and any work
    rules = load_header_rules(opts.header_rules)
    with runner_role(opts.cluster) as runner, run_display(progress_mode(opts.progress)):
        _ingest_locked(opts, out, report, rules, runner)  # in an srun, only the client rank gets here


def _ingest_locked(opts: IngestOptions, out: str, report: RunReport, rules: HeaderRules, runner: object) -> None:
    mode = progress_mode(opts.progress)
    # here, not before runner_role: only the rank that runs the ingest writes a report and uses scratch
    scratch_base = scratch_root(opts.scratch)
    check_report_path(opts.report_path, out, opts.inputs, scratch_base)
    check_scratch(scratch_base, out, opts.inputs)
    with report.phase("discover"):  # before the lock: a missing input fails the run before anything is touched
        paths = discover_inputs(opts.inputs)
    check_report_not_input(opts.report_path, paths)
    with TargetLock(out):
        for path in sweep_leftovers(out):  # first: it may put back a store an interrupted publish moved
            log.warning("removed %s left by an earlier run that did not finish", path)
        check_target(out, opts.overwrite)  # again, now that no other shardmerge can be writing it
        scratch = scratch_dir(opts.scratch, out)
        if opts.restart:
            removed = sweep_scratch(scratch, keep=set())
            log.info("--restart: removed %d shard store(s) of earlier runs", len(removed))
        tmp = tmp_path(out)
        merging: StreamedMerge | None = None  # set once every shard is written; the merge into tmp goes on
        closer: Background | None = None  # the cluster's close, beside the merge once every shard is written
        try:
            starting = time.perf_counter()
            with ExitStack() as cluster:  # closed here if anything fails before every shard is written
                ex = cluster.enter_context(executor(choose_cluster(opts.cluster, paths), runner,
                                                    log_dir=job_log_dir(opts.cluster.job_logs, out)))
                report.phase_since("cluster_start", starting)
                report.workers = ex.workers
                report.scheduler = ex.address
                report.cluster = dict(ex.info)
                node_local = choose_scratch_kind(ex, scratch, opts.scratch_kind)
                report.scratch_kind = "node-local" if node_local else "shared"
                with report.phase("scan"):
                    scans = scan_inputs(paths, opts.format, rules, ex, opts.on_bad_file, report, mode, opts.strict)
                with report.phase("plan"):
                    plan = make_plan(scans, opts.layout, mapping=opts.format.mapping)
                planned(plan.input_bytes, plan.estimated_bytes())  # the overall bar's split of what is left
                with report.phase("shard"):  # the merge into tmp runs beside it, shard by shard
                    plan, scans, manifests, merging = write_shards(ex, plan, scans, scratch, rules, opts, report,
                                                                   node_local, tmp)
                # Every shard is durable on scratch: the workers are done, and stopping them (0.1-0.5 s
                # for a local cluster, an scancel for SLURM) need not hold up the merge's tail or the gate.
                closer = Background(_timed(cluster.pop_all().close), name="shardmerge-cluster-close")
            notes = input_notes(scans, manifests)
            report_oddities(report, notes)
            # sizes from the manifests, not a walk of ~15 files per shard (a metadata storm on a parallel
            # filesystem)
            report.bytes["scratch"] = sum(size for m in manifests for size, _ in m["files"].values())
            with storage_errors(tmp, device_errors=True):
                _merge_gate_publish(opts, plan, len(scans), notes, tmp, out, report, merging)
            waiting = time.perf_counter()
            close_s = _cluster_closed(closer)
            report.phase_since("cluster_close", waiting)  # what the close added to the run: its wait here
            if isinstance(ex, DaskExecutor):  # (in this process there was nothing to close)
                report.cluster["close_s"] = close_s
        except BaseException as exc:
            if merging is not None:  # (write_shards drops its own merge when it fails)
                merging.abandon()
            # (an interrupt: the caller says what was kept, in one line)
            if merging is not None and report.status != "published" and not isinstance(exc, KeyboardInterrupt):
                log.error("removed %s; nothing was published at %s", tmp, out)
                log.error("shard stores kept in %s: rerunning the same command reuses them (--restart discards "
                          "them)", scratch)
            remove_own_tmp(tmp)  # (anything else there appeared since the sweep: not ours to delete)
            if closer is not None:
                _cluster_closed(closer)
            raise
    seconds = sum(report.phases.values())
    report.throughput = {"spectra_per_s": round(plan.n_spec / seconds, 1),
                                  "input_mb_per_s": round(plan.input_bytes / 1e6 / seconds, 2)}
    # the merge writer is this process: its peak must not grow with N_spec (workers are measured apart)
    report.driver_peak_rss_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if not opts.keep_scratch:
        remove_trees([shard_path(scratch, s) for s in plan.shards])
        remove_tree(scratch)
    log.info("published %s: %d spectra x %d pixels", out, plan.n_spec, plan.n_pix)
    if report.cluster and report.cluster.get("job_logs"):
        log.info("SLURM job logs kept in %s", report.cluster["job_logs"])


CLUSTER_CLOSE_WAIT_S = 120  # a close that takes longer is left to the process's exit, with a warning


def _timed(fn: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        t0 = time.perf_counter()
        fn()
        return round(time.perf_counter() - t0, 4)

    return run


def _cluster_closed(closer: Background) -> float | None:
    """Wait, bounded, for the cluster's close begun beside the merge; its own seconds. A close that fails
    or hangs costs the run nothing (every result is in), so it is a warning, not an error."""
    if not closer.stopped_within(CLUSTER_CLOSE_WAIT_S):
        log.warning("the Dask cluster did not close within %g s; leaving it to this process's exit. It is at:\n%s",
                    CLUSTER_CLOSE_WAIT_S, closer.stack())
        return None
    try:
        return closer.result()
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("closing the Dask cluster failed (%s: %s); the store is not affected", type(exc).__name__, exc)
        return None


def write_shards(ex, plan: Plan, scans: FileTable, scratch: str, rules: HeaderRules, opts: IngestOptions,
                 report: RunReport, node_local: bool, tmp: str) -> tuple[Plan, FileTable, list[dict], StreamedMerge]:
    """One task per shard, started longest first, and the merge of each into `tmp` as it is written
    (StreamedMerge; returned, for the caller to finish). The shard tasks are where input data is read and
    verified. A file found damaged there fails the run (every such file named; the shards that finished
    are kept for the rerun) or, under --on-bad-file skip, is left out: the merge so far is dropped, the
    plan is made again without the file, and the shards are written again; those whose key did not
    change (every shard ahead of the file's rows, if the layout stays the same) are reused as they stand.
    Each round leaves out at least one file, so it ends."""
    written: set[str] = set()  # shard stores this run wrote: reusing them is not resuming an earlier run
    mode = progress_mode(opts.progress)
    for round_no in range(len(scans) + 1):
        _describe_plan(plan, report)
        stale = sweep_scratch(scratch, keep={s.store_name for s in plan.shards})
        if stale and round_no == 0:
            log.info("removed %d stale or partial shard store(s) from %s", len(stale), scratch)
        merge_progress = Progress("merge", len(plan.shards), "shards", mode)  # its bar once the shards' is done
        merging = StreamedMerge(plan, [shard_path(scratch, s) for s in plan.shards], tmp,
                                link_chunks=not opts.keep_scratch, progress=merge_progress)
        # a disk error that outlived a task's retries, or one in this process's writes, is named (exit 6)
        try:
            with storage_errors(scratch, device_errors=True):
                if node_local:
                    results = _write_node_local(ex, plan, scratch, rules, opts, report, merging)
                else:
                    file_table = write_file_table(plan, scratch)  # the tasks read their files from it: a small graph
                    sweep_file_tables(scratch, keep=file_table)
                    progress = Progress("shard", len(plan.shards), "shards", mode)

                    def written_one(r: object, progress: Progress = progress, merging: StreamedMerge = merging) -> None:
                        merging.raise_error()  # a failed merge stops the run now, not once every shard is written
                        progress(r)
                        if isinstance(r, dict):
                            merging.shard_written(r["shard"])

                    results = ex.map(write_shard, plan.shards, plan.context(file_table), scratch, rules, opts.strict,
                                     name=f"shard-{plan.fingerprint}", retries=2, on_result=written_one,
                                     keep_errors=(BadFileError, BadFilesError),
                                     first=longest_first(plan.shards, plan.n_pix))
        except BaseException:
            merging.abandon()
            raise
        bad = dict(_damaged(results))
        bad.update(split_file_damage([r for r in results if isinstance(r, dict)], opts.strict, all_written=not bad))
        if not bad:
            break
        merging.abandon()  # its rows are those of a plan that had the damaged file(s)
        if opts.on_bad_file != "skip":  # every damaged file named at once; the shards that finished are kept
            raise BadFilesError(sorted(bad.items()))
        for path, reason in sorted(bad.items()):
            log.warning("skipped %s (found while reading its data): %s", path, reason)
        report.skipped_files += [{"path": p, "reason": r} for p, r in sorted(bad.items())]
        report.counts["files_bad"] = report.counts.get("files_bad", 0) + len(bad)
        report.counts["replans_after_bad_data"] = round_no + 1
        written.update(s.store_name for s, r in zip(plan.shards, results, strict=True)
                       if isinstance(r, dict) and not r.get("reused"))
        scans = scans.without_paths(bad)
        if not len(scans):
            raise InputError("every input file was left out as damaged (each is named above and in the run "
                             "report's skipped_files): nothing to publish")
        plan = make_plan(scans, opts.layout, mapping=opts.format.mapping)
    manifests = results
    report.counts["shards_total"] = len(manifests)
    report.counts["shards_reused"] = sum(1 for s, m in zip(plan.shards, manifests, strict=True)
                                         if m.get("reused") and s.store_name not in written)
    if report.counts["shards_reused"]:
        log.info("reused %d of %d shards from an earlier run", report.counts["shards_reused"], len(manifests))
    if report.counts.get("replans_after_bad_data"):
        kept = report.counts["shards_kept_after_bad_data"] = sum(1 for s in plan.shards if s.store_name in written)
        log.info("after leaving out damaged file(s), %d of %d shards were kept as written", kept, len(manifests))
    return plan, scans, manifests, merging


FETCH_WINDOW = 4  # node-local shards in flight to this process at once: memory stays a few shards' worth
LOST_SHARD_ROUNDS = 3  # a shard whose worker is lost before its fetch is recomputed elsewhere, this often


def choose_scratch_kind(ex, scratch: str, kind: str) -> bool:
    """True for node-local scratch. Shared needs every worker to see `scratch` (a probe file): asked for,
    a blind worker is refused; on auto, one makes the run node-local. In this process, or on a local
    cluster, scratch is this machine's: shared, unless node-local is asked for (tests, one big node)."""
    if kind == "shared":
        check_shared_scratch(ex, scratch)
        return False
    if not isinstance(ex, DaskExecutor):
        return False  # no workers: this process writes the shards
    if kind == "node-local":
        return True
    if ex.local:
        return False
    blind = blind_workers(ex, scratch)
    if blind:
        log.info("scratch %s is not visible from worker(s) %s: shards stay on each worker's own disk and are "
                 "fetched through Dask (--scratch-kind node-local)", scratch, ", ".join(blind))
    return bool(blind)


def _write_node_local(ex, plan: Plan, scratch: str, rules: HeaderRules, opts: IngestOptions,
                      report: RunReport, merging: StreamedMerge) -> list:
    """Shards on the workers' own disks: each task carries its segments (a worker may not see the file table)
    and returns the address of the worker that holds the store. Each store is fetched from that worker as
    soon as it is written, while other shards are still being written (a task pinned there, FETCH_WINDOW
    at a time, run from a second thread), checked against its manifest's crc32 and kept on this scratch,
    where the merge and a rerun find it like any shard. A shard whose worker is gone before its fetch is
    written again elsewhere. Shards already on this scratch (an earlier run's) are reused. Each kept store
    goes to `merging` as soon as it is in place."""
    results: list = [None] * len(plan.shards)
    if opts.restart:  # what an earlier run left on the workers' disks goes too, not only this scratch's
        _remove_node_shards(ex, scratch)
    for i, shard in enumerate(plan.shards):
        kept = load_manifest(shard_path(scratch, shard))
        if manifest_matches(kept, shard):
            results[i] = {**kept, "reused": True}
            merging.shard_written(shard.index)
    todo = [i for i, r in enumerate(results) if r is None]
    context = plan.context("")  # no file table: the segments travel with each task
    progress = Progress("shard", len(todo), "shards", progress_mode(opts.progress))
    fetch_progress = Progress("fetch", len(todo), "shards", progress_mode(opts.progress))
    for round_no in range(LOST_SHARD_ROUNDS + 1):
        if not todo:
            break
        if round_no == LOST_SHARD_ROUNDS:
            names = ", ".join(plan.shards[i].name for i in todo[:5]) + (", ..." if len(todo) > 5 else "")
            raise ShardError(f"{len(todo)} shard(s) ({names}) were lost {LOST_SHARD_ROUNDS} times before they could "
                             "be fetched (each time is logged above: workers dying, or a fetch failing on its worker); "
                             "the shards fetched so far are kept: rerun the same command")
        written, to_fetch, lost = _write_and_fetch(ex, plan, todo, round_no, context, scratch, rules, opts, results,
                                                   report, progress, fetch_progress, merging)
        for i, r in zip(todo, written, strict=True):
            if not isinstance(r, dict):
                results[i] = r  # damage: the caller names or skips the file
        for k, why in sorted(lost.items()):
            log.warning("%s: lost before it was fetched (%s); writing it again", plan.shards[to_fetch[k][0]].name,
                        why)
        todo = [to_fetch[k][0] for k in sorted(lost)]
        if todo:
            report.counts["shards_recomputed_lost"] = report.counts.get("shards_recomputed_lost", 0) + len(todo)
    _remove_node_shards(ex, scratch)  # every shard is safe on this scratch now: the workers' copies can go
    return results


def _write_and_fetch(ex, plan: Plan, todo: list[int], round_no: int, context: Plan, scratch: str, rules: HeaderRules,
                     opts: IngestOptions, results: list, report: RunReport, progress: Progress,
                     fetch_progress: Progress, merging: StreamedMerge
                     ) -> tuple[list, list[tuple[int, dict]], dict[int, str]]:
    """One round of node-local shards: the shard tasks of `todo` (this thread), and the fetch of each store
    as soon as its task returns (a second thread). Returns the tasks' results in `todo`'s order, the
    (shard position, task result) pairs in the order given to the fetch, and {k: why} for the k-th that
    were lost."""
    position = {shard.index: i for i, shard in enumerate(plan.shards)}
    to_fetch: list[tuple[int, dict]] = []
    feed, keeper = Feed(), FetchedShardKeeper(scratch)

    def written_one(r: object) -> None:  # this thread, as each shard task finishes
        fetcher.raise_error()  # a failed fetch or merge stops the run now, not once every shard is written
        merging.raise_error()
        progress(r)
        if isinstance(r, dict):
            to_fetch.append((position[r["shard"]], r))  # before the feed has it: the fold looks it up
            feed.put(plan.shards[position[r["shard"]]].store_name, r["worker"])

    def fetch_all() -> dict[int, str]:
        failpoint("fetch-start")
        return ex.map_on(read_node_shard, feed, scratch, name=f"fetch-{plan.fingerprint}-{round_no}",
                         window=FETCH_WINDOW,
                         fold=_fetched_shard_fold(plan, keeper, to_fetch, results, report, fetch_progress,
                                                  merging))

    fetcher = Background(fetch_all, name="shardmerge-fetch")
    try:
        written = ex.map(write_shard, [replace(plan.shards[i], segments=plan.segments(plan.shards[i])) for i in todo],
                         context, scratch, rules, opts.strict, True, name=f"shard-{plan.fingerprint}-{round_no}",
                         retries=2, on_result=written_one, keep_errors=(BadFileError, BadFilesError),
                         first=longest_first([plan.shards[i] for i in todo], plan.n_pix))
        failpoint("shards-written")
        feed.close()
        lost = fetcher.result()
    except BaseException:
        feed.close(cancel=True)  # what is fetched stays kept; the rest is fetched by the rerun
        fetcher.result(raise_error=False)
        keeper.close(raise_error=False)
        raise
    keeper.close()  # every store handed to it is in place before the merge or the next round
    return written, to_fetch, lost


def _remove_node_shards(ex, scratch: str) -> None:
    try:
        removed = ex.run_on_workers(remove_node_scratch, scratch)
        log.info("removed %d node-local shard store(s) from %d worker(s)", sum(removed.values()), len(removed))
    except Exception as exc:  # noqa: BLE001 - cleanup only; the run's outcome does not depend on it
        log.warning("could not remove node-local shard stores (%s: %s); they are in each worker's "
                    "SHARDMERGE_NODE_SCRATCH or TMPDIR", type(exc).__name__, exc)


def _fetched_shard_fold(plan: Plan, keeper: FetchedShardKeeper, to_fetch: list[tuple[int, dict]], results: list,
                        report: RunReport, progress: Progress, merging: StreamedMerge):
    """The fold of a fetch round: called with the k-th fetched store's files as they arrive, or None if lost.
    What counts a shard as fetched runs once the keeper has it in place (on the keeper's thread; this
    thread reads `results` and `report` only after keeper.close())."""

    def kept(i: int, reused: bool, size: int, manifest: dict) -> None:
        report.bytes["fetched"] = report.bytes.get("fetched", 0) + size
        report.counts["shards_fetched"] = report.counts.get("shards_fetched", 0) + 1
        results[i] = {**manifest, "reused": reused}
        progress(manifest)
        merging.shard_written(plan.shards[i].index)
        failpoint("shard-fetched")

    def fold(k: int, files: Mapping | None) -> None:
        i, written = to_fetch[k]
        if files is None:  # lost: results[i] stays None until a later round writes it again
            return
        keeper.keep(plan.shards[i], files, partial(kept, i, written["reused"], sum(map(len, files.values()))))

    return fold


def split_file_damage(manifests: Sequence[dict], strict: frozenset[str], all_written: bool = True
                      ) -> dict[str, str]:
    """The files split between shards, verified from the parts of their sums that their shards recorded
    (`splitsums`): each damaged one, with its reason. A file's accepted oddities join the notes of the
    manifest holding its first spectra, as a whole read's would. With every shard written (`all_written`),
    a file not covered by its shards' parts (shards an earlier version wrote, which verified it whole
    instead) is read and verified here; else it waits for the round that writes its missing shards."""
    parts: dict[str, list[dict]] = {}
    holder: dict[str, dict] = {}
    for m in manifests:
        for path, entry in m.get("split_sums", {}).items():
            parts.setdefault(path, []).append(entry)
            if entry["first"] == 0 or path not in holder:
                holder[path] = m
    bad = {}
    for path, entries in sorted(parts.items()):
        if covers_file(entries):
            reason, notes = judge_split_file(path, entries, strict)
        elif all_written:
            reason, notes = _verified_whole(path, strict)
        else:
            continue
        if reason:
            bad[path] = reason
        elif notes:
            kept = holder[path].setdefault("notes", {}).setdefault(path, [])
            kept += [n for n in notes if n not in kept]
    return bad


def _verified_whole(path: str, strict: frozenset[str]) -> tuple[str | None, list[str]]:
    from .readers.fitsio import whole_file_verdict  # astropy: imported by this process only when needed

    return whole_file_verdict(path, strict)


def _damaged(results: Sequence) -> Iterator[tuple[str, str]]:
    for r in results:
        if isinstance(r, BadFileError):
            yield r.path, r.reason
        elif isinstance(r, BadFilesError):
            yield from r.bad


def _merge_gate_publish(opts: IngestOptions, plan: Plan, n_inputs: int, notes: dict[str, list[str]], tmp: str,
                        out: str, report: RunReport, merging: StreamedMerge) -> None:
    provenance = provenance_attrs(n_inputs=n_inputs, input_bytes=plan.input_bytes,
                                  command=list(opts.command) or None)
    provenance.update(announced_spectra(plan))  # what the sources announced: validate's check 18
    if plan.mapping:  # which mapping described the inputs: its path and the hash of its content
        provenance["mapping_file"], provenance["mapping_sha256"] = plan.mapping
    odd = oddity_provenance(notes)
    if odd:
        provenance["input_oddities"] = odd
    with report.phase("merge"):  # what is left of it once every shard is written
        merged = merging.finish(provenance)
        report.merge = merged.stats()
    with report.phase("validate"), stage("gate"):
        sync_tree(tmp)  # the gate's verdict must hold for what is on disk, not in the page cache
        failpoint("gate-start")
        results = run_checks(tmp, Expectation(plan.n_spec, plan.n_pix, merged.checksums, merged.flux_rows,
                                              merged.linked, units_read=frozenset(plan.flux_units)))
        report.gate_flux_rows = "shard statistics + sampled decode" if merged.flux_rows else "full decode"
        report.checks = {r.name: r.status for r in results}  # every check of validate.CHECKS, in number order
        report.checks_summary = summary_line(results)
        failed = failures(results)
        if failed:
            raise GateError(tmp, failed)  # its message lists every failed check
        log.info("gate: %s on %s", report.checks_summary, tmp)
    report.bytes["store"] = sum(size for size, _ in merged.checksums.values())  # the merge listed every file
    report.counts["store_files"] = len(merged.checksums)
    with report.phase("publish"):
        new_store = os.stat(tmp)
        try:
            report.publish_method = publish(tmp, out)
        except BaseException:
            if _is_in_place(out, new_store):  # stopped after the rename that made it OUT: it is published
                report.status = "published"
            raise
        report.status = "published"
        failpoint("published")


def _is_in_place(out: str, new_store: os.stat_result) -> bool:
    """OUT is the folder that was `tmp` (a rename keeps the inode)."""
    try:
        st = os.stat(out)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (new_store.st_dev, new_store.st_ino)


def _describe_plan(plan: Plan, report: RunReport) -> None:
    report.plan = describe(plan)
    report.counts["files_ingested"] = sum(n for _, n in plan.files_per_format)
    report.counts["spectra"] = plan.n_spec
    report.bytes["input"] = plan.input_bytes
    log.info("plan: %d spectra x %d pixels from %d files, %d shard(s) of %d rows, chunks %s",
             plan.n_spec, plan.n_pix, report.counts["files_ingested"], len(plan.shards), plan.shard_rows,
             plan.chunks_2d)
    for warning in plan.warnings:  # each round plans again: say each warning once
        if warning not in report.warnings:
            log.warning("%s", warning)
            report.warnings.append(warning)
    if plan.store_files > plan.max_store_files:
        log.warning("the store will hold %d files, more than --max-store-files %d: %s", plan.store_files,
                    plan.max_store_files, "Zarr v2 has no sharding (--zarr-format 3 has)" if plan.zarr_format == 2
                    else "a larger Zarr shard would make a shard task's block pass its memory bound, or "
                         "--zarr-shard-rows / --shard-rows fixed it")
