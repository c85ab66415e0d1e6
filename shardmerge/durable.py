"""Durability helpers shared by the shard tasks, the merge writer and the publish: fsync a tree,
checksum its files, delete a tree without leaving it, and turn disk failures into one error class."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import shutil
import sys
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from .errors import DurabilityError, StorageError


def _crc32_function() -> Callable[..., int]:
    """ISA-L's crc32 where the isal package imports: the same value as zlib's (the same CRC-32 polynomial,
    init and final xor), ~4x the speed, which is what the one merge writer checks every chunk file with.
    Else zlib's."""
    try:
        from isal.isal_zlib import crc32 as isal_crc32
    except ImportError:
        return zlib.crc32
    return isal_crc32


_CRC32 = _crc32_function()


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """zlib.crc32 of `data`, continuing from `value` (the crc32 of what came before it), at ISA-L's speed where
    available. Every crc32 the project records or checks (manifests, the merge's checksums, the gate) is this
    one: manifests and stores do not depend on which implementation computed it."""
    return _CRC32(data, value)

# a full disk or quota, a read-only filesystem, a file too large: the same write would fail again. A plain
# EIO from a write or read is left alone (retried: network filesystems return it for timeouts); an EIO
# from fsync is fatal, see fsync_path.
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


# a failing device, or an NFS handle gone: where nothing retries (this process's own writes), fatal too
_DEVICE_ERRNOS = {errno.EIO, errno.ESTALE}


@contextmanager
def storage_errors(where: str, device_errors: bool = False) -> Iterator[None]:
    """Re-raise disk-level OSErrors as StorageError naming `where` (scratch, or the `.tmp` store). With
    `device_errors` (this process's writes, which no task retry would repeat), EIO and ESTALE as well;
    a shard task's EIO stays a plain error, which its executor retries (NFS answers EIO to a timeout)."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        if exc.errno in _STORAGE_ERRNOS:
            hint = " (free some space or point it elsewhere)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        elif device_errors and exc.errno in _DEVICE_ERRNOS:
            hint = " (the disk or filesystem failed: check it, then rerun; finished shards are kept)"
        else:
            raise
        raise StorageError(exc.filename or where, f"{exc.strerror or exc}{hint}") from exc


def fsync_path(path: str, directory: bool = False) -> None:
    """fsync one file or folder. A failure is fatal (DurabilityError): after a failed fsync the kernel
    may have dropped the dirty pages, so retrying could report success for data that is gone."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as exc:
        raise DurabilityError(path, f"fsync failed ({exc.strerror or exc}); nothing is published") from exc
    finally:
        os.close(fd)


def fsync_tree(path: str, checksums: bool = False, stats: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """fsync every file and folder under `path`, then the folder holding it. With `checksums`, also
    return {relative path: [size, crc32]} of every file, for a manifest; and with `stats`, fill it with
    {relative path: stat_key} of each file whose key was the same before its sum was read and after its
    fsync (nothing wrote it meanwhile: the sum is of the file as it stands with that key)."""
    sums: dict[str, list[int]] = {}
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            before = stat_key(full) if stats is not None else None
            if checksums:
                sums[os.path.relpath(full, path)] = file_checksum(full)
            fsync_path(full)
            if before is not None and stat_key(full) == before:
                stats[os.path.relpath(full, path)] = before
        fsync_path(root, directory=True)
    fsync_path(os.path.dirname(os.path.abspath(path)), directory=True)
    return sums


def stat_key(path: str) -> list[int]:
    """[inode, size, mtime_ns, ctime_ns] of a file: any write to it, a truncation, a chmod or a new hard
    link sets its ctime, which no tool can set back short of the clock."""
    st = os.stat(path)
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


@functools.cache
def boot_id() -> str | None:
    """This kernel's boot id (Linux): equal on two processes, they share one page cache. None elsewhere."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _syncfs_function():
    """libc's syncfs(2), where it reports writeback errors (Linux >= 5.8; before, it returned 0 even when
    pages could not be written, which would weaken "a failed sync is fatal"); else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (ValueError, AttributeError, OSError):
        return None
    return fn if (major, minor) >= (5, 8) else None


_SYNCFS = _syncfs_function()


def syncfs(fd: int) -> None:
    """syncfs(2) on the filesystem holding `fd`; raises OSError as os.fsync does."""
    if _SYNCFS(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def sync_tree(path: str) -> None:
    """Make everything under `path` durable, as fsync_tree does: with one syncfs(2) of its filesystem where
    the kernel reports writeback errors through it (a store of 10^5 files is 10^5 fsyncs otherwise),
    else an fsync per file and folder. A failure is fatal, as for fsync_path."""
    if _SYNCFS is None:
        fsync_tree(path)
        return
    parent = os.path.dirname(os.path.abspath(path))
    targets = [path] if os.stat(parent).st_dev == os.stat(path).st_dev else [path, parent]  # a mount point
    for target in targets:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
        try:
            syncfs(fd)
        except OSError as exc:
            raise DurabilityError(path, f"syncfs failed ({exc.strerror or exc}); nothing is published") from exc
        finally:
            os.close(fd)


def sync_trees(paths: Sequence[str]) -> None:
    """sync_tree of each path; where syncfs applies, one call per filesystem covers them all."""
    if _SYNCFS is None:
        for path in paths:
            fsync_tree(path)
        return
    seen: set[int] = set()
    for path in paths:
        dev = os.stat(path).st_dev
        if dev not in seen:
            seen.add(dev)
            sync_tree(path)


_READ_BLOCK = 1 << 20
_read_buffers = threading.local()  # one block buffer a thread: a fresh 1 MiB bytes a read cost 2-3x the crc32


def file_checksum(path: str) -> list[int]:
    """[size, crc32] of a file, read in blocks into a buffer this thread reuses (not mmap: a file truncated
    while mapped would kill the process with SIGBUS, not raise). ~0.16 ms for a 2 MB chunk file from the
    page cache, where read() of fresh bytes took ~0.5 ms."""
    view = getattr(_read_buffers, "view", None)
    if view is None:
        view = _read_buffers.view = memoryview(bytearray(_READ_BLOCK))
    crc, size = 0, 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            crc = crc32(view[:n], crc)
            size += n
    return [size, crc]


def remove_trees(paths: list[str], threads: int = 8) -> None:
    """remove_tree of many folders at once: unlink is a metadata round trip each, which a parallel
    filesystem serves concurrently (threads wait on I/O, not the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(paths)))) as pool:
        list(pool.map(remove_tree, paths))


def remove_tree(path: str) -> None:
    """Delete a store folder without following symlinks out of it (a link is removed, not its target)."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)  # rmtree never descends into symlinked folders
