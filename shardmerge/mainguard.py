"""Worker processes started by spawn or forkserver re-run the main script before they can work. A script
that calls `shardmerge.ingest` at module level, outside `if __name__ == "__main__":`, would start an ingest
again in every worker (which then failed as "Nanny failed to start", and with a LockHeldError from the
re-run). Both sides are refused with one clear error instead: the driver before it starts a local cluster,
and a re-run (a process still bootstrapping) at once."""

from __future__ import annotations

import ast
import sys

from .errors import MainGuardError

GUARD_HINT = ('put the call under `if __name__ == "__main__":` (Dask worker processes re-run the main '
              "script as they start, and would each start the ingest again)")


def check_not_bootstrapping() -> None:
    """Refuse an ingest in a process multiprocessing is still starting: the user's script re-run by a
    spawned (or forkserver) child. That flag is what multiprocessing's own check of this mistake reads."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise MainGuardError(f"shardmerge.ingest was called while a worker process was starting: {GUARD_HINT}")


def check_main_guarded() -> None:
    """Before starting local worker processes: refuse when this call comes from the main script's module
    level, outside an `if __name__ == "__main__":` block."""
    where = unguarded_main_call()
    if where:
        raise MainGuardError(f"shardmerge.ingest is called at module level of {where}, which every local Dask "
                             f"worker process re-runs as it starts: {GUARD_HINT}")


def unguarded_main_call() -> str | None:
    """"FILE, line N" of the main script's module-level statement this call runs under, when that line is
    outside every `if __name__ == "__main__":` block; None otherwise (a notebook or an interactive session,
    whose main module has no file and is never re-run, or a guarded call)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return None
    line = None
    frame = sys._getframe(1)
    while frame is not None:  # the outermost frame running the main module's own code
        if frame.f_globals is main.__dict__ and frame.f_code.co_name == "<module>":
            line = frame.f_lineno
        frame = frame.f_back
    if line is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None  # cannot tell: leave it to the check in the worker
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.lineno <= line <= (node.end_lineno or 0):
            return None
    return f"{path}, line {line}"


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    values = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and values == ["__main__"]
