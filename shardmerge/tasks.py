"""The functions the driver hands to workers, by reference: each imports its stage when it first runs, so
the driver of a cluster run never imports the readers and astropy (~0.45 s before its first task).
Workers forked from the forkserver have those stages imported already (forkserver.WORKER_PRELOAD)."""

from __future__ import annotations

from typing import Any


def scan_batch(*args: Any) -> list:
    from .scan import scan_batch as run

    return run(*args)


def write_shard(*args: Any) -> dict:
    from .shard import write_shard as run

    return run(*args)
