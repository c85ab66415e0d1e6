"""Helpers the tests import (fixtures live in conftest.py and reach tests through pytest): the repository
root and the real CLI, run in this process or as its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from shardmerge.cli import main

REPO = Path(__file__).resolve().parents[1]


class CliResult:
    def __init__(self, exit_code: int, output: str, stdout: str | None = None):
        self.exit_code = exit_code
        self.output = output  # stdout and stderr as a user sees them
        self.stdout = output if stdout is None else stdout  # what a pipe would get (plan --json)

    def __repr__(self) -> str:
        return f"exit {self.exit_code}\n{self.output}"


def run_cli(*args: str) -> CliResult:
    """The CLI in this process (fast: reuses the session cluster through --scheduler)."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return CliResult(result.exit_code, result.output, result.stdout)


def run_cli_process(*args: str, timeout: float = 300, env: dict | None = None) -> CliResult:
    """The CLI as its own process, exactly as a user runs it."""
    done = subprocess.run([sys.executable, "-m", "shardmerge", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})
    return CliResult(done.returncode, done.stdout + done.stderr, done.stdout)


def verified_notes(path: object, strict: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Read one input as a shard task does (whole, every sum checked): the oddities it accepted."""
    from shardmerge.readers.fitsio import open_verified
    from shardmerge.readers.oddities import Oddities

    oddities = Oddities(str(path), strict)
    with open_verified(str(path), oddities):
        pass
    return tuple(oddities.notes)


def written_shards(tmp_path: Path, zarr_format: int = 3, n_wcs1d: int = 6, n_image2d: int = 2,
                   rows_per_image: int = 20, n_sdss: int = 3) -> tuple:
    """(plan, shard store paths) of a mixed corpus under `tmp_path`, planned into 16-row shards (several
    chunk rows) and every shard written, in this process, as a shard task writes it."""
    from shardmerge.config import ClusterRequest, LayoutRequest
    from shardmerge.headers import load_header_rules
    from shardmerge.pipeline import plan_inputs
    from shardmerge.shard import write_shard
    from shardmerge.shardstore import shard_path, write_file_table
    from shardmerge.testing.spectra import make_mixed_corpus

    rules = load_header_rules()
    corpus = tmp_path / "corpus"
    make_mixed_corpus(corpus, n_wcs1d=n_wcs1d, n_image2d=n_image2d, rows_per_image=rows_per_image, n_sdss=n_sdss)
    plan = plan_inputs([str(corpus)], request=LayoutRequest(chunk_rows=16, shard_rows=16, zarr_format=zarr_format),
                       rules=rules, cluster=ClusterRequest(workers=0))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    context = plan.context(write_file_table(plan, str(scratch)))
    for s in plan.shards:
        write_shard(s, context, str(scratch), rules)
    return plan, [shard_path(str(scratch), s) for s in plan.shards]


def flip_bit_keeping_mtime(path: str | Path, at: int = 0) -> None:
    """One bit of byte `at` (negative: from the end) flipped in place (same inode and size), the mtime put
    back: only the ctime tells that the file was written."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(at, os.SEEK_SET if at >= 0 else os.SEEK_END)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 1]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
