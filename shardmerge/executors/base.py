"""What every backend offers the stages, and the rules they share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..errors import ShardmergeError


class Executor(Protocol):
    """Runs `fn(item, *args)` for every item and returns the results in item order."""

    workers: int
    address: str
    local: bool  # every worker on this machine (a LocalCluster, or none)
    info: dict

    @property
    def runs_on_workers(self) -> bool:
        """True when tasks run in worker processes, possibly on other hosts (a Dask cluster of any kind),
        False when they run in this process. With workers, what a task writes is on the worker's disk
        (scratch may need checking, or fetching), and there is a cluster whose close the report times;
        without, this process writes the shards itself and there is nothing to close. The pipeline asks
        this instead of which backend it has."""

    def map(self, fn: Callable, items: Sequence, *args: Any, name: str, retries: int = 0,  # noqa: PLR0913 - the stages' one call for every backend
            on_result: Callable[[Any], None] | None = None,
            keep_errors: tuple[type[BaseException], ...] = (),
            fold: Callable[[Any], None] | None = None, first: Sequence[int] | None = None) -> list:
        """`keep_errors`: a task that raises one of these returns the exception as its result (the others
        still run), instead of failing the map. `fold`: called with each result in item order, as soon as
        every earlier one has been; the results are then not kept (map returns []). `first`: item positions
        in the order to start them where several run at once (longest first); the results keep item order."""


def should_retry(exc: BaseException, attempt: int, retries: int) -> bool:
    """A task that raised a plain exception (an OSError from a flaky disk or network) is run again, up to
    `retries` times. A ShardmergeError never is: it names a bad file, a full disk or a failed fsync, which
    another attempt would only repeat or, for fsync, could wrongly report as fixed."""
    return attempt < retries and isinstance(exc, Exception) and not isinstance(exc, ShardmergeError)


class NotTheRun(SystemExit):
    """Leaving a process that served the cluster rather than ran the ingest (the scheduler and worker ranks
    of an in-allocation runner, see executors.process_role): the run's outcome, and its report, are another
    process's."""


ServedTheCluster = NotTheRun  # the name the pipeline may use: nothing in it is particular to one scheduler
