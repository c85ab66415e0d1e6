"""Stage 0: find the input files: files, folders (walked in path order) and @LIST files (sorted in
bounded runs), as one packed, sorted, de-duplicated path list; and the batches scan tasks take them in.
Nothing here opens a FITS file (the driver of a cluster run never imports astropy)."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from .config import FITS_SUFFIXES
from .errors import InputError
from .filetable import PathList


def is_fits_name(name: str) -> bool:
    return name.lower().endswith(FITS_SUFFIXES)


def discover_inputs(inputs: Sequence[str]) -> PathList:
    """Absolute, de-duplicated, sorted FITS paths from files, folders (recursive) and @LIST files. Each input
    is walked in path order and the walks are merged, so a survey's 10^7 paths are never a set or a
    list of str: only the packed PathList (an @LIST file's entries are sorted in bounded runs)."""
    if not inputs:
        raise InputError("no INPUT given: name FITS files, folders or @LIST files")
    found = PathList()
    for path in heapq.merge(*(_expand(item, origin=None) for item in inputs)):
        found.append(path)  # drops a path two inputs both hold
    if not len(found):
        raise InputError(f"no FITS files ({', '.join(FITS_SUFFIXES)}) found in: {', '.join(inputs)}")
    found.seal()  # the scan's FileTable shares its packed paths
    return found


def single_input_file(inputs: Sequence[str], look_at: int = 1000) -> str | None:
    """The one FITS file `inputs` name, when they name exactly one and that is seen in at most `look_at`
    folder entries; else None (more files, an @LIST, an error for discovery to name, or a folder too big
    to tell cheaply). Stops at the second file: a survey's folder costs a few entries, not its walk."""
    found: list[str] = []
    budget = [look_at]

    def visit(path: str) -> bool:  # False: stop, the answer is None
        try:
            mode = os.stat(path).st_mode
            if stat.S_ISREG(mode):
                found.append(path)
                return len(found) < 2
            if not stat.S_ISDIR(mode):
                return False
            with os.scandir(path) as it:
                for e in it:
                    budget[0] -= 1
                    if budget[0] < 0 or (_followed(e) and not visit(e.path)):
                        return False
        except OSError:
            return False
        return True

    for item in inputs:
        if item.startswith("@") or not visit(os.path.abspath(os.path.expanduser(item))):
            return None
    return found[0] if len(found) == 1 else None


def _expand(item: str, origin: str | None) -> Iterator[str]:
    """The FITS paths `item` names, in increasing order."""
    where = f" (listed in {origin})" if origin else ""
    if item.startswith("@") and origin is None:
        yield from sorted_bounded(_expand_list(Path(item[1:])))
        return
    path = os.path.abspath(os.path.expanduser(item))
    try:
        mode = os.stat(path).st_mode  # one stat per entry: an archive's list may name 10^7 files
    except FileNotFoundError:
        raise InputError(f"{item}{where}: no such file or folder") from None
    except OSError as exc:
        raise InputError(f"{item}{where}: cannot stat ({exc.strerror})") from exc
    if stat.S_ISDIR(mode):
        yield from _walk_in_order(path)
    elif stat.S_ISREG(mode):
        yield path
    else:
        raise InputError(f"{item}{where}: not a regular file or folder")


def _walk_in_order(folder: str) -> Iterator[str]:
    """The FITS files under `folder` in the order of their full paths (what sorted() gives), without
    holding them: a folder's entries are sorted with each subfolder as `name/`, which is where its paths
    fall among the files' (a name has no "/"). Like os.walk, symlinked folders are not followed."""
    entries = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if _followed(e):
                    entries.append((e.name + "/" if _is_dir(e) else e.name, e.path))
    except OSError as exc:  # an unreadable folder is named, not silently left out of the survey
        raise InputError(f"{folder}: cannot list the folder ({exc.strerror})") from exc
    entries.sort()
    for key, path in entries:
        if key.endswith("/"):
            yield from _walk_in_order(path)
        else:
            yield path


def _followed(entry: os.DirEntry) -> bool:
    """A folder entry discovery goes into: a subfolder that is not a symlink, or a FITS-named file. An
    entry that cannot be stat'ed (a symlink loop, `a.fits -> b.fits -> a.fits`) counts as a file: the scan
    names it as a bad input (`--on-bad-file` decides), as find and rsync report the entry and go on."""
    return not entry.is_symlink() if _is_dir(entry) else is_fits_name(entry.name)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # ELOOP: a symlink loop is no folder
        return False


LIST_SORT_RUN = 1 << 18  # paths of an @LIST sorted in memory at once (~70 MB); a longer list spills sorted runs


def sorted_bounded(paths: Iterable[str], run: int | None = None) -> Iterator[str]:
    """sorted(paths), holding at most `run` of them (LIST_SORT_RUN): an archive's list of 10^7 files is
    sorted in runs, each spilled to an unnamed temporary file (TMPDIR; ~60 bytes a path), then merged.
    A shorter list is sorted in memory. Records are length-prefixed: a path may hold any byte but NUL."""
    run = run or LIST_SORT_RUN
    it = iter(paths)
    first = sorted(itertools.islice(it, run))
    if len(first) < run:
        yield from first
        return
    with contextlib.ExitStack() as stack:
        spilled = []
        chunk = first
        while chunk:
            f = stack.enter_context(tempfile.TemporaryFile(buffering=1 << 16))
            for path in chunk:
                raw = path.encode("utf-8", "surrogateescape")
                f.write(len(raw).to_bytes(4, "little") + raw)
            f.seek(0)
            spilled.append(_spilled_paths(f))
            chunk = sorted(itertools.islice(it, run))
        del first, chunk
        yield from heapq.merge(*spilled)


def _spilled_paths(f: IO[bytes]) -> Iterator[str]:
    while head := f.read(4):
        yield f.read(int.from_bytes(head, "little")).decode("utf-8", "surrogateescape")


# The longest line an @LIST may hold: a path is at most PATH_MAX (4096) bytes; a "list" with longer lines
# (`@/dev/zero`, a binary file without newlines) is refused when the line passes this, never held whole.
MAX_LIST_LINE = 1 << 16


def _expand_list(list_path: Path) -> Iterable[str]:
    """The paths an @LIST names, read line by line (a list of 10^7 paths is never held whole, nor a line
    longer than MAX_LIST_LINE). Relative paths are resolved against the list's folder; for a list that is
    a pipe (`@/dev/stdin`, `@<(find ...)`, whose "folder" is /dev or /proc/self/fd) against the current one."""
    try:
        regular = stat.S_ISREG(os.stat(list_path).st_mode)
    except OSError:
        regular = True  # the open below names what is wrong
    base = str(list_path.parent) if regular else os.getcwd()
    try:
        with open(list_path, encoding="utf-8") as lines:
            for number, line in enumerate(iter(lambda: lines.readline(MAX_LIST_LINE + 1), ""), start=1):
                if len(line) > MAX_LIST_LINE:
                    raise InputError(f"@{list_path}: line {number} is longer than {MAX_LIST_LINE} characters "
                                     "(a path is at most 4096 bytes): not a list of paths, one a line")
                entry = line.strip()
                if entry and not entry.startswith("#"):
                    yield from _expand(os.path.join(base, entry), origin=f"{list_path} line {number}")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason})"
        raise InputError(f"@{list_path}: cannot read the list ({why})") from exc


class Batches(Sequence):
    """Consecutive runs of `size` items, each made when its task is submitted: a survey's paths are not held
    twice, once as the list and again as the batches."""

    def __init__(self, items: Sequence[str], size: int):
        self.items, self.size = items, size

    def __len__(self) -> int:
        return -(-len(self.items) // self.size)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return list(self.items[i * self.size : (i + 1) * self.size])


def batches(items: Sequence[str], size: int) -> Batches:
    return Batches(items, size)
