"""Root attributes that make every store traceable to the code and command that wrote it."""

from __future__ import annotations

import datetime as dt
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
