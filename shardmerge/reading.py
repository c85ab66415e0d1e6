"""Reading a published store back, read-only: `open_store(path) -> Store`.

A Store gives the index as a pandas DataFrame, the whole store as one lazy xarray Dataset, one spectrum as a
specutils Spectrum with astropy units, row selections, and numpy rows for ML loaders. zarr, numpy and pyarrow
(shardmerge's own dependencies) are all it needs to open a store; pandas, xarray and specutils (the `read`
extra) are imported only by the methods that return their objects.

Flux units are found the way the store states them, in one of three forms:

- one unit for the whole store: the flux array's `units` attr;
- a unit per spectrum: the attr `units_column` names a row-wise string array (`metadata/flux_unit`) whose
  values astropy parses (`units_source` / `metadata/flux_unit_source` keep the source's own spelling);
- stores written before that: `units = "mixed: see metadata/flux_unit"`, a pointer to the same column.

Strings are parsed with astropy.units; one astropy does not know becomes an `astropy.units.UnrecognizedUnit`
(it keeps the string, allows no arithmetic), never an error.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import zarr

from .errors import NotAStoreError, StoreChangedError, UnknownColumnError
from .schema import MASK_ARRAY, MASK_PADDING
from .store import all_arrays, is_shardmerge_store, read_consistent, require_zarr_group, store_identity

if TYPE_CHECKING:
    import astropy.units as u
    import pandas as pd
    import xarray as xr

__all__ = ["SpectrumRow", "Store", "open_store", "parse_unit"]

FLUX = "signal/flux_raw"
UNCERTAINTY = "signal/uncertainty_raw"
WAVELENGTH = "signal/wavelength"
MASK = f"signal/{MASK_ARRAY}"
MIXED_POINTER = "mixed: see "  # the units attr of stores written before `units_column`
ROWWISE_GROUPS = ("metadata", "params")
CONTINUUM_METHOD = "continuum/method"


def open_store(path: str | os.PathLike) -> Store:
    """Open a published shardmerge store read-only.

    Raises NotAStoreError (exit code 2) when `path` is missing, not a folder, or not a store shardmerge
    wrote. Opening reads only the store's metadata (zarr.json), no chunk of data."""
    return Store(path)


class SpectrumRow(NamedTuple):
    """One row of the store as numpy arrays, full width (N_pix, NaN past the spectrum's end), so that rows
    stack into fixed-shape batches: flux and uncertainty float32, wavelength float64 in Angstrom."""

    flux: np.ndarray
    uncertainty: np.ndarray
    wavelength: np.ndarray


@lru_cache(maxsize=1024)
def parse_unit(text: str | None) -> u.UnitBase:
    """An astropy unit for a unit string as a store states it. Unparseable: an UnrecognizedUnit (kept as
    text), never an exception; None or "" (no unit stated): dimensionless."""
    import astropy.units as u

    if text is None or not str(text).strip():
        return u.dimensionless_unscaled
    with warnings.catch_warnings():  # deprecated or discouraged spellings (two slashes) still parse
        warnings.simplefilter("ignore")
        return u.Unit(str(text).strip(), parse_strict="silent")


def _optional(module: str, what: str) -> Any:
    """Import a module of the `read` extra, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs {module.split('.')[0]}, which is not installed: "
                          "pip install '.[read]' in a clone of shardmerge (or 'shardmerge[read]' from an "
                          "index)") from exc


def _spectrum_class() -> type:
    specutils = _optional("specutils", "Store.spectrum")
    return getattr(specutils, "Spectrum", None) or specutils.Spectrum1D  # Spectrum1D: specutils < 2


def _python_value(value: Any) -> Any:
    """A numpy scalar or 0-d array (zarr returns those for strings) as the Python value."""
    if isinstance(value, np.ndarray):
        value = value[()]
    if isinstance(value, np.generic):
        return value.item()
    return str(value) if isinstance(value, str) else value


class _RowChunks:
    """Rows of one zarr array read a row chunk at a time: the chunk holding the last row asked for is kept,
    so reading rows in order reads each chunk once (zarr decompresses a whole chunk for any row of it)."""

    def __init__(self, array: zarr.Array, check: Any):
        self.array = array
        self.rows = max(1, int(array.chunks[0]))
        self.start = -1
        self.block: np.ndarray | None = None
        self.check = check  # called after every read: raises if the store was replaced meanwhile

    def row(self, i: int) -> np.ndarray:
        start = (i // self.rows) * self.rows
        if start != self.start or self.block is None:
            self.block = self.array[start:start + self.rows]
            self.start = start
            self.check()
        return self.block[i - start]


class Store:
    """A published shardmerge store, opened read-only (see open_store).

    - `len(store)`: the number of spectra; `store.shape`: (N_spec, N_pix).
    - `store[i]` and iteration: SpectrumRow(flux, uncertainty, wavelength) numpy rows, full width with their
      NaN padding, for ML loaders (fixed shapes batch without copying logic); `store[a:b]` gives 2-D arrays.
      Iteration reads each row chunk once. `store.spectra(rows)` yields specutils Spectrum objects instead.
    - `store.spectrum(i)`: one specutils Spectrum, padding removed, astropy units, uncertainty, mask, meta.
    - `store.to_xarray()`: the whole store as one lazy xarray Dataset.
    - `store.index`, `store.select(**equal)`, `store.query(expr)`: the index and row selections.

    Reads check that the store was not replaced (`shardmerge ingest --overwrite`) since it was opened and
    raise StoreChangedError if it was: open it again. A Store pickles as its path (a DataLoader worker
    reopens it)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.path.abspath(os.fspath(path))
        _refuse_non_store(self.path)
        self._identity, self._root, self._arrays = read_consistent(self.path, _open_group)
        if FLUX not in self._arrays or self._arrays[FLUX].ndim != 2:
            raise NotAStoreError(f"{self.path}: a shardmerge store without a 2-D {FLUX}: not a complete store")
        self.shape: tuple[int, int] = tuple(int(n) for n in self._arrays[FLUX].shape)  # type: ignore[assignment]
        self._chunks: dict[str, _RowChunks] = {}
        self._index_table = None
        self._index_frame = None
        self._shared_wavelength: np.ndarray | None = None
        self._closed = False

    # --- the store as a whole -------------------------------------------------------------------------

    @property
    def attrs(self) -> dict:
        """The root attrs: provenance (schema_version, ingest_pipeline, created_at, git_commit, …)."""
        return dict(self._root.attrs)

    @property
    def n_pix(self) -> int:
        return self.shape[1]

    @property
    def wavelength_shared(self) -> bool:
        """True when every spectrum has the one wavelength grid (signal/wavelength is 1-D)."""
        return self._arrays[WAVELENGTH].ndim == 1

    @property
    def has_mask(self) -> bool:
        return MASK in self._arrays

    @property
    def wavelength_unit(self) -> u.UnitBase:
        return parse_unit(self._arrays[WAVELENGTH].attrs.get("units", "Angstrom"))

    @property
    def columns(self) -> list[str]:
        """Every name select() accepts: the index's columns, then the row-wise metadata/ and params/ arrays."""
        names = list(self._index().column_names)
        names += [n for n in self._rowwise_names() if n not in names]
        return names

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        formats = ""
        try:
            counts = self._index().column("format").value_counts().to_pylist()
            formats = ", formats: " + ", ".join(f"{c['values']} {c['counts']}" for c in
                                                 sorted(counts, key=lambda c: str(c["values"])))
        except Exception:  # a repr never fails: the index may be unreadable
            pass
        grid = "one shared wavelength grid" if self.wavelength_shared else "per-spectrum wavelength"
        return f"<shardmerge.Store {self.path!r}: {self.shape[0]} spectra x {self.shape[1]} pixels, {grid}{formats}>"

    def close(self) -> None:
        """Drop what was read and cached (zarr holds no open files between reads)."""
        self._chunks.clear()
        self._index_table = self._index_frame = self._shared_wavelength = None
        self._closed = True

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    # --- the index and selections ---------------------------------------------------------------------

    @property
    def index(self) -> pd.DataFrame:
        """index.parquet as a pandas DataFrame (read once, then cached), one row per spectrum in row order."""
        if self._index_frame is None:
            _optional("pandas", "Store.index")
            self._index_frame = self._index().to_pandas()
        return self._index_frame

    def select(self, **equal: Any) -> np.ndarray:
        """Row numbers (sorted, int64) of the spectra whose columns equal the values given: each keyword is an
        index column or a row-wise metadata/ or params/ array (`store.columns`); a list, tuple or set value
        means "any of these". `store.select(format="sdss-coadd", h0_telescop=["SDSS 2.5-M", "APO"])`."""
        keep = np.ones(len(self), dtype=bool)
        for name, wanted in equal.items():
            values = self._column(name)
            if isinstance(wanted, list | tuple | set | frozenset | np.ndarray):
                keep &= np.isin(values, np.asarray(list(wanted), dtype=object))
            else:
                keep &= values == wanted
        return np.flatnonzero(keep).astype(np.int64)

    def query(self, expr: str) -> np.ndarray:
        """Row numbers of the index rows that pandas' `DataFrame.query(expr)` keeps, e.g.
        `store.query("format == 'wcs-1d' and ra > 180")`. Only index columns; select() reaches metadata/."""
        frame = self.index
        pandas = _optional("pandas", "Store.query")
        try:
            kept = frame.query(expr)
        except pandas.errors.UndefinedVariableError as exc:
            raise UnknownColumnError(f"query {expr!r}: {exc}; the index's columns are: "
                                     f"{', '.join(frame.columns)} (select() also reaches metadata/ and params/)"
                                     ) from None
        rows = kept["row"] if "row" in kept.columns else kept.index
        return np.asarray(rows, dtype=np.int64)

    # --- rows as numpy (ML loaders) -------------------------------------------------------------------

    def __getitem__(self, key: int | slice) -> SpectrumRow:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("Store[a:b] takes contiguous rows (step 1)")
            flux = self._arrays[FLUX][start:stop]
            unc = self._arrays[UNCERTAINTY][start:stop]
            wave = self._arrays[WAVELENGTH]
            wave = np.broadcast_to(self._wavelength_grid(), flux.shape) if wave.ndim == 1 else wave[start:stop]
            self._check_unchanged()
            return SpectrumRow(flux, unc, np.array(wave))
        i = self._row_number(key)
        return SpectrumRow(self._row(FLUX, i).copy(), self._row(UNCERTAINTY, i).copy(),
                           self._wavelength_row(i).copy())

    def __iter__(self) -> Iterator[SpectrumRow]:
        for i in range(len(self)):
            yield self[i]

    # --- specutils ------------------------------------------------------------------------------------

    def flux_unit(self, i: int) -> u.UnitBase:
        """The astropy unit of spectrum i's flux (see the module docstring for the three forms)."""
        return self._unit_of(FLUX, self._row_number(i))

    def spectrum(self, i: int) -> Any:
        """Spectrum i as a specutils Spectrum (Spectrum1D on specutils < 2): spectral_axis in the store's
        wavelength unit (Angstrom), flux with its astropy unit, the NaN padding past the spectrum's end
        removed, uncertainty a StdDevUncertainty (None when the source had none), mask True where a pixel is
        bad (the source's mask nonzero, or the flux not finite), meta the row's index fields and metadata/
        values (projected headers included, as `h{hdu}_{keyword}`), params under meta["params"]."""
        spectrum_class = _spectrum_class()
        import astropy.units as u
        from astropy.nddata import StdDevUncertainty

        i = self._row_number(i)
        flux, unc, wave = self._row(FLUX, i), self._row(UNCERTAINTY, i), self._wavelength_row(i)
        source_mask = self._row(MASK, i) if self.has_mask else None
        n = self._length(flux, wave, source_mask)
        flux, unc, wave = flux[:n].copy(), unc[:n].copy(), wave[:n].copy()
        bad = ~np.isfinite(flux)
        if source_mask is not None:
            bad |= source_mask[:n] != 0
        flux_unit = self._unit_of(FLUX, i)
        uncertainty = None
        if np.isfinite(unc).any():
            unc_unit = self._unit_of(UNCERTAINTY, i)
            uncertainty = StdDevUncertainty(unc, unit=None if unc_unit == flux_unit else unc_unit)
        return spectrum_class(
            flux=u.Quantity(flux, flux_unit, copy=False),
            spectral_axis=u.Quantity(wave, self.wavelength_unit, copy=False),
            uncertainty=uncertainty, mask=bad, meta=self.meta(i),
        )

    def spectra(self, rows: Iterable[int] | None = None) -> Iterator[Any]:
        """specutils Spectrum objects of `rows` (all, in order, by default): rows in order read each chunk once."""
        for i in range(len(self)) if rows is None else rows:
            yield self.spectrum(int(i))

    def meta(self, i: int) -> dict:
        """Row i's index fields and row-wise metadata/ values as Python values; params under "params"."""
        i = self._row_number(i)
        table = self._index()
        meta: dict[str, Any] = {"row": i}
        if table.num_rows == len(self):
            meta.update(table.slice(i, 1).to_pylist()[0])
        for path in self._rowwise_paths():
            group, name = path.split("/", 1)
            value = _python_value(self._row(path, i))
            if group == "params":
                meta.setdefault("params", {})[name] = value
            elif path == CONTINUUM_METHOD:
                meta["continuum_method"] = value
            else:
                meta.setdefault(name, value)
        return meta

    # --- xarray ---------------------------------------------------------------------------------------

    def to_xarray(self) -> xr.Dataset:
        """The store as one xarray Dataset with dims (spectrum, pixel), lazy (dask arrays in the store's
        chunks; nothing is read until computed). Data variables: every 2-D array (flux_raw, uncertainty_raw,
        mask_raw, continuum_*, normalized_*), values as stored (no fill-value masking); coordinates:
        `wavelength` (pixel) or (spectrum, pixel), and every row-wise array of metadata/, params/ and
        continuum/method (as `continuum_method`; a params/ name that a metadata/ one has is `params_NAME`)
        along spectrum, strings as Python str. attrs: each array's (units, description), and the root's
        provenance. Reads of it are not checked for an overwrite of the store (see Store)."""
        xr = _optional("xarray", "Store.to_xarray")
        import dask.array as da

        tag = f"shardmerge-{self._identity[2] or self._identity[1]}"

        def lazy(path: str, array: zarr.Array) -> Any:
            data = da.from_array(array, chunks=array.chunks, name=f"{tag}-{path}", lock=False,
                                 inline_array=True)
            if array.dtype.kind in "TOU":  # numpy StringDType: object arrays of str, which everything takes
                data = data.map_blocks(lambda b: b.astype(object), dtype=object, name=f"{tag}-{path}-str")
            return data

        data_vars, coords = {}, {}
        for path, array in self._arrays.items():
            group, name = path.split("/", 1)
            if path == WAVELENGTH:
                dims = ("pixel",) if array.ndim == 1 else ("spectrum", "pixel")
                coords["wavelength"] = xr.Variable(dims, lazy(path, array), attrs=dict(array.attrs))
            elif array.ndim == 2 and tuple(array.shape) == self.shape:
                data_vars[name] = xr.Variable(("spectrum", "pixel"), lazy(path, array), attrs=dict(array.attrs))
        for path in self._rowwise_paths():
            group, name = path.split("/", 1)
            array = self._arrays[path]
            if path == CONTINUUM_METHOD:
                name = "continuum_method"
            elif group == "params" and (name in coords or name in data_vars or f"metadata/{name}" in self._arrays):
                name = f"params_{name}"
            coords[name] = xr.Variable(("spectrum",), lazy(path, array), attrs=dict(array.attrs))
        attrs = {**self.attrs, "store_path": self.path}
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)

    # --- internals ------------------------------------------------------------------------------------

    def _check_unchanged(self) -> None:
        if self._closed:
            raise ValueError(f"{self.path}: this Store was closed")
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != self._identity[:2]:
            raise StoreChangedError(f"{self.path} was replaced (overwritten or removed) since it was opened: "
                                    "what was read may mix two stores; open it again")

    def _row_number(self, i: Any) -> int:
        if not isinstance(i, int | np.integer) or isinstance(i, bool):
            raise TypeError(f"a row number is an int, not {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"row {i} is out of range for a store of {n} spectra")
        return int(i) % n

    def _row(self, path: str, i: int) -> np.ndarray:
        chunks = self._chunks.get(path)
        if chunks is None:
            if self._closed:
                raise ValueError(f"{self.path}: this Store was closed")
            chunks = self._chunks[path] = _RowChunks(self._arrays[path], self._check_unchanged)
        return chunks.row(i)

    def _wavelength_grid(self) -> np.ndarray:
        if self._shared_wavelength is None:
            self._shared_wavelength = self._arrays[WAVELENGTH][:]
            self._check_unchanged()
        return self._shared_wavelength

    def _wavelength_row(self, i: int) -> np.ndarray:
        return self._wavelength_grid() if self.wavelength_shared else self._row(WAVELENGTH, i)

    def _length(self, flux: np.ndarray, wave: np.ndarray, source_mask: np.ndarray | None) -> int:
        """Pixels before the padding: the mask's padding bit marks it where the store has a mask; else a
        per-spectrum wavelength is NaN there (a shared grid has no padding: every spectrum fills it)."""
        if source_mask is not None:
            real = (source_mask & np.uint32(MASK_PADDING)) == 0
        elif wave.ndim == 1 and not self.wavelength_shared:
            real = np.isfinite(wave)
        else:
            return len(flux)
        kept = np.flatnonzero(real)
        return int(kept[-1]) + 1 if kept.size else 0

    def _unit_of(self, path: str, i: int) -> u.UnitBase:
        attrs = self._arrays[path].attrs
        column = attrs.get("units_column")
        units = attrs.get("units")
        if not column and isinstance(units, str) and units.startswith(MIXED_POINTER):
            column = units[len(MIXED_POINTER):].strip()
        if column:
            if column not in self._arrays:
                raise NotAStoreError(f"{self.path}: {path} takes its units from {column}, which the store lacks")
            text = str(_python_value(self._row(column, i)))
            if not text.strip() and (attrs.get("units_unknown") or attrs.get("units_source_column")):
                return self._unknown_unit(attrs, i)
            return parse_unit(text)
        if attrs.get("units_unknown"):
            return self._unknown_unit(attrs, i)
        return parse_unit(units if isinstance(units, str) else None)

    def _unknown_unit(self, attrs: Any, i: int) -> u.UnitBase:
        """A unit the ingest could not understand (or the source never stated): an UnrecognizedUnit named by
        the source's own spelling, or "unknown" where it stated none; never dimensionless, which would make
        it look like a relative flux."""
        import astropy.units as u

        source = attrs.get("units_source")
        column = attrs.get("units_source_column")
        if column in self._arrays:
            source = _python_value(self._row(column, i))
        text = str(source).strip() if isinstance(source, str) else ""
        return u.UnrecognizedUnit(text or "unknown")

    def _index(self):  # -> pyarrow.Table
        if self._index_table is None:
            import pyarrow.parquet as pq

            index = os.path.join(self.path, "index.parquet")
            if not os.path.isfile(index):
                raise NotAStoreError(f"{self.path}: no index.parquet: not a complete store")
            self._index_table = pq.read_table(index)
            self._check_unchanged()
        return self._index_table

    def _rowwise_paths(self) -> list[str]:
        """Row-wise (N_spec,) arrays: metadata/*, params/*, continuum/method."""
        return [p for p, a in self._arrays.items()
                if a.ndim == 1 and a.shape[0] == len(self) and (p.split("/", 1)[0] in ROWWISE_GROUPS
                                                               or p == CONTINUUM_METHOD)]

    def _rowwise_names(self) -> list[str]:
        return [p.split("/", 1)[1] for p in self._rowwise_paths() if p != CONTINUUM_METHOD]

    def _column(self, name: str) -> np.ndarray:
        table = self._index()
        if name in table.column_names:
            values = table.column(name).to_numpy(zero_copy_only=False)
        else:
            path = next((f"{g}/{name}" for g in ROWWISE_GROUPS if f"{g}/{name}" in self._arrays), None)
            if path is None:
                raise UnknownColumnError(f"no column {name!r} in {self.path}; known columns: "
                                         f"{', '.join(self.columns)}")
            values = self._arrays[path][:]
            self._check_unchanged()
        return values.astype(object) if values.dtype.kind in "TOU" else values


def _refuse_non_store(path: str) -> None:
    """One line naming `path` and what it is, unless it is a zarr group shardmerge wrote (its provenance)."""
    require_zarr_group(path, what="a shardmerge store")
    if not is_shardmerge_store(path):
        raise NotAStoreError(f"{path}: a zarr group shardmerge did not write (no ingest_pipeline attr "
                             "'shardmerge…'), not a shardmerge store")


def _open_group(path: str) -> tuple[tuple[int, int, str | None], zarr.Group, dict[str, zarr.Array]]:
    identity = store_identity(path)
    try:
        root = zarr.open_group(path, mode="r")
        arrays = dict(all_arrays(root))
    except Exception as exc:  # a damaged store: its zarr metadata does not parse
        raise NotAStoreError(f"{path}: a shardmerge store whose zarr metadata cannot be read "
                             f"({type(exc).__name__}: {exc})") from None
    return identity, root, arrays

