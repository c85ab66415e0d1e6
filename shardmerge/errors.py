"""One error root with precise subclasses; the CLI maps each to an exit code and a message."""

from __future__ import annotations

NOTHING_WRITTEN_YET = "interrupted before the run began: nothing was written"  # Ctrl-C before a run starts


class ShardmergeError(Exception):
    """Root of every error shardmerge raises on purpose. The message says what is wrong and where."""

    exit_code = 1


class InputError(ShardmergeError):
    """An input path, list file or option is unusable (missing file, empty input, bad @LIST line)."""

    exit_code = 2


class ArgumentError(InputError):
    """An argument of `shardmerge.ingest` is of the wrong type, out of range, or conflicts with another.
    The message names the Python argument (`chunk_rows=`); `cli` says the same in the CLI's flags
    (`--chunk-rows`), for the command line to show instead."""

    def __init__(self, message: str, cli: str | None = None):
        self.cli = cli or message
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (str(self), self.cli))


class MainGuardError(ShardmergeError):
    """`shardmerge.ingest` was called while a worker process re-ran the user's script as it started (the
    script calls it at module level, without an `if __name__ == "__main__":` guard)."""

    exit_code = 2


class MappingError(InputError):
    """A --mapping file is not valid TOML or does not follow the mapping schema (readers/mapping.py)."""


class NotAStoreError(InputError):
    """A path given as a store (inspect, validate, reading one back) is not one: missing, a file, a folder
    that is not a zarr group, a zarr group shardmerge did not write, or a store missing what is needed.
    The message names the path and says which."""


class BadFileError(ShardmergeError):
    """A FITS file cannot be read or understood. Always names the file and the reason."""

    exit_code = 3

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # Dask ships a worker's exception back by pickling it
        return (type(self), (self.path, self.reason))


class UnknownFormatError(BadFileError):
    """No reader recognises the file's layout."""


class BadFilesError(ShardmergeError):
    """Several inputs were bad (with --on-bad-file fail): every one is listed, not just the first."""

    exit_code = 3

    def __init__(self, bad: list[tuple[str, str]]):
        self.bad = bad
        lines = [f"  {path}: {reason}" for path, reason in bad[:50]]
        more = f"\n  … and {len(bad) - 50} more" if len(bad) > 50 else ""
        super().__init__(
            f"{len(bad)} input file(s) could not be read (use --on-bad-file skip to leave them out):\n"
            + "\n".join(lines)
            + more
        )

    def __reduce__(self):
        return (type(self), (self.bad,))


class PlanError(ShardmergeError):
    """The inputs cannot be laid out as requested (e.g. chunk rows that break the chunk-size limit)."""

    exit_code = 2


class OrphanCompanionsError(PlanError):
    """Companion files (they add arrays to another file's rows) whose file is not among the inputs: each
    is no spectrum of its own. `orphans`: {path: why}; under --on-bad-file skip they are left out."""

    def __init__(self, orphans: dict[str, str]):
        self.orphans = dict(orphans)
        first = next(iter(sorted(self.orphans.items())))
        more = f" (and {len(self.orphans) - 1} more such files)" if len(self.orphans) > 1 else ""
        super().__init__(f"{first[0]}: {first[1]}{more}")


class SlabShapeError(ShardmergeError):
    """A slab about to be written does not match its selection (zarr would silently truncate it)."""


class ShardError(ShardmergeError):
    """A shard store is missing, incomplete or does not belong to the current plan."""


class GateError(ShardmergeError):
    """The validation gate refused the store; `failures` lists every failed check."""

    exit_code = 4

    def __init__(self, store: str, failures: list[str]):
        self.store = store
        self.failures = failures
        body = "\n".join(f"  FAIL {f}" for f in failures)
        super().__init__(f"validation gate refused {store} ({len(failures)} failed check(s)):\n{body}")

    def __reduce__(self):
        return (type(self), (self.store, self.failures))


class TargetError(ShardmergeError):
    """OUT cannot be written: it exists, is not a shardmerge store, or its folder is unusable."""

    exit_code = 5


class TargetExistsError(TargetError):
    """OUT is a store shardmerge wrote, and --overwrite was not given: nothing was done."""


class LockHeldError(TargetError):
    """Another writer holds the target's lock."""


class StorageError(ShardmergeError):
    """Writing scratch or `<OUT>.tmp` failed: no space left, quota, or an I/O error. Never retried: the
    same disk would fail the same way, and an fsync error means written data may already be lost."""

    exit_code = 6

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


class DurabilityError(StorageError):
    """fsync failed: what the kernel held for this file may never reach the disk."""


class StoreChangedError(ShardmergeError):
    """A store was overwritten (published again) during every attempt of a read: see store.read_consistent."""


class ClusterError(ShardmergeError):
    """The Dask cluster could not be started or used: no worker came, or scratch is not shared."""

    exit_code = 7


class UnknownColumnError(InputError):
    """A selection names a column the store does not have; the message lists the ones it has."""
