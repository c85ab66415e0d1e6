"""No cluster: tasks run in this process, one after another (--workers 0, and small inputs)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from .base import should_retry

log = logging.getLogger("shardmerge")


class InlineExecutor:
    """Runs tasks in this process, one after another (--workers 0): for debugging and tiny inputs."""

    workers = 0
    address = "inline"
    local = True
    info = {"kind": "inline"}
    runs_on_workers = False  # (see base.Executor.runs_on_workers)

    def map(self, fn: Callable, items: Sequence, *args: Any, name: str, retries: int = 0,  # noqa: PLR0913 - base.Executor.map's contract
            on_result: Callable[[Any], None] | None = None,
            keep_errors: tuple[type[BaseException], ...] = (),
            fold: Callable[[Any], None] | None = None, first: Sequence[int] | None = None) -> list:
        del first  # one at a time: item order lets the streamed merge follow each task
        out = []
        for item in items:
            attempt = 0
            while True:
                try:
                    r = fn(item, *args)
                    break
                except keep_errors as exc:
                    r = exc
                    break
                except Exception as exc:
                    if not should_retry(exc, attempt, retries):
                        raise
                    log.warning("task %s failed (%s: %s); retrying", name, type(exc).__name__, exc)
                    attempt += 1
            if on_result:
                on_result(r)
            if fold:
                fold(r)
            else:
                out.append(r)
        return out
