"""Progress output: a bar on a terminal, periodic log lines in batch logs, nothing with --quiet."""

from __future__ import annotations

import io
import logging

from shardmerge.progress import Progress, progress_mode


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_mode_follows_the_stream():
    assert progress_mode(True, _Tty()) == "bar"
    assert progress_mode(True, io.StringIO()) == "log"
    assert progress_mode(False, _Tty()) == "off"


def test_bar_on_a_terminal_ends_with_a_newline():
    tty = _Tty()
    p = Progress("shard", 4, "shards", "bar", tty)
    for _ in range(4):
        p(1)
    out = tty.getvalue()
    assert out.startswith("\rshard:   0%|") and out.endswith("\n")  # a tqdm bar, left on its own line
    assert "4/4 [" in out.splitlines()[-1] and "100%|" in out


def test_log_lines_are_rate_limited_and_the_last_always_printed(caplog):
    caplog.set_level(logging.INFO, logger="shardmerge")
    now = [0.0]
    p = Progress("scan", 100, "files", "log", clock=lambda: now[0])
    for _ in range(10):
        p([1] * 10)  # a batch of 10 files per result, all within LOG_MIN_S
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2  # the start, then nothing closer than 1 s, then the last
    assert lines[0] == "scan: started, 100 files to do" and lines[-1].startswith("scan: 100/100 files")


def test_off_prints_nothing(caplog):
    caplog.set_level(logging.INFO, logger="shardmerge")
    tty = _Tty()
    p = Progress("merge", 3, "shards", "off", tty)
    for _ in range(3):
        p(1)
    assert tty.getvalue() == "" and caplog.records == []
