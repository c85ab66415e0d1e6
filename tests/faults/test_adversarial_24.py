"""The adversarial pass over issue 24's guarantees: what a hostile or careless user found still broken or
weak, each case a row here. Headers whose mandatory values no parser should act on (TFIELDS = 2**31 drove
astropy to a MemoryError at ~4 GB), a --report aimed at a FIFO or a device (`/dev/stdout`: the rename
replaced it with a regular file), an @LIST or a mapping that never ends (`/dev/zero`: unbounded memory),
and a planted publish intent of 100 MB (read whole). Every input is generated small on disk; runs that
could exhaust memory are bounded (`run_bounded`: an address-space and CPU limit, peak RSS measured)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shardmerge.testing.spectra import make_wcs1d
from tests.faults.test_exhaustion import BLOCK, RSS_BOUND, card, header, image_header, run_bounded
from tests.helpers import run_cli, run_cli_process


def _bintable(tfields: int, tforms: list[tuple[str, str]], row_bytes: int = 8) -> bytes:
    """A primary HDU then a one-row binary table whose TFIELDS and TFORMn say what the test wants."""
    cards = [("XTENSION", "BINTABLE"), ("BITPIX", 8), ("NAXIS", 2), ("NAXIS1", row_bytes), ("NAXIS2", 1),
             ("PCOUNT", 0), ("GCOUNT", 1), ("TFIELDS", tfields)]
    for i, (name, form) in enumerate(tforms, 1):
        cards += [(f"TTYPE{i}", name), (f"TFORM{i}", form)]
    cards.append(("TUNIT1", "Angstrom"))
    body = b"".join(card(k, v) for k, v in cards) + b"END".ljust(80)
    table = body.ljust(-(-len(body) // BLOCK) * BLOCK, b" ")
    return header(("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True)) + table + bytes(BLOCK)


# -- headers whose mandatory values break the standard ---------------------------------------------------

HEADERS = {
    "tfields-2**31": (lambda: _bintable(2**31, [("WAVELENGTH", "E"), ("FLUX", "E")]),
                      "HDU 1: TFIELDS = 2147483648 is not a column count of 0 to 999"),
    "tfields-negative": (lambda: _bintable(-1, [("WAVELENGTH", "E"), ("FLUX", "E")]),
                         "HDU 1: TFIELDS = -1 is not a column count of 0 to 999"),
    "tform-repeat-overflow": (lambda: _bintable(2, [("WAVELENGTH", "99999999999999999999E"), ("FLUX", "E")]),
                              "HDU 1: TFORM1 = '99999999999999999999E' is 399999999999999999996 bytes a row, "
                              "more than the row's 8 (NAXIS1)"),
    "tform-wider-than-row": (lambda: _bintable(2, [("WAVELENGTH", "1073741824E"), ("FLUX", "E")]),
                             "HDU 1: TFORM1 = '1073741824E' is 4294967296 bytes a row"),
    "bitpix-16": (lambda: image_header(100, bitpix=-16) + bytes(BLOCK),
                  "HDU 0: BITPIX = -16 is not a FITS value (8, 16, 32, 64, -32, -64)"),
    "bitpix-12": (lambda: image_header(100, bitpix=12) + bytes(BLOCK), "HDU 0: BITPIX = 12 is not a FITS value"),
    "naxis-999": (lambda: header(("BITPIX", -32), ("NAXIS", 999)), "HDU 0: NAXIS = 999 but NAXIS1 is missing"),
    "naxis1-negative": (lambda: image_header(-5), "HDU 0: NAXIS = 1 but NAXIS1 is -5, not a length >= 0"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(HEADERS))
def test_a_header_breaking_the_standards_mandatory_values_is_named_within_bounds(tmp_path, name):
    """TFIELDS = 2**31 made astropy build a 2**31-entry list (MemoryError at ~4 GB, 12 s); an odd BITPIX or
    NAXIS ended in `KeyError: -16`, `KeyError: 'NAXIS1'`, `IndexError`. Each is refused from the headers,
    naming the HDU, the keyword, the value and what the standard allows, before astropy acts on it."""
    make, said = HEADERS[name]
    bad = tmp_path / f"{name}.fits"
    bad.write_bytes(make())
    r, rss = run_bounded("plan", bad, "--workers", "0")
    assert r.exit_code == 3, r
    assert f"{bad}: {said}" in r.output, r
    assert rss < RSS_BOUND, rss


@pytest.mark.timeout(120)
def test_a_header_breaking_the_standard_is_left_out_with_skip_and_the_rest_published(tmp_path):
    folder = tmp_path / "in"
    make_wcs1d(folder / "good.fits", n_pix=100)
    (folder / "tfields.fits").write_bytes(_bintable(2**31, [("WAVELENGTH", "E"), ("FLUX", "E")]))
    r, rss = run_bounded("ingest", folder, "-o", tmp_path / "out.zarr", "--scratch", tmp_path / "s", "--workers", "0",
                         "--on-bad-file", "skip")
    assert r.exit_code == 0 and "1 spectra x 100 pixels" in r.output, r
    assert rss < RSS_BOUND, rss


def test_the_header_check_passes_the_files_the_readers_write():
    """No false alarm: a real table (P descriptors, X bits, A strings) and images pass header_problem."""
    import numpy as np
    from astropy.io import fits

    from shardmerge.readers import fastfits

    cols = [fits.Column("WAVE", "PD()", array=np.array([np.arange(5.0), np.arange(3.0)], dtype=object)),
            fits.Column("FLAGS", "11X", array=np.zeros((2, 11), dtype=bool)), fits.Column("NAME", "20A",
                                                                                           array=["a", "b"])]
    hdul = fits.HDUList([fits.PrimaryHDU(np.ones((3, 4), dtype="f4")), fits.BinTableHDU.from_columns(cols)])
    for i, hdu in enumerate(hdul):
        raw = hdu.header.tostring().encode()
        cards = [raw[k : k + 80] for k in range(0, len(raw), 80) if not raw[k : k + 80].startswith(b"END ")]
        assert fastfits.header_problem(fastfits.FastHeader(cards), i) is None, hdu.header


# -- --report aimed at what a rename must not replace -----------------------------------------------------

@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "in"
    for i in range(2):
        make_wcs1d(folder / f"s{i}.fits", i=i, n_pix=100, seed=i)
    return folder


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "report.fifo"
    os.mkfifo(path)
    return path


def _stdout_like(tmp_path: Path) -> Path:
    """What /dev/stdout is (a link to this process's fd 1), in a folder of the test's: the real one must not
    be put at risk (the unfixed ingest, run as root, replaced /dev/stdout with a regular file)."""
    (tmp_path / "dev").mkdir()
    path = tmp_path / "dev" / "stdout"
    path.symlink_to("/proc/self/fd/1")
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("make", "said"), [(_fifo, "is a FIFO (a pipe)"),
                                            (_stdout_like, "through the link")], ids=["fifo", "dev-stdout"])
def test_a_report_path_that_is_a_fifo_or_a_device_is_refused_untouched(tmp_path, inputs, make, said):
    """`--report /dev/stdout` (or a FIFO a reader waits on) was renamed over: the FIFO, the link became a
    regular file (for root, /dev/stdout of every process). Refused before any work, exit 2, untouched."""
    report = make(tmp_path)
    before = os.lstat(report)
    out = tmp_path / "out.zarr"
    # its own process: fd 1 is then a pipe, as in a shell pipeline (pytest's capture makes it a regular file)
    r = run_cli_process("ingest", inputs, "-o", out, "--workers", "0", "--scratch", tmp_path / "s", "--report",
                        report, timeout=60)
    assert r.exit_code == 2, r
    assert f"--report {report}: " in r.output and said in r.output and "regular file" in r.output, r
    after = os.lstat(report)
    assert (stat.S_IFMT(after.st_mode), after.st_ino) == (stat.S_IFMT(before.st_mode), before.st_ino)
    assert not out.exists()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("form", ["dev-stdout-like", "dev-fd"])
def test_a_report_to_stdout_redirected_to_a_log_file_is_refused_untouched(tmp_path, inputs, form):
    """`--report /dev/stdout > log` (a batch job's way): fd 1 is then a regular file, so following the link
    finds no device, and the rename replaced the link itself (as root, /dev/stdout). A link through /proc, or
    a name in /dev or /proc, is refused whatever the stream is open on. The /dev/stdout-like link is the
    test's own, so the real one is never at risk; /dev/fd/1 resolves into /proc, which is refused before
    anything is written."""
    report = _stdout_like(tmp_path) if form == "dev-stdout-like" else Path("/dev/fd/1")
    before = os.lstat(report)  # for /dev/fd/1: this process's fd link, which nothing may touch either
    out, log = tmp_path / "out.zarr", tmp_path / "run.log"
    with open(log, "w") as stdout:  # fd 1 of the ingest: a regular file
        done = subprocess.run([sys.executable, "-m", "shardmerge", "ingest", str(inputs), "-o", str(out),
                               "--workers", "0", "--scratch", str(tmp_path / "s"), "--report", str(report)],
                              stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert f"--report {report}: " in done.stderr and "regular file" in done.stderr, done.stderr
    after = os.lstat(report)
    assert (stat.S_IFMT(after.st_mode), after.st_ino) == (stat.S_IFMT(before.st_mode), before.st_ino)
    assert not out.exists() and log.read_text() == ""


@pytest.mark.timeout(60)
def test_a_report_through_a_link_to_a_regular_file_is_still_written(tmp_path, inputs):
    """No false alarm: a link to a regular file is replaced by the report, as the README says."""
    (tmp_path / "old.json").write_text("{}")
    report = tmp_path / "r.json"
    report.symlink_to(tmp_path / "old.json")
    r = run_cli("ingest", inputs, "-o", tmp_path / "out.zarr", "--workers", "0", "--scratch", tmp_path / "s",
                "--report", report)
    assert r.exit_code == 0, r
    assert not report.is_symlink() and '"status": "published"' in report.read_text()
    assert (tmp_path / "old.json").read_text() == "{}"


# -- an @LIST that never ends a line ----------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_an_at_list_without_newlines_is_refused_after_one_bounded_line(tmp_path):
    """`plan @/dev/zero` read one endless line (MemoryError at 2.7 GB, a traceback, exit 1); a 300 MB line
    without a newline cost 2.4 GB and was echoed whole in the error. Refused at MAX_LIST_LINE, exit 2."""
    from shardmerge.discover import MAX_LIST_LINE

    r, rss = run_bounded("plan", "@/dev/zero", "--workers", "0")
    assert r.exit_code == 2, r
    assert f"@/dev/zero: line 1 is longer than {MAX_LIST_LINE} characters" in r.output, r
    assert rss < RSS_BOUND, rss
    make_wcs1d(tmp_path / "in" / "s.fits", n_pix=50)
    listed = tmp_path / "list.txt"
    listed.write_text("in/s.fits\n" + "a" * (MAX_LIST_LINE + 10))
    r = run_cli("plan", f"@{listed}", "--workers", "0")
    assert r.exit_code == 2 and f"@{listed}: line 2 is longer" in r.output and "a" * 100 not in r.output, r


@pytest.mark.timeout(60)
def test_an_at_list_read_from_a_pipe_resolves_relative_paths_against_the_current_folder(tmp_path, monkeypatch):
    """`printf 'in/s0.fits\\n' | shardmerge plan @/dev/stdin` looked for /dev/in/s0.fits (the list's folder
    of a pipe is /dev, or /proc/self/fd): a piped list's relative paths are the current folder's."""
    from shardmerge.discover import discover_inputs

    make_wcs1d(tmp_path / "in" / "s0.fits", n_pix=50)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "list.txt").write_text("../in/s0.fits\n")
    monkeypatch.chdir(tmp_path)
    assert list(discover_inputs([f"@{tmp_path / 'sub' / 'list.txt'}"])) == [str(tmp_path / "in" / "s0.fits")]
    read, write = os.pipe()
    try:
        os.write(write, b"in/s0.fits\n")
        os.close(write)
        assert list(discover_inputs([f"@/dev/fd/{read}"])) == [str(tmp_path / "in" / "s0.fits")]
    finally:
        os.close(read)


# -- a mapping file that is no small file -----------------------------------------------------------------

_MAPPING = '[flux]\nhdu = 0\nrow = 0\n[wavelength]\nwcs = true\n'


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["dev-zero", "too-big", "deep-nesting"])
def test_a_mapping_that_is_no_small_toml_file_is_refused_within_bounds(tmp_path, kind):
    """`--mapping /dev/zero` was read whole, forever (killed at 40 s, RSS growing); `x = [[[...]]]` 10**5 deep
    ended in a RecursionError traceback, exit 1. Both refused, exit 2, naming the file, before any work."""
    data = make_wcs1d(tmp_path / "in" / "s.fits", n_pix=50)
    if kind == "dev-zero":
        mapping, said = Path("/dev/zero"), "not a regular file"
    else:
        mapping = tmp_path / "m.toml"
        if kind == "too-big":
            mapping.write_text(_MAPPING + "# " + "x" * (1 << 20) + "\n")
            said = "larger than 1048576 bytes"
        else:
            mapping.write_text(_MAPPING.replace("hdu = 0\n", "hdu = 0\nx = " + "[" * 100_000 + "]" * 100_000 + "\n"))
            said = "nested too deep"
    out = tmp_path / "out.zarr"
    r, rss = run_bounded("ingest", data, "-o", out, "--scratch", tmp_path / "s", "--workers", "0", "--format",
                         "mapping", "--mapping", mapping)
    assert r.exit_code == 2, r
    assert f"{mapping}: " in r.output and said in r.output and "Traceback" not in r.output, r
    assert rss < RSS_BOUND, rss
    assert not out.exists()


# -- a planted publish intent of GiB ----------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_a_huge_planted_publish_intent_is_refused_without_being_read(tmp_path, inputs):
    """A planted OUT.publish-intent is never acted on unless it names what a publish of ours names; it was
    also read whole first (100 MB: 316 MB RSS; a sparse 8 GiB one, more than a node has). Now at most
    MAX_INTENT_BYTES are read: refused, exit 5, untouched, in bounded memory."""
    from shardmerge.publish import MAX_INTENT_BYTES

    intent = tmp_path / "out.zarr.publish-intent"
    with open(intent, "wb") as f:
        f.write(b'{"out": "' + b" " * 100)
        f.truncate(8 * 2**30)  # a hole: nothing on disk
    r, rss = run_bounded("ingest", inputs, "-o", tmp_path / "out.zarr", "--scratch", tmp_path / "s", "--workers", "0")
    assert r.exit_code == 5, r
    assert f"{intent} is not an intent file written by shardmerge (over {MAX_INTENT_BYTES} bytes" in r.output, r
    assert rss < RSS_BOUND, rss
    assert intent.stat().st_size == 8 * 2**30 and not (tmp_path / "out.zarr").exists()


# -- an array column announcing arrays past --max-pixels --------------------------------------------------

@pytest.mark.timeout(120)
def test_an_array_column_announcing_arrays_past_max_pixels_is_refused_from_its_header(tmp_path):
    """TFORM1 = '1PD(1073741824)': a heap of 2**30 doubles in a sparse 8 GiB file; astropy allocated the
    8 GiB data unit (MemoryError under a 6 GB limit). The array length its TFORM announces is a spectrum's
    length like any other: refused from the header, naming the option."""
    import struct

    n = 2**30
    cards = [("XTENSION", "BINTABLE"), ("BITPIX", 8), ("NAXIS", 2), ("NAXIS1", 16), ("NAXIS2", 1), ("PCOUNT", 8 * n),
             ("GCOUNT", 1), ("TFIELDS", 2), ("TTYPE1", "WAVELENGTH"), ("TFORM1", f"1PD({n})"), ("TTYPE2", "FLUX"),
             ("TFORM2", f"1PE({n})"), ("TUNIT1", "Angstrom")]
    body = b"".join(card(k, v) for k, v in cards) + b"END".ljust(80)
    head = header(("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True)) + body.ljust(-(-len(body) // BLOCK) * BLOCK, b" ")
    bomb = tmp_path / "heap.fits"
    with open(bomb, "wb") as f:
        f.write(head + struct.pack(">iiii", n, 0, n, 0))
        f.truncate(len(head) + -(-(16 + 8 * n) // BLOCK) * BLOCK)
    r, rss = run_bounded("plan", bomb, "--workers", "0")
    assert r.exit_code == 3, r
    assert f"{bomb}: HDU 1 holds column 1 of arrays up to {n} values long (TFORM1)" in r.output, r
    assert "--max-pixels" in r.output and rss < RSS_BOUND, rss
