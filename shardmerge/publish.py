"""Stage 6: the target's lock, the checks made before any work, durability and the atomic publish."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import socket
import time
import uuid
from contextlib import suppress

from .errors import LockHeldError, TargetError
from .validate import is_shardmerge_store

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


def tmp_path(out: str) -> str:
    return out + ".tmp"


def lock_path(out: str) -> str:
    return out + ".lock"


class TargetLock:
    """One writer per target: flock on `<OUT>.lock`, which names the holder. The kernel drops a flock
    when its process dies, so a crashed holder never blocks the next run."""

    def __init__(self, out: str):
        self.path = lock_path(out)
        self.fd: int | None = None

    def acquire(self) -> TargetLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise LockHeldError(
                    f"{self.path[:-5]} is being written by another shardmerge ingest ({holder}); "
                    "wait for it to finish or stop it"
                ) from None
            # the previous holder may have unlinked the file between our open and flock: retry on a fresh one
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        info = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "slurm_job_id": os.environ.get("SLURM_JOB_ID", "")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        with suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)  # closing drops the flock
        self.fd = None

    def __enter__(self) -> TargetLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"host {info.get('host', '?')}, pid {info.get('pid', '?')}, since {info.get('started', '?')}"
    except (OSError, ValueError):
        return "holder unknown"


def check_target(out: str, overwrite: bool) -> None:
    """Refuse before any work: an existing OUT without --overwrite, anything at OUT that shardmerge did not
    write, or a folder where nothing can be created."""
    parent = os.path.dirname(os.path.abspath(out)) or "."
    if not os.path.isdir(parent):
        raise TargetError(f"the folder of {out} does not exist: create {parent} first")
    if os.path.lexists(out):
        if not os.path.isdir(out) or os.path.islink(out) or not is_shardmerge_store(out):
            raise TargetError(f"{out} exists and is not a store written by shardmerge; refusing to replace it "
                              "(choose another -o, or move it away yourself)")
        if not overwrite:
            raise TargetError(f"{out} exists; pass --overwrite to replace it (the old store stays readable "
                              "until the new one has passed validation)")
    probe = os.path.join(parent, f".shardmerge-probe-{uuid.uuid4().hex}")
    try:
        with open(probe, "w"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise TargetError(f"cannot write in {parent} ({exc.strerror}); choose another -o") from exc


def sweep_leftovers(out: str) -> list[str]:
    """A `.tmp` beside OUT can only be a crashed run's (we hold the lock): remove it, never publish it."""
    tmp = tmp_path(out)
    removed = []
    if os.path.lexists(tmp):
        remove_tree(tmp)
        removed.append(tmp)
    return removed


def remove_tree(path: str) -> None:
    """Delete a store folder without following symlinks out of it."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def fsync_tree(path: str) -> None:
    """fsync every file and folder under `path`, then the folder holding it. An error is fatal."""
    for root, dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(root)
        dirs.sort()
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _renameat2(src: str, dst: str, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        raise OSError(errno.ENOSYS, "renameat2 not available")
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), dst)


def publish(tmp: str, out: str) -> str:
    """Atomically make `tmp` visible as `out`. A new OUT: rename that refuses to clobber anything that
    appeared meanwhile. An existing OUT (checked to be ours): exchange old and new in one step where the
    filesystem supports it, else a two-step rename; then delete the old store. Returns the method used."""
    if not os.path.lexists(out):
        try:
            _renameat2(tmp, out, _RENAME_NOREPLACE)
            method = "rename-noreplace"
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise TargetError(f"{out} appeared while this run was writing; nothing was replaced") from exc
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP):
                raise
            if os.path.lexists(out):
                raise TargetError(f"{out} appeared while this run was writing; nothing was replaced") from exc
            os.replace(tmp, out)
            method = "replace"
        _fsync_dir(os.path.dirname(os.path.abspath(out)))
        return method
    if not is_shardmerge_store(out):
        raise TargetError(f"{out} is not a store written by shardmerge; refusing to replace it")
    try:
        _renameat2(tmp, out, _RENAME_EXCHANGE)  # tmp now holds the old store
        method = "exchange"
        old = tmp
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP):
            raise
        old = f"{out}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
        os.replace(tmp, out)
        method = "two-step"
    _fsync_dir(os.path.dirname(os.path.abspath(out)))
    remove_tree(old)
    return method
