"""When the ingest command starts the workers' forkserver before the pipeline's imports: only for an ingest
that will fork local workers from it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shardmerge.config import ClusterRequest
from shardmerge.executors import ONE_SHARD_FILE_BYTES
from shardmerge.forkserver import early_start_wanted


def test_only_an_ingest_on_local_workers_with_more_than_one_small_file_starts_the_forkserver_early(tmp_path):
    small, big = tmp_path / "small.fits", tmp_path / "big.fits"
    small.write_bytes(b"\0" * 2880)
    with big.open("wb") as f:
        f.truncate(ONE_SHARD_FILE_BYTES + 1)
    two = ClusterRequest(workers=2)
    assert early_start_wanted(two, [str(tmp_path)])  # a folder of two files
    assert early_start_wanted(two, [str(small), str(small)])
    assert early_start_wanted(two, [str(big)])  # may be several shards
    assert early_start_wanted(two, ["@" + str(small)])
    assert early_start_wanted(two, [str(tmp_path / "missing.fits")])  # discovery names it
    assert not early_start_wanted(two, [str(small)])  # runs in this process (choose_cluster)
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "s.fits").write_bytes(b"\0" * 2880)
    assert not early_start_wanted(two, [str(tmp_path / "one")])  # a folder of one small file, too
    assert not early_start_wanted(ClusterRequest(), [str(tmp_path)])  # small inputs may run in-process
    assert not early_start_wanted(ClusterRequest(workers=0), [str(tmp_path)])
    assert not early_start_wanted(ClusterRequest(kind="scheduler", address="tcp://127.0.0.1:8786", workers=2),
                                  [str(tmp_path)])
    assert not early_start_wanted(ClusterRequest(kind="slurm", workers=2), [str(tmp_path)])


_NO_PANDAS = """
import sys

import shardmerge.cli  # the library itself leaves pandas alone: a user's session may want it

assert not any(type(f).__name__ == "HidePandas" for f in sys.meta_path)
from shardmerge import nopandas  # what `python -m shardmerge` does first

from shardmerge.forkserver import start_early

start_early()
import pyarrow as pa
import pyarrow.parquet as pq

from shardmerge.config import ClusterRequest
from shardmerge.executors.local import local_executor


def arrow_round_trip(path):
    pq.write_table(pa.table({"s": pa.array(["a", None]), "f": pa.array([1.5, float("nan")])}), path)
    t = pq.ParquetFile(path).read()
    values = [t.column("s").to_numpy(zero_copy_only=False).tolist(), t.column("f").to_numpy()[0]]
    return values, "pandas" in sys.modules


def profiling(dask_worker):
    import dask

    return dask.config.get("distributed.worker.profile.enabled"), "profile" in dask_worker.periodic_callbacks


assert arrow_round_trip(sys.argv[1] + "/driver.parquet") == ([["a", None], 1.5], False)
with local_executor(ClusterRequest(workers=1)) as ex:
    (seen,) = ex.run_on_workers(arrow_round_trip, sys.argv[1] + "/worker.parquet").values()
    # Dask's statistical profiler is off in the workers (nobody reads it; it cost ~3% of their CPU)
    assert list(ex.run_on_workers(profiling).values()) == [(False, False)]
assert seen == ([["a", None], 1.5], False), seen
print("ok")
"""


@pytest.mark.timeout(120)
def test_the_cli_and_its_local_workers_use_arrow_without_importing_pandas(tmp_path):
    """pyarrow would import pandas (0.35-0.7 s) in the CLI and in every worker on its first array, only to
    ask whether an object is a pandas one; shardmerge's own processes hide it, and arrow still works.
    The workers also run without Dask's statistical profiler."""
    done = subprocess.run([sys.executable, "-c", _NO_PANDAS, str(tmp_path)], capture_output=True, text=True,
                          timeout=110)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr


_DRIVER_IMPORTS = """
import sys

from shardmerge import nopandas  # noqa: F401 - as `python -m shardmerge` does first
from shardmerge.cli import main  # what __main__ runs, without its os._exit: this script has more to say
from shardmerge.testing.spectra import make_wcs1d

files = [make_wcs1d(sys.argv[1] + f"/in/s{i}.fits", i=i, n_pix=200, seed=i) for i in range(3)]
for name in [m for m in sys.modules if m.split(".")[0] == "astropy" or m.startswith("shardmerge.readers")]:
    del sys.modules[name]  # making the inputs needed astropy; the ingest below must not
sys.argv = ["shardmerge", "ingest", sys.argv[1] + "/in", "-o", sys.argv[1] + "/out.zarr", "--workers", "1",
            "--quiet"]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "astropy" or m == "shardmerge.readers.registry")
print("loaded:", loaded[:5])
"""


@pytest.mark.timeout(120)
def test_the_driver_of_a_cluster_run_never_imports_the_readers_or_astropy(tmp_path):
    """Workers read the FITS files; the driver that plans, merges and checks has no use for astropy (~0.45 s
    of its start): tasks go to workers by reference to `shardmerge.tasks`, the readers load on first use."""
    done = subprocess.run([sys.executable, "-c", _DRIVER_IMPORTS, str(tmp_path)], capture_output=True, text=True,
                          timeout=110)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loaded: []" in done.stdout, done.stdout + done.stderr
    assert (tmp_path / "out.zarr" / "zarr.json").exists()


@pytest.mark.timeout(180)
def test_a_refused_target_ends_an_ingest_on_workers_at_once(tmp_path):
    """--workers 2 on two files starts the forkserver before the target is checked; a refused target
    still ends the command at once, with its own error."""
    from shardmerge.testing.spectra import make_wcs1d
    from tests.helpers import run_cli_process

    for i in range(2):
        make_wcs1d(tmp_path / "in" / f"s{i}.fits", i=i, n_pix=100, seed=i)
    (tmp_path / "taken.zarr").mkdir()  # not a shardmerge store: refused before any work
    r = run_cli_process("ingest", tmp_path / "in", "-o", tmp_path / "taken.zarr", "--workers", "2", timeout=170)
    assert r.exit_code == 5 and "exists and is not a store written by shardmerge" in r.output, r.output
    assert "Traceback" not in r.output
