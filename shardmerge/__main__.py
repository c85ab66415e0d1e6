"""`shardmerge` (and `python -m shardmerge`): the CLI, in a process that never uses pandas."""

from __future__ import annotations


def main() -> None:
    from . import nopandas  # noqa: F401 - this process never uses pandas; pyarrow would import it (0.35 s)
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
