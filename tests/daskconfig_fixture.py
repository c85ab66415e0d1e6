"""A dask config of the test's own: dask's YAML search path is one empty temp folder, no DASK_SHARDMERGE__
variable is set, and the global config is re-read from them; both are restored afterwards. dask reads its
config once per process, at import, so tests that change it in this process go through this fixture."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(name="dask_config")
def dask_config_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Yields `write(text, name="site.yaml", **env)`: writes one YAML file into the search folder, sets the
    environment variables given, re-reads the config, and returns the file's path."""
    import dask.config

    from shardmerge import daskconfig

    folder = tmp_path / "dask-config"
    folder.mkdir()
    saved_paths = list(dask.config.paths)

    def write(text: str | None = None, name: str = "site.yaml", **env: str) -> Path:
        path = folder / name
        if text is not None:
            path.write_text(text)
        for var, value in env.items():
            m.setenv(var, value)
        dask.config.refresh()
        return path

    with monkeypatch.context() as m:
        for var in [v for v in os.environ if v.upper().startswith("DASK_SHARDMERGE__")]:
            m.delenv(var)
        m.setattr(dask.config, "PATH", str(folder))
        daskconfig.register()
        dask.config.paths[:] = [str(folder)]  # in place: refresh() holds this very list as its default
        dask.config.refresh()
        try:
            yield write
        finally:
            dask.config.paths[:] = saved_paths
    dask.config.refresh()  # after the environment is restored
