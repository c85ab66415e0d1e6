"""Issue 25, on a real SLURM (`bash ../shared/ci/slurm-ci.sh start`; skipped where none runs): a successful
run keeps its batch jobs' logs, in a folder of its own that the run report and the final message name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shardmerge.testing.spectra import make_wcs1d
from tests.helpers import run_cli_process
from tests.integration.test_slurm import JOBQUEUE_ENV, _assert_no_jobs_left, pytestmark  # noqa: F401


@pytest.mark.timeout(300)
def test_a_successful_run_keeps_its_job_logs_and_says_where(tmp_path):
    for i in range(3):
        make_wcs1d(tmp_path / "in" / f"s{i}.fits", i=i, n_pix=300, seed=i)
    out, rep, logs = tmp_path / "o.zarr", tmp_path / "report.json", tmp_path / "job-logs"
    r = run_cli_process("ingest", tmp_path / "in", "-o", out, "--cluster", "slurm", "--jobs", "1", "--walltime",
                        "00:10:00", "--interface", "lo", "--worker-wait", "120", "--report", rep,
                        "--scratch", tmp_path / "scratch",
                        env={**JOBQUEUE_ENV, "SHARDMERGE_JOB_LOGS": str(logs)})
    assert r.exit_code == 0, r
    kept = json.loads(rep.read_text())["cluster"]["job_logs"]
    assert os.path.dirname(kept) == str(logs) and f"SLURM job logs kept in {kept}" in r.output
    _assert_no_jobs_left()
    files = sorted(os.listdir(kept))
    assert files and all(name.endswith((".out", ".err")) for name in files), files
    text = "".join((Path(kept) / n).read_text(encoding="utf-8", errors="replace") for n in files)
    assert "distributed" in text  # what the worker logged
    assert not os.listdir(tmp_path / "scratch") or all(
        not n.startswith("shard-") for _, _, names in os.walk(tmp_path / "scratch") for n in names)
