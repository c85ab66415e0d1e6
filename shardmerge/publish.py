"""Stage 6: the target's lock, the checks made before any work, durability and the atomic publish."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import logging
import os
import re
import signal
import socket
import stat
import time
import uuid
from contextlib import suppress

from .durable import fsync_path, remove_tree
from .errors import LockHeldError, TargetError, TargetExistsError
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


# Written first into every `.tmp` the merge writer creates (`claim_tmp`), removed once the store's root
# attrs carry its provenance: from its first moment to its publish, a `.tmp` of ours says so.
TMP_MARKER = ".shardmerge-tmp"


def claim_tmp(tmp: str) -> None:
    """Create the folder `tmp` (it must not exist) holding our marker, before anything else is written in
    it: a crashed run's partial `.tmp` is then told from a user's folder of the same name."""
    os.mkdir(tmp)
    fd = os.open(os.path.join(tmp, TMP_MARKER), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, json.dumps({"written_by": "shardmerge", "pid": os.getpid()}).encode())
    finally:
        os.close(fd)


def unmark_tmp(tmp: str) -> None:
    """Remove the marker: call once the root attrs say shardmerge wrote the store (is_shardmerge_store)."""
    with suppress(FileNotFoundError):
        os.unlink(os.path.join(tmp, TMP_MARKER))


def is_own_tmp(tmp: str) -> bool:
    """True when `tmp` is a real folder (not a link) that a shardmerge merge wrote: its marker, or the
    root attrs of a finished store. A folder left empty by a crash between its mkdir and its marker is
    not told apart from a user's: it is refused too (an rmdir of it loses nothing)."""
    if os.path.islink(tmp) or not os.path.isdir(tmp):
        return False
    marker = os.path.join(tmp, TMP_MARKER)
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return is_shardmerge_store(tmp)
    try:
        doc = json.loads(os.read(fd, 4096) or b"{}")
    except ValueError:
        return False
    finally:
        os.close(fd)
    return isinstance(doc, dict) and doc.get("written_by") == "shardmerge"


def remove_own_tmp(tmp: str) -> bool:
    """Remove `tmp` if it is ours (is_own_tmp); leave anything else. True if removed."""
    if os.path.lexists(tmp) and is_own_tmp(tmp):
        remove_tree(tmp)
        return True
    return False


_LOCK_KEYS = {"host", "pid", "started"}


class TargetLock:
    """One writer per target: flock on `<OUT>.lock`, which names the holder. The kernel drops a flock
    when its process dies, so a crashed holder never blocks the next run."""

    def __init__(self, out: str):
        self.path = lock_path(out)
        self.fd: int | None = None

    def acquire(self) -> TargetLock:
        """Create the lock file exclusively (O_EXCL), or open an existing one without following a link
        (O_NOFOLLOW). An existing file is taken over only if a shardmerge lock is in it (the record of a
        run that is gone, or nothing: a crash between its create and its write); anything else there, a
        link, a folder or a user's file, is refused untouched (TargetError)."""
        while True:
            fd, created = self._open()
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
                if os.fstat(fd).st_ino == os.lstat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        if not created and not _is_our_lock(fd):
            os.close(fd)  # drops the flock; the file was only read
            raise TargetError(f"{self.path} exists and is not a lock file written by shardmerge; refusing to "
                              f"touch it (move it away: shardmerge keeps the lock of {self.path[:-5]} there)")
        previous = _read_holder(fd)
        if previous != "holder unknown":  # the holder died without unlinking (flock went with it)
            log.warning("took over the lock of %s left by a run that is gone (%s)", self.path[:-5], previous)
        from .executors.registry import batch_job_id  # here: the registry's package imports Dask

        info = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "batch_job": batch_job_id()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def _open(self) -> tuple[int, bool]:
        """(fd, created by us) of the lock file, never through a link."""
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
        while True:
            try:
                return os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644), True
            except FileExistsError:
                pass
            try:
                fd = os.open(self.path, flags | os.O_NONBLOCK)  # a FIFO planted there must not block the open
            except FileNotFoundError:
                continue  # its holder released it meanwhile: create it
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                    raise TargetError(f"{self.path} exists and is not a lock file written by shardmerge "
                                      f"({_kind_of(self.path)}); refusing to touch it or what it points to "
                                      "(move it away)") from exc
                raise
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise TargetError(f"{self.path} exists and is not a lock file written by shardmerge "
                                  f"({_kind_of(self.path)}); refusing to touch it (move it away)")
            return fd, False

    def release(self) -> None:
        if self.fd is None:
            return
        with suppress(FileNotFoundError):
            if os.lstat(self.path).st_ino == os.fstat(self.fd).st_ino:  # still our file, not one put there since
                os.unlink(self.path)
        os.close(self.fd)  # closing drops the flock
        self.fd = None

    def __enter__(self) -> TargetLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _kind_of(path: str) -> str:
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


def _is_our_lock(fd: int) -> bool:
    """An empty file (a run killed between creating its lock and writing its record), or the JSON record
    TargetLock writes: host, pid and start time."""
    raw = os.pread(fd, 65536, 0)
    if not raw:
        return True
    try:
        info = json.loads(raw)
    except ValueError:
        return False
    return isinstance(info, dict) and info.keys() >= _LOCK_KEYS


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
            raise TargetExistsError(f"{out} exists; pass --overwrite to replace it (the old store stays readable "
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
    run left beside OUT (it is never published). Anything at `OUT.tmp` that no merge of ours wrote (a
    user's folder, file or link) is refused untouched: the spec fixes that name, so another cannot be
    chosen."""
    removed = []
    action = recover_publish(out)
    if action:
        log.warning("an interrupted publish of %s was %s", out, action)
    tmp = tmp_path(out)
    if os.path.lexists(tmp):
        if not is_own_tmp(tmp):
            raise TargetError(f"{tmp} exists and was not written by shardmerge ({_kind_of(tmp)}); an ingest to "
                              f"{out} writes its store there first, so refusing to touch it: move it away, "
                              "or choose another -o")
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
    ingest under the lock) finishes or undoes a swap that a crash interrupted. An interrupt (Ctrl-C,
    SIGTERM) or an error in between is settled at once, by this process, still holding the lock, as a
    database rolls back: OUT is whole when it exits. The old store is never deleted before the new one is
    in place."""
    old = f"{out}.old-{uuid.uuid4().hex[:8]}"
    intent = intent_path(out)
    _write_intent(intent, {"out": out, "old": old, "new": tmp})
    fsync_path(_parent(out), directory=True)
    try:
        os.rename(out, old)
        fsync_path(_parent(out), directory=True)
        failpoint("publish-between-renames")
        os.rename(tmp, out)
        fsync_path(_parent(out), directory=True)
    except BaseException:
        _settle_now(out)
        raise
    os.unlink(intent)
    fsync_path(_parent(out), directory=True)
    remove_tree(old)


def _write_intent(intent: str, doc: dict) -> None:
    """The intent, fsynced, via a `.partial` created exclusively (never through a link, never over a file
    that is not ours: recover_publish removed ours already)."""
    partial = intent + ".partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(partial, intent)


def _settle_now(out: str) -> None:
    """recover_publish with Ctrl-C and SIGTERM held back until it is done: a second interrupt must not
    stop the recovery of the first halfway."""
    held = {signal.SIGINT, signal.SIGTERM}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        action = recover_publish(out)
        log.warning("the publish of %s was interrupted between its two renames: %s at once", out,
                    "undone (the old store is back)" if action == "undone" else action)
    except Exception as exc:  # noqa: BLE001 - the interrupt is the run's outcome; the intent stays for the next run
        log.error("could not settle the interrupted publish of %s (%s); the next ingest does it", out, exc)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


_OLD_NAME = re.compile(r"\.old-[0-9a-f]{8}")
MAX_INTENT_BYTES = 1 << 16  # an intent names three paths: a few hundred bytes (PATH_MAX is 4096)


def _read_intent(path: str) -> dict | None:
    """The intent document at `path` (None if there is none), read without following a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TargetError(f"{path} is not an intent file written by shardmerge ({_kind_of(path)}); refusing "
                          "to act on it (nothing was moved or deleted): move it away") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TargetError(f"{path} is not an intent file written by shardmerge ({_kind_of(path)}); "
                              "refusing to act on it (nothing was moved or deleted): move it away")
        raw = os.pread(fd, MAX_INTENT_BYTES + 1, 0)  # never the whole of a planted 10 GB file
        if len(raw) > MAX_INTENT_BYTES:
            raise TargetError(f"{path} is not an intent file written by shardmerge (over {MAX_INTENT_BYTES} "
                              "bytes; ours are a few hundred); refusing to act on it (nothing was moved or "
                              "deleted): move it away")
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise TargetError(f"{path} is unreadable ({exc}); if an earlier publish was interrupted, check that "
                          "OUT or an OUT.old-* folder beside it holds a store, then remove the intent "
                          "file") from exc
    finally:
        os.close(fd)
    return doc


def _check_intent(path: str, doc: object, out: str) -> tuple[str, str]:
    """(old, new) of an intent of ours: exactly `OUT.tmp` and `OUT.old-XXXXXXXX` (8 hex digits) beside
    OUT, the only names `_two_step_swap` writes. Anything else was not written by a publish of OUT."""
    old = doc.get("old") if isinstance(doc, dict) else None
    new = doc.get("new") if isinstance(doc, dict) else None
    named = doc.get("out") if isinstance(doc, dict) else None
    if (not isinstance(old, str) or not isinstance(new, str) or named != out or new != tmp_path(out)
            or not old.startswith(out) or not _OLD_NAME.fullmatch(old[len(out):])):
        raise TargetError(f"{path} names paths outside what a publish of {out} writes (only {tmp_path(out)} "
                          f"and {out}.old-XXXXXXXX): {old!r}, {new!r}; refusing to act on it (nothing was "
                          "moved or deleted): move it away")
    return old, new


def recover_publish(out: str) -> str | None:
    """Finish or undo a two-step swap a crash interrupted (call under the lock). Returns what was done.
    Only an intent naming what a publish of ours names is acted on (`_check_intent`)."""
    intent = intent_path(out)
    partial = intent + ".partial"
    if os.path.lexists(partial):  # written before the first rename: nothing was moved yet
        doc = _read_intent(partial)
        if doc:  # (empty: a crash between its create and its write)
            _check_intent(partial, doc, out)
        os.unlink(partial)
    doc = _read_intent(intent)
    if doc is None:
        return None
    old, _ = _check_intent(intent, doc, out)
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
