"""Issue 25's rough edges, each as a user meets it: `inspect` and `validate` on what is not a store (one line,
exit 2), one list of named checks that the gate and `validate` both run and count alike (a failed check exits
4, as the gate's refusal does), and an `inspect --plot` whose y-axis names the flux unit."""

from __future__ import annotations

import json
import shutil

import pytest
import zarr

from shardmerge.errors import GateError, InputError, NotAStoreError
from shardmerge.testing.spectra import make_sdss_coadd, make_wcs1d
from shardmerge.validate import checks_markdown, list_checks
from tests.helpers import run_cli, run_cli_process


@pytest.fixture(scope="module")
def one_unit(tmp_path_factory, dask_scheduler):
    """A store whose spectra share one flux unit, and its run report."""
    d = tmp_path_factory.mktemp("one-unit")
    for i in range(3):
        make_sdss_coadd(d / "in" / f"spec-0266-51602-{i + 1:04d}.fits", i=i, n_pix=300, seed=i)
    out, rep = d / "one.zarr", d / "report.json"
    r = run_cli("ingest", d / "in", "-o", out, "--scheduler", dask_scheduler, "--report", rep)
    assert r.exit_code == 0, r
    return out, json.loads(rep.read_text()), r.output


@pytest.fixture(scope="module")
def mixed_units(tmp_path_factory, dask_scheduler):
    """A store whose spectra differ in flux unit (wcs1d files state none, SDSS its 1E-17 erg/...)."""
    d = tmp_path_factory.mktemp("mixed-units")
    make_sdss_coadd(d / "in" / "spec-0266-51602-0001.fits", n_pix=300)
    for i in range(2):
        make_wcs1d(d / "in" / f"w{i}.fits", i=i, n_pix=300, seed=i)
    out = d / "mixed.zarr"
    r = run_cli("ingest", d / "in", "-o", out, "--scheduler", dask_scheduler)
    assert r.exit_code == 0, r
    return out


# ---- 1. inspect / validate on what is not a store: one line naming the path and what it is, exit 2 ------------

def _not_a_store_cases(tmp_path):
    empty = tmp_path / "just-a-folder"
    empty.mkdir()
    (empty / "notes.txt").write_text("not zarr\n")
    a_file = tmp_path / "a-file.zarr"
    a_file.write_text("hello\n")
    array = tmp_path / "an-array.zarr"
    zarr.create_array(str(array), shape=(3,), dtype="f4")
    return [(empty, "not a zarr group"), (a_file, "a file, not a store"), (array, "a zarr array, not a store"),
            (tmp_path / "missing.zarr", "no such file or folder")]


@pytest.mark.parametrize("command", [["inspect"], ["inspect", "--json"], ["validate"]])
def test_not_a_store_is_one_line_exit_2(tmp_path, command):
    assert NotAStoreError.exit_code == 2 and issubclass(NotAStoreError, InputError)
    for path, what in _not_a_store_cases(tmp_path):
        r = run_cli_process(*command, path, timeout=120)
        assert r.exit_code == 2, (path, r)
        lines = r.output.strip().splitlines()
        assert lines == [f"shardmerge: error: {path}: {lines[0].split(f'{path}: ', 1)[1]}"], r.output
        assert what in lines[0] and "Traceback" not in r.output, r.output


def test_inspect_plot_on_a_zarr_group_shardmerge_did_not_write(tmp_path):
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(str(foreign), mode="w").create_array("data", shape=(4,), dtype="f4")
    r = run_cli_process("inspect", foreign, "--plot", tmp_path / "p.png", timeout=120)
    assert r.exit_code == 2, r
    assert f"shardmerge: error: {foreign}: a zarr group shardmerge did not write" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "p.png").exists()


def test_inspect_plot_on_a_store_missing_its_flux(one_unit, tmp_path):
    store = tmp_path / "damaged.zarr"
    shutil.copytree(one_unit[0], store)
    shutil.rmtree(store / "signal" / "flux_raw")
    r = run_cli("inspect", store, "--plot", tmp_path / "p.png")
    assert r.exit_code == 2, r
    assert f"shardmerge: error: {store}: a shardmerge store missing signal/flux_raw" in r.output


def test_inspect_plot_without_matplotlib_says_what_to_install(one_unit, tmp_path, monkeypatch):
    """The README's install is `pip install .`, without the plot extra: --plot then names the extra."""
    import sys

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    r = run_cli("inspect", one_unit[0], "--plot", tmp_path / "p.png")
    assert r.exit_code == 2, r
    assert "inspect --plot needs matplotlib: pip install '.[plot]' in a clone of shardmerge" in r.output
    assert not (tmp_path / "p.png").exists()


# ---- 2. one list of named checks: the gate and validate run it and count it alike -----------------------------

def test_the_check_list_has_the_spec_nine_and_names_each(tmp_path):
    checks = list_checks()
    assert [c.number for c in checks] == list(range(1, len(checks) + 1))
    assert [c.number for c in checks if c.origin == "spec"] == list(range(1, 10))
    assert len({c.name for c in checks}) == len(checks)
    table = checks_markdown()
    assert all(f"| {c.number} | {c.title} |" in table for c in checks)
    r = run_cli("validate", "--list-checks")
    assert r.exit_code == 0 and r.output.strip() == table


def test_gate_and_validate_run_the_same_named_checks_and_count_alike(one_unit):
    store, report, ingest_output = one_unit
    names = [c.name for c in list_checks()]
    assert list(report["checks"]) == names  # the run report: every check, by name, in number order
    assert set(report["checks"].values()) == {"pass"}  # the gate ran them all, check 11 included
    total = len(names)
    assert report["checks_summary"] == f"{total}/{total} checks passed"
    assert f"gate: {total}/{total} checks passed on " in ingest_output  # the log line says it alike

    r = run_cli("validate", store)
    assert r.exit_code == 0, r
    ran = [line[5:] for line in r.output.splitlines() if line.startswith("ok   ")]
    skipped = [line for line in r.output.splitlines() if line.startswith("SKIP ")]
    assert ran == [n for n in names if not n.startswith("11 ")]
    assert skipped == ["SKIP 1 check(s) not run: it needs the checksums the merge recorded, which only the "
                       "ingest's gate has (check(s) 11)"]
    assert r.output.strip().splitlines()[-1] == f"{store}: {total - 1}/{total} checks passed, 1 skipped"


def test_a_failed_check_exits_as_the_gate_does(one_unit, tmp_path):
    store = tmp_path / "copy.zarr"
    shutil.copytree(one_unit[0], store)
    meta = store / "zarr.json"
    doc = json.loads(meta.read_text())
    del doc["attributes"]["git_commit"]
    meta.write_text(json.dumps(doc))
    r = run_cli("validate", store, "--quiet")
    assert r.exit_code == GateError.exit_code == 4, r
    total = len(list_checks())
    assert "FAIL 8 provenance attrs: root attr 'git_commit' is missing or empty" in r.output
    assert r.output.strip().splitlines()[-1].endswith(f"/{total} checks passed, 1 failed, 1 skipped")


def test_checks_stopped_by_a_link_leaving_the_store_are_each_counted(one_unit, tmp_path):
    store = tmp_path / "copy.zarr"
    shutil.copytree(one_unit[0], store)
    (store / "escape").symlink_to(tmp_path)
    r = run_cli("validate", store, "--quiet")
    assert r.exit_code == 4, r
    total = len(list_checks())
    assert f"SKIP {total - 1} check(s) not run: the store has entries that checking would follow" in r.output
    assert r.output.strip().splitlines()[-1] == f"{store}: 0/{total} checks passed, 1 failed, {total - 1} skipped"


# ---- 3. inspect --plot names the flux unit ---------------------------------------------------------------------

def _labels(store, n):
    import matplotlib.pyplot as plt

    from shardmerge.summary import plot_figure

    fig, rows = plot_figure(str(store), n)
    try:
        axes = fig.axes
        legends = [[t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else [] for ax in axes]
        return rows, [ax.get_ylabel() for ax in axes], legends
    finally:
        plt.close(fig)


def test_plot_axis_names_the_one_unit(one_unit, tmp_path):
    rows, ylabels, legends = _labels(one_unit[0], 3)
    unit = zarr.open_group(str(one_unit[0]), mode="r")["signal/flux_raw"].attrs["units"]
    assert unit and not unit.startswith("mixed")
    assert ylabels == [f"flux [{unit}]"] * len(rows) and legends == [[]] * len(rows)
    r = run_cli("inspect", one_unit[0], "--plot", tmp_path / "p.png", "--plot-spectra", "3")
    assert r.exit_code == 0 and (tmp_path / "p.png").stat().st_size > 1000, r


@pytest.mark.parametrize("form", ["pointer text", "units_column attr"])
def test_plot_of_spectra_in_different_units_gives_each_its_own(mixed_units, tmp_path, form):
    store = mixed_units
    if form == "units_column attr":  # the form stores take once units are normalised: an attr, no pointer text
        store = tmp_path / "copy.zarr"
        shutil.copytree(mixed_units, store)
        flux = zarr.open_group(str(store), mode="r+")["signal/flux_raw"]
        flux.attrs.update({"units_column": "metadata/flux_unit", "units": ""})
    root = zarr.open_group(str(store), mode="r")
    per_row = [str(u) for u in root["metadata/flux_unit"][:]]
    assert len(set(per_row)) == 2
    rows, ylabels, legends = _labels(store, 3)
    assert rows == [0, 1, 2]
    assert ylabels == ["flux (units differ per spectrum)"] * 3
    assert legends == [[f"flux [{per_row[r] or 'no unit stated'}]"] for r in rows]
    assert not any("mixed: see" in t for t in ylabels + [x for lg in legends for x in lg])
