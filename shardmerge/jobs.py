"""What a worker is told: one frozen, typed job description per map, shipped to each task by keyword.

The driver builds a job once, checked once (the hats-import shape: arguments as dataclasses), and every task
of the map gets the same object beside its own item (a batch of paths, one shard). Tasks take the job and
paths, never the client, and no loose positional options (`--strict`, the scratch kind) cross to workers.
Light on purpose: the plan, config and header rules are plain data, so the driver imports no readers."""

from __future__ import annotations

from dataclasses import dataclass

from .config import FormatChoice
from .headers import HeaderRules
from .plan import Plan

SHARED = "shared"  # transport: shard stores are written on a scratch every worker and the driver see
NODE_LOCAL = "node-local"  # transport: on each worker's own disk, fetched to the driver's scratch through Dask
TRANSPORTS = (SHARED, NODE_LOCAL)


@dataclass(frozen=True, kw_only=True)
class ScanJob:
    """What every scan task of one pass reads its files by: the format choice, header rules, strict policy,
    and whether to read each file's wavelength grids whole (`exact_grids`, the second pass)."""

    choice: FormatChoice | None
    rules: HeaderRules
    strict: frozenset[str] = frozenset()  # kinds of accepted oddity to refuse instead (readers/oddities.py)
    exact_grids: bool = False


@dataclass(frozen=True, kw_only=True)
class ShardJob:
    """What every shard task of one round writes its shard by: the store layout (the plan's context, without
    its shard and file lists), the scratch folder, the header rules, the strict policy and the transport."""

    layout: Plan  # Plan.context(): its file_table says where a shared-scratch task reads its files
    scratch: str
    rules: HeaderRules
    strict: frozenset[str] = frozenset()
    transport: str = SHARED

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, not {self.transport!r}")
        if self.layout.shards or self.layout.files is not None:
            raise ValueError("a shard job carries the plan's context (Plan.context()), not the whole plan")

    @property
    def node_local(self) -> bool:
        return self.transport == NODE_LOCAL
