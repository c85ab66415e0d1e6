"""`shardmerge` (and `python -m shardmerge`): start the workers' forkserver first when the command will
need it, then the CLI."""

from __future__ import annotations

import sys


def main() -> None:
    from . import nopandas  # noqa: F401 - this process never uses pandas; pyarrow would import it (0.35 s)
    from .forkserver import start_early, wants_local_workers

    if wants_local_workers(sys.argv[1:]):
        start_early()
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
