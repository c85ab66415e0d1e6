"""Stage 5: the validation gate. The spec's nine checks plus chunk completeness, on any store (also ones
other tools wrote). Every check records its result; a failure says what was expected and where."""

from __future__ import annotations

import os
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
    SPECTRAL_2D,
)
from .store import all_arrays, members, row_data_flags
from .zarrio import storage_grid

MAX_ROWS_NAMED = 20  # per check; the count says how many more
T = TypeVar("T")


@dataclass
class CheckResult:
    name: str
    ok: bool
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"{self.name}: {p}" for p in self.problems]


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


class _Checks:
    def __init__(self, store: str, expect: Expectation | None):
        self.store = store
        self.expect = expect
        self.results: list[CheckResult] = []
        self.root: zarr.Group | None = None

    def run(self, name: str, fn: Callable[[list[str]], None]) -> None:
        problems: list[str] = []
        try:
            fn(problems)
        except Exception as exc:  # a damaged store must produce a failed check, not a traceback
            problems.append(f"could not be checked: {type(exc).__name__}: {exc}")
        self.results.append(CheckResult(name, not problems, problems))

    # --- helpers
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
    c = _Checks(store, expect)

    def open_store(problems: list[str]) -> None:
        if not os.path.isdir(store):
            problems.append(f"{store} is not a folder")
            return
        c.root = zarr.open_group(store, mode="r", use_consolidated=False)  # check what is really on disk

    c.run("store opens as a zarr group", open_store)
    if c.root is None:
        return c.results
    c.run("1 required groups", lambda p: _groups(c, p))
    c.run("2 required arrays exist and align", lambda p: _arrays_align(c, p))
    c.run("3 signal/flux_raw is 2-D and non-empty", lambda p: _flux_shape(c, p))
    c.run("4 signal/wavelength is (N_pix,) or (N_spec, N_pix)", lambda p: _wavelength(c, p))
    c.run("5 params/* and metadata/* are (N_spec,)", lambda p: _rowwise(c, p))
    c.run("6 no all-NaN or all-zero flux rows", lambda p: _flux_rows(c, p))
    c.run("7 units attrs on spectral arrays", lambda p: _units(c, p))
    c.run("8 provenance attrs", lambda p: _provenance(c, p))
    c.run("9 index.parquet has N_spec rows", lambda p: _index(c, p))
    c.run("10 every chunk exists", lambda p: _chunks_complete(c, p))
    if expect is not None and expect.checksums is not None:
        c.run("11 every file is what the merge wrote", lambda p: _checksums(c, expect.checksums, p))
    c.run("12 wavelength finite and increasing where there is flux", lambda p: _wavelength_grid(c, p))
    return c.results


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
    for nan_rows, zero_rows, unreadable in _each_chunk_row(one, starts):
        bad_nan.extend(nan_rows)
        bad_zero.extend(zero_rows)
        problems.extend(unreadable)
    return {"all_nan": bad_nan, "all_zero": bad_zero}


DECODE_THREADS = min(8, os.cpu_count() or 1)


def _each_chunk_row(fn: Callable[[int], T], starts: list[int], enough: Callable[[], bool] = lambda: False
                    ) -> Iterator[T]:
    """`fn(r)` for each chunk row start, in order, DECODE_THREADS at a time: Blosc and numpy release the
    GIL, so on many cores the gate's decoding (in the driver, once the workers are done) divides. Stops
    starting new ones once `enough()` says so (a store broken everywhere need not be decoded whole)."""
    if DECODE_THREADS == 1 or len(starts) < 2:
        for r in starts:
            yield fn(r)
            if enough():
                return
        return
    with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="shardmerge-gate") as pool:
        for at in range(0, len(starts), DECODE_THREADS):
            yield from pool.map(fn, starts[at : at + DECODE_THREADS])
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
    for found in _each_chunk_row(one, starts, enough=lambda: len(bad) > MAX_ROWS_NAMED):
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


def _units(c: _Checks, problems: list[str]) -> None:
    for path in ["signal/wavelength"] + [f"{g}/{n}" for n, g in SPECTRAL_2D.items()]:
        arr = c.array(path)
        if arr is None:
            continue
        units = arr.attrs.get("units")
        if not isinstance(units, str) or not units.strip():
            problems.append(f"{path} has no 'units' attr (expected a unit string, e.g. 'Angstrom')")


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


def _chunks_complete(c: _Checks, problems: list[str]) -> None:
    """A missing chunk reads back as the fill value without any error, so look for every chunk file."""
    for path, arr in all_arrays(c.root):
        base = os.path.join(c.store, *path.split("/"))
        grid = storage_grid(arr)
        missing = []
        for coords in np.ndindex(*grid):
            key = _chunk_key(arr, coords)
            f = os.path.join(base, *key.split("/"))
            if not os.path.isfile(f) or os.path.getsize(f) == 0:
                missing.append(coords)
        if missing:
            shown = ", ".join(str(m) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            problems.append(f"{path}: chunk(s) {shown}{more} missing or empty (of {int(np.prod(grid))})")


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


