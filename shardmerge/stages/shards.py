"""Stage 3 on the driver: one task per shard, started longest first, over a transport (transport.py), and
the merge of each into `<OUT>.tmp` as it arrives (StreamedMerge); the re-plan after damaged files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import LayoutRequest
from ..durable import storage_errors
from ..errors import BadFilesError, InputError, OrphanCompanionsError
from ..filetable import FileTable
from ..merge import StreamedMerge
from ..plan import Plan, make_plan
from ..progress import Progress
from ..scratch import sweep_scratch
from ..shardstore import shard_path
from .transport import ShardTransport, ShardWork
from .verdicts import damaged_files

log = logging.getLogger("shardmerge")


@dataclass(frozen=True)
class ReplanRules:
    """How the stage plans again after damaged files: the layout asked for, the --mapping file, and the
    --on-bad-file policy; `link_chunks`: the merge may hard-link chunks (scratch is not kept)."""

    layout: LayoutRequest
    mapping: tuple[str, ...]
    on_bad_file: str
    link_chunks: bool


@dataclass
class ShardTally:
    """What the shard stage did, filled in as its rounds go (the run report reads it even if one fails)."""

    skipped: list[dict[str, str]] = field(default_factory=list)  # files left out as damaged, and why
    replans: int = 0  # rounds planned again after damaged files
    total: int | None = None  # set once every shard is written
    reused: int | None = None  # of an earlier run
    kept_after_bad: int | None = None  # after a re-plan: shards this run wrote that the last plan kept


@dataclass(frozen=True)
class ShardsResult:
    plan: Plan  # the last round's
    scans: FileTable  # without the files left out
    manifests: list[dict]  # in shard order
    merging: StreamedMerge  # every shard handed to it: the caller finishes it


def write_shards(  # noqa: PLR0913 - the stage's inputs, each one typed value (work, transport, rules, ...)
        work: ShardWork, transport: ShardTransport, rules: ReplanRules, plan: Plan, scans: FileTable,
        tmp: str, tally: ShardTally, on_plan: Callable[[Plan], None]) -> ShardsResult:
    """Every shard of `plan` written (or reused) and handed to a merge into `tmp` as it arrives. The shard
    tasks are where input data is read and verified. A file found damaged there fails the run (every such
    file named; the shards that finished are kept for the rerun) or, under --on-bad-file skip, is left out:
    the merge so far is dropped, the plan is made again without the file (`on_plan` sees each plan), and
    the shards are written again; those whose key did not change (every shard ahead of the file's rows, if
    the layout stays the same) are reused as they stand. Each round leaves out at least one file, so it ends."""
    written: set[str] = set()  # shard stores this run wrote: reusing them is not resuming an earlier run
    for round_no in range(len(scans) + 1):
        on_plan(plan)
        stale = sweep_scratch(work.scratch, keep={s.store_name for s in plan.shards})
        if stale and round_no == 0:
            log.info("removed %d stale or partial shard store(s) from %s", len(stale), work.scratch)
        merging, results = _round(work, transport, rules, plan, tmp)
        bad = damaged_files(results, work.strict)
        if not bad:
            break
        merging.abandon()  # its rows are those of a plan that had the damaged file(s)
        scans = _leave_out(bad, rules, scans, tally, round_no)
        written.update(s.store_name for s, r in zip(plan.shards, results, strict=True)
                       if isinstance(r, dict) and not r.get("reused"))
        plan, scans = plan_leaving_out_orphans(scans, rules.layout, rules.mapping, rules.on_bad_file, tally.skipped)
    _tally_shards(tally, plan, results, written)
    return ShardsResult(plan, scans, results, merging)


def _round(work: ShardWork, transport: ShardTransport, rules: ReplanRules, plan: Plan, tmp: str
           ) -> tuple[StreamedMerge, list]:
    """One round: the merge into `tmp` started, every shard written over the transport beside it; the merge
    and the tasks' results in shard order. A failure drops the merge."""
    merge_progress = Progress("merge", len(plan.shards), "shards", work.progress_to)  # once the shards' is done
    merging = StreamedMerge(plan, [shard_path(work.scratch, s) for s in plan.shards], tmp,
                            link_chunks=rules.link_chunks, progress=merge_progress)
    try:  # a disk error that outlived a task's retries, or one in this process's writes, is named (exit 6)
        with storage_errors(work.scratch, device_errors=True):
            results = transport.write(work, plan, merging)
    except BaseException:
        merging.abandon()
        raise
    return merging, results


def _leave_out(bad: dict[str, str], rules: ReplanRules, scans: FileTable, tally: ShardTally, round_no: int
               ) -> FileTable:
    """Fail the run naming every damaged file at once (the shards that finished are kept), or, under
    --on-bad-file skip, the scans without them."""
    if rules.on_bad_file != "skip":
        raise BadFilesError(sorted(bad.items()))
    for path, reason in sorted(bad.items()):
        log.warning("skipped %s (found while reading its data): %s", path, reason)
    tally.skipped += [{"path": p, "reason": r} for p, r in sorted(bad.items())]
    tally.replans = round_no + 1
    return _without(scans, bad)


def _without(scans: FileTable, left_out: dict[str, str]) -> FileTable:
    """The scans without the files left out (each already logged and in the report), if any are left."""
    scans = scans.without_paths(left_out)
    if not len(scans):
        raise InputError("every input file was left out (each is named above and in the run report's "
                         "skipped_files): nothing to publish")
    return scans


def plan_leaving_out_orphans(scans: FileTable, layout: LayoutRequest, mapping: tuple[str, ...], on_bad_file: str,
                             skipped: list[dict[str, str]]) -> tuple[Plan, FileTable]:
    """make_plan, and under --on-bad-file skip the companions whose file was left out (an XIDL error file
    whose flux file is damaged) are left out with it, added to `skipped`: alone, each would be no spectrum
    of its own. Otherwise such a companion fails the plan, naming it."""
    try:
        return make_plan(scans, layout, mapping=mapping), scans
    except OrphanCompanionsError as exc:
        if on_bad_file != "skip":
            raise
        orphans = exc.orphans
    for path, why in sorted(orphans.items()):
        log.warning("skipped %s: %s", path, why)
        skipped.append({"path": path, "reason": why})
    scans = _without(scans, orphans)
    return make_plan(scans, layout, mapping=mapping), scans


def _tally_shards(tally: ShardTally, plan: Plan, manifests: list[dict], written: set[str]) -> None:
    tally.total = len(manifests)
    tally.reused = sum(1 for s, m in zip(plan.shards, manifests, strict=True)
                       if m.get("reused") and s.store_name not in written)
    if tally.reused:
        log.info("reused %d of %d shards from an earlier run", tally.reused, len(manifests))
    if tally.replans:
        tally.kept_after_bad = sum(1 for s in plan.shards if s.store_name in written)
        log.info("after leaving out damaged file(s), %d of %d shards were kept as written", tally.kept_after_bad,
                 len(manifests))
