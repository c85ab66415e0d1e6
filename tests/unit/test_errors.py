import pickle

import pytest

from shardmerge.errors import BadFileError, BadFilesError, GateError, ShardmergeError, UnknownFormatError


@pytest.mark.parametrize("exc", [BadFileError("/d/x.fits", "truncated"), UnknownFormatError("/d/y.fits", "no reader"),
                                 GateError("/o.zarr.tmp", ["6 rows: row 3 is all-NaN"]),
                                 BadFilesError([("/a.fits", "empty"), ("/b.fits", "not FITS")])])
def test_errors_survive_pickling_as_dask_ships_them(exc):
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and str(back) == str(exc) and isinstance(back, ShardmergeError)
    assert back.exit_code == exc.exit_code


def test_the_command_exits_with_the_same_status_and_output_as_the_cli_it_runs(tmp_path):
    """`python -m shardmerge` leaves with os._exit (no interpreter teardown): its status, stdout and stderr
    must be what the click command gave, as if it had exited normally."""
    from tests.helpers import run_cli, run_cli_process

    args = ("ingest", str(tmp_path / "missing"), "-o", str(tmp_path / "out.zarr"))
    inside, outside = run_cli(*args), run_cli_process(*args, timeout=60)
    assert inside.exit_code == outside.exit_code != 0
    assert "missing: no such file or folder" in outside.output and "missing: no such file or folder" in inside.output
    version = run_cli_process("--version", timeout=60)
    assert version.exit_code == 0 and version.stdout.startswith("shardmerge, version ")
