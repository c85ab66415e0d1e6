"""Hostile and careless inputs beside the FITS data itself: a mistyped mapping file, file names a walk
cannot take for granted (symlink loops, bytes that are not UTF-8), and an input rewritten between a failed
run and its rerun so that only its ctime and inode tell."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import zarr
from astropy.io import fits

from shardmerge.readers.mapping import mapping_ref
from tests.faults.helpers import (
    LAYOUT,
    failpoint_dir,
    kill_group,
    report_of,
    shard_stores,
    start_ingest,
    wait_for_failpoint,
)
from tests.helpers import run_cli, run_cli_process
from tests.storecmp import chunk_files

GOOD_MAPPING = {
    "flux": {"hdu": 1, "column": "FLUX", "unit": "adu"},
    "wavelength": {"hdu": "SPEC", "column": "WAVE", "unit": "nm", "log10": False},
    "uncertainty": {"hdu": 1, "column": "IVAR", "kind": "ivar"},
    "mask": {"hdu": 1, "column": "QUAL", "convention": "my bits"},
    "continuum": {"hdu": 1, "column": "CONT", "method": "fit"},
}


class _Raw(str):
    """A value written into the TOML as it is, unquoted (a wrong type the test spells in TOML)."""


def _toml(doc: dict) -> str:
    def value(v) -> str:
        if isinstance(v, _Raw):
            return str(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        return f'"{v}"' if isinstance(v, str) else repr(v)
    return "".join(f"[{t}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in keys.items()) for t, keys in doc.items())


def _table_file(path, n_pix: int = 50) -> np.ndarray:
    wave_nm = np.linspace(400.0, 700.0, n_pix)
    cols = [fits.Column(name, "D", array=a) for name, a in
            (("WAVE", wave_nm), ("FLUX", np.ones(n_pix)), ("IVAR", np.full(n_pix, 4.0)), ("CONT", np.ones(n_pix)))]
    cols.append(fits.Column("QUAL", "J", array=np.zeros(n_pix, dtype=np.int32)))
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name="SPEC")]).writeto(path)
    return wave_nm


def test_the_good_mapping_passes_the_schema(tmp_path):
    m = tmp_path / "m.toml"
    m.write_text(_toml(GOOD_MAPPING))
    assert mapping_ref(str(m))[0] == str(m)


# The schema, key by key, is tested in test_mapping_types.py; here, a mistyped mapping through the CLI.


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("table", "key", "raw", "said"), [
    ("wavelength", "log10", '"false"', 'found string "false"'),
    ("flux", "hdu", "true", "found boolean true"),
    ("flux", "row", '"0"', 'found string "0"'),
])
def test_a_mistyped_mapping_stops_the_ingest_before_any_work(tmp_path, table, key, raw, said):
    """The three cases that were silently wrong or a raw TypeError: exit 2 from the option, nothing written."""
    data = tmp_path / "in" / "s.fits"
    data.parent.mkdir()
    _table_file(data)
    doc = {"flux": {"hdu": 1, "column": "FLUX"}, "wavelength": {"hdu": 1, "column": "WAVE", "unit": "nm"}}
    doc[table][key] = _Raw(raw)
    m = tmp_path / "m.toml"
    m.write_text(_toml(doc))
    out = tmp_path / "out.zarr"
    r = run_cli("ingest", data.parent, "-o", out, "--workers", "0", "--format", "mapping", "--mapping", m)
    assert r.exit_code == 2, r
    assert f"mapping {m}: [{table}] {key}: expected" in r.output and said in r.output, r
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "m.toml"]  # no OUT, OUT.tmp, lock or scratch


@pytest.mark.timeout(120)
def test_log10_false_as_a_boolean_stores_the_wavelength_as_given(tmp_path):
    """The well-typed form of the mapping that was misread: the store holds 4000-7000 A, not 10**x."""
    data = tmp_path / "in" / "s.fits"
    data.parent.mkdir()
    wave_nm = _table_file(data)
    m = tmp_path / "m.toml"
    m.write_text('[flux]\nhdu = 1\ncolumn = "FLUX"\n[wavelength]\nhdu = 1\ncolumn = "WAVE"\nunit = "nm"\n'
                 'log10 = false\n')
    out = tmp_path / "out.zarr"
    r = run_cli("ingest", data.parent, "-o", out, "--workers", "0", "--format", "mapping", "--mapping", m,
                "--scratch", tmp_path / "scratch")
    assert r.exit_code == 0, r
    w = zarr.open_group(out, mode="r")["signal/wavelength"][...]
    np.testing.assert_allclose(np.ravel(w)[: wave_nm.size], wave_nm * 10, rtol=1e-12)


# ---- file names a walk cannot take for granted ----

def _good_folder(root) -> list:
    from shardmerge.testing.spectra import make_wcs1d

    return [make_wcs1d(root / f"spec_{k}.fits", i=k, n_pix=500, seed=k) for k in range(3)]


def _symlink_loop(root) -> tuple:
    a, b = root / "a.fits", root / "b.fits"
    os.symlink("b.fits", a)
    os.symlink("a.fits", b)
    return a, b


def _non_utf8_copy(root, good) -> bytes:
    """A good FITS file under the name b"\\xff.fits" (a Latin-1 'ÿ' from an old tarball, say)."""
    name = os.path.join(os.fsencode(root), b"\xff.fits")
    with open(good, "rb") as src, open(name, "wb") as dst:
        dst.write(src.read())
    return name


@pytest.mark.timeout(180)
def test_a_symlink_loop_in_a_folder_is_a_bad_input_named_then_skipped(tmp_path):
    folder = tmp_path / "in"
    _good_folder(folder)
    a, b = _symlink_loop(folder)
    out, rep = tmp_path / "out.zarr", tmp_path / "report.json"
    args = ("ingest", folder, "-o", out, "--workers", "0", "--scratch", tmp_path / "scratch")

    r = run_cli_process(*args)
    assert r.exit_code == 3, r  # an unreadable input, as any other: not the whole folder refused (exit 2)
    for link in (a, b):
        assert f"{link}: cannot stat (Too many levels of symbolic links)" in r.output, r
    assert not out.exists()

    r = run_cli_process(*args, "--on-bad-file", "skip", "--report", rep)
    assert r.exit_code == 0, r
    report = json.loads(rep.read_text())
    assert [s["path"] for s in report["skipped_files"]] == [str(a), str(b)]
    assert report["counts"]["files_ingested"] == 3 and report["counts"]["files_bad"] == 2
    assert zarr.open_group(out, mode="r")["signal/flux_raw"].shape[0] == 3


@pytest.mark.timeout(180)
def test_a_file_name_that_is_not_utf8_is_refused_escaped_then_skipped(tmp_path):
    """A good FITS file named b"\\xff.fits" is refused, not ingested: the store, its file table (Parquet
    strings) and the JSON report hold paths as UTF-8 text, and an escaped name would be a path to no file.
    It is named with its bytes escaped (\\xff), exit 3; with skip it is listed and the rest ingested."""
    folder = tmp_path / "in"
    good = _good_folder(folder)
    _non_utf8_copy(folder, good[0])
    shown = f"{folder}/\\xff.fits"
    out, rep = tmp_path / "out.zarr", tmp_path / "report.json"
    args = ("ingest", folder, "-o", out, "--workers", "0", "--scratch", tmp_path / "scratch")

    r = run_cli_process(*args)
    assert r.exit_code == 3, r
    assert f"{shown}: the file name is not valid UTF-8" in r.output and "Traceback" not in r.output, r
    assert not out.exists()

    r = run_cli_process(*args, "--on-bad-file", "skip", "--report", rep)
    assert r.exit_code == 0, r
    report = json.loads(rep.read_text(encoding="utf-8"))  # strict UTF-8: no lone surrogate leaked into it
    assert report["skipped_files"] == [{"path": shown, "reason": report["skipped_files"][0]["reason"]}]
    assert "not valid UTF-8" in report["skipped_files"][0]["reason"]
    assert report["counts"]["files_ingested"] == 3
    g = zarr.open_group(out, mode="r")
    assert g["signal/flux_raw"].shape[0] == 3
    assert run_cli("validate", out).exit_code == 0


def test_a_non_utf8_name_travels_through_discovery_and_the_path_list(tmp_path):
    """Discovery keeps such a name as os gives it (surrogate escapes), so the scan can name it; a path
    list packs and unpacks it unchanged."""
    from shardmerge.discover import discover_inputs

    folder = tmp_path / "in"
    good = _good_folder(folder)
    raw = _non_utf8_copy(folder, good[0])
    found = list(discover_inputs([str(folder)]))
    assert os.fsdecode(raw) in found and len(found) == 4
    assert os.path.exists(found[-1]) and os.fsencode(found[-1]) == raw  # sorts last: 0xff after ASCII


# ---- an input rewritten with its size and mtime kept: what a resume and a shard task detect ----

def _rewrite_in_place(path, make) -> None:
    """Other data in the same file (same inode, same size), its mtime set back with utime: only the
    ctime, which the kernel sets on the write and on the utime, tells. `make(p)` writes the new file."""
    before = os.stat(path)
    fresh = path.with_name(path.name + ".new")
    make(fresh)
    data = fresh.read_bytes()
    fresh.unlink()
    assert len(data) == before.st_size and data != path.read_bytes()  # really other data, of the same size
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


def _wcs1d_0001(p) -> None:  # spec_0001.fits of make_mixed_corpus, with other flux (seed)
    from shardmerge.testing.spectra import make_wcs1d

    make_wcs1d(p, i=1, n_pix=3500, crval=3.6, cdelt=1e-4, log=True, uncertainty="err", seed=999)


def test_stat_id_changes_when_a_file_is_rewritten_with_its_size_and_mtime_kept(tmp_path):
    from shardmerge.filetable import stat_id

    p, q = tmp_path / "a.bin", tmp_path / "b.bin"
    p.write_bytes(b"x" * 100)
    q.write_bytes(b"x" * 100)
    st = os.stat(p)
    assert stat_id(os.stat(q)) != stat_id(st)  # another inode
    with open(p, "r+b") as f:
        f.write(b"y" * 100)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = os.stat(p)
    assert (again.st_size, again.st_mtime_ns, again.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert again.st_ctime_ns != st.st_ctime_ns and stat_id(again) != stat_id(st)
    assert stat_id(os.stat(p)) == stat_id(again)  # a read changes nothing


@pytest.mark.timeout(300)
def test_a_file_rewritten_with_size_and_mtime_kept_between_a_failed_run_and_its_rerun_is_recomputed(
        tmp_path, corpus):
    """The run dies once every shard is written; one input then gets other data of the same size and
    its old mtime back. The rerun recomputes the one shard that read it (its key covers inode and
    ctime) instead of reusing the stale one, and writes the store a clean run of the new inputs writes."""
    mine = tmp_path / "corpus"
    shutil.copytree(corpus, mine)
    out, scratch = tmp_path / "out.zarr", tmp_path / "scratch"
    proc = start_ingest(tmp_path, mine, "-o", out, *LAYOUT, failpoints="gate-start=pause", workers=0)
    wait_for_failpoint(tmp_path, "gate-start", proc)
    kill_group(proc)
    assert len(shard_stores(scratch)) == 9 and not out.exists()

    _rewrite_in_place(mine / "wcs1d" / "spec_0001.fits", _wcs1d_0001)
    rep = tmp_path / "report.json"
    r = run_cli_process("ingest", mine, "-o", out, "--workers", "0", *LAYOUT, "--report", rep)
    assert r.exit_code == 0, r
    counts = report_of(rep)["counts"]
    assert (counts["shards_total"], counts["shards_reused"]) == (9, 8), counts  # that one shard recomputed

    clean = tmp_path / "clean.zarr"
    r = run_cli_process("ingest", mine, "-o", clean, "--workers", "0", *LAYOUT,
                        env={"SHARDMERGE_SCRATCH": str(tmp_path / "clean-scratch")})
    assert r.exit_code == 0, r
    assert chunk_files(out) == chunk_files(clean)
    assert run_cli("validate", out).exit_code == 0


@pytest.mark.timeout(300)
def test_a_split_file_rewritten_with_size_and_mtime_kept_during_the_run_is_refused(tmp_path, corpus):
    """A plate split between shards, rewritten after the scan with its size and mtime kept: the shard
    tasks' check before reading each part (the same identity as the shard key) refuses it, exit 3."""
    from shardmerge.testing.spectra import make_image2d

    mine = tmp_path / "corpus"
    shutil.copytree(corpus, mine)
    plate = mine / "plates" / "plate_000.fits"
    out = tmp_path / "out.zarr"
    proc = start_ingest(tmp_path, mine, "-o", out, *LAYOUT, failpoints="shard-start=wait", workers=0)
    wait_for_failpoint(tmp_path, "shard-start", proc)  # scanned; no shard has read anything yet
    _rewrite_in_place(plate, lambda p: make_image2d(p, i=100, n_rows=40, n_pix=4000, seed=555))
    (failpoint_dir(tmp_path) / "shard-start.go").touch()
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 3, output
    assert f"{plate}: changed after the scan" in output, output
    assert not out.exists()
