"""Importing this module hides pandas from this process: the CLI's and the local workers' (the
forkserver preloads it), which are shardmerge's own and never use pandas.

pyarrow imports pandas (0.35 s here, 0.7 s on a busy machine) the first time it builds or converts an
array, only to ask whether an object is a pandas one, and its C++ side asks again on every conversion
until pandas is found; shardmerge never hands it one. Hidden, `import pandas` raises ImportError, which
pyarrow, dask and distributed all take as "not installed". It is not imported by the library modules, so
a Python session that imports shardmerge keeps pandas; a process that imported pandas already keeps it."""

from __future__ import annotations

import sys


class HidePandas:
    """A meta path finder that refuses pandas (a None in sys.modules would not do: Cython's import, which
    pyarrow uses, returns the None instead of raising)."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is hidden in shardmerge's own processes (shardmerge.nopandas)")
        return None


if "pandas" not in sys.modules and not any(isinstance(f, HidePandas) for f in sys.meta_path):
    sys.meta_path.insert(0, HidePandas())
