"""Stages 4-6 on the driver: finish the merge into `<OUT>.tmp`, gate it (validate's checks on what is on
disk), publish it at OUT. Each returns what the run report shows of it."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from ..durable import sync_tree
from ..errors import GateError
from ..failpoints import failpoint
from ..merge import MergeResult, StreamedMerge
from ..plan import Plan
from ..progress import stage
from ..provenance import announced_spectra, provenance_attrs
from ..publish import publish
from ..validate import Expectation, failures, run_checks, summary_line
from .notes import oddity_provenance

log = logging.getLogger("shardmerge")


@dataclass(frozen=True)
class GateResult:
    checks: dict[str, str]  # check name → pass / fail / skipped, every check of validate.CHECKS, in number order
    summary: str  # "17/17 checks passed"
    flux_rows: str  # how check 6 saw the flux rows
    failed: tuple[str, ...]  # the failed checks' lines, as GateError lists them

    def check(self, tmp: str) -> None:
        """Refuse the store when a check failed (GateError lists every failed one)."""
        if self.failed:
            raise GateError(tmp, list(self.failed))
        log.info("gate: %s on %s", self.summary, tmp)


def store_provenance(plan: Plan, n_inputs: int, notes: dict[str, list[str]], command: tuple[str, ...]) -> dict:
    """The store's provenance attrs: the inputs, the command, the mapping file, the accepted oddities."""
    provenance = provenance_attrs(n_inputs=n_inputs, input_bytes=plan.input_bytes, command=list(command) or None)
    provenance.update(announced_spectra(plan))  # what check 18 holds the store's rows against
    if plan.mapping:  # which mapping described the inputs: its path and the hash of its content
        provenance["mapping_file"], provenance["mapping_sha256"] = plan.mapping
    odd = oddity_provenance(notes)
    if odd:
        provenance["input_oddities"] = odd
    return provenance


def finish_merge(merging: StreamedMerge, provenance: dict) -> MergeResult:
    """What is left of the merge once every shard is written."""
    return merging.finish(provenance)


def gate(tmp: str, plan: Plan, merged: MergeResult) -> GateResult:
    """Every check of validate on `tmp` as it is on disk (GateResult.check refuses a failed one)."""
    with stage("gate"):
        sync_tree(tmp)  # the gate's verdict must hold for what is on disk, not in the page cache
        failpoint("gate-start")
        results = run_checks(tmp, Expectation(plan.n_spec, plan.n_pix, merged.checksums, merged.flux_rows,
                                              merged.linked, units_read=frozenset(plan.flux_units)))
    return GateResult(checks={r.name: r.status for r in results}, summary=summary_line(results),
                      flux_rows="shard statistics + sampled decode" if merged.flux_rows else "full decode",
                      failed=tuple(failures(results)))


def publish_store(tmp: str, out: str, published: Callable[[str | None], None]) -> None:
    """Move `tmp` to OUT. `published(method)` is called once OUT is the new store: also (with None) when the
    publish is stopped after the rename that made `tmp` OUT, before its error goes on."""
    new_store = os.stat(tmp)
    try:
        method = publish(tmp, out)
    except BaseException:
        if _is_in_place(out, new_store):
            published(None)
        raise
    published(method)
    failpoint("published")


def _is_in_place(out: str, new_store: os.stat_result) -> bool:
    """OUT is the folder that was `tmp` (a rename keeps the inode)."""
    try:
        st = os.stat(out)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (new_store.st_dev, new_store.st_ino)
