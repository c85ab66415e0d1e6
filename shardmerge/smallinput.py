"""What counts as one small input (a store of one shard), for the cluster policy (executors.choose_cluster)
and the early forkserver start (forkserver): a module of its own, importing neither, so they need not
import each other."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from .config import TARGET_SHARD_BYTES

ONE_SHARD_FILE_BYTES = TARGET_SHARD_BYTES // 4


def one_small_file(paths: Sequence[str]) -> bool:
    """One regular file of at most ONE_SHARD_FILE_BYTES: a store of up to ~4x its bytes (flux, uncertainty,
    mask, wavelength) is one shard."""
    if len(paths) != 1:
        return False
    try:
        st = os.stat(paths[0])
    except OSError:
        return False  # the scan names it
    return stat.S_ISREG(st.st_mode) and st.st_size <= ONE_SHARD_FILE_BYTES
