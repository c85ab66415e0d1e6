"""Issue 25: SLURM job logs lived in scratch and were deleted with it after a successful run. They now go to a
folder of the run's own, `<job logs>/<UTC time>-<OUT's name>-<pid>` (default ./shardmerge-logs, where sbatch
itself writes slurm-*.out), which is kept; the run report and the final message say where."""

from __future__ import annotations

import os

import dask
import pytest
from dask_jobqueue.slurm import SLURMJob

from shardmerge.config import ClusterRequest
from shardmerge.executors.slurm import DEFAULT_JOB_LOGS, job_log_dir, slurm_options

REQUEST = ClusterRequest(kind="slurm", job_cores=1, job_memory="1GB")


def _script(log_dir: str | None) -> str:
    kw = slurm_options(REQUEST, log_dir)
    kw.pop("scheduler_options")
    return SLURMJob(scheduler="tcp://10.0.0.1:8786", name="w", **kw).job_script()


def test_default_is_a_folder_per_run_under_the_current_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("SHARDMERGE_JOB_LOGS", raising=False)
    monkeypatch.chdir(tmp_path)
    folder = job_log_dir(None, "/project/survey.zarr", now=0)
    assert folder == os.path.join(str(tmp_path), DEFAULT_JOB_LOGS, f"19700101T000000Z-survey.zarr-{os.getpid()}")
    assert not os.path.exists(folder)  # only the path: dask-jobqueue creates it as it submits the jobs


def test_the_option_beats_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SHARDMERGE_JOB_LOGS", str(tmp_path / "env"))
    assert job_log_dir(None, "o.zarr").startswith(str(tmp_path / "env") + os.sep)
    assert job_log_dir(str(tmp_path / "given"), "o.zarr").startswith(str(tmp_path / "given") + os.sep)


@pytest.mark.parametrize("out", ["../odd name;rm -rf.zarr/", "/", "x" * 300])
def test_the_folder_name_is_safe_whatever_out_is_called(out, tmp_path):
    name = os.path.basename(job_log_dir(str(tmp_path), out))
    assert os.path.dirname(job_log_dir(str(tmp_path), out)) == str(tmp_path)
    assert all(ch.isalnum() or ch in "._-" for ch in name) and len(name) < 120, name


def test_the_job_script_writes_its_logs_there(tmp_path):
    folder = job_log_dir(str(tmp_path), "survey.zarr")
    script = _script(folder)
    assert f"#SBATCH -o {folder}/" in script and f"#SBATCH -e {folder}/" in script, script
    assert "scratch" not in folder


def test_jobqueue_log_directory_still_wins(tmp_path):
    with dask.config.set({"jobqueue.slurm.log-directory": str(tmp_path / "mine")}):
        assert f"#SBATCH -o {tmp_path / 'mine'}/" in _script(job_log_dir(str(tmp_path), "survey.zarr"))
