"""The run's scratch folder: where the shard stores of one target live between runs."""

from __future__ import annotations

import hashlib
import os

from .beside import scratch_root
from .durable import remove_tree
from .shardstore import private_folder


def scratch_dir(base: str | None, out: str) -> str:
    """Shards for OUT live in `<base>/<hash of OUT>`, so rerunning a crashed ingest finds them, and two
    ingests to different targets never share one. Folders are 0700: spectra can be proprietary."""
    root = scratch_root(base)
    path = os.path.join(root, hashlib.sha256(os.path.abspath(out).encode()).hexdigest()[:16])
    for folder in (root, path):  # in a shared /tmp, another user could have planted either one
        private_folder(folder)
    os.chmod(path, 0o700)
    with open(os.path.join(path, "target.txt"), "w", encoding="utf-8") as f:
        f.write(os.path.abspath(out) + "\n")
    return path


def sweep_scratch(scratch: str, keep: set[str]) -> list[str]:
    """Call under the lock: remove `.partial` shards of crashed attempts and shard stores whose key is
    not in the current plan (their inputs or layout changed). Only `shard-*` entries are touched."""
    removed = []
    for name in sorted(os.listdir(scratch)):
        if name.startswith("shard-") and name not in keep:
            remove_tree(os.path.join(scratch, name))
            removed.append(name)
    return removed
