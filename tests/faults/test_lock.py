"""Two real ingests aimed at one OUT, and a lock whose holder was SIGKILLed."""

from __future__ import annotations

from tests.faults.helpers import LAYOUT, kill_group, start_ingest, wait_for_failpoint
from tests.helpers import run_cli, run_cli_process
from tests.storecmp import chunk_files


def test_second_writer_fails_at_once_naming_the_holder_and_the_first_is_unaffected(tmp_path, corpus,
                                                                                    clean_store):
    out = tmp_path / "out.zarr"
    first = start_ingest(tmp_path, corpus, "-o", out, *LAYOUT, failpoints="gate-start=wait", workers=0)
    try:
        holder = wait_for_failpoint(tmp_path, "gate-start", first)
        assert holder == first.pid  # the gate runs in the ingest process, which holds the lock
        # the first holds the lock until the test lets it go on: the second must fail without waiting for it
        second = run_cli_process("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT, "--overwrite", timeout=120)
        assert second.exit_code == 5, second
        assert f"pid {first.pid}" in second.output and "another shardmerge ingest" in second.output
        assert first.poll() is None  # still held at its gate
    except BaseException:
        kill_group(first)
        raise
    (tmp_path / "failpoints" / "gate-start.go").touch()
    assert first.wait(timeout=120) == 0, first.stdout.read()
    assert chunk_files(out) == chunk_files(clean_store)
    assert run_cli("validate", out).exit_code == 0


def test_lock_of_a_sigkilled_run_is_taken_over(tmp_path, corpus, clean_store):
    out = tmp_path / "out.zarr"
    proc = start_ingest(tmp_path, corpus, "-o", out, *LAYOUT, failpoints="merge-copied-shard=pause", workers=0)
    wait_for_failpoint(tmp_path, "merge-copied-shard", proc)
    kill_group(proc)
    lock = tmp_path / "out.zarr.lock"
    assert f'"pid": {proc.pid}' in lock.read_text()  # the dead holder's record is still there
    r = run_cli_process("ingest", corpus, "-o", out, "--workers", "0", *LAYOUT)
    assert r.exit_code == 0, r
    assert "took over the lock" in r.output and f"pid {proc.pid}" in r.output
    assert chunk_files(out) == chunk_files(clean_store)
    assert not lock.exists()
