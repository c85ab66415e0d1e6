"""shardmerge's dask config end to end: `shardmerge config` (sources, --json, a bad value), the CLI's and the
API's explicit values over the config, and a real user's YAML folder and variables in a fresh process."""

from __future__ import annotations

import json

import pytest

import shardmerge
from shardmerge.daskconfig import ConfigError
from tests.daskconfig_fixture import dask_config_fixture  # noqa: F401 - the dask_config fixture
from tests.helpers import run_cli, run_cli_process


def _isolated_env(tmp_path, **env: str) -> dict[str, str]:
    """A fresh process's environment: dask reads YAML only from tmp folders (none of the user's own)."""
    conf = tmp_path / "user-dask"
    conf.mkdir(exist_ok=True)
    return {"DASK_CONFIG": str(conf), "DASK_ROOT_CONFIG": str(tmp_path / "no-etc"), "HOME": str(tmp_path), **env}


@pytest.mark.timeout(120)
def test_config_command_names_each_source_in_a_fresh_process(tmp_path):
    env = _isolated_env(tmp_path, DASK_SHARDMERGE__CHUNK_ROWS="512", DASK_SHARDMERGE__QUEUE="debug")
    site = tmp_path / "user-dask" / "site.yaml"
    site.write_text("shardmerge:\n  clevel: 7\n  chunk-rows: 64\n  overwrite: true\n")
    r = run_cli_process("config", env=env, timeout=100)
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.startswith("shardmerge.")}
    assert lines["shardmerge.clevel"].split()[1:] == ["7", str(site)]
    assert lines["shardmerge.chunk-rows"].split()[1:] == ["512", "DASK_SHARDMERGE__CHUNK_ROWS"]  # env over YAML
    assert lines["shardmerge.queue"].split()[1:] == ['"debug"', "DASK_SHARDMERGE__QUEUE"]
    assert lines["shardmerge.max-pixels"].split()[1:] == ["16777216", "built-in", "default"]
    assert "never a silent default" in lines["shardmerge.overwrite"]
    # the template dask's ensure_file leaves beside it is all comments: it changes nothing
    assert (tmp_path / "user-dask" / "shardmerge.yaml").read_text().lstrip().startswith("#")

    r = run_cli_process("config", "--json", env=env, timeout=100)
    d = json.loads(r.stdout)
    assert d["settings"]["shardmerge.clevel"] == {"value": 7, "source": str(site), "option": "--clevel",
                                                  "problem": None}
    assert str(tmp_path / "user-dask") in d["paths"] and "shardmerge.overwrite" in d["unknown"]


def test_config_command_exits_2_on_a_bad_value_naming_it(dask_config):
    path = dask_config("shardmerge:\n  clevel: 12\n")
    r = run_cli("config")
    assert r.exit_code == 2
    assert "ERROR: 12 is not from 1 to 9" in r.output and str(path) in r.output
    r = run_cli("config", "--json")
    assert json.loads(r.stdout)["settings"]["shardmerge.clevel"]["problem"] == "12 is not from 1 to 9"


def test_help_shows_the_built_in_default_and_the_config_key():
    r = run_cli("ingest", "--help")
    text = " ".join(r.output.split())
    assert "Blosc zstd level. (dask config: shardmerge.clevel) [default: 5; 1<=x<=9]" in text
    assert "dask config: shardmerge.overwrite" not in text and "dask config: shardmerge.job-extra" in text


def test_plan_takes_config_values_and_an_option_given_wins(dask_config, mixed_corpus):
    dask_config("shardmerge:\n  chunk-rows: 64\n  clevel: 7\n")
    d = json.loads(run_cli("plan", mixed_corpus, "--json").stdout)
    assert d["chunks"][0] == 64 and d["codec"]["clevel"] == 7
    d = json.loads(run_cli("plan", mixed_corpus, "--json", "--chunk-rows", "32", "--clevel", "5").stdout)
    assert d["chunks"][0] == 32 and d["codec"]["clevel"] == 5  # given, even at its default, wins


def test_plan_refuses_a_bad_config_value_naming_key_and_source(dask_config, mixed_corpus):
    dask_config(DASK_SHARDMERGE__CHUNK_ROWS="0")
    r = run_cli("plan", mixed_corpus)
    assert r.exit_code == 2, r.output
    assert ("shardmerge: error: dask config shardmerge.chunk-rows = 0 (from DASK_SHARDMERGE__CHUNK_ROWS): "
            "0 is not at least 1") in r.output


@pytest.mark.timeout(240)
def test_the_api_takes_config_values_for_keywords_not_passed(dask_config, mixed_corpus, tmp_path):
    scratch = tmp_path / "configured-scratch"
    dask_config(f"shardmerge:\n  clevel: 7\n  scratch: {scratch}\n  keep-scratch: true\n  cluster: slurm\n")
    first = shardmerge.ingest(mixed_corpus, tmp_path / "a.zarr", workers=0, progress=False)
    assert first.plan["codec"]["clevel"] == 7  # from the YAML; cluster: slurm did not apply (workers=0 chose)
    assert scratch.is_dir()  # the configured scratch, over the test's SHARDMERGE_SCRATCH
    assert not any(scratch.iterdir())  # keep-scratch is no config key: the run's shards went as usual
    assert "clevel=7" in first.command and f"scratch='{scratch}'" in first.command  # the call the config made
    second = shardmerge.ingest(mixed_corpus, tmp_path / "b.zarr", workers=0, clevel=5, progress=False)
    assert second.plan["codec"]["clevel"] == 5  # passed, at its default: wins


def test_the_api_refuses_a_bad_config_value_before_touching_anything(dask_config, mixed_corpus, tmp_path):
    path = dask_config("shardmerge:\n  on-bad-file: ignore\n")
    with pytest.raises(ConfigError, match=rf"shardmerge.on-bad-file = 'ignore' \(from {path}\)"):
        shardmerge.ingest(mixed_corpus, tmp_path / "o.zarr", progress=False)
    assert not (tmp_path / "o.zarr").exists() and not (tmp_path / "scratch").exists()
    report = shardmerge.ingest(mixed_corpus, tmp_path / "o.zarr", on_bad_file="fail", workers=0, progress=False)
    assert report.status == "published"  # passed: the bad config value is not consulted


@pytest.mark.timeout(240)
def test_the_cli_ingest_takes_env_config_and_an_option_given_wins(tmp_path, mixed_corpus):
    env = _isolated_env(tmp_path, DASK_SHARDMERGE__CLEVEL="7", DASK_SHARDMERGE__WORKERS="0")
    r = run_cli_process("ingest", mixed_corpus, "-o", tmp_path / "a.zarr", "--report", tmp_path / "a.json",
                        "--quiet", env=env, timeout=200)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "a.json").read_text())["plan"]["codec"]["clevel"] == 7
    r = run_cli_process("ingest", mixed_corpus, "-o", tmp_path / "b.zarr", "--report", tmp_path / "b.json",
                        "--quiet", "--clevel", "5", env=env, timeout=200)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "b.json").read_text())["plan"]["codec"]["clevel"] == 5
