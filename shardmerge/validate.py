"""Stage 5: the validation gate. The spec's nine checks plus shardmerge's own (CHECKS lists every one, by
number), on any store (also ones other tools wrote). The ingest's gate and `shardmerge validate` run the
same list and report it alike (`summary_line`): every check has a result, passed, failed or skipped with a
reason (check 11 needs what only the merge knows). A failure says what was expected and where."""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pyarrow.parquet as pq
import zarr

from .durable import file_checksum
from .schema import (
    ARRAY_BY_NAME,
    ARRAYS,
    INDEX_COLUMNS,
    PROVENANCE_ATTRS,
    REQUIRED_ARRAYS,
    REQUIRED_GROUPS,
    SCHEMA_UNITS,
    SPECTRAL_2D,
)
from .store import all_arrays, members, row_data_flags
from .units import parses_as_unit
from .zarrio import storage_grid, storage_grid_shape

MAX_ROWS_NAMED = 20  # per check; the count says how many more
# The most one chunk may decode to: shardmerge writes at most 32 MiB (a float64 2-D chunk), zarr's guidance is
# ~1-100 MB. A store whose metadata claims more is refused before anything is allocated.
MAX_CHUNK_DECODE_BYTES = 256 * 1024 * 1024
# Checks 6, 12 and 16 decode chunks concurrently up to this many decoded bytes at once (one chunk at least)
DECODE_BUDGET_BYTES = 512 * 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class Check:
    """One named check of the gate. `origin`: "spec" (ZARR_WRITE_SPEC.md's numbered checks 1-9, same
    numbers) or "shardmerge" (its own, 10 on). `needs`: what the check needs beyond the store, if anything."""

    number: int
    title: str
    origin: str
    what: str
    needs: str = ""

    @property
    def name(self) -> str:
        return f"{self.number} {self.title}"


CHECKS: tuple[Check, ...] = (
    Check(1, "required groups", "spec", "groups signal, continuum, representations, params and metadata exist"),
    Check(2, "required arrays exist and align", "spec",
          "the required arrays exist, every 2-D array has flux_raw's shape, paired arrays come together"),
    Check(3, "signal/flux_raw is 2-D and non-empty", "spec", "flux_raw is (N_spec, N_pix) with both non-zero"),
    Check(4, "signal/wavelength is (N_pix,) or (N_spec, N_pix)", "spec", "one shared grid or one per spectrum"),
    Check(5, "params/* and metadata/* are (N_spec,)", "spec", "every row-wise array has one value per spectrum"),
    Check(6, "no all-NaN or all-zero flux rows", "spec",
          "every flux row carries data (every chunk decoded; the gate: shard statistics and a decoded sample)"),
    Check(7, "units attrs on spectral arrays", "spec",
          "wavelength and every 2-D float array state their units: a `units` astropy.units parses, or (flux-like "
          "arrays) a `units_column` of per-spectrum units that all parse, or `units_unknown` with the source's "
          "spelling; every other `units` attr parses too"),
    Check(8, "provenance attrs", "spec", "schema_version, ingest_pipeline, created_at, git_commit are set"),
    Check(9, "index.parquet has N_spec rows", "spec", "index.parquet exists, has N_spec rows and its columns"),
    Check(10, "every chunk exists", "shardmerge",
          "no chunk file is missing (zarr would read a missing chunk as fill values without an error)"),
    Check(11, "every file is what the merge wrote", "shardmerge",
          "every file's size and crc32 equal what the merge recorded as it wrote it",
          needs="the checksums the merge recorded: only the ingest's gate has them; `validate` skips it"),
    Check(12, "wavelength finite and increasing where there is flux", "shardmerge",
          "no NaN wavelength under finite flux, and each grid increases strictly"),
    Check(13, "no link leaves the store, only files and folders", "shardmerge",
          "no symlink out of the store or into a cycle, no FIFO or device (run first)"),
    Check(14, "shapes and chunks fit the chunk files present", "shardmerge",
          "no metadata claims more chunks than the store has files, or a chunk too large to decode"),
    Check(15, "consolidated metadata agrees with the arrays", "shardmerge",
          "what a reader opening the consolidated metadata sees is each node's own metadata"),
    Check(16, "every chunk decodes to its shape", "shardmerge", "every chunk of every array decodes, to its shape"),
    Check(17, "store opens as a zarr group", "shardmerge", "the root's zarr.json (or .zgroup) opens as a group"),
    Check(18, "row counts agree with what the sources announced", "shardmerge",
          "flux_raw's rows equal index.parquet's, and the total and each file's rows equal what the scan found "
          "each source file to hold (root attr input_spectra, where the store records it)"),
)
CHECK_BY_NUMBER = {c.number: c for c in CHECKS}


def list_checks() -> tuple[Check, ...]:
    """Every check the gate and `shardmerge validate` run, in number order: the one list docs are made from."""
    return CHECKS


def checks_markdown() -> str:
    """The check list as a Markdown table (for the docs; `shardmerge validate --list-checks` prints it)."""
    rows = ["| # | check | from | what it makes sure of |", "|---|---|---|---|"]
    for c in CHECKS:
        needs = f" ({c.needs})" if c.needs else ""
        rows.append(f"| {c.number} | {c.title} | {'the spec' if c.origin == 'spec' else 'shardmerge'} | "
                    f"{c.what}{needs} |")
    return "\n".join(rows)


@dataclass
class CheckResult:
    name: str
    ok: bool  # no problem found (also true for a skipped check: see `skipped`)
    problems: list[str] = field(default_factory=list)
    skipped: str = ""  # why the check did not run (nothing to check it against, or an earlier check failed)

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else ("pass" if self.ok else "fail")

    def lines(self) -> list[str]:
        return [f"{self.name}: {p}" for p in self.problems]


def summary_line(results: list[CheckResult]) -> str:
    """How many of the checks passed: the gate's log line and `validate`'s last line say it alike."""
    passed = sum(r.status == "pass" for r in results)
    failed = sum(r.status == "fail" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    text = f"{passed}/{len(results)} checks passed"
    if failed:
        text += f", {failed} failed"
    if skipped:
        text += f", {skipped} skipped"
    return text


def skipped_lines(results: list[CheckResult]) -> list[str]:
    """One line per reason for skipping, naming the checks it skipped."""
    by_reason: dict[str, list[str]] = {}
    for r in results:
        if r.skipped:
            by_reason.setdefault(r.skipped, []).append(r.name.split(" ", 1)[0])
    return [f"{len(nums)} check(s) not run: {why} (check(s) {', '.join(nums)})" for why, nums in by_reason.items()]


@dataclass
class Expectation:
    """What the gate additionally knows from the plan (None for `shardmerge validate` on any store)."""

    n_spec: int
    n_pix: int
    # {path in the store: [size, crc32]} as the merge wrote (or the shard tasks recorded) each file
    checksums: dict[str, list[int]] | None = None
    # {"all_nan": rows, "all_zero": rows} of flux_raw as the shard tasks computed them, given only when every
    # flux chunk was copied raw and checked against its shard's checksum: check 6 then decodes a sample
    flux_rows: dict[str, list[int]] | None = None
    # {path: [inode, size, ctime_ns]} of chunk files the merge hard-linked after checking their crc32: the
    # same inode, size and ctime (set by the kernel on any write, never by utime) prove them unwritten since
    linked: dict[str, list[int]] | None = None
    # unit texts the scan produced with astropy.units (the plan's normalised flux units): check 7 takes
    # these, and the literal units the schema writes, as read, so the driver never imports astropy
    units_read: frozenset[str] = frozenset()


class _Checks:
    def __init__(self, store: str, expect: Expectation | None):
        self.store = store
        self.expect = expect
        self.results: list[CheckResult] = []
        self.root: zarr.Group | None = None
        # {path relative to the store: size} of every file in it, found without following a link (check 13)
        self.files: dict[str, int] = {}
        self._arrays: list[tuple[str, zarr.Array]] | None = None
        self._units_known = SCHEMA_UNITS | (expect.units_read if expect else frozenset())

    def parses(self, text: object) -> bool:
        """Whether astropy.units reads `text`: a unit the schema writes or the scan produced, else astropy's
        own verdict (imported only then)."""
        return (isinstance(text, str) and text in self._units_known) or parses_as_unit(text)

    def run(self, number: int, fn: Callable[[list[str]], None]) -> None:
        name = CHECK_BY_NUMBER[number].name
        problems: list[str] = []
        try:
            fn(problems)
        except Exception as exc:  # a damaged store must produce a failed check, not a traceback
            problems.append(f"could not be checked: {type(exc).__name__}: {exc}")
        self.results.append(CheckResult(name, not problems, problems))

    # --- helpers
    def arrays(self) -> list[tuple[str, zarr.Array]]:
        """Every array of the store, listed once (a listing opens each array's metadata: ~10 ms here)."""
        if self._arrays is None:
            self._arrays = all_arrays(self.root)
        return self._arrays

    def array(self, path: str) -> zarr.Array | None:
        try:
            node = self.root[path] if self.root is not None else None
        except KeyError:
            return None
        return node if isinstance(node, zarr.Array) else None

    def n_spec_pix(self) -> tuple[int, int] | None:
        flux = self.array("signal/flux_raw")
        if flux is None or flux.ndim != 2:
            return None
        return flux.shape


def run_checks(store: str, expect: Expectation | None = None) -> list[CheckResult]:
    """Every check of CHECKS on `store`, one result each, in number order. Structure first: a link leaving
    the store (13) stops everything, as nothing is opened through it; metadata claiming more than the chunk
    files hold (14) stops the checks that would loop over or allocate what it claims (those are skipped,
    saying why). Nothing else reads a file before those pass."""
    c = _Checks(store, expect)

    def open_store(problems: list[str]) -> None:
        c.root = zarr.open_group(store, mode="r", use_consolidated=False)  # check what is really on disk

    def finish(skip: str) -> list[CheckResult]:
        done = {r.name for r in c.results}
        return sorted(c.results + [CheckResult(k.name, True, skipped=skip) for k in CHECKS if k.name not in done],
                      key=lambda r: int(r.name.split(" ", 1)[0]))

    if not os.path.isdir(store):
        c.results.append(CheckResult(CHECK_BY_NUMBER[17].name, False, [f"{store} is not a folder"]))
        return finish("the store is not a folder")
    c.run(13, lambda p: _walk(c, p))
    if not c.results[-1].ok:
        return finish("the store has entries that checking would follow or block on (check 13)")
    c.run(17, open_store)
    if c.root is None:
        return finish("the store does not open as a zarr group (check 17)")
    c.run(14, lambda p: _plausible(c, p))
    if not c.results[-1].ok:
        return finish("the metadata claims more than the store's files can hold (check 14)")
    c.run(1, lambda p: _groups(c, p))
    c.run(2, lambda p: _arrays_align(c, p))
    c.run(3, lambda p: _flux_shape(c, p))
    c.run(4, lambda p: _wavelength(c, p))
    c.run(5, lambda p: _rowwise(c, p))
    c.run(6, lambda p: _flux_rows(c, p))
    c.run(7, lambda p: _units(c, p))
    c.run(8, lambda p: _provenance(c, p))
    c.run(9, lambda p: _index(c, p))
    c.run(10, lambda p: _chunks_complete(c, p))
    if expect is not None and expect.checksums is not None:
        c.run(11, lambda p: _checksums(c, expect.checksums, p))
    c.run(12, lambda p: _wavelength_grid(c, p))
    c.run(15, lambda p: _consolidated(c, p))
    c.run(16, lambda p: _decodes(c, p))
    c.run(18, lambda p: _announced(c, p))
    return finish("it needs the checksums the merge recorded, which only the ingest's gate has")


def failures(results: list[CheckResult]) -> list[str]:
    return [line for r in results if not r.ok for line in r.lines()]


# ---- the checks --------------------------------------------------------------------------------------

def _groups(c: _Checks, problems: list[str]) -> None:
    for g in REQUIRED_GROUPS:
        try:
            node = c.root[g]
        except KeyError:
            problems.append(f"group '{g}' is missing")
            continue
        if not isinstance(node, zarr.Group):
            problems.append(f"'{g}' is an array, expected a group")


def _arrays_align(c: _Checks, problems: list[str]) -> None:
    for path in REQUIRED_ARRAYS:
        if c.array(path) is None:
            problems.append(f"array '{path}' is missing")
    shape = c.n_spec_pix()
    if shape is None:
        return
    if c.expect and shape != (c.expect.n_spec, c.expect.n_pix):
        problems.append(f"signal/flux_raw has shape {shape}, the plan expects {(c.expect.n_spec, c.expect.n_pix)}")
    present = {a.name for a in ARRAYS if c.array(a.path) is not None}
    for a in ARRAYS:
        arr = c.array(a.path)
        if arr is not None and arr.shape != shape:
            problems.append(f"{a.path} has shape {arr.shape}, expected {shape} like signal/flux_raw")
        partner = ARRAY_BY_NAME.get(a.pairs_with)
        if partner and a.name < partner.name and (a.name in present) != (partner.name in present):
            problems.append(f"{a.path} and {partner.path} must be written together")
    method = c.array("continuum/method")
    if method is not None:
        if method.shape != (shape[0],):
            problems.append(f"continuum/method has shape {method.shape}, expected ({shape[0]},)")
        else:
            for start in range(0, shape[0], method.chunks[0]):
                values = np.asarray(method[start : start + method.chunks[0]], dtype=object)
                empty = np.flatnonzero(values == "")
                if empty.size:
                    problems.append(f"continuum/method is empty at row {start + int(empty[0])} "
                                    f"({empty.size} in rows {start}..)")
                    break


def _flux_shape(c: _Checks, problems: list[str]) -> None:
    flux = c.array("signal/flux_raw")
    if flux is None:
        problems.append("signal/flux_raw is missing")
    elif flux.ndim != 2:
        problems.append(f"signal/flux_raw is {flux.ndim}-D, expected 2-D")
    elif 0 in flux.shape:
        problems.append(f"signal/flux_raw is empty: shape {flux.shape}")


def _wavelength(c: _Checks, problems: list[str]) -> None:
    wave, shape = c.array("signal/wavelength"), c.n_spec_pix()
    if wave is None or shape is None:
        problems.append("signal/wavelength or signal/flux_raw is missing")
        return
    if wave.shape not in ((shape[1],), shape):
        problems.append(f"signal/wavelength has shape {wave.shape}, expected ({shape[1]},) or {shape}")


def _rowwise(c: _Checks, problems: list[str]) -> None:
    shape = c.n_spec_pix()
    if shape is None:
        problems.append("cannot check without a 2-D signal/flux_raw")
        return
    for g in ("params", "metadata"):
        try:
            group = c.root[g]
        except KeyError:
            continue
        for name, arr in members(group):
            if isinstance(arr, zarr.Array) and arr.shape != (shape[0],):
                problems.append(f"{g}/{name} has shape {arr.shape}, expected ({shape[0]},)")


def _source_of(c: _Checks, row: int) -> str:
    path, srow = c.array("metadata/source_path"), c.array("metadata/source_row")
    if path is None or srow is None:
        return ""
    try:
        return f" (source {path[row]} spectrum {int(srow[row])})"
    except Exception:
        return ""


SAMPLE_EVERY = 16  # with shard statistics, check 6 decodes every 16th chunk row (and the first and last)


def _flux_rows(c: _Checks, problems: list[str]) -> None:
    """Every row: a row whose values are all NaN, or whose finite values are all zero, carries no data.
    NaN padding at the end of shorter spectra is not a fault. Without shard statistics every chunk is
    decoded; with them (see Expectation.flux_rows) a sample of chunk rows is decoded and must agree."""
    flux = c.array("signal/flux_raw")
    if flux is None or flux.ndim != 2 or 0 in flux.shape:
        problems.append("cannot check without a non-empty 2-D signal/flux_raw")
        return
    n_spec, n_pix = flux.shape
    cr, cp = flux.chunks
    known = c.expect.flux_rows if c.expect else None
    starts = list(range(0, n_spec, cr))
    if known is not None:
        sample = sorted({*starts[::SAMPLE_EVERY], starts[-1]})
        found = _decode_flux_rows(flux, sample, problems)
        for kind in ("all_nan", "all_zero"):
            expected = {r for r in known[kind] if any(s <= r < s + cr for s in sample)}
            if set(found[kind]) != expected:
                problems.append(f"signal/flux_raw: shard statistics list {kind} rows {sorted(expected)[:5]} in the "
                                f"sampled chunk rows, decoding finds {sorted(found[kind])[:5]}")
        bad_nan, bad_zero = sorted(known["all_nan"]), sorted(known["all_zero"])
    else:
        found = _decode_flux_rows(flux, starts, problems)
        bad_nan, bad_zero = found["all_nan"], found["all_zero"]
    for label, bad in (("all-NaN", bad_nan), ("all-zero", bad_zero)):
        for row in bad[:MAX_ROWS_NAMED]:
            problems.append(f"signal/flux_raw row {row} is {label}{_source_of(c, row)}")
        if len(bad) > MAX_ROWS_NAMED:
            problems.append(f"signal/flux_raw: {len(bad) - MAX_ROWS_NAMED} more {label} rows")


def _decode_flux_rows(flux: zarr.Array, starts: list[int], problems: list[str]) -> dict[str, list[int]]:
    """Decode the chunk rows beginning at `starts`, one chunk at a time; rows that carry no data."""
    n_spec, n_pix = flux.shape
    cr, cp = flux.chunks

    def one(r: int) -> tuple[list[int], list[int], list[str]]:
        rows = min(cr, n_spec - r)
        any_finite = np.zeros(rows, dtype=bool)
        any_nonzero = np.zeros(rows, dtype=bool)
        unreadable = []
        for col in range(0, n_pix, cp):
            try:
                block = flux[r : r + rows, col : col + cp]
            except Exception as exc:
                unreadable.append(f"signal/flux_raw chunk ({r // cr}, {col // cp}) cannot be read: "
                                  f"{type(exc).__name__}: {exc}")
                continue
            finite, nonzero = row_data_flags(block)
            any_finite |= finite
            any_nonzero |= nonzero
        return ([r + int(i) for i in np.flatnonzero(~any_finite)],
                [r + int(i) for i in np.flatnonzero(any_finite & ~any_nonzero)], unreadable)

    bad_nan, bad_zero = [], []
    threads = _threads_for(cr * cp * flux.dtype.itemsize)  # a foreign store's chunks may be 256 MiB each
    for nan_rows, zero_rows, unreadable in _each_chunk_row(one, starts, threads=threads):
        bad_nan.extend(nan_rows)
        bad_zero.extend(zero_rows)
        problems.extend(unreadable)
    return {"all_nan": bad_nan, "all_zero": bad_zero}


DECODE_THREADS = min(8, os.cpu_count() or 1)


def _threads_for(task_bytes: int) -> int:
    """Decode threads for tasks each holding `task_bytes` decoded: DECODE_BUDGET_BYTES in all, one at least."""
    return max(1, min(DECODE_THREADS, DECODE_BUDGET_BYTES // max(1, task_bytes)))


def _each_chunk_row(fn: Callable[[int], T], starts: list[int], enough: Callable[[], bool] = lambda: False,
                    threads: int = DECODE_THREADS) -> Iterator[T]:
    """`fn(r)` for each chunk row start, in order, DECODE_THREADS at a time: Blosc and numpy release the
    GIL, so on many cores the gate's decoding (in the driver, once the workers are done) divides. Stops
    starting new ones once `enough()` says so (a store broken everywhere need not be decoded whole)."""
    if threads == 1 or len(starts) < 2:
        for r in starts:
            yield fn(r)
            if enough():
                return
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="shardmerge-gate") as pool:
        for at in range(0, len(starts), threads):
            yield from pool.map(fn, starts[at : at + threads])
            if enough():
                return


def _wavelength_grid(c: _Checks, problems: list[str]) -> None:
    """Additive to the spec: a wavelength that is NaN where the flux is finite, or that does not increase
    along a spectrum, means a reader misread the file (the worst fault: stored, and wrong). Rows as check 6
    reads them (every chunk row without shard statistics, the same sample with them), one chunk-sized slab
    at a time. A shared 1-D grid is checked once, and the flux is decoded only under its NaN pixels."""
    wave, flux = c.array("signal/wavelength"), c.array("signal/flux_raw")
    if wave is None or flux is None or flux.ndim != 2 or 0 in flux.shape or \
            wave.shape not in ((flux.shape[1],), flux.shape):
        problems.append("cannot check without signal/wavelength aligned with signal/flux_raw")
        return
    n_spec, n_pix = flux.shape
    cr, cp = flux.chunks
    starts = list(range(0, n_spec, cr))
    if c.expect is not None and c.expect.flux_rows is not None:
        starts = sorted({*starts[::SAMPLE_EVERY], starts[-1]})
    shared = np.asarray(wave[:], dtype=np.float64) if wave.ndim == 1 else None
    holes: list[int] = []  # with a shared grid: the pixel chunks where it has NaNs
    if shared is not None:
        if _not_increasing(shared[np.newaxis, :], np.array([-np.inf]))[0][0]:
            problems.append("signal/wavelength (shared by every row) does not increase strictly")
        holes = [col for col in range(0, n_pix, cp) if not np.all(np.isfinite(shared[col : col + cp]))]

    def one(r: int) -> dict[int, str]:
        rows = min(cr, n_spec - r)
        found: dict[int, str] = {}
        last = np.full(rows, -np.inf)  # each row's last finite wavelength, carried across pixel chunks
        for col in (holes if shared is not None else range(0, n_pix, cp)):
            w = shared[col : col + cp] if shared is not None else np.asarray(wave[r : r + rows, col : col + cp])
            f = np.asarray(flux[r : r + rows, col : col + cp])
            for k in np.flatnonzero((np.isfinite(f) & ~np.isfinite(w)).any(axis=1)):
                found.setdefault(r + int(k), "is not finite where the flux has values")
            if shared is None:
                worse, last = _not_increasing(w, last)
                for k in np.flatnonzero(worse):
                    found.setdefault(r + int(k), "does not increase strictly")
        return found

    bad: dict[int, str] = {}
    slab = cr * cp * (flux.dtype.itemsize + (0 if shared is not None else wave.dtype.itemsize))
    for found in _each_chunk_row(one, starts, enough=lambda: len(bad) > MAX_ROWS_NAMED,
                                 threads=_threads_for(slab)):
        for row, why in found.items():
            bad.setdefault(row, why)
    for row in sorted(bad)[:MAX_ROWS_NAMED]:
        problems.append(f"signal/wavelength row {row} {bad[row]}{_source_of(c, row)}")
    if len(bad) > MAX_ROWS_NAMED:
        problems.append("signal/wavelength: more rows like these")


def _not_increasing(w: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a slab whose finite values do not increase strictly, continuing from `last` (each row's last
    finite value before the slab, -inf at its start; NaN padding is skipped); and the rows' new `last`."""
    ext = np.concatenate([last[:, np.newaxis], w], axis=1)
    finite = np.isfinite(ext)
    at = np.where(finite, np.arange(ext.shape[1]), 0)
    np.maximum.accumulate(at, axis=1, out=at)
    previous = np.take_along_axis(ext, at, axis=1)  # the last finite value at or before each position
    return (finite[:, 1:] & ~(ext[:, 1:] > previous[:, :-1])).any(axis=1), previous[:, -1]


_UNIT_FORM_ATTRS = ("units_source", "units_source_column", "units_column", "units_unknown")


def _units(c: _Checks, problems: list[str]) -> None:
    """Every spectral array states its unit. A store that normalises its units (its flux says where its
    sources' spellings are: schema.flux_unit_attrs) must do it in a form astropy.units reads: a `units`
    attr that parses, a `units_column` naming an (N_spec,) string array whose values all parse, or
    `units_unknown` with the source's spelling kept; and every other `units` attr in it must parse too.
    A store without those attrs (an earlier release's, another tool's) needs only a non-empty `units`."""
    flux = c.array("signal/flux_raw")
    normalised = flux is not None and any(k in flux.attrs for k in _UNIT_FORM_ATTRS)
    spectral = ["signal/wavelength"] + [f"{g}/{n}" for n, g in SPECTRAL_2D.items()]
    for path in spectral:
        arr = c.array(path)
        if arr is None:
            continue
        if normalised:
            _unit_form(c, path, arr.attrs, problems)
            continue
        units = arr.attrs.get("units")
        if not isinstance(units, str) or not units.strip():
            problems.append(f"{path} has no 'units' attr (expected a unit string, e.g. 'Angstrom')")
    if normalised:
        for path, arr in c.arrays():
            units = arr.attrs.get("units")
            if path not in spectral and units is not None and not c.parses(units):
                problems.append(f"{path}: units {units!r} does not parse with astropy.units")


def _unit_form(c: _Checks, path: str, attrs, problems: list[str]) -> None:
    units, column = attrs.get("units"), attrs.get("units_column")
    if units is not None:
        if not isinstance(units, str) or not units.strip() or not c.parses(units):
            problems.append(f"{path}: units {units!r} does not parse with astropy.units")
    elif column is not None:
        problems.extend(f"{path}: units_column {column!r} {why}" for why in _unit_column_problems(c, column))
    elif attrs.get("units_unknown") is True:
        if not isinstance(attrs.get("units_source"), str) and not isinstance(attrs.get("units_source_column"), str):
            problems.append(f"{path}: units_unknown without the source's spelling (units_source or "
                            "units_source_column)")
    else:
        problems.append(f"{path} has no 'units' attr, nor a 'units_column' or 'units_unknown' (expected a unit "
                        "astropy.units reads, e.g. 'Angstrom')")


def _unit_column_problems(c: _Checks, column: object) -> list[str]:
    arr = c.array(column) if isinstance(column, str) else None
    shape = c.n_spec_pix()
    if arr is None:
        return ["is not an array of the store"]
    if arr.ndim != 1 or (shape is not None and arr.shape[0] != shape[0]) or arr.dtype.kind not in "OTU":
        return [f"is not an (N_spec,) string array ({arr.shape}, {arr.dtype})"]
    step = max(arr.chunks[0], 1)
    bad: set[str] = set()
    for start in range(0, arr.shape[0], step):  # a row-wise chunk at a time: distinct values are few
        bad.update(str(v) for v in set(np.asarray(arr[start : start + step]).tolist()) if not c.parses(v))
    return [f"holds {v!r}, which does not parse with astropy.units" for v in sorted(bad)[:MAX_ROWS_NAMED]]


def _provenance(c: _Checks, problems: list[str]) -> None:
    attrs = c.root.attrs
    for key in PROVENANCE_ATTRS:
        value = attrs.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"root attr '{key}' is missing or empty")


def _index(c: _Checks, problems: list[str]) -> None:
    path = os.path.join(c.store, "index.parquet")
    if not os.path.isfile(path):
        problems.append(f"{path} does not exist")
        return
    meta = pq.ParquetFile(path)
    n = meta.metadata.num_rows
    shape = c.n_spec_pix()
    if shape is not None and n != shape[0]:
        problems.append(f"index.parquet has {n} rows, N_spec is {shape[0]}")
    missing = [col for col in INDEX_COLUMNS if col not in meta.schema_arrow.names]
    if missing:
        problems.append(f"index.parquet lacks column(s) {', '.join(missing)}")


def _announced(c: _Checks, problems: list[str]) -> None:
    """Rows dropped after the scan (a lost shard, an index rewritten, a file's spectra short) leave a store
    that is consistent with itself: compare it with what the sources announced, recorded at ingest time
    (provenance.announced_spectra). Reads index.parquet's source_path column only."""
    shape = c.n_spec_pix()
    path = os.path.join(c.store, "index.parquet")
    runs: list[tuple[str, int]] | None = None
    if os.path.isfile(path):
        n_index = pq.ParquetFile(path).metadata.num_rows
        runs = _path_runs(path)
        if shape is not None and n_index != shape[0]:
            problems.append(f"signal/flux_raw has {shape[0]} rows, index.parquet {n_index}")
    said = c.root.attrs.get("input_spectra")
    if said is None:
        return  # a store from before shardmerge recorded it, or another tool's: only the two counts above
    if not isinstance(said, dict) or not isinstance(said.get("total"), int):
        problems.append(f"root attr input_spectra is not a record of counts: {str(said)[:200]!r}")
        return
    total = said["total"]
    if shape is not None and shape[0] != total:
        problems.append(f"the sources announced {total} spectra in {said.get('files', '?')} file(s) (root attr "
                        f"input_spectra), the store holds {shape[0]} rows ({shape[0] - total:+d})")
    if runs is None:
        return
    per_file = said.get("per_file")
    if isinstance(per_file, dict):
        held: dict[str, int] = {}
        for p, n in runs:
            held[p] = held.get(p, 0) + n
        wrong = [f"{p}: announced {per_file.get(p, 0)}, index.parquet has {held.get(p, 0)}"
                 for p in sorted(set(per_file) | set(held)) if per_file.get(p, 0) != held.get(p, 0)]
        for line in wrong[:MAX_ROWS_NAMED]:
            problems.append(f"rows of {line}")
        if len(wrong) > MAX_ROWS_NAMED:
            problems.append(f"... and {len(wrong) - MAX_ROWS_NAMED} more file(s) whose rows differ")
        return
    from .provenance import counts_digest

    counts = [n for _, n in runs]
    if said.get("files") != len(counts) or said.get("per_file_sha256") != counts_digest(counts):
        problems.append(f"index.parquet's rows per file differ from what the sources announced: {len(counts)} "
                        f"file(s) there, {said.get('files')} announced, and the per-file counts' digest differs")


def _path_runs(path: str) -> list[tuple[str, int]] | None:
    """(source_path, rows) of each run of consecutive index rows from one file, in row order; None when the
    index has no source_path column (check 9 says so). Dictionary-encoded a batch at a time: no Python
    object per row."""
    meta = pq.ParquetFile(path)
    if "source_path" not in meta.schema_arrow.names:
        return None
    runs: list[tuple[str, int]] = []
    for batch in meta.iter_batches(columns=["source_path"], batch_size=1 << 20):
        encoded = batch.column(0).dictionary_encode()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        if codes.size == 0:
            continue
        names = encoded.dictionary.to_pylist()
        starts = np.concatenate(([0], np.flatnonzero(np.diff(codes)) + 1))
        for start, n in zip(starts.tolist(), np.diff(np.append(starts, codes.size)).tolist(), strict=True):
            name = names[codes[start]]
            if runs and runs[-1][0] == name:  # a file's run across two batches
                runs[-1] = (name, runs[-1][1] + n)
            else:
                runs.append((name, n))
    return runs


def _chunks_complete(c: _Checks, problems: list[str]) -> None:
    """A missing chunk reads back as the fill value without any error, so look for every chunk file (in
    check 13's listing: no stat per chunk, and check 14 bounded each grid by the files present)."""
    for path, arr in c.arrays():
        grid = storage_grid(arr)
        missing = [coords for coords in np.ndindex(*grid) if not c.files.get(_chunk_file(path, arr, coords))]
        if missing:
            shown = ", ".join(str(m) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            problems.append(f"{path}: chunk(s) {shown}{more} missing or empty (of {math.prod(grid)})")


def _checksums(c: _Checks, expected: dict[str, list[int]], problems: list[str]) -> None:
    """Catches a chunk truncated or altered after the merge wrote it, in any array (check 6 decodes
    only flux). crc32 runs at GB/s, so this costs one read of the compressed store, less the chunk files
    the merge hard-linked and verified (a stat each)."""
    bad = []
    linked = (c.expect.linked if c.expect else None) or {}
    for rel in sorted(expected):
        if rel in linked:
            try:
                st = os.stat(os.path.join(c.store, rel))
            except FileNotFoundError:
                bad.append(f"{rel} is missing")
                continue
            if [st.st_ino, st.st_size, st.st_ctime_ns] == linked[rel]:
                continue  # the bytes the merge verified, untouched: else read them, below
        try:
            actual = file_checksum(os.path.join(c.store, rel))
        except FileNotFoundError:
            bad.append(f"{rel} is missing")
            continue
        if actual != expected[rel]:
            bad.append(f"{rel} has {actual[0]} bytes, crc32 {actual[1]:08x}; the merge wrote {expected[rel][0]} "
                       f"bytes, crc32 {expected[rel][1]:08x}")
    problems.extend(bad[:MAX_ROWS_NAMED])
    if len(bad) > MAX_ROWS_NAMED:
        problems.append(f"{len(bad) - MAX_ROWS_NAMED} more files differ")


def _chunk_key(arr: zarr.Array, coords: tuple[int, ...]) -> str:
    return arr.metadata.encode_chunk_key(coords)


def _chunk_file(path: str, arr: zarr.Array, coords: tuple[int, ...]) -> str:
    """The storage file of chunk (or Zarr shard) `coords`, relative to the store, as check 13 lists it."""
    return f"{path}/{_chunk_key(arr, coords)}"


# ---- hostile stores: links, impossible shapes, lying consolidated metadata, undecodable chunks -------

def _walk(c: _Checks, problems: list[str]) -> None:
    """List every file of the store without following a link: a link whose target resolves outside the
    store (or to a folder holding it: a cycle) would make the checks read, and vouch for, what is not in
    the store; a FIFO or device would block or never end. Hard links cannot be told from files: allowed.
    A link that stays inside the store is listed with its target's size."""
    top = os.path.realpath(c.store)
    bad: list[str] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(c.store, rel_dir)) as entries:
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if os.path.commonpath([top, target]) != top:
                        bad.append(f"{rel} is a link to {target}, outside the store")
                    elif os.path.isdir(target) and os.path.commonpath([target, os.path.realpath(
                            os.path.dirname(entry.path))]) == target:
                        bad.append(f"{rel} is a link to {target}, a folder that holds it (a cycle)")
                    elif os.path.isfile(target):
                        c.files[rel] = os.stat(target).st_size
                    continue
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    stack.append(rel)
                elif stat.S_ISREG(mode):
                    c.files[rel] = entry.stat(follow_symlinks=False).st_size
                else:
                    bad.append(f"{rel} is not a file or folder (mode {stat.filemode(mode)})")
    problems.extend(sorted(bad)[:MAX_ROWS_NAMED])
    if len(bad) > MAX_ROWS_NAMED:
        problems.append(f"{len(bad) - MAX_ROWS_NAMED} more entries like these")


def _item_bytes(arr: zarr.Array) -> int:
    """Bytes one element takes decoded (a variable-length string: its slot; the text comes on top)."""
    return max(1, int(arr.dtype.itemsize))


def _plausible(c: _Checks, problems: list[str]) -> None:
    """In Python ints, before any check loops over a grid or decodes a chunk: a chunk grid needing more
    storage files than the whole store holds (a shape of 2**34 over one chunk file) cannot be real, and a
    chunk shape decoding to more than MAX_CHUNK_DECODE_BYTES is never allocated."""
    n_files = len(c.files)
    for path, arr in c.arrays():
        shape, chunks, outer = tuple(arr.shape), tuple(arr.chunks), storage_grid_shape(arr)
        if any(int(n) <= 0 for n in (*chunks, *outer)):
            problems.append(f"{path}: chunk shape {chunks} (storage files of {outer}) has an empty dimension")
            continue
        needed = math.prod(-(-int(n) // int(s)) for n, s in zip(shape, outer, strict=True))
        if needed > n_files:
            problems.append(f"{path}: shape {shape} in storage files of {outer} needs {needed} chunk files, "
                            f"the whole store holds {n_files} files")
        decoded = math.prod(int(n) for n in chunks) * _item_bytes(arr)
        if decoded > MAX_CHUNK_DECODE_BYTES:
            problems.append(f"{path}: chunk shape {chunks} decodes to {decoded} bytes, more than validate "
                            f"decodes ({MAX_CHUNK_DECODE_BYTES} bytes a chunk)")


CONSOLIDATED_FIELDS = {"shape": "shape", "data_type": "dtype", "dtype": "dtype", "chunk_grid": "chunks",
                       "chunks": "chunks", "attributes": "attrs"}


def _consolidated(c: _Checks, problems: list[str]) -> None:
    """A reader that opens the store through its consolidated metadata (zarr and xarray do by default)
    sees only that: each node it lists must agree with the node's own metadata file, field by field, and
    each node on disk must be listed. Zarr v2: `.zmetadata`; v3: `consolidated_metadata` in the root's
    zarr.json. A store without consolidated metadata passes (readers then list the folders)."""
    if c.root.metadata.zarr_format == 2:
        if ".zmetadata" not in c.files:
            return
        with open(os.path.join(c.store, ".zmetadata"), encoding="utf-8") as f:
            listed = json.load(f)["metadata"]
        own_files = {rel for rel in c.files if os.path.basename(rel) in (".zarray", ".zgroup", ".zattrs")}
        where = ".zmetadata"
    else:
        with open(os.path.join(c.store, "zarr.json"), encoding="utf-8") as f:
            consolidated = json.load(f).get("consolidated_metadata")
        if not consolidated:
            return
        listed = {f"{p}/zarr.json": doc for p, doc in consolidated["metadata"].items()}
        own_files = {rel for rel in c.files if rel.endswith("/zarr.json")}
        where = "the root's consolidated metadata"
    for rel in sorted(listed):
        if rel not in c.files:
            problems.append(f"{where} lists {rel}, which the store does not have")
            continue
        with open(os.path.join(c.store, rel), encoding="utf-8") as f:
            own = json.load(f)
        said = listed[rel]
        if isinstance(own, dict) and isinstance(said, dict):
            if os.path.basename(rel) == ".zattrs":
                own, said = {"attributes": own}, {"attributes": said}
            for key in sorted(set(own) | set(said)):
                if key == "consolidated_metadata" or own.get(key) == said.get(key):
                    continue  # a group's own consolidated_metadata is zarr's placeholder
                label = CONSOLIDATED_FIELDS.get(key, key)
                if label == "attrs":
                    o, s = own.get(key) or {}, said.get(key) or {}
                    names = sorted(k for k in set(o) | set(s) if o.get(k) != s.get(k))
                    problems.append(f"{rel}: {where} has attrs {names} as "
                                    f"{[s.get(k) for k in names]}, the node's own metadata "
                                    f"{[o.get(k) for k in names]}")
                else:
                    problems.append(f"{rel}: {where} has {label} {said.get(key)!r}, the node's own metadata "
                                    f"{own.get(key)!r}")
        elif own != said:
            problems.append(f"{rel}: {where} has {said!r}, the file holds {own!r}")
    for rel in sorted(own_files - set(listed)):
        if rel.count("/") or c.root.metadata.zarr_format == 2:  # the root's own zarr.json holds the list
            problems.append(f"{rel} is in the store but not in {where}")


def _decodes(c: _Checks, problems: list[str]) -> None:
    """Decode every chunk of every array, one storage file's region at a time (an inner chunk at a time
    when a Zarr shard is larger than MAX_CHUNK_DECODE_BYTES), several at once up to DECODE_BUDGET_BYTES,
    and name each that fails to decode or decodes to the wrong shape (zarr refuses a chunk whose decoded
    size is not its shape's). Not decoded again: a file the gate's check 11 matched against the crc32 the
    merge recorded as it wrote the file, and signal/flux_raw when check 6 decoded every chunk of it.
    A missing chunk file is check 10's: zarr would return fill values for it."""
    covered = set(c.expect.checksums) if c.expect is not None and c.expect.checksums is not None else set()
    flux_done = c.expect is None or c.expect.flux_rows is None
    bad: list[str] = []
    for path, arr in c.arrays():
        if path == "signal/flux_raw" and flux_done:
            continue
        outer = storage_grid_shape(arr)
        unit = outer if math.prod(outer) * _item_bytes(arr) <= MAX_CHUNK_DECODE_BYTES else tuple(arr.chunks)
        per_file = [o // u for o, u in zip(outer, unit, strict=True)]  # units in one storage file
        grid = [-(-int(n) // u) for n, u in zip(arr.shape, unit, strict=True)]
        todo = []
        for coords in np.ndindex(*grid):
            rel = _chunk_file(path, arr, tuple(k // p for k, p in zip(coords, per_file, strict=True)))
            if c.files.get(rel) and rel not in covered:
                todo.append(coords)
        threads = _threads_for(math.prod(unit) * _item_bytes(arr))

        def one(coords: tuple[int, ...], arr: zarr.Array = arr, unit: tuple[int, ...] = unit) -> str | None:
            region = tuple(slice(k * u, min((k + 1) * u, n)) for k, u, n in zip(coords, unit, arr.shape,
                                                                                   strict=True))
            want = tuple(r.stop - r.start for r in region)
            try:
                got = np.shape(arr[region])
            except Exception as exc:
                return f"{arr.path} chunk {coords} does not decode: {type(exc).__name__}: {exc}"
            return None if got == want else f"{arr.path} chunk {coords} decodes to shape {got}, expected {want}"

        if threads == 1 or len(todo) < 2:
            bad.extend(filter(None, map(one, todo)))
        else:
            with ThreadPoolExecutor(threads, thread_name_prefix="shardmerge-decode") as pool:
                bad.extend(filter(None, pool.map(one, todo)))
    problems.extend(bad[:MAX_ROWS_NAMED])
    if len(bad) > MAX_ROWS_NAMED:
        problems.append(f"{len(bad) - MAX_ROWS_NAMED} more chunks do not decode")


