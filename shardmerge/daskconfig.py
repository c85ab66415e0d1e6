"""shardmerge's own defaults in dask config: the `shardmerge:` namespace.

Precedence, for every key below: an option or keyword given explicitly, else the dask config value
(``DASK_SHARDMERGE__KEY`` environment variables over YAML files in dask's search path, ``~/.config/dask/``
or ``$DASK_CONFIG``; ``dask.config.set`` in the process over both), else the built-in default, which
``shardmerge.yaml`` beside this module registers (``dask.config.update_defaults``, as dask-jobqueue does
with ``jobqueue.yaml``) and which equals the CLI's and `shardmerge.ingest`'s own defaults.

Config values are checked by the same functions as the arguments they stand for (api.py); an error names
the key and where its value came from. The table of keys imports nothing heavy, so that ``--help`` stays
fast; dask is imported on the first look-up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ArgumentError, InputError

log = logging.getLogger("shardmerge")

NAMESPACE = "shardmerge"
DEFAULTS_FILE = os.path.join(os.path.dirname(__file__), "shardmerge.yaml")

# config key (dask's spelling) -> the option's parameter name, for every option a config value may default
KEYS: dict[str, str] = {
    "scratch": "scratch",
    "scratch-kind": "scratch_kind",
    "chunk-rows": "chunk_rows",
    "shard-rows": "shard_rows",
    "zarr-format": "zarr_format",
    "clevel": "clevel",
    "zarr-shard-rows": "zarr_shard_rows",
    "max-store-files": "max_store_files",
    "max-pixels": "max_pixels",
    "max-table-bytes": "max_table_bytes",
    "on-bad-file": "on_bad_file",
    "header-rules": "header_rules",
    "cluster": "cluster",
    "workers": "workers",
    "jobs": "jobs",
    "queue": "queue",
    "account": "account",
    "walltime": "walltime",
    "job-cores": "job_cores",
    "job-memory": "job_memory",
    "job-extra": "job_extra",
    "interface": "interface",
    "worker-wait": "worker_wait",
    "stall-timeout": "stall_timeout",
    "job-logs": "job_logs",
    "job-scratch": "job_scratch",
}
PARAMS: dict[str, str] = {param: key for key, param in KEYS.items()}

# options that are deliberately no config key, and why (what `shardmerge config` says of such a key)
NOT_KEYS: dict[str, str] = {
    "overwrite": "replacing a store is never a silent default: pass --overwrite / overwrite=True",
    "restart": "discarding an earlier run's shards is a per-run decision: pass --restart",
    "keep-scratch": "keeping every run's shards would fill the scratch silently: pass --keep-scratch",
    "report": "a fixed report path would be overwritten by every run: pass --report FILE",
    "scheduler": "a scheduler's address changes as it restarts: pass --scheduler, or set cluster",
    "scheduler-file": "one file name shared by concurrent allocations would collide: pass --scheduler-file",
    "format": "the reader depends on the corpus, not the site: pass --format",
    "mapping": "a mapping describes one corpus: pass --mapping",
    "strict": "which archive oddities to refuse depends on the corpus: pass --strict",
    "quiet": "how much a run prints is a per-run choice: pass --quiet",
}

# where tasks run: the config's `cluster` and `workers` apply only when the call chose none of these itself
# (an explicit --scheduler with a configured batch `cluster:` would otherwise be refused as a conflict)
_PLACE_CLUSTER = frozenset({"client", "scheduler", "workers", "cluster"})
_PLACE_WORKERS = frozenset({"client", "scheduler", "workers"})
_PATH_KEYS = frozenset({"scratch", "header-rules", "job-logs"})  # job-scratch: for the nodes, kept literal

BUILT_IN = "built-in default"
SET_IN_PROCESS = "dask.config.set (in this process)"


class ConfigError(InputError):
    """A value of the `shardmerge:` dask config namespace is unusable. The message names the key, the
    value and where it came from (a YAML file's path or an environment variable), as an argument's
    error names the argument."""


@dataclass(frozen=True)
class Setting:
    """One key's effective value and where it came from: BUILT_IN, a YAML file's path, an environment
    variable's name or SET_IN_PROCESS."""

    key: str
    param: str
    value: Any
    source: str


_registered = False


def register() -> None:
    """Add shardmerge's defaults to dask config once per process, the way dask-jobqueue adds its own:
    `update_defaults` with the shipped YAML, and `ensure_file` to leave a commented-out copy in the user's
    dask config folder as a template (never over an existing file; silently not where it is read-only)."""
    global _registered
    if _registered:
        return
    import dask.config
    import yaml

    dask.config.ensure_file(source=DEFAULTS_FILE)
    with open(DEFAULTS_FILE) as f:
        dask.config.update_defaults(yaml.safe_load(f))
    _registered = True


def built_in_defaults() -> dict[str, Any]:
    """The shipped YAML's values, by config key (what the CLI's and the API's defaults equal)."""
    import yaml

    with open(DEFAULTS_FILE) as f:
        return dict(yaml.safe_load(f)[NAMESPACE])


def _canonical(key: str) -> str:
    return key.replace("_", "-")


def _namespace_of(tree: Mapping) -> dict[str, Any]:
    """The `shardmerge:` section of one config dict, keys in dask's hyphenated spelling."""
    section = next((v for k, v in tree.items() if isinstance(k, str) and _canonical(k) == NAMESPACE), None)
    if not isinstance(section, Mapping):
        return {}
    return {_canonical(str(k)): v for k, v in section.items()}


def _file_layers() -> list[tuple[str, dict[str, Any]]]:
    """(YAML file path, its shardmerge section) in dask's order of precedence, lowest first."""
    import dask.config

    return [(str(path), _namespace_of(tree))
            for path, tree in dask.config.collect_yaml(dask.config.paths, return_paths=True)]


def _env_layers(env: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """(environment variable, {key: value}) for each DASK_SHARDMERGE__KEY, read as dask reads it."""
    import dask.config

    layers = []
    if "DASK_INTERNAL_INHERIT_CONFIG" in env:
        inherited = dask.config.deserialize(env["DASK_INTERNAL_INHERIT_CONFIG"])
        layers.append(("DASK_INTERNAL_INHERIT_CONFIG", _namespace_of(inherited)))
    prefix = f"DASK_{NAMESPACE.upper()}__"
    for name, text in env.items():
        if name.upper().startswith(prefix) and "__" not in name[len(prefix):]:
            layers.append((name, {_canonical(name[len(prefix):].lower()): dask.config.interpret_value(text)}))
    return layers


def settings(env: Mapping[str, str] | None = None) -> dict[str, Setting]:
    """Every key's effective value (dask.config.get) and its source: the last YAML file or environment
    variable, in dask's own order, that sets it to that value; else the built-in default; else (a value
    none of them gives) `dask.config.set` in this process."""
    import dask.config

    register()
    layers = [*_file_layers(), *_env_layers(os.environ if env is None else env)]
    built_in = built_in_defaults()
    out = {}
    for key, param in KEYS.items():
        value = dask.config.get(f"{NAMESPACE}.{key}", built_in[key])
        given = next(((where, section[key]) for where, section in reversed(layers) if key in section), None)
        if given is not None and given[1] == value:
            source = given[0]
        elif given is None and value == built_in[key]:
            source = BUILT_IN
        else:  # no file or variable gives this value
            source = SET_IN_PROCESS
        out[key] = Setting(key, param, value, source)
    return out


def unknown_keys() -> dict[str, str]:
    """Keys set under `shardmerge:` that are no config key, each with what to do instead."""
    import dask.config

    register()
    section = _namespace_of(dask.config.config)
    return {key: NOT_KEYS.get(key, "not a shardmerge config key (a typo?); ignored")
            for key in section if key not in KEYS}


# --- checks: the API's own, so that a config value is refused exactly where the argument would be -------

def _checks() -> dict[str, Callable[[dict, str], Any]]:
    from . import api
    from .executors.registry import cluster_kinds

    def path(file: bool = True, folder: bool = True) -> Callable[[dict, str], Any]:
        return lambda a, n: api._path(a, n, file=file, folder=folder)

    def choice(choices: Iterable[str]) -> Callable[[dict, str], Any]:
        return lambda a, n: api._choice(a, n, choices)

    def integer(low: int, high: int | None = None, optional: bool = False) -> Callable[[dict, str], Any]:
        return lambda a, n: api._int(a, n, low=low, high=high, optional=optional)

    def zarr_format(a: dict, n: str) -> None:
        if a[n] not in (2, 3, "2", "3") or isinstance(a[n], bool):
            raise api._bad(n, f"{a[n]!r} is not 2 or 3")

    def job_extra(a: dict, n: str) -> tuple[str, ...]:
        items = api._strings(a, n)
        if not all(isinstance(j, str) for j in items):
            raise api._bad(n, f"expected batch directives as str, got {items!r}")
        return items

    return {
        "scratch": path(file=False), "scratch_kind": choice(api.SCRATCH_KINDS),
        "chunk_rows": integer(1, optional=True), "shard_rows": integer(1, optional=True),
        "zarr_format": zarr_format, "clevel": integer(1, 9), "zarr_shard_rows": integer(0, optional=True),
        "max_store_files": integer(1), "max_pixels": integer(1), "max_table_bytes": integer(1),
        "on_bad_file": choice(api.ON_BAD_FILE),
        "header_rules": path(folder=False), "cluster": choice(cluster_kinds()),
        "workers": integer(0, optional=True), "jobs": integer(1),
        **{n: api._text for n in ("queue", "account", "walltime", "job_memory", "interface")},
        "job_cores": integer(1, optional=True), "job_extra": job_extra,
        "worker_wait": api._seconds, "stall_timeout": api._seconds, "job_logs": path(file=False),
        "job_scratch": api._text,  # a path on the compute nodes: it need not exist here
    }


def _expanded(setting: Setting) -> Any:
    """A path key's value with ~ and $VARIABLES expanded (a YAML file cannot say $HOME otherwise)."""
    value = setting.value
    if setting.key not in _PATH_KEYS or not isinstance(value, str):
        return value
    expanded = os.path.expandvars(os.path.expanduser(value))
    if "$" in expanded:
        raise _refused(setting, "names an environment variable that is not set")
    return expanded


def _refused(setting: Setting, problem: str) -> ConfigError:
    where = "the built-in default" if setting.source == BUILT_IN else setting.source
    return ConfigError(f"dask config {NAMESPACE}.{setting.key} = {setting.value!r} (from {where}): {problem}")


def checked(setting: Setting) -> Any:
    """The setting's value as its option takes it (paths expanded, job-extra a tuple), or ConfigError."""
    value = _expanded(setting)
    args = {setting.param: value}
    try:
        normalised = _checks()[setting.param](args, setting.param)
    except ArgumentError as exc:
        raise _refused(setting, str(exc).removeprefix(f"{setting.param}=: ")) from None
    return normalised if setting.param in ("job_extra",) else value


def defaults_for(passed: Iterable[str], params: Iterable[str], *, default_client: bool = False) -> dict[str, Any]:
    """Config values, checked, for the parameters in `params` a call did not pass (`passed`), where config
    sets one other than the built-in default. The config's `cluster` and `workers` stay out when the call
    chose where to run (client, scheduler, workers, cluster) or, `default_client`, a default client will."""
    passed = frozenset(passed)
    wanted = [p for p in params if p in PARAMS and p not in passed]
    if passed & _PLACE_CLUSTER or default_client:
        wanted = [p for p in wanted if p != "cluster"]
    if passed & _PLACE_WORKERS or default_client:
        wanted = [p for p in wanted if p != "workers"]
    if not wanted:
        return {}
    for key, why in unknown_keys().items():
        log.warning("dask config %s.%s: %s", NAMESPACE, key, why)
    current = settings()
    return {p: checked(current[PARAMS[p]]) for p in wanted if current[PARAMS[p]].source != BUILT_IN}


def describe() -> dict[str, Any]:
    """What `shardmerge config` prints: every key's value, source and problem (None when usable), the keys
    set that are not config keys, and the folders dask searches for YAML files."""
    import dask.config

    rows = {}
    for key, setting in settings().items():
        try:
            checked(setting)
            problem = None
        except ConfigError as exc:
            problem = str(exc).split("): ", 1)[-1]
        rows[f"{NAMESPACE}.{key}"] = {"value": setting.value, "source": setting.source,
                                      "option": "--" + key, "problem": problem}
    return {"settings": rows, "unknown": {f"{NAMESPACE}.{k}": why for k, why in unknown_keys().items()},
            "paths": list(dask.config.paths), "env_prefix": f"DASK_{NAMESPACE.upper()}__"}
