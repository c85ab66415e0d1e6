"""When the CLI starts the workers' forkserver before its own imports: only for an ingest that will fork
local workers from it."""

from __future__ import annotations

import pytest

from shardmerge.forkserver import wants_local_workers


@pytest.mark.parametrize(("argv", "wanted"), [
    (["ingest", "in", "-o", "out.zarr", "--workers", "2"], True),
    (["ingest", "in", "--workers=16", "-o", "out.zarr"], True),
    (["ingest", "in", "-o", "out.zarr"], False),  # small inputs may run in-process: no server for nothing
    (["ingest", "in", "-o", "out.zarr", "--workers", "0"], False),
    (["ingest", "in", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], False),
    (["ingest", "in", "--workers", "2", "--cluster", "slurm"], False),
    (["ingest", "in", "--workers"], False),
    (["plan", "in", "--workers", "2"], False),
    (["validate", "out.zarr"], False),
    ([], False),
])
def test_only_an_ingest_on_local_workers_starts_the_forkserver_early(argv, wanted):
    assert wants_local_workers(argv) is wanted
