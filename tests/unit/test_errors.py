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
