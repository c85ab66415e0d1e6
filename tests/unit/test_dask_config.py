"""shardmerge's defaults in dask config (shardmerge.daskconfig): the shipped defaults equal the CLI's and the
API's, YAML files and DASK_SHARDMERGE__ variables are read with their sources, a value passed wins, and a bad
value is refused naming its key and where it came from."""

from __future__ import annotations

import inspect

import pytest

import shardmerge
from shardmerge import daskconfig
from shardmerge.cli import ingest_cmd, plan_cmd
from shardmerge.daskconfig import BUILT_IN, KEYS, NOT_KEYS, SET_IN_PROCESS, ConfigError, defaults_for, settings
from tests.daskconfig_fixture import dask_config_fixture  # noqa: F401 - the dask_config fixture


def _normal(value: object) -> object:
    return tuple(value) if isinstance(value, list | tuple) else value


def test_the_shipped_defaults_are_the_cli_and_api_defaults():
    shipped = daskconfig.built_in_defaults()
    assert set(shipped) == set(KEYS)
    params = inspect.signature(shardmerge.ingest).parameters
    cli = ingest_cmd.make_context("ingest", ["IN", "-o", "OUT"]).params  # click's parse of a bare command
    for key, param in KEYS.items():
        assert _normal(params[param].default) == _normal(shipped[key]), key
        default = int(cli[param]) if param == "zarr_format" else cli[param]
        assert _normal(default) == _normal(shipped[key]), key
    assert not set(NOT_KEYS) & set(KEYS)
    assert {p.name for p in plan_cmd.params} >= set(KEYS.values()) - {"scratch", "scratch_kind"}


def test_nothing_configured_is_every_built_in_default(dask_config):
    dask_config()
    assert {s.source for s in settings().values()} == {BUILT_IN}
    assert defaults_for(set(), KEYS.values()) == {}


def test_a_yaml_file_sets_values_and_is_named_as_their_source(dask_config, tmp_path):
    path = dask_config(f"shardmerge:\n  chunk-rows: 512\n  scratch: {tmp_path}/s\n  job_extra: ['--x=1']\n")
    current = settings()
    assert (current["chunk-rows"].value, current["chunk-rows"].source) == (512, str(path))
    assert current["job-extra"].source == str(path)  # dask's _ and - are one key
    assert current["clevel"].source == BUILT_IN
    assert defaults_for(set(), ["chunk_rows", "scratch", "job_extra", "clevel"]) == {
        "chunk_rows": 512, "scratch": f"{tmp_path}/s", "job_extra": ("--x=1",)}


def test_an_environment_variable_wins_over_the_yaml_and_is_named(dask_config):
    dask_config("shardmerge:\n  chunk-rows: 512\n  clevel: 7\n", DASK_SHARDMERGE__CHUNK_ROWS="256")
    current = settings()
    assert (current["chunk-rows"].value, current["chunk-rows"].source) == (256, "DASK_SHARDMERGE__CHUNK_ROWS")
    assert current["clevel"].value == 7 and current["clevel"].source.endswith("site.yaml")


def test_dask_config_set_is_its_own_source(dask_config):
    import dask.config

    dask_config("shardmerge:\n  clevel: 7\n")
    with dask.config.set({"shardmerge.clevel": 3, "shardmerge.on-bad-file": "skip"}):
        current = settings()
        assert (current["clevel"].value, current["clevel"].source) == (3, SET_IN_PROCESS)
        assert defaults_for(set(), ["on_bad_file"]) == {"on_bad_file": "skip"}
    assert settings()["clevel"].value == 7


def test_a_value_passed_wins_even_at_its_default(dask_config):
    dask_config("shardmerge:\n  clevel: 7\n  chunk-rows: 64\n")
    assert defaults_for({"clevel"}, ["clevel", "chunk_rows"]) == {"chunk_rows": 64}


def test_where_to_run_from_config_yields_to_a_choice_in_the_call(dask_config):
    dask_config("shardmerge:\n  cluster: slurm\n  workers: 4\n  queue: debug\n")
    every = ["cluster", "workers", "queue"]
    assert defaults_for(set(), every) == {"cluster": "slurm", "workers": 4, "queue": "debug"}
    assert defaults_for({"scheduler"}, every) == {"queue": "debug"}
    assert defaults_for({"client"}, every) == {"queue": "debug"}
    assert defaults_for({"cluster"}, every) == {"workers": 4, "queue": "debug"}
    assert defaults_for({"workers"}, every) == {"queue": "debug"}
    assert defaults_for(set(), every, default_client=True) == {"queue": "debug"}


@pytest.mark.parametrize(("yaml_text", "problem"), [
    ("clevel: 12", "12 is not from 1 to 9"),
    ("chunk-rows: '512'", "expected an int or None, got '512'"),
    ("walltime: 2:00:00", "expected a non-empty str or None, got 7200"),  # YAML 1.1 reads it as a number
    ("cluster: pbs-pro", "'pbs-pro' is not one of"),
    ("on-bad-file: ignore", "'ignore' is not one of 'fail', 'skip'"),
    ("worker-wait: 0", "0 is not at least 1"),
    ("zarr-format: 4", "4 is not 2 or 3"),
    ("job-extra: [1, 2]", "expected batch directives as str"),
])
def test_a_bad_yaml_value_is_refused_naming_the_key_and_the_file(dask_config, yaml_text, problem):
    path = dask_config(f"shardmerge:\n  {yaml_text}\n")
    key = yaml_text.split(":")[0]
    with pytest.raises(ConfigError) as err:
        defaults_for(set(), KEYS.values())
    message = str(err.value)
    assert message.startswith(f"dask config shardmerge.{key} = ") and f"(from {path})" in message, message
    assert problem in message and f"{KEYS[key]}=" not in message
    assert err.value.exit_code == 2 and isinstance(err.value, shardmerge.ShardmergeError)
    # a value passed for that key is never checked against the config: the call's own value wins
    assert KEYS[key] not in defaults_for({KEYS[key]}, [KEYS[key]])


def test_a_bad_environment_value_names_the_variable(dask_config):
    dask_config(DASK_SHARDMERGE__MAX_PIXELS="-3")
    with pytest.raises(ConfigError, match=r"shardmerge.max-pixels = -3 \(from DASK_SHARDMERGE__MAX_PIXELS\): "
                                          r"-3 is not at least 1"):
        defaults_for(set(), ["max_pixels"])


def test_paths_expand_home_and_variables_and_an_unset_variable_is_refused(dask_config, monkeypatch, tmp_path):
    monkeypatch.setenv("SM_TEST_SCRATCH_ROOT", str(tmp_path))
    dask_config("shardmerge:\n  scratch: $SM_TEST_SCRATCH_ROOT/s\n  job-logs: ~/logs\n")
    import os

    assert defaults_for(set(), ["scratch", "job_logs"]) == {
        "scratch": f"{tmp_path}/s", "job_logs": os.path.expanduser("~/logs")}
    dask_config("shardmerge:\n  scratch: $SM_TEST_UNSET_VARIABLE/s\n")
    with pytest.raises(ConfigError, match="scratch = .* names an environment variable that is not set"):
        defaults_for(set(), ["scratch"])


def test_keys_that_are_no_defaults_are_reported_with_why(dask_config):
    dask_config("shardmerge:\n  overwrite: true\n  chunk-row: 3\n")
    unknown = daskconfig.unknown_keys()
    assert "never a silent default" in unknown["overwrite"]
    assert "typo" in unknown["chunk-row"]
    assert defaults_for(set(), ["overwrite", "chunk_rows"]) == {}  # neither applies


def test_the_template_left_in_the_users_folder_is_commented_out(tmp_path):
    import dask.config

    dask.config.ensure_file(source=daskconfig.DEFAULTS_FILE, destination=str(tmp_path))
    lines = (tmp_path / "shardmerge.yaml").read_text().splitlines()
    assert lines and all(line.startswith("#") or not line.strip() for line in lines)
    assert list(dask.config.collect_yaml([str(tmp_path)])) == []  # read as no setting at all


def test_every_option_is_a_config_key_or_says_why_not():
    """A new option of `shardmerge.ingest` must be a `shardmerge:` key or a NOT_KEYS entry with its reason:
    nothing decides that silently."""
    import inspect

    import shardmerge
    from shardmerge.daskconfig import NOT_KEYS, PARAMS

    keywords = set(inspect.signature(shardmerge.ingest).parameters) - {"inputs", "out", "client", "progress"}
    undecided = {k for k in keywords if k not in PARAMS and k.replace("_", "-") not in NOT_KEYS}
    assert not undecided, f"neither a dask config key nor in daskconfig.NOT_KEYS: {sorted(undecided)}"
    assert all(reason.strip() for reason in NOT_KEYS.values())
