"""What `shardmerge ingest` prints, as a user sees it: under a real pseudo-terminal (an overall bar with an
ETA, the phase's bar, every log line on its own line), with stderr a file (no bars, a line per phase),
with --quiet (no bars), and inside a Jupyter kernel (a bar and the log lines in the cell's output)."""

from __future__ import annotations

import os
import re
import sys

import pytest

from tests.helpers import REPO, run_cli_process
from tests.terminal import LOG_LINE, frames, misplaced_log_lines, screen

pexpect = pytest.importorskip("pexpect")

# 19 files, 136 spectra: 9 shards of 16 rows, in this process (no cluster start: fast and deterministic)
ARGS = ("--workers", "0", "--chunk-rows", "16", "--shard-rows", "16")
ENV = {"PYTHONPATH": str(REPO), "TQDM_MININTERVAL": "0"}  # every update drawn: frames do not depend on the clock


def _in_a_terminal(*args: object, timeout: float = 180) -> tuple[int, str]:
    child = pexpect.spawn(sys.executable, ["-m", "shardmerge", *map(str, args)], env={**os.environ, **ENV},
                          dimensions=(40, 120), timeout=timeout, encoding="utf-8", codec_errors="replace")
    try:
        child.expect(pexpect.EOF)
        raw = child.before
    finally:
        child.close()
    return child.exitstatus, raw


@pytest.mark.timeout(240)
def test_a_terminal_shows_an_eta_and_no_line_is_written_into_a_bar(tmp_path, mixed_corpus):
    status, raw = _in_a_terminal("ingest", mixed_corpus, "-o", tmp_path / "t.zarr", *ARGS)
    assert status == 0, raw
    drawn = frames(raw)
    mid_run = [f for f in drawn if (m := re.match(r"run:\s+(\d+)%\|.*\| \[\d\d:\d\d<\d\d:\d\d\]", f))
               and int(m.group(1)) < 100]
    assert mid_run, drawn  # the overall bar, with a time left (not "?") before the end
    assert any(re.match(r"shard:\s+\d+%\|.*\| \d/9 \[\d\d:\d\d<\d\d:\d\d,\s+[\d.]+shards/s\]", f) for f in drawn), drawn
    assert any(re.match(r"scan:\s+\d+%\|.*\| \d+/19 ", f) for f in drawn), drawn
    lines = screen(raw)
    assert misplaced_log_lines(lines) == [], "\n".join(lines)
    logged = [line for line in lines if LOG_LINE.match(line)]
    for text in ("scan: 19/19 files", "plan: 136 spectra", "shard: 9/9 shards", "merge: 9/9 shards", "gate: ",
                 "published "):
        assert any(text in line for line in logged), "\n".join(lines)
    shown = [line for line in lines if line.strip()]
    assert shown[-1].startswith("published ") and shown[-2].startswith("run: 100%|"), "\n".join(lines)
    assert not any(re.match(r"(shard|merge|scan|gate):\s", line) for line in shown)  # phase bars cleared


@pytest.mark.timeout(240)
def test_quiet_in_a_terminal_draws_no_bar(tmp_path, mixed_corpus):
    status, raw = _in_a_terminal("ingest", mixed_corpus, "-o", tmp_path / "q.zarr", *ARGS, "--quiet")
    assert status == 0, raw
    assert "\x1b" not in raw and "%|" not in raw and re.search(r"\r(?!\n)", raw) is None, repr(raw)
    assert [line for line in screen(raw) if line.strip()] == [raw.strip()] and raw.startswith("published ")


@pytest.mark.timeout(240)
def test_a_batch_log_has_no_bars_and_a_line_at_each_phase_start_and_end(tmp_path, mixed_corpus):
    r = run_cli_process("ingest", mixed_corpus, "-o", tmp_path / "b.zarr", *ARGS, env=ENV)
    assert r.exit_code == 0, r
    assert "\r" not in r.output and "\x1b" not in r.output and "%|" not in r.output, repr(r.output)
    lines = r.output.splitlines()
    assert all(LOG_LINE.match(line) for line in lines if line != r.stdout.strip()), r
    for text in ("scan: started, 19 files to do", "scan: 19/19 files", "shard: started, 9 shards to do",
                 "shard: 9/9 shards", "merge: started, 9 shards to do", "merge: 9/9 shards", "gate: started",
                 "gate: done"):
        assert sum(text in line for line in lines) == 1, (text, r)


NOTEBOOK_CELLS = [
    """from shardmerge.progress import setup_logging, in_notebook
setup_logging(quiet=False)
setup_logging(quiet=False)  # again: still one handler
import logging
print("handlers", len(logging.getLogger("shardmerge").handlers), "notebook", in_notebook())""",
    """from shardmerge.config import ClusterRequest, LayoutRequest
from shardmerge.pipeline import IngestOptions, ingest
report = ingest(IngestOptions(inputs=({corpus!r},), out={out!r}, cluster=ClusterRequest(workers=0),
                              layout=LayoutRequest(chunk_rows=16, shard_rows=16)))
print("status", report.status)""",
]


@pytest.mark.timeout(300)
def test_a_notebook_kernel_shows_a_bar_and_the_log_lines(tmp_path, mixed_corpus, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this tree's shardmerge
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    out = str(tmp_path / "nb.zarr")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.format(corpus=str(mixed_corpus), out=out))
                                         for c in NOTEBOOK_CELLS])
    client = nbclient.NotebookClient(nb, timeout=180, startup_timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    setup, run = ([o for o in cell.outputs] for cell in nb.cells)
    assert "".join(o.get("text", "") for o in setup).strip() == "handlers 1 notebook True"
    text = "".join(o.get("text", "") for o in run if o.output_type == "stream")
    widgets = [o for o in run if o.output_type == "display_data"
               and "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets or re.search(r"run:\s+\d+%\|", text), run  # a widget, or tqdm's text bar in the cell
    assert "status published" in text
    lines = screen(text)
    assert misplaced_log_lines(lines) == [], "\n".join(lines)
    for phase in ("scan: 19/19 files", "shard: 9/9 shards", "merge: 9/9 shards", "published "):
        assert any(LOG_LINE.match(line) and phase in line for line in lines), "\n".join(lines)
