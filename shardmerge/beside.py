"""The paths a user gives for what an ingest writes beside its store (`--report`, `--scratch`), checked
before any work: neither may land on an input, on OUT or what shardmerge keeps beside it, or (the report)
inside scratch, which the run deletes. A scratch folder is also checked to be one that can be written."""

from __future__ import annotations

import bisect
import os
import stat
import tempfile
import uuid
from collections.abc import Sequence

from .errors import InputError


class ReportPathError(InputError):
    """--report names a path the report must not be written to: the run writes no report at all."""


def scratch_root(base: str | None) -> str:
    """The scratch folder an ingest uses: --scratch, else SHARDMERGE_SCRATCH, else `shardmerge-<uid>` in the
    system temp folder. Absolute."""
    root = base or os.environ.get("SHARDMERGE_SCRATCH") or os.path.join(
        tempfile.gettempdir(), f"shardmerge-{os.getuid()}")
    return os.path.abspath(root)


def _landing(path: str) -> str:
    """Where a write to `path` lands: its folder with every link resolved, then its own name (a rename onto
    a link replaces the link, not what it points to)."""
    path = os.path.abspath(os.path.expanduser(path))
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _within(path: str, folder: str) -> bool:
    """`path` is `folder` or inside it (both absolute and normalised)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _forms(path: str) -> set[str]:
    """The absolute path as given and the one with every link resolved: a containment test on either."""
    path = os.path.abspath(os.path.expanduser(path))
    return {path, os.path.realpath(path)}


def _input_items(inputs: Sequence[str]) -> list[str]:
    """Each input as a path: a file, a folder, or an @LIST's list file."""
    return [item[1:] if item.startswith("@") else item for item in inputs]


def beside_out(out: str) -> list[tuple[str, str]]:
    """(path, what it is) of OUT and every name shardmerge keeps beside it."""
    return [(out, "OUT"), (out + ".tmp", "the store being written (OUT.tmp)"), (out + ".lock", "OUT's lock"),
            (out + ".publish-intent", "OUT's publish intent")]


def check_report_path(report: str | None, out: str, inputs: Sequence[str], scratch: str) -> None:
    """Refuse (ReportPathError, exit 2) a --report that would overwrite an input (a file, or an @LIST's list
    file), land on or inside OUT or a name beside it that shardmerge keeps, or inside scratch (deleted)."""
    if not report:
        return
    if report.endswith(os.sep) or os.path.basename(report) in ("", ".", ".."):
        raise ReportPathError(f"--report {report}: names a folder, not a file: give the path of the JSON file")
    special = _special_kind(report)
    if special:
        raise ReportPathError(f"--report {report}: is {special}; the report is written to a file of its own and "
                              "renamed over the path, which would replace it (as root, a /dev entry for every "
                              "process): give the path of a regular file")
    stream = _stream_link(report)
    if stream:
        raise ReportPathError(f"--report {report}: is {stream}: the report is renamed over the path, which "
                              "would replace it with a regular file (as root, /dev/stdout for every "
                              "process) rather than write to the stream: give the path of a regular file, and "
                              "cat it")
    where = _landing(report)
    for path, what in beside_out(out):
        if any(_within(where, p) for p in _forms(path)):
            raise ReportPathError(f"--report {report}: is {what} or inside it ({path}); write the report "
                                  "elsewhere")
    if any(_within(where, p) for p in _forms(scratch)):
        raise ReportPathError(f"--report {report}: is inside the scratch folder {scratch}, which the run "
                              "deletes; write the report elsewhere")
    for item in _input_items(inputs):
        if where in _forms(item) or os.path.abspath(os.path.expanduser(report)) in _forms(item):
            raise ReportPathError(f"--report {report}: is the input {item}; writing the report would replace "
                                  "it: write the report elsewhere")


SYSTEM_FOLDERS = ("/dev", "/proc", "/sys")


def _stream_link(path: str) -> str | None:
    """What makes `path` a process's stream rather than a file a rename may replace, whatever that stream
    is open on (fd 1 redirected to a log is a regular file, as far as stat says): a name in /dev, /proc or
    /sys, or a link whose chain goes through one (`/dev/stdout` -> /proc/self/fd/1). None otherwise."""
    where = _landing(path)
    system = next((f for f in SYSTEM_FOLDERS if _within(where, f)), None)
    if system:
        return f"in {system} ({where}), whose names are the system's"
    hop, seen = os.path.abspath(os.path.expanduser(path)), 0
    while os.path.islink(hop) and seen < 40:  # the kernel's own limit on a link chain
        target = os.path.normpath(os.path.join(os.path.dirname(hop), os.readlink(hop)))
        if any(_within(target, f) for f in SYSTEM_FOLDERS):
            return f"a link to {target}"
        hop, seen = target, seen + 1
    return None


def _special_kind(path: str) -> str | None:
    """What `path` is, followed through links, when it is no regular file a rename may replace: a FIFO, a
    device (`/dev/stdout` is a link to this process's fd 1: a tty, a pipe), a socket, a folder. None for a
    regular file, a dangling link and a path that does not exist."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    kinds = ((stat.S_ISFIFO, "a FIFO (a pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))
    kind = next((what for test, what in kinds if test(mode)), None)
    if kind and os.path.islink(path):
        kind += f" through the link {path} -> {os.readlink(path)}"
    return kind


def check_report_not_input(report: str | None, paths: Sequence[str]) -> None:
    """Refuse a --report that is one of the input files found (in an input folder or an @LIST). `paths` is
    the sorted list discovery returns."""
    if not report:
        return
    for form in {os.path.abspath(os.path.expanduser(report)), _landing(report)}:
        i = bisect.bisect_left(paths, form)
        if i < len(paths) and paths[i] == form:
            raise ReportPathError(f"--report {report}: is an input file of this run ({form}); writing the "
                                  "report would replace it: write the report elsewhere")


def check_scratch(root: str, out: str, inputs: Sequence[str]) -> None:
    """Refuse (InputError, exit 2) a scratch folder that can never work where it is: OUT, OUT.tmp or
    inside either (the publish or the sweep would meet it), inside an input folder (discovery walks it),
    under a regular file, or on a filesystem this process cannot write (read-only, no permission)."""
    real = os.path.realpath(root)
    for path, what in beside_out(out):
        if any(_within(f, p) for p in _forms(path) for f in {root, real}):
            raise InputError(f"scratch folder {root}: is {what} or inside it ({path}); shard stores cannot go "
                             "there: choose another --scratch")
    for item in _input_items(inputs):
        if os.path.isdir(item) and any(_within(f, p) for p in _forms(item) for f in {root, real}):
            raise InputError(f"scratch folder {root}: is inside the input folder {item}, which the run reads; "
                             "choose another --scratch")
    existing = root
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        kind = "a regular file" if stat.S_ISREG(os.lstat(existing).st_mode) else "not a folder"
        raise InputError(f"scratch folder {root}: {existing} is {kind}, so no folder can be made there; "
                         "choose another --scratch")
    probe = os.path.join(existing, f".shardmerge-probe-{uuid.uuid4().hex}")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"scratch folder {root}: cannot write in {existing} ({exc.strerror}); choose another "
                         "--scratch") from exc
