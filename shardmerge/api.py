"""The public Python API: `shardmerge.ingest`. The CLI's `shardmerge ingest` is a thin layer over it: every
option is a keyword of the same name and default, checked here once, up front."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shlex
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .config import (
    MAX_PIXELS,
    MAX_TABLE_BYTES,
    STORE_FILE_BUDGET,
    ClusterRequest,
    CodecConfig,
    FormatChoice,
    LayoutRequest,
)
from .errors import ArgumentError

if TYPE_CHECKING:
    from .report import RunReport

log = logging.getLogger("shardmerge")

SCRATCH_KINDS = ("auto", "shared", "node-local")
ON_BAD_FILE = ("fail", "skip")

# set by the CLI around its call: the argv a run's provenance records and an interrupt's message repeats
_invoked_as: ContextVar[tuple[str, ...] | None] = ContextVar("shardmerge_invoked_as", default=None)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the ingest. Its message is the one line to show: whether anything was
    published, where the finished shards are kept, and what resumes the run."""


@contextmanager
def invoked_as(argv: Iterable[str]) -> Iterator[None]:
    """Within it, `ingest` runs for the command line `argv` (the CLI): recorded as the run's command,
    its errors and interrupt messages in the CLI's terms."""
    token = _invoked_as.set(tuple(argv))
    try:
        yield
    finally:
        _invoked_as.reset(token)


def _config_defaults(fn: Any) -> Any:
    """`fn` taking, for each keyword its caller did not pass, the dask config's `shardmerge.*` value where one
    is set (daskconfig.defaults_for): a keyword passed wins, even at its default. The signature shown
    (inspect, help, the docs) stays `fn`'s, with its plain defaults."""
    import inspect

    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        passed = signature.bind(*args, **kwargs).arguments  # a wrong call fails here as it would on fn
        from .mainguard import check_not_bootstrapping

        check_not_bootstrapping()  # first: a worker re-running the user's script must not read config either
        from .daskconfig import defaults_for

        chose_nothing = not passed.keys() & {"client", "scheduler", "workers", "cluster"}
        configured = defaults_for(passed, signature.parameters,
                                  default_client=chose_nothing and _default_client() is not None)
        return fn(*args, **kwargs, **configured)

    return call


@_config_defaults
def ingest(  # noqa: PLR0913 - one keyword per CLI option, of the same name and default: the API's contract
    inputs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    client: Any = None,
    workers: int | None = None,
    scheduler: str | None = None,
    cluster: str = "local",
    jobs: int = 1,
    queue: str | None = None,
    account: str | None = None,
    walltime: str | None = None,
    job_cores: int | None = None,
    job_memory: str | None = None,
    job_extra: Iterable[str] = (),
    job_scratch: str | None = None,
    interface: str | None = None,
    worker_wait: float = 600,
    stall_timeout: float = 1800,
    scheduler_file: str | os.PathLike[str] | None = None,
    job_logs: str | os.PathLike[str] | None = None,
    chunk_rows: int | None = None,
    shard_rows: int | None = None,
    zarr_format: int = 3,
    clevel: int = 5,
    zarr_shard_rows: int | None = None,
    max_store_files: int = STORE_FILE_BUDGET,
    format: str | None = None,  # noqa: A002 - the CLI's --format
    mapping: str | os.PathLike[str] | None = None,
    max_pixels: int = MAX_PIXELS,
    max_table_bytes: int = MAX_TABLE_BYTES,
    on_bad_file: str = "fail",
    strict: str | Iterable[str] = (),
    header_rules: str | os.PathLike[str] | None = None,
    scratch: str | os.PathLike[str] | None = None,
    scratch_kind: str = "auto",
    overwrite: bool = False,
    report: str | os.PathLike[str] | None = None,
    keep_scratch: bool = False,
    restart: bool = False,
    quiet: bool = False,
    progress: bool = True,
) -> RunReport:
    """Ingest FITS spectra into one validated Zarr store, published atomically at `out`.

    Every keyword is the option of ``shardmerge ingest`` of the same name (``--chunk-rows`` is
    ``chunk_rows=``), with the same default. A keyword not passed takes the dask config value
    ``shardmerge.<option>`` where one is set (``shardmerge config`` lists them and where each comes from); a
    keyword passed wins, even at its default value. All arguments are checked before anything is read or written.
    A run that fails or is interrupted leaves `out` as it was, and keeps the shards it finished in its
    scratch folder: calling again with the same arguments resumes from them.

    Parameters
    ----------
    inputs : str, os.PathLike or iterable of them
        FITS files, folders (searched recursively) and ``@LIST`` files (one path a line). A single
        string is one input.
    out : str or os.PathLike
        The store to publish (``OUT.zarr``).
    client : distributed.Client, optional
        Run the tasks on this Dask client's workers (which must be able to import shardmerge). It is
        left open and its cluster running. Without it, and with no cluster option (`workers`,
        `scheduler`, `cluster`), an active default client (``distributed.default_client()``) is used;
        with none, a local cluster (or this process, for a small input).
    workers : int, optional
        Local Dask cluster size (default: the machine's cores, or none for a small input of at most
        200 files and 32 MiB); 0 runs the tasks in this process.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://HOST:PORT``) to use instead of a local cluster.
    cluster : str
        ``"local"``, or a batch scheduler: `jobs` batch jobs through its dask-jobqueue cluster class
        (``"slurm"``, ``"pbs"``, ``"lsf"``, ``"sge"``, ``"htcondor"``, ``"oar"``, ``"moab"``; the table is
        ``shardmerge.executors.registry.BACKENDS``), or ``"slurm-runner"``: run inside an srun allocation
        (rank 0 scheduler, rank 1 ingest, the rest workers).
    jobs : int
        Batch jobs to start (a job-queue `cluster`), at least 1.
    queue, account, walltime, job_memory : str, optional
        Queue (partition), account (project), job time limit (``01:00:00``) and memory per job (``16GB``);
        by default dask-jobqueue's ``jobqueue.<cluster>.*`` configuration. Each scheduler's module maps
        them onto its cluster class's own keywords.
    job_cores : int, optional
        Cores per job, one worker process each.
    job_extra : iterable of str
        Extra job directives in the scheduler's syntax, e.g. ``("--constraint=ssd",)``.
    job_scratch : str, optional
        Per-job local scratch on the compute nodes: each job's workers keep node-local shards and spill in
        a folder of their own job under this one (``"/local"``, ``"$TMPDIR"``: expanded in the job).
    interface : str, optional
        Network interface the scheduler and workers bind to (``ib0``; ``lo`` on one machine).
    worker_wait : float
        Seconds (at least 1) to wait for a first worker, and the longest time the run may go on with no
        worker connected, before it stops with a ClusterError.
    stall_timeout : float
        Seconds (at least 1) with tasks in flight and none finishing before the run stops.
    scheduler_file : str or os.PathLike, optional
        ``slurm-runner``: the scheduler file, on a filesystem every rank shares.
    job_logs : str or os.PathLike, optional
        A job-queue `cluster`: keep the batch jobs' logs in a folder per run under this one (default: the environment's
        ``SHARDMERGE_JOB_LOGS``, else ``./shardmerge-logs``; dask-jobqueue's own ``log-directory`` wins when
        set). The run report's ``cluster.job_logs`` names the folder.
    chunk_rows, shard_rows : int, optional
        Rows per chunk (default 1024, fewer for long spectra) and per shard (a multiple of the chunk rows).
    zarr_format : {3, 2}
        Zarr format of the store (``"3"`` and ``"2"`` are accepted too).
    clevel : int
        Blosc zstd compression level, 1 to 9.
    zarr_shard_rows : int, optional
        Zarr v3 sharding: rows of each 2-D array per storage file (a multiple of the chunk rows); by
        default only when the store would pass `max_store_files`; 0: never.
    max_store_files : int
        File budget of the store: past it, longer row-wise chunks, then Zarr v3 sharding.
    format : str, optional
        Skip auto-detection: read every input with this reader (``"mapping"`` needs `mapping`).
    mapping : str or os.PathLike, optional
        TOML file naming the HDUs and columns of flux, wavelength, ... (with ``format="mapping"``).
    max_pixels : int
        Refuse, as a bad file, one whose headers announce a longer spectrum.
    max_table_bytes : int
        Refuse, as a bad file, one with a binary table whose data unit is larger (tables are read whole).
    on_bad_file : {"fail", "skip"}
        What to do with an unreadable input: stop, or leave it out and list it in the report.
    strict : str or iterable of str
        Kinds of known archive oddity to refuse instead of accepting them, or ``"all"``.
    header_rules : str or os.PathLike, optional
        TOML file with include/exclude globs for the projected header cards.
    scratch : str or os.PathLike, optional
        Where shard stores go (default: ``SHARDMERGE_SCRATCH``, else a temp folder).
    scratch_kind : {"auto", "shared", "node-local"}
        Whether workers write shards where this process reads them, or on their own disks.
    overwrite : bool
        Replace an existing store written by shardmerge.
    report : str or os.PathLike, optional
        Also write the run report here, as JSON.
    keep_scratch : bool
        Keep the shard stores after publishing.
    restart : bool
        Discard the shard stores an earlier unfinished run of this `out` left, instead of reusing them.
    quiet : bool
        Log only warnings and errors, and show no progress.
    progress : bool
        Show progress (a bar on a terminal, periodic log lines otherwise).

    Returns
    -------
    RunReport
        What the run did: ``status``, ``counts``, ``bytes``, ``phases`` (seconds), skipped and odd files.

    Raises
    ------
    ArgumentError
        An argument is of the wrong type, out of range, or conflicts with another (exit code 2).
    MainGuardError
        Called at module level of a script that local worker processes would re-run (exit code 2).
    ShardmergeError
        Any other failure, as one of its subclasses (InputError, BadFilesError, PlanError, GateError,
        TargetError, StorageError, ClusterError), each with its ``exit_code``.
    KeyboardInterrupt
        Ctrl-C or SIGTERM (an ``Interrupted``, whose message says what was kept and how to resume).
    """
    from .mainguard import check_not_bootstrapping

    check_not_bootstrapping()  # first: a worker re-running the user's script must not check or touch anything
    args = dict(locals())
    argv = _invoked_as.get()
    opts, how = _validated(args, cli=argv is not None)
    return _run(opts, how, argv)


# --- argument checks -----------------------------------------------------------------------------------

def _flag(name: str) -> str:
    return {"out": "--output", "report": "--report", "format": "--format", "mapping": "--mapping",
            "cluster": "--cluster", "inputs": "INPUT"}.get(name, "--" + name.replace("_", "-"))


def _bad(name: str, problem: str) -> ArgumentError:
    return ArgumentError(f"{name}=: {problem}", f"{_flag(name)}: {problem}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(args: dict, name: str, low: int | None = None, high: int | None = None, optional: bool = False) -> None:
    value = args[name]
    if value is None and optional:
        return
    if not _is_int(value):
        raise _bad(name, f"expected an int{' or None' if optional else ''}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise _bad(name, f"{value} is not {span}")


def _seconds(args: dict, name: str) -> None:
    value = args[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(name, f"expected a number of seconds, got {value!r}")
    if not value >= 1:  # (NaN too)
        raise _bad(name, f"{value} is not at least 1")


def _choice(args: dict, name: str, choices: Iterable[str], optional: bool = False) -> None:
    value = args[name]
    choices = tuple(choices)
    if value is None and optional:
        return
    if value not in choices:
        raise _bad(name, f"{value!r} is not one of {', '.join(map(repr, choices))}")


def _text(args: dict, name: str) -> None:
    value = args[name]
    if value is not None and not (isinstance(value, str) and value):
        raise _bad(name, f"expected a non-empty str or None, got {value!r}")


def _path(args: dict, name: str, *, file: bool = True, folder: bool = True, exists: bool = False,
          optional: bool = True) -> str | None:
    """A path argument as click.Path checks it: str or PathLike, and, where it exists, of the right kind."""
    value = args[name]
    if value is None and optional:
        return None
    if isinstance(value, bytes) or not isinstance(value, str | os.PathLike):
        raise _bad(name, f"expected a path (str or os.PathLike), got {value!r}")
    path = os.fspath(value)
    if not isinstance(path, str) or not path:
        raise _bad(name, f"expected a non-empty path, got {value!r}")
    if exists and not os.path.exists(path):
        raise _bad(name, f"{path} does not exist")
    if not folder and os.path.isdir(path):
        raise _bad(name, f"{path} is a folder, not a file")
    if not file and os.path.exists(path) and not os.path.isdir(path):
        raise _bad(name, f"{path} is a file, not a folder")
    return path


def _strings(args: dict, name: str) -> tuple[str, ...]:
    """An iterable of strings; one bare string is one item, never its characters."""
    value = args[name]
    if isinstance(value, str | os.PathLike):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise _bad(name, f"expected a str or an iterable of str, got {value!r}") from None
    return items


def _validated(args: dict, cli: bool) -> tuple[Any, Any]:
    """Every argument checked, in signature order (one checker per group of options), then their pairings,
    and turned into the pipeline's options."""
    from .pipeline import IngestOptions

    inputs, out = _checked_target(args)
    job_extra, scheduler_file, job_logs = _checked_cluster(args)
    zarr_format = _checked_layout(args)
    mapping = _checked_format(args)
    strict_kinds, header_rules, scratch, report_path = _checked_run(args)
    if (args["format"] == "mapping") != (mapping is not None):
        raise ArgumentError("format='mapping' and mapping= go together", "--format mapping and --mapping FILE "
                            "go together")
    kind, client = _cluster_kind(args)
    choice = FormatChoice(args["format"], _mapping_ref(mapping) if mapping else (), args["max_pixels"],
                          args["max_table_bytes"])
    request = ClusterRequest(kind=kind, workers=args["workers"], address=args["scheduler"], jobs=args["jobs"],
                             queue=args["queue"], account=args["account"], walltime=args["walltime"],
                             job_cores=args["job_cores"], job_memory=args["job_memory"], job_extra=job_extra,
                             job_scratch=args["job_scratch"], interface=args["interface"],
                             worker_wait_s=float(args["worker_wait"]), stall_s=float(args["stall_timeout"]),
                             scheduler_file=scheduler_file, job_logs=job_logs,
                             client=client if kind == "client" else None)
    _check_batch_jobs(request)
    layout = LayoutRequest(chunk_rows=args["chunk_rows"], shard_rows=args["shard_rows"],
                           codec=CodecConfig(clevel=args["clevel"]), zarr_format=int(zarr_format),
                           zarr_shard_rows=args["zarr_shard_rows"], max_store_files=args["max_store_files"])
    opts = IngestOptions(
        inputs=inputs, out=out, cluster=request, scratch=scratch, scratch_kind=args["scratch_kind"], layout=layout,
        overwrite=args["overwrite"], format=choice, on_bad_file=args["on_bad_file"], strict=strict_kinds,
        report_path=report_path, header_rules=header_rules, keep_scratch=args["keep_scratch"],
        restart=args["restart"], progress=args["progress"] and not args["quiet"],
        command=_invoked_as.get() or (_python_call(args),),
    )
    return opts, (args["quiet"], cli)


def _checked_target(args: dict) -> tuple[tuple[str, ...], str]:
    """`inputs`, `out` and `client`: the inputs as paths, and the store's path."""
    inputs = _strings(args, "inputs")
    if not inputs:
        raise _bad("inputs", "no input given (a file, folder or @LIST file, or an iterable of them)")
    for item in inputs:
        if isinstance(item, bytes) or not isinstance(item, str | os.PathLike) or not os.fspath(item):
            raise _bad("inputs", f"expected paths (str or os.PathLike), got {item!r}")
    inputs = tuple(os.fspath(i) for i in inputs)
    out = _path(args, "out", optional=False)
    client = args["client"]
    if client is not None and not (hasattr(client, "submit") and hasattr(client, "scheduler_info")):
        raise _bad("client", f"expected a distributed.Client, got {client!r}")
    return inputs, out


def _checked_cluster(args: dict) -> tuple[tuple[str, ...], str | None, str | None]:
    """`workers` to `job_logs`: the job directives, the scheduler file and the job-log folder."""
    _int(args, "workers", low=0, optional=True)
    _text(args, "scheduler")
    from .executors.registry import cluster_kinds

    _choice(args, "cluster", cluster_kinds())
    _int(args, "jobs", low=1)
    for name in ("queue", "account", "walltime", "job_memory", "job_scratch", "interface"):
        _text(args, name)
    _int(args, "job_cores", low=1, optional=True)
    job_extra = _strings(args, "job_extra")
    if not all(isinstance(j, str) for j in job_extra):
        raise _bad("job_extra", f"expected job directives as str, got {job_extra!r}")
    _seconds(args, "worker_wait")
    _seconds(args, "stall_timeout")
    return job_extra, _path(args, "scheduler_file", folder=False), _path(args, "job_logs", file=False)


def _checked_layout(args: dict) -> Any:
    """`chunk_rows` to `max_store_files`: the store's layout; returns the Zarr format as given."""
    _int(args, "chunk_rows", low=1, optional=True)
    _int(args, "shard_rows", low=1, optional=True)
    zarr_format = args["zarr_format"]
    if zarr_format not in (2, 3, "2", "3") or isinstance(zarr_format, bool):
        raise _bad("zarr_format", f"{zarr_format!r} is not 2 or 3")
    _int(args, "clevel", low=1, high=9)
    _int(args, "zarr_shard_rows", low=0, optional=True)
    _int(args, "max_store_files", low=1)
    return zarr_format


def _checked_format(args: dict) -> str | None:
    """`format` to `on_bad_file`: how files are read; returns the mapping file's path."""
    if args["format"] is not None:
        from .readers import reader_names

        _choice(args, "format", reader_names())
    mapping = _path(args, "mapping", folder=False, exists=True)
    _int(args, "max_pixels", low=1)
    _int(args, "max_table_bytes", low=1)
    _choice(args, "on_bad_file", ON_BAD_FILE)
    return mapping


def _checked_run(args: dict) -> tuple[frozenset[str], str | None, str | None, str | None]:
    """`strict` to `report`: the oddity kinds to refuse ("all": every kind), the header rules, the scratch
    folder and the report's path."""
    from .readers.oddities import KINDS as ODDITY_KINDS

    strict = _strings(args, "strict")
    for kind in strict:
        if kind not in (*ODDITY_KINDS, "all"):
            raise _bad("strict", f"{kind!r} is not one of {', '.join(map(repr, (*ODDITY_KINDS, 'all')))}")
    header_rules = _path(args, "header_rules", folder=False)
    scratch = _path(args, "scratch", file=False)
    _choice(args, "scratch_kind", SCRATCH_KINDS)
    for name in ("overwrite", "keep_scratch", "restart", "quiet", "progress"):
        if not isinstance(args[name], bool):
            raise _bad(name, f"expected True or False, got {args[name]!r}")
    report_path = _path(args, "report", folder=False)
    return frozenset(ODDITY_KINDS) if "all" in strict else frozenset(strict), header_rules, scratch, report_path


def _cluster_kind(args: dict) -> tuple[str, Any]:
    """The cluster the checked options choose, and the client to run on (the one given, or the active
    default client where no cluster option was): `client`, `scheduler` and `cluster` are alternatives."""
    kind = args["cluster"]
    client = args["client"]
    if args["scheduler"]:
        if kind != "local":
            raise ArgumentError("scheduler= and cluster= are alternatives: pass one",
                                "--scheduler and --cluster are alternatives: pass one")
        kind = "scheduler"
    if client is not None:
        given = [n for n in ("workers", "scheduler") if args[n] is not None]
        given += ["cluster"] if args["cluster"] != "local" else []
        if given:
            raise ArgumentError(f"client= and {given[0]}= are alternatives: pass one")
        kind = "client"
    elif kind == "local" and args["workers"] is None:
        client = _default_client()
        if client is not None:
            kind = "client"
            log.info("using the active default Dask client (scheduler %s); pass workers= or client= to choose "
                     "otherwise", client.scheduler.address)
    return kind, client


def _check_batch_jobs(request: ClusterRequest) -> None:
    """A job-queue cluster's request, checked before anything is touched: a job size given (or in
    jobqueue's config), and nothing its scheduler cannot do (HTCondor has no queues)."""
    from .executors.registry import backend

    row = backend(request.kind)
    if not row.jobqueue:
        return
    from .errors import InputError

    scheduler = row.load()
    problem = scheduler.check(request)
    if problem:
        raise ArgumentError(f"cluster=: {problem}", f"--cluster {request.kind}: {problem}")
    try:
        scheduler.size(request, scheduler.config())
    except InputError:
        raise ArgumentError(f"cluster=: {scheduler.size_problem('job_cores=', 'job_memory=')}",
                            f"--cluster {request.kind}: {scheduler.size_problem('--job-cores', '--job-memory')}"
                            ) from None


def _default_client() -> Any:
    """The active default `distributed.Client` of this process, if any (distributed already imported: a
    process that made a client has imported it; importing it here would only cost time)."""
    import sys

    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        client = default_client()
    except ValueError:  # none
        return None
    return client if getattr(client, "status", None) == "running" else None


def _python_call(args: dict) -> str:
    """The call as a user would write it: what a run's provenance and its report record."""
    import inspect

    params = inspect.signature(ingest).parameters
    shown = [repr(list(args["inputs"]) if not isinstance(args["inputs"], str | os.PathLike) else args["inputs"]),
             repr(os.fspath(args["out"]))]
    for name, p in params.items():
        if p.kind is p.KEYWORD_ONLY and name != "client" and args[name] != p.default:
            shown.append(f"{name}={args[name]!r}")
    return f"shardmerge.ingest({', '.join(shown)})"


def _mapping_ref(mapping: str) -> tuple:
    """The mapping file, read and checked once. Imported only when one is given: the readers (and astropy)
    are the workers' business, and a cluster run's driver never loads them (~0.45 s of its start)."""
    from .readers.mapping import mapping_ref

    return mapping_ref(mapping)


# --- the run ---------------------------------------------------------------------------------------------

def _run(opts: Any, how: tuple[bool, bool], argv: tuple[str, ...] | None) -> RunReport:
    from .pipeline import ingest as run_pipeline
    from .progress import setup_logging
    from .report import RunReport

    quiet, cli = how
    if cli or not logging.getLogger("shardmerge").handlers:
        setup_logging(quiet)  # (a caller who configured shardmerge's logger keeps it)
    report = RunReport()
    with _sigterm_interrupts():
        try:
            return run_pipeline(opts, report, interrupted=lambda r: interrupt_message(opts, r, argv))
        except KeyboardInterrupt as exc:
            if isinstance(exc, Interrupted):
                raise
            message = report.error or interrupt_message(opts, report, argv)
            if not cli:
                log.error("%s", message)
            raise Interrupted(message) from None


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (scancel, kill) unwinds the run as Ctrl-C does: the cluster and its jobs close, `.tmp` goes.
    Only from the main thread, and only where SIGTERM has its default action (a caller's handler stays)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
            signal.SIG_DFL, _raise_interrupt):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def interrupt_message(opts: Any, report: RunReport, argv: tuple[str, ...] | None) -> str:
    """One line: whether OUT was published, where the finished shards are, and what resumes the run."""
    from .beside import scratch_root

    out = os.path.abspath(opts.out)
    if report.status == "published":
        return f"interrupted: {out} was published (the interrupt came after it was in place)"
    folder = os.path.join(scratch_root(opts.scratch), _scratch_name(out))
    shards = _finished_shards(folder)
    again = ("rerun the same command to resume: " + _shell_command(argv)) if argv is not None else \
        "call shardmerge.ingest again with the same arguments to resume"
    kept = f"{shards} finished shard(s) kept in {folder}" if shards else f"no finished shard yet (scratch {folder})"
    from .executors.registry import backend

    label = backend(opts.cluster.kind).load().label if backend(opts.cluster.kind).jobqueue else ""
    jobs = f"; {label} batch jobs were cancelled" if label else ""
    return f"interrupted: nothing was published at {out}; {kept}{jobs}; {again}"


def _scratch_name(out: str) -> str:
    import hashlib

    return hashlib.sha256(out.encode()).hexdigest()[:16]  # as pipeline.scratch_dir names it


def _finished_shards(folder: str) -> int:
    from .shardstore import MANIFEST_FILE

    with contextlib.suppress(OSError):
        return sum(1 for name in os.listdir(folder) if name.startswith("shard-") and name.endswith(".zarr")
                   and os.path.isfile(os.path.join(folder, name, MANIFEST_FILE)))
    return 0


def _shell_command(argv: tuple[str, ...]) -> str:
    """argv as the user typed it: `shardmerge ...` whether it ran as the script or `python -m shardmerge`."""
    rest = list(argv[1:])
    return shlex.join(["shardmerge", *rest])
