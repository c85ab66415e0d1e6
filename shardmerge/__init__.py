"""shardmerge: FITS spectra → one validated, atomically published Zarr store."""

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
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
