"""Ctrl-C and SIGTERM: one line that says what was kept, where, and what resumes; no worker tracebacks; and a
true line when the interrupt came after the store was published. Real ingest processes, stopped at failpoints."""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.faults.helpers import LAYOUT, kill_group, start_ingest, wait_for_failpoint
from tests.helpers import run_cli, run_cli_process
from tests.storecmp import chunk_files


def _interrupted(tmp_path, args, failpoints, point, sig, workers, group):
    proc = start_ingest(tmp_path, *args, failpoints=failpoints, workers=workers)
    try:
        wait_for_failpoint(tmp_path, point, proc)
        if group:
            os.killpg(proc.pid, sig)  # as a terminal's Ctrl-C does: the workers get it too
        else:
            os.kill(proc.pid, sig)
        output, _ = proc.communicate(timeout=120)
    except BaseException:
        kill_group(proc)
        raise
    return proc.returncode, output


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_local_run_says_in_one_line_what_was_kept_and_how_to_resume(tmp_path, corpus, clean_store,
                                                                                    sig):
    out, scratch, report = tmp_path / "o.zarr", tmp_path / "scratch", tmp_path / "interrupted.json"
    args = (corpus, "-o", out, "--scratch", scratch, "--report", report, *LAYOUT)
    # the 4th shard task pauses: with 2 workers, at least 2 shards are finished by then
    code, output = _interrupted(tmp_path, args, "shard-start=pause@4", "shard-start", sig, workers=2, group=True)
    assert code == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "batch jobs" not in output
    lines = [line for line in output.splitlines() if "interrupted" in line]
    assert len(lines) == 1, output
    kept = sorted(p for p in scratch.glob("*/shard-*.zarr") if (p / "manifest.json").is_file())
    assert len(kept) >= 2
    assert lines[0].startswith(f"shardmerge: interrupted: nothing was published at {out}; {len(kept)} finished "
                               f"shard(s) kept in {kept[0].parent}; rerun the same command to resume: "
                               "shardmerge ingest "), lines[0]
    assert not out.exists() and not (tmp_path / "o.zarr.tmp").exists()
    written = json.loads(report.read_text())  # the report says it too, in the same words
    assert (written["status"], written["error"]) == ("failed", lines[0].removeprefix("shardmerge: "))
    resume = lines[0].split("to resume: shardmerge ", 1)[1]
    resume = resume.replace(f" --report {report}", "")
    r = run_cli_process(*resume.split(" "), "--report", tmp_path / "r.json")  # (no quoting in these paths)
    assert r.exit_code == 0, r
    assert '"shards_reused": ' + str(len(kept)) in (tmp_path / "r.json").read_text()
    assert chunk_files(out) == chunk_files(clean_store)


@pytest.mark.timeout(300)
def test_an_interrupt_after_the_publish_says_it_was_published(tmp_path, corpus, clean_store):
    out = tmp_path / "o.zarr"
    code, output = _interrupted(tmp_path, (corpus, "-o", out, *LAYOUT), "published=pause", "published",
                                signal.SIGINT, workers=0, group=False)
    assert code == 130, output
    assert "nothing was published" not in output, output
    assert f"shardmerge: interrupted: {out} was published" in output
    assert chunk_files(out) == chunk_files(clean_store)
    assert run_cli("validate", out).exit_code == 0


@pytest.mark.timeout(120)
def test_an_interrupt_before_the_run_began_says_nothing_was_written(tmp_path, monkeypatch):
    """Ctrl-C while the command's modules load, or before the ingest started: one line, exit 130 (it was an
    empty `shardmerge: `, or an import traceback)."""
    import subprocess
    import sys

    import shardmerge.api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(shardmerge.api, "ingest", interrupted)  # before api.ingest's run: nothing written
    r = run_cli("ingest", tmp_path, "-o", tmp_path / "o.zarr", "--workers", "0")
    assert r.exit_code == 130 and r.output.strip() == "shardmerge: interrupted before the run began: nothing was " \
                                                        "written", r.output
    # while `shardmerge.cli` is being imported (a finder stands in for the Ctrl-C that lands there)
    code = ("import sys\n"
            "class Interrupting:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'shardmerge.cli':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Interrupting())\n"
            "from shardmerge.__main__ import main\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code, "ingest"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip() == "shardmerge: interrupted before the run began: nothing was written", done.stderr
    assert not (tmp_path / "o.zarr").exists()
