"""Root attributes that make every store traceable to the code and command that wrote it."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
import uuid
from pathlib import Path

from .config import SCHEMA_VERSION


def git_commit() -> str:
    """Short hash of the shardmerge source that is running: from git when running from a checkout of
    shardmerge (editable install), else the hash stamped into the package when its wheel was built."""
    pkg = Path(__file__).resolve().parent
    repo = pkg.parent
    if (repo / ".git").exists() and (repo / "pyproject.toml").exists():
        try:
            out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True, check=True, timeout=10)
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    from . import _build_info

    return _build_info.GIT_COMMIT or "unknown"


def provenance_attrs(*, n_inputs: int, input_bytes: int, command: list[str] | None = None) -> dict:
    from . import __version__

    return {
        "schema_version": SCHEMA_VERSION,
        "ingest_pipeline": f"shardmerge {__version__}",
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "git_commit": git_commit(),
        "input_files": n_inputs,
        "input_bytes": input_bytes,
        "command_line": " ".join(command if command is not None else sys.argv),
        # new at every publish, never reused: what store.read_consistent compares to see an overwrite
        "store_id": uuid.uuid4().hex,
    }


# per-file counts are written out by path up to this many files; past it, the digest of the counts alone
# (a million paths in the root attrs would make every open of the store slow)
ANNOUNCED_PER_FILE_MAX = 1000


def counts_digest(counts: list[int]) -> str:
    """The digest of per-file row counts in the store's row order (files in path order)."""
    return hashlib.sha256(",".join(map(str, counts)).encode()).hexdigest()[:32]


def announced_spectra(plan: object) -> dict:
    """Root attr `input_spectra`: what the sources announced at scan time, so that `validate` (check 18)
    can compare the store's rows with it long after the sources are gone. `total`: the rows the files'
    spectra make (companion files add arrays, not rows); `dropped`: spectra readers left out because they
    carry no data (DESI ivar 0), not among the rows; `files`: files that make rows; `per_file_sha256`: the
    digest of each file's rows in row order (`counts_digest`); `per_file`: {source path: rows} while there
    are at most ANNOUNCED_PER_FILE_MAX files, so a mismatch names its file."""
    table = plan.files.table
    counts = [int(n) for n in table.n_spectra]
    out = {"total": sum(counts), "dropped": int(sum(table.dropped)), "files": len(counts),
           "per_file_sha256": counts_digest(counts)}
    if len(counts) <= ANNOUNCED_PER_FILE_MAX:
        out["per_file"] = dict(zip(table.paths(), counts, strict=True))
    return {"input_spectra": out}
