"""The run's progress display: an overall bar with an ETA over the phases, the current phase's bar under it,
log lines above the bars, plain lines in batch logs, and setup_logging's handler (idempotent)."""

from __future__ import annotations

import io
import logging
import re

import pytest

from shardmerge import progress
from shardmerge.progress import (
    BarAwareHandler,
    Progress,
    RunDisplay,
    progress_mode,
    run_display,
    setup_logging,
    stage,
)
from tests.terminal import frames, misplaced_log_lines, screen

log = logging.getLogger("shardmerge")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def shardmerge_logger():
    """setup_logging changes the package logger: put it back as it was for the other tests."""
    saved = log.handlers[:], log.level, log.propagate
    yield log
    log.handlers[:], log.level, log.propagate = saved


def test_setup_logging_is_idempotent_and_keeps_other_handlers(shardmerge_logger):
    mine = logging.NullHandler()
    log.addHandler(mine)
    setup_logging(quiet=False)
    setup_logging(quiet=False)
    ours = [h for h in log.handlers if isinstance(h, BarAwareHandler)]
    assert len(ours) == 1 and mine in log.handlers
    assert log.level == logging.INFO and log.propagate is False
    setup_logging(quiet=True)
    assert [h for h in log.handlers if isinstance(h, BarAwareHandler)] == ours and log.level == logging.WARNING


def test_the_handler_writes_to_the_stderr_of_the_moment(shardmerge_logger, monkeypatch):
    """A notebook kernel (or a test) swaps sys.stderr after the handler is made: lines go where it is now."""
    setup_logging(quiet=False)
    later = io.StringIO()
    monkeypatch.setattr("sys.stderr", later)
    log.info("hello %s", "there")
    assert re.fullmatch(r"\d\d:\d\d:\d\d shardmerge INFO hello there\n", later.getvalue())


def test_mode_in_a_notebook_kernel_is_bars(monkeypatch):
    """stderr in a kernel is no TTY, but the cell output draws bars (widgets, or one text bar)."""
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    assert progress_mode(True) == "bar"
    assert progress_mode(False) == "off"
    assert progress_mode(True, io.StringIO()) == "log"  # a stream given explicitly is what counts


def test_not_in_a_notebook_here():
    assert progress.in_notebook() is False


def test_overall_bar_shows_an_eta_and_log_lines_land_above_the_bars(shardmerge_logger, monkeypatch):
    monkeypatch.setenv("TQDM_MININTERVAL", "0")  # every update drawn: the frames do not depend on the clock
    tty = _Tty()
    handler = BarAwareHandler(tty)
    handler.setFormatter(logging.Formatter(progress.LOG_FORMAT, progress.LOG_DATE_FORMAT))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    with run_display("bar", stream=tty) as run:
        assert isinstance(run, RunDisplay)
        scan = Progress("scan", 4, "files", "bar")
        for _ in range(4):
            scan(1)
            log.info("a line while the scan runs")
        run.planned(input_bytes=1000, store_bytes=1000)
        merge = Progress("merge", 3, "shards", "bar")  # made first, like the pipeline's; the shards' bar shows
        shard = Progress("shard", 3, "shards", "bar")
        for _ in range(3):
            shard(1)
            log.warning("a shard line")
            merge(1)
        with stage("gate"):
            log.info("gate: checked")
    out = tty.getvalue()
    drawn = frames(out)
    assert any(re.match(r"run:\s+\d\d?%\|.*\| \[\d\d:\d\d<\d\d:\d\d\]", f) for f in drawn), drawn  # an ETA
    assert any(re.match(r"shard:\s+\d+%\|.*\| \d/3 \[\d\d:\d\d<[\d:?]+, ", f) for f in drawn), drawn
    assert any(f.startswith("gate: running") for f in drawn), drawn
    lines = screen(out)
    assert misplaced_log_lines(lines) == [], lines
    texts = [line for line in lines if " shardmerge " in line]
    assert sum("a shard line" in t for t in texts) == 3 and sum("a line while the scan" in t for t in texts) == 4
    assert any(re.search(r"INFO scan: 4/4 files \(\d+\.\d s\)$", t) for t in texts)  # ends, on a TTY too
    assert [line for line in lines if line.strip()][-1].startswith("run: 100%|")  # the bar left at the end


def test_the_shown_phase_is_the_earliest_unfinished():
    tty = _Tty()
    with run_display("bar", stream=tty) as run:
        merge = Progress("merge", 2, "shards", "bar")
        shard = Progress("shard", 2, "shards", "bar")
        assert run._shown is shard
        merge(1)
        shard(1)
        shard(1)
        assert run._shown is merge  # the merge's bar takes over once every shard is written
        assert run._phase_bar.n == 1  # with what it had done meanwhile
        merge(1)
        assert run._shown is None and run._phase_bar is None


def test_overall_fraction_follows_the_shares_and_never_goes_back():
    with run_display("log") as run:
        assert run is not None
        scan = Progress("scan", 2, "files", "off")  # "off": counts only, as a quiet run's do
        assert progress._current_run() is run
        assert scan.run is None  # a quiet phase feeds nothing
        scan = Progress("scan", 2, "files", "log")
        scan([1, 1])
        assert run.fraction() == pytest.approx(progress.SCAN_SHARE)
        run.planned(input_bytes=600, store_bytes=400)  # shard 1000 : merge 80 : gate 40 of what is left
        shard = Progress("shard", 4, "shards", "log")
        shard([1, 1])
        left = 1 - progress.SCAN_SHARE
        assert run.fraction() == pytest.approx(progress.SCAN_SHARE + left * (1000 / 1120) / 2)
        before = run.fraction()
        Progress("scan", 2, "files", "log")  # the scan again (exact grids): its fraction restarts at 0
        assert run.fraction() == before
    assert progress._current_run() is None


def test_batch_log_lines_per_phase_start_end_tenths_and_seconds(caplog):
    caplog.set_level(logging.INFO, logger="shardmerge")
    now = [0.0]
    p = Progress("shard", 100, "shards", "log", clock=lambda: now[0])
    for _ in range(100):
        now[0] += 0.25  # 25 s in all: 4 items a second
        p(1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "shard: started, 100 shards to do" and lines[-1] == "shard: 100/100 shards (25.0 s)"
    middle = lines[1:-1]
    # every tenth (10 shards, 2.5 s apart: past LOG_MIN_S, before LOG_EVERY_S), so 9 lines in between
    assert [int(m.split("/")[0].split()[-1]) for m in middle] == list(range(10, 100, 10)), lines
    assert all("shards/s, ETA" in m for m in middle)


def test_batch_log_lines_at_least_every_log_every_s(caplog):
    caplog.set_level(logging.INFO, logger="shardmerge")
    now = [0.0]
    p = Progress("scan", 1000, "files", "log", clock=lambda: now[0])
    for _ in range(50):
        now[0] += 1.0  # 1 file a second: a tenth takes 100 s, so the LOG_EVERY_S lines are what shows
        p(1)
    middle = [r.getMessage() for r in caplog.records][1:]
    assert [int(m.split("/")[0].split()[-1]) for m in middle] == list(range(5, 51, 5))


def test_off_draws_nothing_even_inside_a_run(caplog):
    caplog.set_level(logging.INFO, logger="shardmerge")
    tty = _Tty()
    with run_display("off", stream=tty) as run:
        assert run is None
        p = Progress("shard", 2, "shards", "off", tty)
        p(1)
        p(1)
        with stage("gate"):
            pass
    assert tty.getvalue() == "" and caplog.records == []


def test_a_failed_run_clears_its_bars():
    tty = _Tty()
    with pytest.raises(RuntimeError), run_display("bar", stream=tty):
        Progress("shard", 3, "shards", "bar")(1)
        raise RuntimeError("boom")
    lines = [line for line in screen(tty.getvalue()) if line.strip()]
    assert lines == []  # the error message that follows starts on a clean screen
