"""Local Dask workers are forked from one forkserver process that imported, once, what their tasks run,
instead of each spawned interpreter importing the CLI's whole module graph (~1.5 s of CPU per worker).

`start_early` starts that server before the CLI imports its own modules, so the two import in parallel;
it runs only for an `ingest` that asks for local workers (`--workers N`, N >= 1): any other run never
forks from it. This module imports nothing heavy."""

from __future__ import annotations

from collections.abc import Sequence

# what the tasks run; pandas hidden first, or pyarrow would import it on a task's first array (0.7 s)
WORKER_PRELOAD = ["shardmerge.nopandas", "distributed", "shardmerge.scan", "shardmerge.shard"]


def wants_local_workers(argv: Sequence[str]) -> bool:
    """An `ingest` command line with --workers N (N >= 1) on the default local cluster."""
    if not argv or argv[0] != "ingest" or any(a.startswith(("--scheduler", "--cluster")) for a in argv):
        return False
    for i, arg in enumerate(argv):
        value = arg.partition("=")[2] if arg.startswith("--workers=") else \
            (argv[i + 1] if arg == "--workers" and i + 1 < len(argv) else None)
        if value is not None:
            return value.isdigit() and int(value) >= 1
    return False


def start_early() -> None:
    """Start the forkserver now; its imports run beside this process's. Local clusters fork from it."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(WORKER_PRELOAD)
    forkserver.ensure_running()
