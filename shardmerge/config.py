"""Run configuration: plain values only, so it crosses into Dask tasks and the plan hash unchanged."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = "2.0"

# Spec: (1024, N_pix) for typical spectra, (256, 4096) once spectra are high-resolution.
DEFAULT_CHUNK_ROWS = 1024
HIGH_RES_NPIX = 16384  # N_pix above this is "high-resolution"
HIGH_RES_CHUNK = (256, 4096)
MAX_FLUX_CHUNK_BYTES = 16 * 1024 * 1024  # a float32 flux chunk never exceeds this uncompressed
# Row-wise (1-D) arrays get longer chunks so metadata does not multiply the file count by ~30.
ROWWISE_CHUNK_FACTOR = 16
# The store's file budget. Past it the plan first lengthens row-wise chunks, up to ROWWISE_MAX_CHUNK_ROWS (the
# merge buffers one row-wise chunk of every row-wise array), then puts several chunk rows of each 2-D array in
# one Zarr v3 shard file. Sharding costs reads (benchmarks/results/layouts.md: 1000 random spectra ~3.5x slower,
# a full scan ~20% slower), so it stays off below the budget. 20k files (issue 12's bound for 10^7 spectra of
# 4000 px): files of tens of MB on a parallel filesystem, instead of ~60k files of a few MB each.
STORE_FILE_BUDGET = 20_000
ROWWISE_MAX_CHUNK_ROWS = 1 << 16  # the merge buffers a chunk of each: +48 MiB over 16 Ki (benchmarks/memory.py)
# A shard task fills one storage file's rows of every 2-D array at once: automatic Zarr sharding never makes
# that block larger than this (uncompressed), whatever the budget asks.
MAX_WRITE_BLOCK_BYTES = 512 * 1024 * 1024
# Shards aim at this much uncompressed flux (one full chunk at most N_pix): enough to amortise a task, and
# small enough that 2 workers share a modest corpus and a crash loses little.
TARGET_SHARD_BYTES = 16 * 1024 * 1024
# ...but a store of fewer than this many such shards gets smaller ones (down to one chunk's rows), so that
# many workers share it evenly: on 16 cores, 46k spectra in 23 shards left 9 workers idle for the second
# wave. A fixed count, not the worker count: a rerun on another cluster must find the same shards.
MIN_SHARDS = 64

# The longest spectrum accepted by default (--max-pixels raises it): the scan refuses, from its headers, a
# file that could hold a longer one. The longest real 1-D spectra are far shorter: an echelle's merged 1-D
# product (ESPRESSO S1D ~4.4e5 pixels, X-shooter's ~3e5), a high-resolution model grid (~1e6). 2**24 is 38x
# the longest; one row of it (float32 flux and uncertainty, a uint32 mask, a float64 wavelength: 20 bytes a
# pixel) is 320 MiB in a shard task's block, and as much again read from the file. A header announcing
# 2**30 pixels (20 GiB a row) is refused before anything is allocated.
MAX_PIXELS = 2**24
# --max-table-bytes: a binary table is read whole (astropy), whatever rows a task needs, so its data unit
# (rows x NAXIS1 + heap) bounds a task's memory. 1 GiB holds the table of a --max-pixels spectrum (2**24
# rows) with eight 8-byte columns, the widest any table layout reads; a task then peaks at about 2-3x it
# (the bytes, plus the columns astropy converts), within a 4 GiB-per-core node.
MAX_TABLE_BYTES = 2**30

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")


@dataclass(frozen=True)
class CodecConfig:
    """Blosc zstd with bitshuffle, as the spec recommends (clevel 5-7)."""

    cname: str = "zstd"
    clevel: int = 5
    shuffle: str = "bitshuffle"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FormatChoice:
    """What --format and --mapping chose. `name` None: every file by auto-detection. A mapping file travels
    as (absolute path, hash of its content), so that every worker reads the same mapping and one edited
    mid-run is refused."""

    name: str | None = None
    mapping: tuple[str, str] = ()
    max_pixels: int = MAX_PIXELS  # --max-pixels: longer spectra are refused by the scan, from their headers
    max_table_bytes: int = MAX_TABLE_BYTES  # --max-table-bytes: larger tables are refused so, too


@dataclass(frozen=True)
class LayoutRequest:
    """What the user asked for; the plan turns it into a concrete layout."""

    chunk_rows: int | None = None  # None: the spec's default for the data's N_pix
    shard_rows: int | None = None  # None: TARGET_SHARD_BYTES worth of rows
    codec: CodecConfig = field(default_factory=CodecConfig)
    zarr_format: int = 3
    zarr_shard_rows: int | None = None  # Zarr v3 sharding: rows per storage file of the 2-D arrays; None: by
    # the file budget, 0: never
    max_store_files: int = STORE_FILE_BUDGET


@dataclass(frozen=True)
class ClusterRequest:
    """Where tasks run. `kind`: a row of executors.registry.BACKENDS: "local" (a LocalCluster of `workers`
    processes; 0 runs tasks inline), "client" (the caller's live `distributed.Client`, `client`, never closed
    by shardmerge), "scheduler" (an existing one at `address`), a dask-jobqueue scheduler (`jobs` batch jobs
    sized by the job fields), or an in-allocation runner. Job fields left as None come from dask-jobqueue's
    own config (`jobqueue.<kind>.*`)."""

    kind: str = "local"
    workers: int | None = None
    address: str | None = None
    jobs: int = 1
    queue: str | None = None
    account: str | None = None
    walltime: str | None = None
    job_cores: int | None = None
    job_memory: str | None = None
    job_extra: tuple[str, ...] = ()
    job_scratch: str | None = None  # per-job local scratch on the compute node: a folder per job under it
    interface: str | None = None
    worker_wait_s: float = 600.0  # longest wait for a first worker, and longest time without any during the run
    stall_s: float = 1800.0  # longest time with tasks in flight and none finishing (a hung filesystem)
    scheduler_file: str | None = None  # an in-allocation runner's: on a filesystem every rank sees
    # batch jobs: where their logs go, a folder per run in it (default SHARDMERGE_JOB_LOGS, else
    # ./shardmerge-logs; jobqueue's own log-directory, when set, wins): kept after the run
    job_logs: str | None = None
    # kind "client": the caller's Client, the one live object here; it stays in this process (never hashed,
    # compared or sent to a task)
    client: Any = field(default=None, compare=False, repr=False)
