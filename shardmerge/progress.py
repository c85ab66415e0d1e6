"""Progress people can read: tqdm bars on a terminal or in a notebook, plain lines in batch logs, nothing quiet.

One ingest is one `run_display`: on a terminal it shows an overall bar (percent of the run, elapsed and an ETA)
and under it the bar of the current phase (count, rate and ETA). Each phase is a `Progress` that the pipeline
calls with each finished item; several run at once (the merge streams beside the shard tasks), and the bar
shown is the earliest unfinished one in PHASE_ORDER, so the merge's bar takes over when the last shard is
written. Log lines of the `shardmerge` logger go through `tqdm.write` (the handler `setup_logging` installs):
printed above the bars, never into them.

Where stderr is not a terminal (a batch job's log) there are no bars and no carriage returns: one line when a
phase starts, one when it ends, and one every LOG_EVERY_S seconds or every tenth of the phase in between, each
with the phase's rate and ETA and the run's. In a Jupyter kernel the bars are widgets (`tqdm.notebook`, with
ipywidgets installed) or one text bar in the cell's output, and log lines go to the cell's output."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

log = logging.getLogger("shardmerge")

LOG_EVERY_S = 5.0  # batch logs: a line per phase at least this often (and always its start and end) ...
LOG_PARTS = 10  # ... and one each time another tenth of the phase is done,
LOG_MIN_S = 1.0  # but no two a phase closer than this (a fast phase is its start and end lines)
LOG_FORMAT = "%(asctime)s shardmerge %(levelname)s %(message)s"
LOG_DATE_FORMAT = "%H:%M:%S"

# Which phase's bar is shown while several are under way: the earliest unfinished one.
PHASE_ORDER = ("scan", "shard", "fetch", "merge", "gate")

# The overall bar's estimate of how a run's time splits between its phases. The scan (headers only) gets
# SCAN_SHARE: it runs before anything else is known. Once the plan is made the rest is split by bytes:
# the shard tasks read every input byte and write the store's bytes once (input + estimated), the merge
# places the store's bytes again (its tail after the last shard; most of it runs beside the shard tasks),
# and the gate reads a part of them back. The factors are rough averages of benchmarks/results; the ETA
# is the run's average rate so far applied to what is left, so a wrong split skews it but never stalls it.
SCAN_SHARE = 0.1
MERGE_BYTES_FACTOR = 0.2
GATE_BYTES_FACTOR = 0.1
DEFAULT_SHARES = {"scan": SCAN_SHARE, "shard": 0.7, "merge": 0.12, "gate": 0.08}

PHASE_BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"
STAGE_BAR_FORMAT = "{desc}: running [{elapsed}]"
RUN_BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]{postfix}"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (notebook, lab, VS Code): ipykernel imported and its shell running."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return False
    try:
        shell = sys.modules["IPython"].get_ipython()
    except Exception:  # noqa: BLE001 - any failure means: not a kernel we can draw in
        return False
    return shell is not None and hasattr(shell, "kernel")


def _has_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def progress_mode(enabled: bool, stream: TextIO | None = None) -> str:
    """"bar" on a terminal or in a Jupyter kernel, "log" elsewhere (batch logs), "off" when not `enabled`."""
    if not enabled:
        return "off"
    if stream is None and in_notebook():
        return "bar"
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "log"


class BarAwareHandler(logging.Handler):
    """Writes each record on a line of its own above any bars (`tqdm.write` clears them, writes, redraws).
    The stream is looked up when a record is written (sys.stderr by default), so a notebook's cell output,
    or a test's capture, is where lines go."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            stream = self.stream or sys.stderr
            if "tqdm.std" in sys.modules:  # bars may be drawn: only tqdm knows where they are
                sys.modules["tqdm.std"].tqdm.write(msg, file=stream)
            else:
                stream.write(msg + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


def setup_logging(quiet: bool) -> None:
    """The `shardmerge` logger's output for a terminal, a batch log or a notebook: INFO and up (WARNING and
    up when `quiet`) as timestamped lines on stderr, above any progress bars. Idempotent: calling it again
    changes the level, never adds a second handler. Handlers others added to the logger are kept."""
    handler = next((h for h in log.handlers if isinstance(h, BarAwareHandler)), None)
    if handler is None:
        handler = BarAwareHandler()
        log.addHandler(handler)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _bar_class(notebook: bool) -> type:
    """A tqdm class without tqdm's monitor thread (its refreshes come from our updates)."""
    if notebook and _has_widgets():
        from tqdm.notebook import tqdm as base
    else:
        from tqdm.std import tqdm as base

    return type("ShardmergeBar", (base,), {"monitor_interval": 0})


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


class Progress:
    """One phase: call it with each finished item (or a list of them). `mode`: "bar" (a terminal or a
    notebook), "log" or "off". Inside a `run_display` it feeds the run's overall bar and shows its own bar
    while it is the current phase; outside one (a `shardmerge plan` scan) it draws a bar of its own."""

    def __init__(self, phase: str, total: int, unit: str, mode: str = "log", stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.phase, self.total, self.unit, self.mode = phase, total, unit, mode
        self.stream = stream
        self.clock = clock
        self.done = 0
        self.t0 = self.last = clock()
        self.finished = False
        self._logged_step = 0
        self._own_bar: Any = None
        self.run = _current_run() if mode != "off" else None
        if mode == "log" and total:
            self._log_start()
        if self.run is not None:
            self.run.register(self)
        elif mode == "bar" and total:
            self._own_bar = self._make_bar(position=None, leave=True)
        if not total:
            self.finished = True

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 1.0

    def _make_bar(self, position: int | None, leave: bool, notebook: bool = False) -> Any:
        return _bar_class(notebook)(total=self.total, initial=min(self.done, self.total), desc=self.phase,
                                    unit=self.unit, file=self.stream or sys.stderr, position=position,
                                    leave=leave, bar_format=PHASE_BAR_FORMAT, dynamic_ncols=True)

    def __call__(self, step: object = 1) -> None:
        self.advance(len(step) if isinstance(step, list) else 1)

    def advance(self, n: int) -> None:
        """`n` more items finished (a scan batch's files)."""
        self.done += n
        now = self.clock()
        final = self.done >= self.total and not self.finished
        if final:
            self.finished = True
        if self._own_bar is not None:
            self._own_bar.update(n)
            if final:
                self._own_bar.close()
        if self.run is not None:
            self.run.advanced(self, n)
        if final and self.mode != "off":
            self._log_end(now - self.t0)
        elif self.mode == "log" and not self.finished and self._log_due(now):
            self.last = now
            elapsed = now - self.t0
            rate = self.done / max(elapsed, 1e-9)
            eta = (self.total - self.done) / rate if rate else float("inf")
            overall = self.run.summary() if self.run is not None else ""
            log.info("%s: %d/%d %s (%.1f s, %.1f %s/s, ETA %s%s)", self.phase, self.done, self.total, self.unit,
                     elapsed, rate, self.unit, _seconds(eta), overall)

    def _log_start(self) -> None:
        log.info("%s: started, %d %s to do", self.phase, self.total, self.unit)

    def _log_end(self, elapsed: float) -> None:
        log.info("%s: %d/%d %s (%.1f s)", self.phase, self.done, self.total, self.unit, elapsed)

    def _log_due(self, now: float) -> bool:
        step = int(self.done * LOG_PARTS // self.total) if self.total else LOG_PARTS  # whole tenths done
        if now - self.last >= LOG_EVERY_S or (step > self._logged_step and now - self.last >= LOG_MIN_S):
            self._logged_step = step
            return True
        return False


class _Stage(Progress):
    """A phase with no count of its own (the gate): running, then done."""

    def _log_start(self) -> None:
        log.info("%s: started", self.phase)

    def _log_end(self, elapsed: float) -> None:
        log.info("%s: done (%.1f s)", self.phase, elapsed)

    def _make_bar(self, position: int | None, leave: bool, notebook: bool = False) -> Any:
        return _bar_class(notebook)(total=None, desc=self.phase, file=self.stream or sys.stderr, position=position,
                                    leave=leave, bar_format=STAGE_BAR_FORMAT, dynamic_ncols=True)


class RunDisplay:
    """The overall bar of one ingest and the bar of its current phase (see the module's docstring)."""

    def __init__(self, mode: str, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.mode, self.stream, self.clock = mode, stream, clock
        self.t0 = clock()
        self.shares = dict(DEFAULT_SHARES)
        self.phases: dict[str, Progress] = {}
        self.percent = 0.0
        self._lock = threading.RLock()
        self._shown: Progress | None = None
        self._phase_bar: Any = None
        self._overall: Any = None
        notebook = stream is None and in_notebook()
        self._notebook = notebook
        self._one_bar = notebook and not _has_widgets()  # a text stream in a cell: no cursor moves, one line
        if mode == "bar":
            self._overall = _bar_class(notebook)(total=100.0, desc="run", file=stream or sys.stderr, position=0,
                                                 leave=True, bar_format=RUN_BAR_FORMAT, smoothing=0,
                                                 dynamic_ncols=True)

    def planned(self, input_bytes: int, store_bytes: int) -> None:
        """Split what is left after the scan between the shard tasks, the merge and the gate by bytes."""
        costs = {"shard": input_bytes + store_bytes, "merge": MERGE_BYTES_FACTOR * store_bytes,
                 "gate": GATE_BYTES_FACTOR * store_bytes}
        total = sum(costs.values())
        if total <= 0:
            return
        with self._lock:
            left = 1.0 - self.shares["scan"]
            self.shares.update({name: left * cost / total for name, cost in costs.items()})

    def register(self, progress: Progress) -> None:
        with self._lock:
            old = self.phases.get(progress.phase)
            self.phases[progress.phase] = progress  # a phase run again (a new plan) replaces its first round
            if old is not None and old is self._shown:
                self._show(None)
            self._refresh()

    def advanced(self, progress: Progress, n: int) -> None:
        with self._lock:
            if self.phases.get(progress.phase) is not progress:
                return  # an abandoned round's
            if progress is self._shown and self._phase_bar is not None:
                self._phase_bar.update(n)
            self._refresh()

    def fraction(self) -> float:
        """The run's estimated fraction done: each phase's share times its fraction (shard and fetch share one)."""
        with self._lock:
            parts: dict[str, list[float]] = {}
            for name, p in self.phases.items():
                parts.setdefault("shard" if name == "fetch" else name, []).append(p.fraction)
            done = sum(self.shares.get(name, 0.0) * sum(f) / len(f) for name, f in parts.items())
            self.percent = max(self.percent, min(100.0, 100.0 * done))  # never backwards
            return self.percent / 100.0

    def summary(self) -> str:
        """For batch log lines: the run's percent and ETA."""
        f = self.fraction()
        elapsed = self.clock() - self.t0
        eta = elapsed * (1 - f) / f if f > 0 else float("inf")
        return f"; run {100 * f:.0f}%, ETA {_seconds(eta)}" if f > 0 else ""

    def _refresh(self) -> None:
        self.fraction()
        current = next((p for name in PHASE_ORDER if (p := self.phases.get(name)) is not None and not p.finished),
                       None)
        if current is not self._shown:
            self._show(current)
        if self._overall is not None:
            if self._one_bar and self._shown is not None:
                p = self._shown
                self._overall.set_postfix_str(f"{p.phase} {min(p.done, p.total)}/{p.total} {p.unit}", refresh=False)
            elif self._one_bar:
                self._overall.set_postfix_str("", refresh=False)
            self._overall.update(self.percent - self._overall.n)

    def _show(self, progress: Progress | None) -> None:
        if self._phase_bar is not None:
            self._phase_bar.close()
            self._phase_bar = None
        self._shown = progress
        if progress is not None and self.mode == "bar" and not self._one_bar:
            progress.stream = self.stream
            self._phase_bar = progress._make_bar(position=1, leave=False, notebook=self._notebook)

    def close(self, ok: bool) -> None:
        with self._lock:
            self._show(None)
            if self._overall is not None:
                if ok:
                    self._overall.set_postfix_str("", refresh=False)
                    self._overall.update(100.0 - self._overall.n)
                else:
                    self._overall.leave = False  # a failure's message follows: the bar goes
                self._overall.close()


_run: RunDisplay | None = None
_run_lock = threading.Lock()


def _current_run() -> RunDisplay | None:
    return _run


@contextmanager
def run_display(mode: str, stream: TextIO | None = None) -> Iterator[RunDisplay | None]:
    """The progress display of one ingest: every Progress made inside it feeds one overall bar (see the
    module's docstring). Nothing for mode "off"."""
    global _run
    if mode == "off":
        yield None
        return
    display = RunDisplay(mode, stream)
    with _run_lock:
        outer, _run = _run, display
    ok = False
    try:
        yield display
        ok = True
    finally:
        with _run_lock:
            _run = outer
        display.close(ok)


def planned(input_bytes: int, store_bytes: int) -> None:
    """Tell the current run's display what the plan expects (see RunDisplay.planned); no-op without one."""
    if _run is not None:
        _run.planned(input_bytes, store_bytes)


@contextmanager
def stage(phase: str, mode: str | None = None) -> Iterator[None]:
    """A phase with no count (the gate): its bar says it is running, batch logs get its start and end."""
    run = _run
    mode = mode or (run.mode if run is not None else "off")
    p = _Stage(phase, 1, "step", mode)
    yield
    p(1)
