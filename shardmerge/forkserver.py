"""Local Dask workers are forked from one forkserver process that imported, once, what their tasks run,
instead of each spawned interpreter importing the CLI's whole module graph (~1.5 s of CPU per worker).

`start_early` starts that server before the ingest command imports the pipeline, so the two import in
parallel; only for an `ingest` that asks for local workers (`--workers N`, N >= 1) on more than one
small file: any other run never forks from it. This module imports nothing heavy."""

from __future__ import annotations

from collections.abc import Sequence

from .config import ClusterRequest

# what the tasks run; pandas hidden first, or pyarrow would import it on a task's first array (0.7 s)
# shardmerge.workerinit: every worker ignores the terminal's Ctrl-C (the driver closes them)
WORKER_PRELOAD = ["shardmerge.workerinit", "shardmerge.nopandas", "distributed", "shardmerge.scan", "shardmerge.shard"]


def early_start_wanted(request: ClusterRequest, inputs: Sequence[str]) -> bool:
    """A local cluster of --workers N (N >= 1), unless the input is one small file, which runs in this
    process (executors.choose_cluster): a server importing beside it would only take a core from it."""
    if request.kind != "local" or not request.workers:
        return False
    from .discover import single_input_file
    from .smallinput import one_small_file

    one = single_input_file(inputs)
    return not (one and one_small_file([one]))


def start_early() -> None:
    """Start the forkserver now; its imports run beside this process's. Local clusters fork from it."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(WORKER_PRELOAD)
    forkserver.ensure_running()
