"""Stage 6: the target's lock, the checks made before any work, durability and the atomic publish."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import logging
import os
import socket
import time
import uuid
from contextlib import suppress

from .durable import fsync_path, remove_tree
from .errors import LockHeldError, TargetError
from .failpoints import failpoint
from .store import is_shardmerge_store

log = logging.getLogger("shardmerge")

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


def tmp_path(out: str) -> str:
    return out + ".tmp"


def intent_path(out: str) -> str:
    return out + ".publish-intent"


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
        previous = _read_holder(fd)
        if previous != "holder unknown":  # the holder died without unlinking (flock went with it)
            log.warning("took over the lock of %s left by a run that is gone (%s)", self.path[:-5], previous)
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
        if not info:
            return "holder unknown"
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
    """Call under the lock. First settle a publish a crash interrupted, then remove the `.tmp` a crashed
    run left beside OUT: it can only be a crashed run's, and it is never published."""
    removed = []
    action = recover_publish(out)
    if action:
        log.warning("an interrupted publish of %s was %s", out, action)
    tmp = tmp_path(out)
    if os.path.lexists(tmp):
        remove_tree(tmp)
        removed.append(tmp)
    return removed


def _renameat2(src: str, dst: str, flags: int) -> None:
    failpoint("renameat2")
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        raise OSError(errno.ENOSYS, "renameat2 not available")
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), dst)


def _parent(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def publish(tmp: str, out: str) -> str:
    """Atomically make `tmp` visible as `out`. A new OUT: a rename that refuses to clobber anything that
    appeared meanwhile. An existing OUT (checked to be ours): exchange old and new in one step where the
    filesystem supports it, else the two-step rename of `_two_step_swap`; then delete the old store.
    Returns the method used."""
    if not os.path.lexists(out):
        try:
            _renameat2(tmp, out, _RENAME_NOREPLACE)
            method = "rename-noreplace"
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise TargetError(f"{out} appeared while this run was writing; nothing was replaced") from exc
            if exc.errno not in _NO_RENAMEAT2:
                raise
            if os.path.lexists(out):
                raise TargetError(f"{out} appeared while this run was writing; nothing was replaced") from exc
            os.rename(tmp, out)  # we hold the lock and OUT is absent: only another program could race us
            method = "rename"
        fsync_path(_parent(out), directory=True)
        return method
    if not is_shardmerge_store(out):
        raise TargetError(f"{out} is not a store written by shardmerge; refusing to replace it")
    try:
        _renameat2(tmp, out, _RENAME_EXCHANGE)  # tmp now holds the old store
    except OSError as exc:
        if exc.errno not in _NO_RENAMEAT2:
            raise
        _two_step_swap(tmp, out)
        return "two-step"
    fsync_path(_parent(out), directory=True)
    remove_tree(tmp)
    return "exchange"


# NFS and Lustre answer EINVAL, overlayfs EXDEV, old kernels or libcs ENOSYS
_NO_RENAMEAT2 = (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP)


def _two_step_swap(tmp: str, out: str) -> None:
    """Where RENAME_EXCHANGE is missing: OUT → OUT.old-X, then tmp → OUT. Between the two renames OUT does
    not exist, so first an fsynced intent file records both names; `recover_publish` (run by the next
    ingest under the lock) finishes or undoes a swap that a crash interrupted. The old store is never
    deleted before the new one is in place."""
    old = f"{out}.old-{uuid.uuid4().hex[:8]}"
    intent = intent_path(out)
    partial = intent + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        json.dump({"out": out, "old": old, "new": tmp}, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(partial, intent)
    fsync_path(_parent(out), directory=True)
    os.rename(out, old)
    fsync_path(_parent(out), directory=True)
    failpoint("publish-between-renames")
    os.rename(tmp, out)
    fsync_path(_parent(out), directory=True)
    os.unlink(intent)
    fsync_path(_parent(out), directory=True)
    remove_tree(old)


def recover_publish(out: str) -> str | None:
    """Finish or undo a two-step swap a crash interrupted (call under the lock). Returns what was done."""
    intent = intent_path(out)
    with suppress(FileNotFoundError):
        os.unlink(intent + ".partial")  # written before the first rename: nothing was moved yet
    try:
        with open(intent, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TargetError(f"{intent} is unreadable ({exc}); an earlier publish of {out} was interrupted: "
                          "check that OUT or an OUT.old-* folder beside it holds a store, then remove "
                          "the intent file") from exc
    old, new = doc["old"], doc["new"]
    if os.path.dirname(old) != os.path.dirname(out) or os.path.dirname(new) != os.path.dirname(out):
        raise TargetError(f"{intent} names folders outside {os.path.dirname(out)}; refusing to act on it")
    if os.path.lexists(out) and os.path.lexists(old):
        action = "finished"  # the new store made it into place; only the old one is left to delete
    elif os.path.lexists(out):
        action = "abandoned before anything moved"  # OUT is still the old store; the new one is the .tmp
    elif os.path.lexists(old):
        os.rename(old, out)  # the crash hit between the renames: put the old store back
        action = "undone"
    else:
        raise TargetError(f"{intent}: neither {out} nor {old} exists; refusing to guess")
    fsync_path(_parent(out), directory=True)
    if os.path.lexists(old):
        remove_tree(old)
    os.unlink(intent)
    fsync_path(_parent(out), directory=True)
    return action
