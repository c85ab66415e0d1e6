"""The docs tests' own marker, registered here rather than in pyproject.toml."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs_public_api: needs shardmerge.ingest, shardmerge.open_store and their modules shardmerge.api and "
        "shardmerge.reading (issue 25); fails in a tree where they have not landed",
    )
