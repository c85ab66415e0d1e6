"""Command line: `shardmerge ingest`, `shardmerge plan`, `shardmerge validate`."""

from __future__ import annotations

import json
import logging
import signal
import sys

import click

from .config import (
    MAX_PIXELS,
    MAX_TABLE_BYTES,
    STORE_FILE_BUDGET,
    ClusterRequest,
    CodecConfig,
    FormatChoice,
    LayoutRequest,
)
from .daskconfig import PARAMS as CONFIG_PARAMS
from .errors import NOTHING_WRITTEN_YET, ArgumentError, ShardmergeError
from .executors.registry import Option, backend_options, cluster_help, cluster_kinds
from .forkserver import early_start_wanted, start_early
from .headers import load_header_rules
from .progress import setup_logging
from .readers.oddities import KINDS as ODDITY_KINDS

log = logging.getLogger("shardmerge")


class ReaderChoice(click.Choice):
    """--format's choices, the readers' names: known once the readers are imported, which happens only
    when --format is given or help is shown (the driver of a cluster run never needs astropy)."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        from .readers import reader_names

        return tuple(reader_names())

    @choices.setter
    def choices(self, value: object) -> None:
        pass


def _backend_option(option: Option):
    """A click option from a backend's declaration (executors.registry.OPTIONS)."""
    kinds = {"int": {"type": click.IntRange(min=1), "default": 1 if option.name == "jobs" else None,
                     "show_default": option.name == "jobs"},
             "text": {"default": None}, "texts": {"multiple": True},
             "folder": {"type": click.Path(file_okay=False), "default": None},
             "file": {"type": click.Path(dir_okay=False), "default": None}}
    return click.option(option.flag, option.name, metavar=option.metavar, help=option.help, **kinds[option.kind])


def _fail(exc: ShardmergeError) -> None:
    click.echo(f"shardmerge: error: {exc}", err=True)
    sys.exit(exc.exit_code)


# the cluster options: these three, the two bounds, and what the backends declare (executors.registry)
_CLUSTER_KEYS = ("workers", "scheduler", "cluster", "worker_wait", "stall_timeout",
                 *(o.name for o in backend_options()))

_common = [
    click.argument("inputs", nargs=-1, required=True),
    click.option("--workers", type=click.IntRange(min=0), default=None,
                 help="Local Dask cluster size (default: the machine's cores, or none for a small input of at "
                      "most 200 files and 32 MiB; 0 runs tasks in this process)."),
    click.option("--scheduler", metavar="ADDRESS", default=None,
                 help="Use an existing Dask scheduler (tcp://HOST:PORT) instead of a local cluster."),
    click.option("--cluster", "cluster", type=click.Choice(list(cluster_kinds())), default="local",
                 show_default=True, help=cluster_help()),
    *(_backend_option(o) for o in backend_options()),  # each backend's own, declared in its registry row
    click.option("--worker-wait", type=click.FloatRange(min=1), default=600, show_default=True,
                 help="Seconds to wait for a first worker, and the longest time the run may go on with no worker "
                      "connected (workers died, jobs ended) before it stops with exit 7 (batch jobs are "
                      "cancelled)."),
    click.option("--stall-timeout", type=click.FloatRange(min=1), default=1800, show_default=True,
                 help="Seconds with tasks in flight and none finishing before the run stops with exit 7."),
    click.option("--chunk-rows", type=int, default=None,
                 help="Rows per chunk (default 1024, fewer when a flux chunk would exceed 16 MiB or the store holds "
                      "fewer spectra)."),
    click.option("--shard-rows", type=int, default=None, help="Rows per shard, a multiple of the chunk rows."),
    # every option that decides the store's layout is shared by ingest and plan: plan previews exactly it
    click.option("--zarr-format", type=click.Choice(["2", "3"]), default="3", show_default=True),
    click.option("--clevel", type=click.IntRange(1, 9), default=5, show_default=True, help="Blosc zstd level."),
    click.option("--zarr-shard-rows", type=click.IntRange(min=0), default=None,
                 help="Zarr v3 sharding: put this many rows (a multiple of the chunk rows) of each 2-D array in "
                      "one file, for filesystems where file counts hurt (Lustre, GPFS). Default: only when the "
                      "store would pass --max-store-files; 0: never."),
    click.option("--max-store-files", type=click.IntRange(min=1), default=STORE_FILE_BUDGET, show_default=True,
                 help="File budget of the store: past it, longer row-wise chunks, then Zarr v3 sharding."),
    click.option("--format", "format", type=ReaderChoice(), default=None,
                 help="Skip auto-detection: read every input with this reader."),
    click.option("--mapping", "mapping", type=click.Path(exists=True, dir_okay=False), default=None,
                 help="TOML file naming the HDUs/columns of flux, wavelength, … (with --format mapping)."),
    click.option("--max-pixels", type=click.IntRange(min=1), default=MAX_PIXELS, show_default=True,
                 help="Refuse, as a bad file, one whose headers announce a spectrum longer than this (an image's "
                      "NAXIS1, a table's rows or array length), before anything of it is read."),
    click.option("--max-table-bytes", type=click.IntRange(min=1), default=MAX_TABLE_BYTES, show_default=True,
                 help="Refuse, as a bad file, one with a binary table whose data unit (rows x row bytes + heap) is "
                      "larger than this, from its header: a table is read whole, so this bounds a task's memory."),
    click.option("--on-bad-file", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                 help="What to do with an unreadable input: stop, or leave it out and list it."),
    click.option("--strict", "strict", multiple=True, type=click.Choice([*ODDITY_KINDS, "all"]),
                 help="Refuse, as damaged, files with this kind of known archive oddity instead of accepting them "
                      "and listing them in the report (repeatable): "
                      + "; ".join(f"{k}: {v}" for k, v in ODDITY_KINDS.items()) + "."),
    click.option("--header-rules", type=click.Path(dir_okay=False), default=None,
                 help="TOML file with include/exclude globs for projected header cards."),
]


def common_options(fn):
    for deco in reversed(_common):
        fn = deco(fn)
    return fn


_LAYOUT_KEYS = ("chunk_rows", "shard_rows", "zarr_format", "clevel", "zarr_shard_rows", "max_store_files")


def layout_request(options: dict) -> LayoutRequest:
    """The layout options of a command (ingest and plan share them), removed from `options`."""
    o = {k: options.pop(k) for k in _LAYOUT_KEYS}
    return LayoutRequest(chunk_rows=o["chunk_rows"], shard_rows=o["shard_rows"], codec=CodecConfig(clevel=o["clevel"]),
                         zarr_format=int(o["zarr_format"]), zarr_shard_rows=o["zarr_shard_rows"],
                         max_store_files=o["max_store_files"])


def strict_kinds(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(ODDITY_KINDS) if "all" in names else frozenset(names)


def format_choice_of(options: dict) -> FormatChoice:
    """--format, --mapping FILE, --max-pixels and --max-table-bytes as one choice; removes them from `options`."""
    name, mapping = options.pop("format"), options.pop("mapping")
    max_pixels, max_table_bytes = options.pop("max_pixels"), options.pop("max_table_bytes")
    if (name == "mapping") != (mapping is not None):
        raise click.UsageError("--format mapping and --mapping FILE go together")
    if not mapping:
        return FormatChoice(name, (), max_pixels, max_table_bytes)
    from .readers.mapping import mapping_ref

    return FormatChoice(name, mapping_ref(mapping), max_pixels, max_table_bytes)


def cluster_request(options: dict) -> ClusterRequest:
    """The cluster options of a command, removed from `options`, as one ClusterRequest."""
    o = {k: options.pop(k) for k in _CLUSTER_KEYS}
    kind = o["cluster"]
    if o["scheduler"]:
        if kind != "local":
            raise click.UsageError("--scheduler and --cluster are alternatives: pass one")
        kind = "scheduler"
    declared = {name: (tuple(value) if isinstance(value, list | tuple) else value)
                for name, value in o.items() if name not in ("workers", "scheduler", "cluster", "worker_wait",
                                                             "stall_timeout")}
    return ClusterRequest(kind=kind, workers=o["workers"], address=o["scheduler"], worker_wait_s=o["worker_wait"],
                          stall_s=o["stall_timeout"], **declared)


def _given(ctx: click.Context, options: dict) -> dict:
    """The options given on the command line (not left at their defaults)."""
    from click.core import ParameterSource

    return {name: value for name, value in options.items()
            if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)}


def _with_config(ctx: click.Context, options: dict) -> dict:
    """`options` with each one left at its default replaced by its dask config value, where one is set."""
    from .daskconfig import defaults_for

    return {**options, **defaults_for(_given(ctx, options), options)}


def _say_config_applies(command: click.Command) -> click.Command:
    """Each option a dask config key defaults says so in --help (the default shown stays the built-in one)."""
    for param in command.params:
        if isinstance(param, click.Option) and param.name in CONFIG_PARAMS:
            param.help = f"{param.help or ''} (dask config: shardmerge.{CONFIG_PARAMS[param.name]})".lstrip()
    return command


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from . import __version__

        click.echo(f"shardmerge, version {__version__}")
        ctx.exit()


@click.group()
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
def main() -> None:
    """Turn many FITS spectra into one validated Zarr store, published atomically."""


@_say_config_applies
@main.command("ingest")
@common_options
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="The store to publish (OUT.zarr).")
@click.option("--scratch", type=click.Path(file_okay=False), default=None,
              help="Where shard stores go (default: SHARDMERGE_SCRATCH, else shardmerge-<uid> in the system "
                   "temp folder).")
@click.option("--scratch-kind", type=click.Choice(["auto", "shared", "node-local"]), default="auto", show_default=True,
              help="shared: workers write shards where this process reads them (--scratch on a filesystem every "
                   "node mounts). node-local: each worker writes to its own disk (SHARDMERGE_NODE_SCRATCH, else "
                   "TMPDIR) and the shards are fetched through Dask. auto: shared when every worker sees --scratch.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store written by shardmerge.")
@click.option("--report", "report", type=click.Path(dir_okay=False), default=None,
              help="Write a JSON run report here.")
@click.option("--keep-scratch", is_flag=True, help="Keep the shard stores after publishing.")
@click.option("--restart", is_flag=True,
              help="Discard shard stores an earlier unfinished run of this OUT left, instead of reusing them.")
@click.option("--quiet", is_flag=True,
              help="No progress bars or log lines: only warnings, errors and the final 'published' line.")
def ingest_cmd(inputs, out, **options):
    """Ingest INPUT... (FITS files, folders, @LIST files) into OUT.zarr."""
    setup_logging(options["quiet"])
    if not options["scheduler"] and options["cluster"] == "local" and early_start_wanted(
            ClusterRequest(workers=options["workers"]), inputs):
        start_early()  # its imports run beside the pipeline's, which come next
    from .api import ingest, invoked_as

    # every option is the API's keyword of the same name (tests/integration/test_api.py holds them equal); only
    # those given on the command line are passed, so that the API fills the rest from dask config, else defaults
    options = _given(click.get_current_context(), options)
    signal.signal(signal.SIGTERM, _interrupt)  # scancel, kill: clean up as for Ctrl-C, from the first moment
    try:
        with invoked_as(sys.argv):
            report = ingest(inputs, out, **options)
    except ArgumentError as exc:  # what click cannot check alone (pairs of options), in the flags' terms
        raise click.UsageError(exc.cli) from None
    except ShardmergeError as exc:
        _fail(exc)
    except KeyboardInterrupt as exc:  # api.Interrupted: one line, what was kept and how to resume
        click.echo(f"shardmerge: {str(exc) or NOTHING_WRITTEN_YET}", err=True)  # (before the run: no message)
        sys.exit(130)
    size, files = report.bytes["store"], report.counts["store_files"]  # from the merge: no walk of the store
    click.echo(
        f"published {report.output}: {report.counts['spectra']} spectra x {report.plan['n_pix']} pixels, "
        f"{report.counts['files_ingested']} files ({report.counts.get('files_bad', 0)} skipped), "
        f"{size / 2**20:.1f} MiB in {files} files, {sum(report.phases.values()):.1f} s"
    )
    if report.cluster and report.cluster.get("job_logs"):
        click.echo(f"{report.cluster.get('batch_system', 'batch')} job logs kept in {report.cluster['job_logs']}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds every `with`: the cluster and its jobs close, `.tmp` is removed


@_say_config_applies
@main.command("plan")
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan_cmd(inputs, as_json, **options):
    """Scan INPUT... and print the layout an ingest would write. Writes nothing."""
    from .pipeline import plan_inputs
    from .plan import describe

    setup_logging(quiet=True)
    try:
        options = _with_config(click.get_current_context(), options)  # as ingest takes them: plan previews it
        on_bad_file, strict, header_rules = options.pop("on_bad_file"), options.pop("strict"), \
            options.pop("header_rules")
        plan = plan_inputs(inputs, request=layout_request(options),
                           choice=format_choice_of(options), rules=load_header_rules(header_rules),
                           cluster=cluster_request(options), on_bad_file=on_bad_file,
                           strict=strict_kinds(strict))
    except ShardmergeError as exc:
        _fail(exc)
    d = describe(plan)
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(f"N_spec          {d['n_spec']}")
    click.echo(f"N_pix           {d['n_pix']}")
    for fmt, c in d["formats"].items():
        click.echo(f"format          {fmt}: {c['files']} files, {c['spectra']} spectra")
    click.echo(f"wavelength      {d['wavelength']}")
    click.echo(f"chunks          {tuple(d['chunks'])} ({d['row_chunks']} x {d['pixel_chunks']} per 2-D array)")
    click.echo(f"shards          {d['shards']} of {d['shard_rows']} rows")
    click.echo(f"flux units      {', '.join(repr(u) for u in d['flux_units'])}")
    click.echo(f"header fields   {d['header_fields']}")
    click.echo(f"estimated size  {d['estimated_uncompressed_bytes'] / 2**20:.1f} MiB uncompressed")
    for warning in d["warnings"]:
        click.echo(f"WARNING         {warning}")


@main.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print the values as JSON.")
def config_cmd(as_json):
    """Print shardmerge's defaults from dask config (the `shardmerge:` namespace of ~/.config/dask/*.yaml,
    $DASK_CONFIG, DASK_SHARDMERGE__KEY variables): each key's effective value and where it came from. An
    option given on the command line wins over it. Exit 2 when a value is unusable."""
    from .daskconfig import describe

    d = describe()
    if as_json:
        click.echo(json.dumps(d, indent=2))
    else:
        width = max(map(len, d["settings"]))
        for key, row in d["settings"].items():
            click.echo(f"{key:<{width}}  {json.dumps(row['value']):<10}  {row['source']}")
            if row["problem"]:
                click.echo(f"{'':<{width}}  ERROR: {row['problem']}")
        for key, why in d["unknown"].items():
            click.echo(f"{key:<{width}}  ignored: {why}")
        click.echo(f"YAML files are read from {', '.join(d['paths'])}; variables: {d['env_prefix']}KEY")
    if any(row["problem"] for row in d["settings"].values()):
        sys.exit(2)


@main.command("validate")
@click.argument("store", type=click.Path(), required=False)
@click.option("--quiet", is_flag=True, help="Print failures only.")
@click.option("--list-checks", is_flag=True, help="List every check (number, name, origin, what it checks) and exit.")
def validate_cmd(store, quiet, list_checks):
    """Run every check of the validation gate on STORE (the same list the ingest's gate runs, reported the
    same way). Exit 0 when none fails; 4 (as a gate refusal) when one does; 2 when STORE is not a zarr group."""
    from .errors import GateError
    from .store import require_zarr_group
    from .validate import checks_markdown, failures, run_checks, skipped_lines, summary_line

    if list_checks:
        click.echo(checks_markdown())
        return
    if store is None:
        raise click.UsageError("missing argument STORE (or pass --list-checks)")
    try:
        require_zarr_group(store)
    except ShardmergeError as exc:
        _fail(exc)
    results = run_checks(store)
    failed = failures(results)
    for line in failed:
        click.echo(f"FAIL {line}")
    if not quiet or failed:
        for line in skipped_lines(results):
            click.echo(f"SKIP {line}")
    if not quiet:
        for r in results:
            if r.status == "pass":
                click.echo(f"ok   {r.name}")
    click.echo(f"{store}: {summary_line(results)}")
    sys.exit(0 if not failed else GateError.exit_code)


@main.command("inspect")
@click.argument("store", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--plot", "plot_png", type=click.Path(dir_okay=False), default=None,
              help="Also write a PNG of a few spectra spread over the store.")
@click.option("--plot-spectra", type=click.IntRange(1, 50), default=5, show_default=True)
def inspect_cmd(store, as_json, plot_png, plot_spectra):
    """Summarize a store: shape, chunks, codecs, sizes, provenance and source formats. Exit 2, with one
    line saying what STORE is, when it is not a store."""
    from .summary import plot, render, summarize

    try:
        summary = summarize(store)
    except ShardmergeError as exc:
        _fail(exc)
    click.echo(json.dumps(summary, indent=2, default=str) if as_json else render(summary))
    if plot_png:
        try:
            rows = plot(store, plot_png, plot_spectra)
        except ShardmergeError as exc:
            _fail(exc)
        click.echo(f"wrote {plot_png}: spectra at rows {', '.join(map(str, rows))}", err=as_json)



@main.group("mapping")
def mapping_group() -> None:
    """Mapping files (--format mapping --mapping FILE): describe a layout no built-in reader knows."""


@mapping_group.command("draft")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False), default=None,
              help="Write the draft here (default: standard output). An existing file is not replaced.")
def mapping_draft_cmd(file, out):
    """Write a draft mapping TOML for FILE from what its headers say: the best guess for each key, and each
    ambiguous key commented out under a line naming the alternatives (pick one and uncomment it). Exit 0
    with a draft even when unsure; exit 2 when FILE is not a FITS file, or OUT exists."""
    import os

    from .errors import InputError
    from .readers.survey import draft_file

    try:
        text = draft_file(file)
        if out is None:
            click.echo(text, nl=False)
            return
        try:
            with open(out, "x", encoding="utf-8") as f:
                f.write(text)
        except FileExistsError:
            raise InputError(f"{out} exists: not replaced (remove it, or write the draft elsewhere)") from None
        except OSError as exc:
            raise InputError(f"{out}: {exc.strerror}") from exc
    except ShardmergeError as exc:
        _fail(exc)
    todo = "edit the commented keys it names" if "\n# Edit before use:" in text else "check its guesses"
    click.echo(f"wrote {os.path.abspath(out)}: {todo}, then --format mapping --mapping {out}", err=True)


if __name__ == "__main__":
    main()
