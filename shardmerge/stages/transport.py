"""How shard stores reach the driver's scratch: one interface (ShardTransport), two implementations.

SharedScratch: every worker sees the scratch folder, writes its shard there, and the tasks read their files
from the plan's file table on it. NodeLocalFetch: the workers cannot see it; each writes its shard on its own
disk and the driver fetches the store through Dask as soon as it is written, checks it, and keeps it on
scratch, where the merge and a rerun find it like any shard."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Protocol

from ..errors import BadFileError, BadFilesError, ShardError
from ..executors import Feed, blind_workers, check_shared_scratch
from ..failpoints import failpoint
from ..headers import HeaderRules
from ..jobs import NODE_LOCAL, SHARED, ShardJob
from ..merge import StreamedMerge
from ..plan import Plan, longest_first
from ..progress import Progress
from ..shardstore import (
    FetchedShardKeeper,
    load_manifest,
    manifest_matches,
    read_node_shard,
    remove_node_scratch,
    shard_path,
    sweep_file_tables,
    write_file_table,
)
from ..tasks import write_shard
from ..threads import Background

log = logging.getLogger("shardmerge")

FETCH_WINDOW = 4  # node-local shards in flight to this process at once: memory stays a few shards' worth
LOST_SHARD_ROUNDS = 3  # a shard whose worker is lost before its fetch is recomputed elsewhere, this often
TASK_RETRIES = 2  # a shard task's plain errors (a flaky disk or network) are retried this often
KEPT_ERRORS = (BadFileError, BadFilesError)  # a task's damaged input is its result: the round names them all


@dataclass(frozen=True)
class ShardWork:
    """What every round of shard tasks shares: where they run, where the stores go, and how files are read."""

    ex: object
    scratch: str
    rules: HeaderRules
    strict: frozenset[str]
    progress_to: str  # progress.progress_mode


class ShardTransport(Protocol):
    kind: str  # jobs.SHARED or jobs.NODE_LOCAL: the run report's scratch_kind

    def write(self, work: ShardWork, plan: Plan, merging: StreamedMerge) -> list:
        """Write (or reuse) every shard of `plan` onto the driver's scratch, each handed to `merging` once it
        is there; the tasks' results in shard order (a manifest, or the damage a task found)."""


class SharedScratch:
    """Shards written straight onto the shared scratch; each task reads its files from the file table there."""

    kind = SHARED

    def write(self, work: ShardWork, plan: Plan, merging: StreamedMerge) -> list:
        file_table = write_file_table(plan, work.scratch)  # the tasks read their files from it: a small graph
        sweep_file_tables(work.scratch, keep=file_table)
        progress = Progress("shard", len(plan.shards), "shards", work.progress_to)
        # only where every worker is on this machine: the boot id alone does not tell two clones of one VM
        # image apart, and a file of another node's page cache is read, to check the disk it came from
        on_this_host = work.ex.local

        def written_one(r: object) -> None:
            merging.raise_error()  # a failed merge stops the run now, not once every shard is written
            progress(r)
            if isinstance(r, dict):
                merging.shard_written(r["shard"], written_here=on_this_host and r.get("reused") is False)

        job = ShardJob(layout=plan.context(file_table), scratch=work.scratch, rules=work.rules, strict=work.strict)
        return work.ex.map(partial(write_shard, job=job), plan.shards, name=f"shard-{plan.fingerprint}",
                           retries=TASK_RETRIES, on_result=written_one, keep_errors=KEPT_ERRORS,
                           first=longest_first(plan.shards, plan.n_pix))


class NodeLocalFetch:
    """Shards on the workers' own disks: each task carries its segments (a worker may not see the file table)
    and returns the address of the worker that holds the store. Each store is fetched from that worker as
    soon as it is written, while other shards are still being written (a task pinned there, FETCH_WINDOW
    at a time, run from a second thread), checked against its manifest's crc32 and kept on this scratch.
    A shard whose worker is gone before its fetch is written again elsewhere. Shards already on this
    scratch (an earlier run's) are reused."""

    kind = NODE_LOCAL

    def __init__(self, restart: bool = False) -> None:
        self.restart = restart  # what an earlier run left on the workers' disks goes too
        self.fetched = 0  # shards fetched to this scratch, and their bytes
        self.fetched_bytes = 0
        self.recomputed_lost = 0  # shard tasks run again because their worker was lost before the fetch

    def write(self, work: ShardWork, plan: Plan, merging: StreamedMerge) -> list:
        results: list = [None] * len(plan.shards)
        if self.restart:
            _remove_node_shards(work)
        for i, shard in enumerate(plan.shards):
            kept = load_manifest(shard_path(work.scratch, shard))
            if manifest_matches(kept, shard):
                results[i] = {**kept, "reused": True}
                merging.shard_written(shard.index)
        todo = [i for i, r in enumerate(results) if r is None]
        rounds = _FetchRounds(self, work, plan, merging, results, len(todo))
        for round_no in range(LOST_SHARD_ROUNDS + 1):
            if not todo:
                break
            if round_no == LOST_SHARD_ROUNDS:
                names = ", ".join(plan.shards[i].name for i in todo[:5]) + (", ..." if len(todo) > 5 else "")
                raise ShardError(f"{len(todo)} shard(s) ({names}) were lost {LOST_SHARD_ROUNDS} times before they "
                                 "could be fetched (each time is logged above: workers dying, or a fetch failing on "
                                 "its worker); the shards fetched so far are kept: rerun the same command")
            todo = rounds.run(todo, round_no)
            self.recomputed_lost += len(todo)
        _remove_node_shards(work)  # every shard is safe on this scratch now: the workers' copies can go
        return results


class _FetchRounds:
    """The rounds of one node-local write: each writes the shards of `todo` (this thread) and fetches each
    store as soon as its task returns (a second thread); returns the shards lost before their fetch."""

    def __init__(self, transport: NodeLocalFetch, work: ShardWork, plan: Plan, merging: StreamedMerge,
                 results: list, n_todo: int) -> None:
        self.transport, self.work, self.plan, self.merging, self.results = transport, work, plan, merging, results
        self.progress = Progress("shard", n_todo, "shards", work.progress_to)
        self.fetch_progress = Progress("fetch", n_todo, "shards", work.progress_to)
        self.position = {shard.index: i for i, shard in enumerate(plan.shards)}
        # no file table: the segments travel with each task
        self.job = ShardJob(layout=plan.context(""), scratch=work.scratch, rules=work.rules, strict=work.strict,
                            transport=NODE_LOCAL)

    def run(self, todo: list[int], round_no: int) -> list[int]:
        plan, results = self.plan, self.results
        to_fetch: list[tuple[int, dict]] = []  # (shard position, task result), in the order given to the fetch
        feed, keeper = Feed(), FetchedShardKeeper(self.work.scratch)
        fetcher = Background(partial(self._fetch_all, feed, keeper, to_fetch, round_no), name="shardmerge-fetch")
        try:
            written = self.work.ex.map(
                partial(write_shard, job=self.job),
                [replace(plan.shards[i], segments=plan.segments(plan.shards[i])) for i in todo],
                name=f"shard-{plan.fingerprint}-{round_no}", retries=TASK_RETRIES,
                on_result=partial(self._written_one, fetcher, feed, to_fetch), keep_errors=KEPT_ERRORS,
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
        for i, r in zip(todo, written, strict=True):
            if not isinstance(r, dict):
                results[i] = r  # damage: the caller names or skips the file
        for k, why in sorted(lost.items()):
            log.warning("%s: lost before it was fetched (%s); writing it again", plan.shards[to_fetch[k][0]].name,
                        why)
        return [to_fetch[k][0] for k in sorted(lost)]

    def _written_one(self, fetcher: Background, feed: Feed, to_fetch: list, r: object) -> None:
        """This thread, as each shard task finishes."""
        fetcher.raise_error()  # a failed fetch or merge stops the run now, not once every shard is written
        self.merging.raise_error()
        self.progress(r)
        if isinstance(r, dict):
            i = self.position[r["shard"]]
            to_fetch.append((i, r))  # before the feed has it: the fold looks it up
            feed.put(self.plan.shards[i].store_name, r["worker"])

    def _fetch_all(self, feed: Feed, keeper: FetchedShardKeeper, to_fetch: list, round_no: int) -> dict[int, str]:
        failpoint("fetch-start")
        return self.work.ex.map_on(read_node_shard, feed, self.work.scratch,
                                   name=f"fetch-{self.plan.fingerprint}-{round_no}", window=FETCH_WINDOW,
                                   fold=partial(self._fetched, keeper, to_fetch))

    def _fetched(self, keeper: FetchedShardKeeper, to_fetch: list, k: int, files: Mapping | None) -> None:
        """The fold of a fetch round: the k-th fetched store's files as they arrive, or None if lost (then
        its result stays None until a later round writes it again). What counts a shard as fetched runs once
        the keeper has it in place (on the keeper's thread; `results` and the tallies are read only after
        keeper.close())."""
        i, written = to_fetch[k]
        if files is not None:
            keeper.keep(self.plan.shards[i], files,
                        partial(self._kept, i, written["reused"], sum(map(len, files.values()))))

    def _kept(self, i: int, reused: bool, size: int, manifest: dict) -> None:
        self.transport.fetched_bytes += size
        self.transport.fetched += 1
        self.results[i] = {**manifest, "reused": reused}
        self.fetch_progress(manifest)
        self.merging.shard_written(self.plan.shards[i].index, written_here=True)  # by the keeper, in this run
        failpoint("shard-fetched")


def _remove_node_shards(work: ShardWork) -> None:
    try:
        removed = work.ex.run_on_workers(remove_node_scratch, work.scratch)
        log.info("removed %d node-local shard store(s) from %d worker(s)", sum(removed.values()), len(removed))
    except Exception as exc:  # noqa: BLE001 - cleanup only; the run's outcome does not depend on it
        log.warning("could not remove node-local shard stores (%s: %s); they are in each worker's "
                    "SHARDMERGE_NODE_SCRATCH or TMPDIR", type(exc).__name__, exc)


def choose_transport(ex, scratch: str, kind: str, restart: bool = False) -> ShardTransport:
    """Node-local scratch or shared. Shared needs every worker to see `scratch` (a probe file): asked for,
    a blind worker is refused; on auto, one makes the run node-local. In this process, or on a local
    cluster, scratch is this machine's: shared, unless node-local is asked for (tests, one big node)."""
    if kind == "shared":
        check_shared_scratch(ex, scratch)
        return SharedScratch()
    if not ex.runs_on_workers:
        return SharedScratch()  # no workers: this process writes the shards
    if kind == "node-local":
        return NodeLocalFetch(restart)
    if ex.local:
        return SharedScratch()
    blind = blind_workers(ex, scratch)
    if blind:
        log.info("scratch %s is not visible from worker(s) %s: shards stay on each worker's own disk and are "
                 "fetched through Dask (--scratch-kind node-local)", scratch, ", ".join(blind))
        return NodeLocalFetch(restart)
    return SharedScratch()
