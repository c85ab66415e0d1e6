"""Named points where the fault tests stop or break a real run, the way a crash would.

Off unless `SHARDMERGE_FAILPOINTS` is set (e.g. `merge-copied=pause,shard-written=raise`), so a normal run
pays one dict lookup per point. Each point fires once per run: the first process to reach it creates
`<SHARDMERGE_FAILPOINT_DIR>/<name>.hit` (holding its pid) exclusively; later arrivals pass through, which
is what a rescheduled task or a resumed run must do. `name=action@N` fires on the N-th arrival instead
(each arrival takes a numbered mark exclusively), so a test can let some tasks finish first. Actions:

- `pause`: sleep until killed, so a test can SIGKILL the process group at exactly this point;
- `sleep:SECONDS`: hold this point for a while, then go on (a slow run another process can meet);
- `raise` or `raise:ERRNO` (e.g. `raise:EINVAL`): raise that OSError (EIO by default), as a flaky disk,
  an NFS timeout or a filesystem without a feature would;
- `kill`: SIGKILL this process (a worker dying mid-task);
- `wait`: hold until the test creates `<name>.go` beside the mark (at most 10 minutes), so a test can do
  something to the run's cluster at exactly this point and let it go on, with no timing involved.
"""

from __future__ import annotations

import errno
import os
import signal
import time

_ENV = "SHARDMERGE_FAILPOINTS"
_DIR_ENV = "SHARDMERGE_FAILPOINT_DIR"


def _active() -> dict[str, str]:
    spec = os.environ.get(_ENV, "")
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, action = item.partition("=")
        out[name] = action or "pause"
    return out


def failpoint(name: str) -> None:
    """Fire the named point if a test armed it and nobody fired it yet."""
    if _ENV not in os.environ:
        return
    action = _active().get(name)
    if action is None:
        return
    folder = os.environ.get(_DIR_ENV, ".")
    action, _, nth = action.partition("@")
    if nth and _arrival(folder, name) != int(nth):
        return
    mark = os.path.join(folder, f"{name}.hit")
    try:
        fd = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.fsync(fd)
    os.close(fd)
    verb, _, arg = action.partition(":")
    if verb == "pause":
        while True:
            time.sleep(60)
    elif verb == "sleep":
        time.sleep(float(arg))
    elif verb == "wait":
        deadline = time.monotonic() + 600
        while not os.path.exists(os.path.join(folder, f"{name}.go")):
            if time.monotonic() > deadline:
                raise TimeoutError(f"failpoint {name}: no {name}.go within 10 minutes")
            time.sleep(0.05)
    elif verb == "raise":
        code = getattr(errno, arg or "EIO")
        raise OSError(code, f"{os.strerror(code)} (injected fault at {name})")
    elif verb == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        raise ValueError(f"{_ENV}: unknown action {action!r} for {name}")


def _arrival(folder: str, name: str) -> int:
    """This arrival's number at the point: 1 + how many arrived before (across processes)."""
    k = 1
    while True:
        try:
            os.close(os.open(os.path.join(folder, f"{name}.arrival-{k}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return k
        except FileExistsError:
            k += 1
