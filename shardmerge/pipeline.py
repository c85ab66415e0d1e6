"""The main job, stage by stage: scan → plan → shards → merge → gate → publish.

Each stage lives in its own module (shardmerge/stages/, plan.py) and returns a typed result; this one only
sequences them, times them, hands their results to the RunReport and guarantees the failure rule: any
failure after `<OUT>.tmp` exists deletes it, and OUT is touched only by the publish."""

from __future__ import annotations

import json
import logging
import os
import resource
import stat
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from .beside import ReportPathError, check_report_not_input, check_report_path, check_scratch, scratch_root
from .config import ClusterRequest, FormatChoice, LayoutRequest
from .discover import discover_inputs
from .durable import remove_tree, remove_trees, storage_errors
from .errors import InputError, ShardmergeError, TargetExistsError
from .executors import ServedTheCluster, choose_cluster, executor, job_log_dir, process_role
from .headers import HeaderRules, load_header_rules
from .jobs import ScanJob
from .merge import StreamedMerge
from .plan import Plan, describe
from .progress import planned, progress_mode, run_display
from .publish import TargetLock, check_target, remove_own_tmp, sweep_leftovers, tmp_path
from .report import RunReport
from .scratch import scratch_dir, sweep_scratch
from .shardstore import shard_path
from .stages.finish import finish_merge, gate, publish_store, store_provenance
from .stages.notes import input_notes, oddity_provenance
from .stages.scan import SCAN_BATCH_FILES, SCAN_BATCH_MAX_FILES, scan_batch_files, scan_inputs
from .stages.shards import ReplanRules, ShardsResult, ShardTally, plan_leaving_out_orphans, write_shards
from .stages.transport import ShardWork, choose_transport
from .stages.verdicts import split_file_damage
from .threads import Background

log = logging.getLogger("shardmerge")

__all__ = ["SCAN_BATCH_FILES", "SCAN_BATCH_MAX_FILES", "IngestOptions", "ingest", "plan_inputs", "scan_batch_files",
           "scratch_dir", "split_file_damage", "sweep_scratch"]


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


def plan_inputs(inputs: Sequence[str], *, request: LayoutRequest, choice: FormatChoice | None = None,  # noqa: PLR0913 - keyword-only options of `shardmerge plan`
                rules: HeaderRules | None = None, cluster: ClusterRequest | None = None,
                on_bad_file: str = "fail", report: RunReport | None = None,
                strict: frozenset[str] = frozenset()) -> Plan:
    """Scan and plan without writing anything (`shardmerge plan`)."""
    choice = choice or FormatChoice()
    report = report or RunReport()
    job = ScanJob(choice=choice, rules=rules or load_header_rules(), strict=strict)
    paths = discover_inputs(inputs)
    cluster = cluster or ClusterRequest()
    with process_role(cluster) as runner, executor(cluster, runner) as ex:
        scanned = scan_inputs(paths, job, ex)
        report.record_scan(scanned)
        scans = scanned.check(on_bad_file)
    report_oddities(report, input_notes(scans))  # the headers' only: data units are checked by an ingest
    skipped: list[dict[str, str]] = []
    plan, _ = plan_leaving_out_orphans(scans, request, choice.mapping, on_bad_file, skipped)
    report.skipped_files += skipped
    return plan


def ingest(opts: IngestOptions, report: RunReport | None = None,
           interrupted: Callable[[RunReport], str] | None = None) -> RunReport:
    """Run one ingest. `report`: filled in as the run goes, for a caller that must know, when the run is
    interrupted, how far it got (status "published" once OUT is the new store, even if interrupted after).
    `interrupted(report)`: the line that says what an interrupt left (the report's `error`, as shown)."""
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
    except TargetExistsError as exc:
        report.status, report.error = _failed(report), str(exc)
        if opts.report_path and report_of_store(opts.report_path, out):  # the same command run again
            is_the_run = False
            log.warning("kept %s: it is the report of the store at %s, which this refused run did not touch",
                        opts.report_path, out)
        raise
    except ShardmergeError as exc:
        report.status, report.error = _failed(report), str(exc)
        raise
    except ServedTheCluster:
        is_the_run = False  # a process that served the cluster (a rank of an in-allocation runner)
        raise
    except BaseException as exc:
        report.status = _failed(report)
        if isinstance(exc, KeyboardInterrupt) and interrupted is not None:
            report.error = interrupted(report)
        else:
            report.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise
    finally:
        if opts.report_path and is_the_run:
            try:
                report.write(opts.report_path)
            except OSError as exc:  # never let the report hide the run's own outcome
                log.warning("could not write the run report %s: %s", opts.report_path, exc.strerror)
    return report


def report_of_store(path: str, out: str) -> bool:
    """`path` holds the run report of a run that published the store now at `out` (a small JSON file)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 64 << 20:  # never open a FIFO: it would block
            return False
        with open(path, encoding="utf-8") as f:
            written = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(written, dict) and written.get("status") == "published" and written.get("output") == out


def _failed(report: RunReport) -> str:
    """A run that stops once its store is published (Ctrl-C while scratch is removed) still published it."""
    return "published" if report.status == "published" else "failed"


def _ingest(opts: IngestOptions, out: str, report: RunReport) -> None:
    if opts.on_bad_file not in ("fail", "skip"):
        raise InputError(f"--on-bad-file must be 'fail' or 'skip', not {opts.on_bad_file!r}")
    check_target(out, opts.overwrite)  # fail fast, before the lock and any work
    rules = load_header_rules(opts.header_rules)
    with process_role(opts.cluster) as runner, run_display(progress_mode(opts.progress)):
        _ingest_locked(opts, out, report, rules, runner)  # in an srun, only the client rank gets here


def _ingest_locked(opts: IngestOptions, out: str, report: RunReport, rules: HeaderRules, runner: object) -> None:
    # here, not before process_role: only the rank that runs the ingest writes a report and uses scratch
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
        run = _Run(opts, out, scratch, rules, report)
        run.stages(runner, paths)
    seconds = sum(report.phases.values())
    report.throughput = {"spectra_per_s": round(run.plan.n_spec / seconds, 1),
                         "input_mb_per_s": round(run.plan.input_bytes / 1e6 / seconds, 2)}
    # the merge writer is this process: its peak must not grow with N_spec (workers are measured apart)
    report.driver_peak_rss_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if not opts.keep_scratch:
        remove_trees([shard_path(scratch, s) for s in run.plan.shards])
        remove_tree(scratch)
    log.info("published %s: %d spectra x %d pixels", out, run.plan.n_spec, run.plan.n_pix)
    if report.cluster and report.cluster.get("job_logs"):
        log.info("%s job logs kept in %s", report.cluster.get("batch_system", "batch"), report.cluster["job_logs"])


class _Run:
    """One ingest under the target's lock, its stages in order (`stages`); on any failure `<OUT>.tmp` goes."""

    def __init__(self, opts: IngestOptions, out: str, scratch: str, rules: HeaderRules, report: RunReport) -> None:
        self.opts, self.out, self.scratch, self.rules, self.report = opts, out, scratch, rules, report
        self.tmp = tmp_path(out)
        self.mode = progress_mode(opts.progress)
        self.merging: StreamedMerge | None = None  # set once every shard is written; the merge goes on
        self.closer: Background | None = None  # the cluster's close, beside the merge once every shard is written
        self.plan: Plan

    def stages(self, runner: object, paths: Sequence[str]) -> None:
        opts, report = self.opts, self.report
        try:
            starting = time.perf_counter()
            with ExitStack() as cluster:  # closed here if anything fails before every shard is written
                ex = cluster.enter_context(executor(choose_cluster(opts.cluster, paths), runner,
                                                    log_dir=job_log_dir(opts.cluster.job_logs, opts.out)))
                report.phase_since("cluster_start", starting)
                shards = self.scan_plan_shards(ex, paths)
                # Every shard is durable on scratch: the workers are done, and stopping them (0.1-0.5 s
                # for a local cluster, cancelling batch jobs) need not hold up the merge's tail or the gate.
                self.closer = Background(_timed(cluster.pop_all().close), name="shardmerge-cluster-close")
            self.merge_gate_publish(shards)
            waiting = time.perf_counter()
            close_s = _cluster_closed(self.closer)
            report.phase_since("cluster_close", waiting)  # what the close added to the run: its wait here
            if ex.runs_on_workers:  # (in this process there was nothing to close)
                report.cluster["close_s"] = close_s
        except BaseException as exc:
            self.failed(exc)
            raise

    def scan_plan_shards(self, ex, paths: Sequence[str]) -> ShardsResult:
        opts, report = self.opts, self.report
        transport = choose_transport(ex, self.scratch, opts.scratch_kind, opts.restart)
        report.record_cluster(ex, transport.kind)
        with report.phase("scan"):
            scanned = scan_inputs(paths, ScanJob(choice=opts.format, rules=self.rules, strict=opts.strict), ex,
                                  self.mode)
            report.record_scan(scanned)
            scans = scanned.check(opts.on_bad_file)
        tally = ShardTally()
        with report.phase("plan"):
            plan, scans = plan_leaving_out_orphans(scans, opts.layout, opts.format.mapping, opts.on_bad_file,
                                                   tally.skipped)
        planned(plan.input_bytes, plan.estimated_bytes())  # the overall bar's split of what is left
        work = ShardWork(ex, self.scratch, self.rules, opts.strict, self.mode)
        replan = ReplanRules(opts.layout, opts.format.mapping, opts.on_bad_file, link_chunks=not opts.keep_scratch)
        with report.phase("shard"):  # the merge into tmp runs beside it, shard by shard
            try:
                shards = write_shards(work, transport, replan, plan, scans, self.tmp, tally, self._describe_plan)
            finally:
                report.record_shards(tally, transport)
        self.merging, self.plan = shards.merging, shards.plan
        return shards

    def merge_gate_publish(self, shards: ShardsResult) -> None:
        opts, report, plan, tmp = self.opts, self.report, shards.plan, self.tmp
        notes = input_notes(shards.scans, shards.manifests)
        report_oddities(report, notes)
        # sizes from the manifests, not a walk of ~15 files per shard (a metadata storm on a parallel filesystem)
        report.bytes["scratch"] = sum(size for m in shards.manifests for size, _ in m["files"].values())
        report.bytes["inflated"] = sum(m.get("inflated_bytes", 0) for m in shards.manifests if not m.get("reused"))
        with storage_errors(tmp, device_errors=True):
            with report.phase("merge"):  # what is left of it once every shard is written
                merged = finish_merge(shards.merging, store_provenance(plan, len(shards.scans), notes, opts.command))
                report.merge = merged.stats()
            with report.phase("validate"):
                verdict = gate(tmp, plan, merged)
                report.record_gate(verdict)
                verdict.check(tmp)
            report.bytes["store"] = sum(size for size, _ in merged.checksums.values())  # every file the merge wrote
            report.counts["store_files"] = len(merged.checksums)
            with report.phase("publish"):
                publish_store(tmp, self.out, report.record_publish)

    def failed(self, exc: BaseException) -> None:
        if self.merging is not None:  # (write_shards drops its own merge when it fails)
            self.merging.abandon()
        # (an interrupt: the caller says what was kept, in one line)
        if self.merging is not None and self.report.status != "published" and not isinstance(exc, KeyboardInterrupt):
            log.error("removed %s; nothing was published at %s", self.tmp, self.out)
            log.error("shard stores kept in %s: rerunning the same command reuses them (--restart discards "
                      "them)", self.scratch)
        remove_own_tmp(self.tmp)  # (anything else there appeared since the sweep: not ours to delete)
        if self.closer is not None:
            _cluster_closed(self.closer)

    def _describe_plan(self, plan: Plan) -> None:
        """Each round's plan, in the report and the log (its warnings once)."""
        files = sum(n for _, n in plan.files_per_format)
        new_warnings = self.report.record_plan(describe(plan), files, plan.n_spec, plan.input_bytes)
        log.info("plan: %d spectra x %d pixels from %d files, %d shard(s) of %d rows, chunks %s",
                 plan.n_spec, plan.n_pix, files, len(plan.shards), plan.shard_rows, plan.chunks_2d)
        for warning in new_warnings:  # each round plans again: say each warning once
            log.warning("%s", warning)
        if plan.store_files > plan.max_store_files:
            log.warning("the store will hold %d files, more than --max-store-files %d: %s", plan.store_files,
                        plan.max_store_files, "Zarr v2 has no sharding (--zarr-format 3 has)" if plan.zarr_format == 2
                        else "a larger Zarr shard would make a shard task's block pass its memory bound, or "
                             "--zarr-shard-rows / --shard-rows fixed it")


def report_oddities(report: RunReport, notes: dict[str, list[str]]) -> None:
    """What was odd but accepted, per file: the scan's (headers) and the shard tasks' (data: checksums)."""
    if not notes:
        return
    report.record_oddities(notes)
    per_kind = ", ".join(f"{k}: {v['files']}" for k, v in sorted(oddity_provenance(notes).items()))
    log.warning("accepted %d file(s) with known oddities (%s); the run report lists them, --strict KIND "
                "refuses them", len(notes), per_kind)


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
