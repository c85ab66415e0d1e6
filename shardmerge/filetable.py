"""The scanned inputs as columns, not as one object per file: what lets the driver hold a survey.

A FileScan costs ~500 bytes of Python objects; at 10^7 files that is gigabytes before the plan starts.
Here a file costs ~80 bytes: its folder (an index into the distinct folders), its name (packed utf-8),
size, mtime, a digest of its inode and ctime (`stat_id`), counts, and its *profile*, the part of a
FileScan that the files of a survey share (format, grid keys, unit, header keys, ...), interned once.
What few files have (oddity notes, a companion's join key) is kept sparse, by row.

Pure Python (`array`, `bytearray`): the plan imports this, and the plan imports no numpy."""

from __future__ import annotations

import hashlib
import os
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import ne, sub

from .errors import PlanError
from .filescan import BadFile, FileScan


@dataclass(frozen=True, slots=True)
class Profile:
    """What a FileScan says besides the file's identity (path, size, mtime, stat_id) and counts."""

    format: str
    grid_keys: tuple[str, ...]
    flux_unit: str
    flux_unit_source: str
    header_keys: tuple[str, ...]
    param_keys: tuple[str, ...]
    mask_convention: str
    metadata_keys: tuple[str, ...]
    provides: tuple[str, ...]
    companion: bool


# (column, array typecode): 8-byte where a value can pass 2^31 (bytes, ns, a file's spectra), else 4
_COLUMNS = (("size", "q"), ("mtime_ns", "q"), ("stat_id", "q"), ("n_spectra", "q"), ("n_pix_max", "i"),
            ("n_pix_min", "i"), ("dropped", "i"), ("profile", "i"), ("folder_of", "i"), ("name_ends", "q"))
_PATH_COLUMNS = ("folder_of", "name_ends")  # packed by a PathList
_SCAN_COLUMNS = tuple((c, t) for c, t in _COLUMNS if c not in _PATH_COLUMNS)  # what a ScanBatch carries
NAME_ENDS = "I"  # where each packed name ends: 4 bytes a path while the names fit in 4 GiB
ADD_BATCH_FILES = 4096  # FileTableBuilder.add folds its FileScans this many at a time


class FileTable:
    """Input files in path order (the store's row order), immutable once built. Build one with
    `FileTableBuilder` (from scan results as they arrive, in path order) or `FileTable.from_scans`."""

    __slots__ = ("folders", "names", "profiles", "join_keys", "notes", *(c for c, _ in _COLUMNS))

    folders: tuple[str, ...]  # each ends in "/": a path is its folder + its name
    names: bytes | bytearray  # every file name, utf-8, back to back; name i ends at name_ends[i]
    profiles: tuple[Profile, ...]
    join_keys: dict[int, str]  # row -> join key, for the files that have one
    notes: dict[int, tuple[str, ...]]  # row -> oddities, for the files that have some
    size: array
    mtime_ns: array
    stat_id: array
    n_spectra: array
    n_pix_max: array
    n_pix_min: array
    dropped: array
    profile: array
    folder_of: array
    name_ends: array

    @classmethod
    def from_scans(cls, scans: Iterable) -> FileTable:
        """Any order; a path listed twice is refused."""
        builder = FileTableBuilder()
        for scan in sorted(scans, key=lambda s: s.path):
            builder.add(scan)
        return builder.finish()

    def __len__(self) -> int:
        return len(self.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FileTable):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def path(self, row: int) -> str:
        return _unpack(self.folders, self.folder_of, self.names, self.name_ends, row)

    def paths(self, lo: int = 0, hi: int | None = None) -> Iterator[str]:
        for row in range(lo, len(self) if hi is None else hi):
            yield self.path(row)

    def row_of(self, path: str) -> int | None:
        """Binary search: the table is in path order."""
        row = bisect_left(range(len(self)), path, key=self.path)
        return row if row < len(self) and self.path(row) == path else None

    def format(self, row: int) -> str:
        return self.profiles[self.profile[row]].format

    def path_list(self) -> PathList:
        """The table's paths as a PathList sharing its packed columns (the inputs of a second scan pass)."""
        return PathList.packed(self.folders, self.folder_of, self.names, self.name_ends)

    def scan(self, row: int):
        """The row as the FileScan the scan returned (for the few places that want one file whole)."""
        p = self.profiles[self.profile[row]]
        return FileScan(path=self.path(row), size=self.size[row], mtime_ns=self.mtime_ns[row], format=p.format,
                        n_spectra=self.n_spectra[row], n_pix_max=self.n_pix_max[row], n_pix_min=self.n_pix_min[row],
                        grid_keys=p.grid_keys, flux_unit=p.flux_unit, flux_unit_source=p.flux_unit_source,
                        header_keys=p.header_keys,
                        param_keys=p.param_keys, mask_convention=p.mask_convention, metadata_keys=p.metadata_keys,
                        join_key=self.join_keys.get(row, ""), companion=p.companion, dropped=self.dropped[row],
                        notes=self.notes.get(row, ()), provides=p.provides, stat_id=self.stat_id[row])

    def select(self, keep: Iterable[bool]) -> FileTable:
        """The rows where `keep` is true, in order (one pass per column; names are repacked)."""
        keep = list(keep)
        if len(keep) != len(self):
            raise ValueError(f"select: {len(keep)} flags for {len(self)} rows")
        new_row = list(compress(range(len(self)), keep))
        renumber = {old: new for new, old in enumerate(new_row)}
        out = FileTable.__new__(FileTable)
        for name, typecode in _COLUMNS:
            if name != "name_ends":
                setattr(out, name, array(typecode, compress(getattr(self, name), keep)))
        names = bytearray()
        ends = array("q")
        for row in new_row:
            names += self.names[self.name_ends[row - 1] if row else 0 : self.name_ends[row]]
            ends.append(len(names))
        out.names, out.name_ends = bytes(names), ends
        out.folders, out.profiles = self.folders, self.profiles
        out.join_keys = {renumber[r]: v for r, v in self.join_keys.items() if r in renumber}
        out.notes = {renumber[r]: v for r, v in self.notes.items() if r in renumber}
        return out

    def without_paths(self, paths: Iterable[str]) -> FileTable:
        drop = {row for row in (self.row_of(p) for p in paths) if row is not None}
        return self.select(row not in drop for row in range(len(self))) if drop else self

    def resident_bytes(self) -> int:
        """What the columns hold (not Python's per-object overhead, a few hundred bytes in all)."""
        columns = sum(getattr(self, c).itemsize * len(getattr(self, c)) for c, _ in _COLUMNS)
        return columns + len(self.names) + sum(len(f) for f in self.folders)


class ScanBatch:
    """What one scan task returns: the results for its paths, in their order, as columns. Pickled, ~50 bytes
    a file (a list of FileScans: ~100), and folded by the driver a column at a time (`FileTableBuilder.fold`:
    a memcpy, not ~5 µs of Python a file). The files a survey shares (format, keys, unit) are interned here
    as Profiles, once a batch. The paths are not in it: they are the task's, which the driver knows; a
    refused file is in `bad`, with its place among them."""

    __slots__ = ("profiles", "join_keys", "notes", "bad", *(c for c, _ in _SCAN_COLUMNS))

    def __init__(self, results: Iterable[FileScan | BadFile] = ()) -> None:
        self.profiles: dict[Profile, int] = {}  # profile -> its id in this batch (the `profile` column)
        self.join_keys: dict[int, str] = {}  # good row -> join key, for the files that have one
        self.notes: dict[int, tuple[str, ...]] = {}  # good row -> oddities
        self.bad: list[tuple[int, BadFile]] = []  # (place among the batch's paths, why it was refused)
        for name, typecode in _SCAN_COLUMNS:
            setattr(self, name, array(typecode))
        for result in results:
            self.add(result)

    def __len__(self) -> int:
        """The paths it answers for, read or refused."""
        return len(self.size) + len(self.bad)  # type: ignore[attr-defined]

    def add(self, result: FileScan | BadFile) -> None:
        """The result for the next path of the task."""
        if isinstance(result, BadFile):
            self.bad.append((len(self), result))
            return
        row = len(self.size)  # type: ignore[attr-defined]
        profile = Profile(result.format, result.grid_keys, result.flux_unit, result.flux_unit_source,
                          result.header_keys, result.param_keys, result.mask_convention, result.metadata_keys,
                          result.provides, result.companion)
        self.profile.append(self.profiles.setdefault(profile, len(self.profiles)))  # type: ignore[attr-defined]
        for name, _ in _SCAN_COLUMNS[:-1]:  # (all but `profile`, the last)
            getattr(self, name).append(getattr(result, name))
        if result.join_key:
            self.join_keys[row] = result.join_key
        if result.notes:
            self.notes[row] = tuple(result.notes)


class FileTableBuilder:
    """Folds scan results, in path order, into a FileTable, so no list of FileScans is ever held. Given the
    scan's `paths` (the discovered PathList), it folds the ScanBatches of consecutive runs of them as the
    scan tasks return them (`fold`), and the table shares the PathList's packed paths (less any refused
    file's): the driver holds each path once. Without, it takes one FileScan at a time (`add`) and packs
    their paths itself."""

    def __init__(self, paths: PathList | None = None) -> None:
        self._given = paths is not None
        self._paths = paths if paths is not None else PathList()
        self._pending = ScanBatch()  # add's FileScans, folded ADD_BATCH_FILES at a time
        self._inputs = 0  # paths folded so far: the next batch's first path is self._paths[self._inputs]
        self._refused: list[int] = []  # rows of `paths` the scan refused
        self._profile_ids: dict[Profile, int] = {}
        # given the paths, each column is sized for all of them up front (zero pages until written): no
        # growth, no slack (up to 6% of a column grown by appends), and cut to the files read at the end
        size = len(paths) if paths is not None else 0
        self._columns = {name: array(typecode, bytes(array(typecode).itemsize * size))
                         for name, typecode in _SCAN_COLUMNS}
        self._rows = 0  # files folded (the columns' rows written)
        self._join_keys: dict[int, str] = {}
        self._notes: dict[int, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return self._rows + len(self._pending.size)  # type: ignore[attr-defined]

    def add(self, scan: FileScan) -> None:
        """One FileScan, its path after the last one's."""
        if self._given:
            raise TypeError("this builder folds the ScanBatches of the paths it was given")
        if scan.path == self._paths.last:
            raise PlanError(f"{scan.path} is listed twice among the inputs")
        self._paths.append(scan.path)  # refuses a path out of order
        self._pending.add(scan)
        if len(self._pending) >= ADD_BATCH_FILES:
            self._fold_pending()

    def fold(self, batch: ScanBatch) -> None:
        """The batch of the next len(batch) paths: its columns appended whole, its profile ids renumbered."""
        first, stop = self._rows, self._rows + len(batch.size)  # type: ignore[attr-defined]
        ids = array("i", (self._profile_ids.setdefault(p, len(self._profile_ids)) for p in batch.profiles))
        for name, column in self._columns.items():  # (past a column's end, as add's are: an extend)
            if name == "profile" and ids != array("i", range(len(ids))):
                column[first:stop] = array("i", map(ids.__getitem__, batch.profile))  # type: ignore[attr-defined]
            else:
                column[first:stop] = getattr(batch, name)
        self._rows = stop
        self._join_keys.update((first + row, key) for row, key in batch.join_keys.items())
        self._notes.update((first + row, notes) for row, notes in batch.notes.items())
        self._refused.extend(self._inputs + place for place, _ in batch.bad)
        self._inputs += len(batch)

    def _fold_pending(self) -> None:
        self.fold(self._pending)
        self._pending = ScanBatch()

    def finish(self) -> FileTable:
        if not self._given:
            self._fold_pending()
        if self._inputs != len(self._paths):
            raise ValueError(f"the scan results cover {self._inputs} of {len(self._paths)} paths")
        self._paths.seal()
        out = FileTable.__new__(FileTable)
        for name, column in self._columns.items():
            del column[self._rows :]  # the refused files' rows, never written
            setattr(out, name, column)
        out.folders, out.folder_of, out.names, out.name_ends = self._paths.packed_without(self._refused)
        out.profiles = tuple(self._profile_ids)
        out.join_keys, out.notes = self._join_keys, self._notes
        return out


def _unpack(folders, folder_of: array, names, ends: array, row: int) -> str:
    """Path `row` of a packed list: its folder (ending in "/") and its utf-8 name (a name that is not
    UTF-8 comes back as the str os.scandir gave, its bytes as surrogate escapes)."""
    start = ends[row - 1] if row else 0
    return folders[folder_of[row]] + names[start : ends[row]].decode("utf-8", "surrogateescape")


def stat_id(st: os.stat_result) -> int:
    """What tells a file rewritten in place with its size and mtime kept (or set back with utime), as
    git's index does: its inode and its ctime, which the kernel sets on every write, chmod, rename or new
    hard link, and no utime can set back. One signed 64-bit digest: 8 bytes a file in the table. st_dev
    is left out: nodes mounting one NFS export give it different device numbers, as a remount does, so a
    shard task on another node would take every file for changed."""
    digest = hashlib.blake2b(b"%d:%d" % (st.st_ino, st.st_ctime_ns), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def printable_path(path: str) -> str:
    """`path` as valid UTF-8 text: a name whose bytes are not UTF-8 (held as surrogate escapes, as os
    gives it) shows them as \\xNN, so it can be named in a message, a JSON report or a Parquet string."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_utf8_path(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class PathList(Sequence):
    """Sorted, distinct absolute paths, packed like the table's (folder index, utf-8 name): ~30 bytes a path
    instead of a str's ~110, for the discovery of a survey. Slicing gives lists of str (a scan batch)."""

    def __init__(self) -> None:
        self._folder_ids: dict[str, int] | None = {}  # None once sealed
        self.folders: list[str] = []  # each ends in "/"
        self.folder_of = array("i")
        self.names: bytes | bytearray = bytearray()
        self.ends = array(NAME_ENDS)  # 4 bytes a path, until the names pass 4 GiB (then 8: `_end`)
        self.last = ""

    @classmethod
    def packed(cls, folders: Sequence[str], folder_of: array, names: bytes | bytearray, ends: array) -> PathList:
        """A sealed PathList over columns packed already (a FileTable's), sharing them."""
        out = cls()
        out.folders, out.folder_of, out.names, out.ends = list(folders), folder_of, names, ends
        out.last = out._get(len(ends) - 1) if len(ends) else ""
        out.seal()
        return out

    def seal(self) -> None:
        """No more paths: a FileTable may now share the packed columns (`packed_without`). The names become
        bytes, their exact size (a bytearray grown by appends keeps up to 1/8 more)."""
        if self._folder_ids is not None:
            self._folder_ids = None
            self.names = bytes(self.names)

    def packed_without(self, rows: Sequence[int]) -> tuple[tuple[str, ...], array, bytes | bytearray, array]:
        """(folders, folder_of, names, ends) of the paths but those at `rows` (increasing): this list's own
        columns when there are none, else copies of the runs between them (a slice each, not a step a path)."""
        if self._folder_ids is not None:
            raise ValueError("seal the PathList before sharing its columns")
        if not rows:
            return tuple(self.folders), self.folder_of, self.names, self.ends
        folder_of, names, ends = array("i"), bytearray(), array("q" if self.names and len(self.names) >> 32 else "I")
        for lo, hi in zip([0, *(r + 1 for r in rows)], [*rows, len(self)], strict=True):
            if lo < hi:
                base = self.ends[lo - 1] if lo else 0
                folder_of.extend(memoryview(self.folder_of)[lo:hi])
                ends.extend(map(sub, memoryview(self.ends)[lo:hi], repeat(base - len(names))))
                names += memoryview(self.names)[base : self.ends[hi - 1]]
        return tuple(self.folders), folder_of, names, ends

    def append(self, path: str) -> None:
        """Paths must come in increasing order; a repeat of the last one is dropped (overlapping inputs)."""
        if self._folder_ids is None:
            raise ValueError("this PathList is sealed: a FileTable shares its columns")
        if path <= self.last:
            if path == self.last:
                return
            raise ValueError(f"out of path order: {path} after {self.last}")
        self.last = path
        cut = path.rfind("/") + 1
        folder = path[:cut]
        fid = self._folder_ids.get(folder)
        if fid is None:
            fid = self._folder_ids[folder] = len(self.folders)
            self.folders.append(folder)
        self.folder_of.append(fid)
        self.names += path[cut:].encode("utf-8", "surrogateescape")  # a non-UTF-8 name: the scan refuses it
        try:
            self.ends.append(len(self.names))
        except OverflowError:  # names past 4 GiB: 8-byte ends from here on
            self.ends = array("q", self.ends)
            self.ends.append(len(self.names))

    def __len__(self) -> int:
        return len(self.ends)

    def _get(self, i: int) -> str:
        return _unpack(self.folders, self.folder_of, self.names, self.ends, i)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._get(k) for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._get(i)


RUN_SCAN = 64  # runs in at most this many values are found by one map over them
RUN_CHUNK = 1 << 20  # a longer range is halved before its bytes are compared: copies stay small


def runs(column: array, lo: int = 0, hi: int | None = None) -> list[tuple[int, int, int]]:
    """(value, start, stop) of each run of equal values in column[lo:hi], at C speed: a range whose bytes
    equal themselves shifted by one value holds one value throughout (a memcmp), else it is halved; short
    ranges are mapped value by value. A survey's folders and profiles come in long runs: a few Python
    steps a run, not one a value."""
    hi = len(column) if hi is None else hi
    view = memoryview(column)
    raw, size = view.cast("B"), column.itemsize
    out: list[list[int]] = []
    pending = [(lo, hi)] if hi > lo else []
    while pending:  # depth first, left to right
        a, b = pending.pop()
        if b - a <= RUN_SCAN:
            starts = [a, *compress(range(a + 1, b), map(ne, view[a + 1 : b], view[a : b - 1]))]
            pieces: Iterable[tuple[int, int]] = zip(starts, [*starts[1:], b], strict=True)
        elif b - a <= RUN_CHUNK and bytes(raw[(a + 1) * size : b * size]) == bytes(raw[a * size : (b - 1) * size]):
            pieces = ((a, b),)
        else:
            mid = (a + b) // 2
            pending += [(mid, b), (a, mid)]
            continue
        for start, stop in pieces:
            if out and out[-1][2] == start and out[-1][0] == column[start]:
                out[-1][2] = stop
            else:
                out.append([column[start], start, stop])
    return [(value, start, stop) for value, start, stop in out]
