"""Imported once by the forkserver that local Dask workers are forked from (forkserver.WORKER_PRELOAD),
before it records the signal handlers its children get: every worker then ignores SIGINT.

A Ctrl-C in a terminal goes to the whole foreground process group, the workers included. Each worker
used to die of it with its own ~30-line KeyboardInterrupt traceback, ahead of the driver's one clean
line. The driver alone handles the interrupt, and closes its cluster, workers and all, as it unwinds."""

from __future__ import annotations

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
