"""shardmerge: FITS spectra → one validated, atomically published Zarr store.

The public API, imported on first use (``import shardmerge`` stays cheap: no dask, zarr or astropy):

- `ingest` (shardmerge.api.ingest): the ``shardmerge ingest`` command, from Python;
- `RunReport`: what a run returns;
- `open_store` (shardmerge.reading.open_store) and `Store`: a published store, read back into pandas,
  xarray and specutils;
- `ShardmergeError` and its subclasses: every error raised on purpose, each with an ``exit_code``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import ingest
    from .errors import (
        ArgumentError,
        BadFileError,
        BadFilesError,
        ClusterError,
        DurabilityError,
        GateError,
        InputError,
        LockHeldError,
        MainGuardError,
        MappingError,
        NotAStoreError,
        PlanError,
        ShardError,
        ShardmergeError,
        StorageError,
        StoreChangedError,
        TargetError,
        TargetExistsError,
        UnknownColumnError,
        UnknownFormatError,
    )
    from .reading import Store, open_store
    from .report import RunReport

__all__ = [
    "ArgumentError",
    "BadFileError",
    "BadFilesError",
    "ClusterError",
    "DurabilityError",
    "GateError",
    "InputError",
    "LockHeldError",
    "MainGuardError",
    "MappingError",
    "NotAStoreError",
    "PlanError",
    "RunReport",
    "ShardError",
    "ShardmergeError",
    "StorageError",
    "Store",
    "StoreChangedError",
    "TargetError",
    "TargetExistsError",
    "UnknownColumnError",
    "UnknownFormatError",
    "__version__",
    "ingest",
    "open_store",
]
_WHERE = {"ingest": "api", "RunReport": "report", "open_store": "reading", "Store": "reading",
          **{name: "errors" for name in __all__ if name.endswith("Error")}}


def __getattr__(name: str) -> Any:
    if name in _WHERE:  # the API's modules, imported on first use
        import importlib

        found = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = found
        return found
    # looked up on first use: importlib.metadata costs ~0.06 s of every command's start
    if name != "__version__":
        raise AttributeError(f"module 'shardmerge' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("shardmerge")
    except PackageNotFoundError:  # running from a source tree that is not installed
        found = "0.1.0"
    globals()["__version__"] = found
    return found


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
