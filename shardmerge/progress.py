"""Progress per phase: a bar on a terminal, plain periodic log lines in batch logs, nothing with --quiet."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger("shardmerge")

LOG_EVERY_S = 5.0  # batch logs: at most one line per phase this often (and always the last)
BAR_EVERY_S = 0.1
BAR_WIDTH = 30


class Progress:
    """Call with each finished item (or a list of them). `mode`: "bar" (a terminal), "log" or "off"."""

    def __init__(self, phase: str, total: int, unit: str, mode: str = "log", stream: TextIO | None = None):
        self.phase, self.total, self.unit, self.mode = phase, total, unit, mode
        self.stream = stream or sys.stderr
        self.done = 0
        self.t0 = time.monotonic()
        self.last = 0.0

    def __call__(self, step: object = 1) -> None:
        self.done += len(step) if isinstance(step, list) else 1
        now = time.monotonic()
        final = self.done >= self.total
        if self.mode == "bar" and (final or now - self.last >= BAR_EVERY_S):
            self.last = now
            self._draw(now, final)
        elif self.mode == "log" and (final or now - self.last >= LOG_EVERY_S):
            self.last = now
            log.info("%s: %d/%d %s (%.1f s)", self.phase, self.done, self.total, self.unit, now - self.t0)

    def _draw(self, now: float, final: bool) -> None:
        frac = self.done / self.total if self.total else 1.0
        filled = int(frac * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        rate = self.done / max(now - self.t0, 1e-9)
        self.stream.write(f"\r{self.phase:<8} [{bar}] {self.done}/{self.total} {self.unit} "
                          f"{now - self.t0:6.1f} s {rate:8.1f}/s")
        if final:
            self.stream.write("\n")
        self.stream.flush()


def setup_logging(quiet: bool) -> None:
    """shardmerge's log lines to stderr, with a time stamp: INFO and up, or only warnings with `quiet`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s shardmerge %(levelname)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def progress_mode(enabled: bool, stream: TextIO | None = None) -> str:
    if not enabled:
        return "off"
    stream = stream or sys.stderr
    return "bar" if stream.isatty() else "log"
